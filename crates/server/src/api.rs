//! `/api/v1/status`, `/api/v1/metrics` and one group of it (`/api/v1/metrics/job/...`, an
//! extension): the official JSON, written directly (keys sorted, every value a string in Go's
//! `%v` format, Go's HTML-safe string escaping).

use crate::histogram::Count;
use crate::http::Resp;
use crate::json::{json_bytes, json_float_bytes, json_response, json_str, push_u64};
use crate::timefmt::{rfc3339_nano, system_time_nanos, QuotedTimes};
use crate::App;
use exposition::float::write_go_float;
use exposition::pb::MetricType;
use std::fmt::Write;
use std::sync::Arc;
use store::shared::Splices;
use store::{FamilyEntry, Group, GroupKey};

/// GET /api/v1/status
pub fn status(app: &Arc<App>) -> Resp {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"build_information\":{");
    let info = app.cfg.build.fields();
    for (i, (k, v)) in info.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, k);
        out.push(':');
        json_str(&mut out, v);
    }
    out.push_str("},\"flags\":{");
    for (i, (k, v)) in app.cfg.flags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, k);
        out.push(':');
        json_str(&mut out, v);
    }
    out.push_str("},\"start_time\":");
    json_str(
        &mut out,
        &rfc3339_nano(system_time_nanos(app.start_time), app.cfg.utc_offset),
    );
    out.push_str("}}");
    json_response(out)
}

/// One protobuf field: its number and value (varints and fixed64 raw, bytes borrowed).
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Field<'a> {
    fn f64(&self) -> Option<f64> {
        match self {
            Field::Fixed64(b) => Some(f64::from_bits(*b)),
            _ => None,
        }
    }

    fn u64(&self) -> Option<u64> {
        match self {
            Field::Varint(v) => Some(*v),
            _ => None,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        match self {
            Field::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// The fields of a protobuf message, in order (stops at the first malformed one: the
/// stored bytes are our own encoding).
struct Fields<'a>(&'a [u8]);

/// A varint; the one-byte case (keys, small lengths and counts) inline.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    match buf.split_first() {
        Some((&b, rest)) if b < 0x80 => {
            *buf = rest;
            Some(u64::from(b))
        }
        Some(_) => varint_long(buf),
        None => None,
    }
}

#[cold]
#[inline(never)]
fn varint_long(buf: &mut &[u8]) -> Option<u64> {
    prost::encoding::decode_varint(buf).ok()
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Field<'a>);

    #[inline(always)]
    fn next(&mut self) -> Option<(u32, Field<'a>)> {
        let buf = &mut self.0;
        let key = varint(buf)?;
        let f = match key & 7 {
            0 => Field::Varint(varint(buf)?),
            1 => match buf.split_first_chunk::<8>() {
                Some((b, rest)) => {
                    *buf = rest;
                    Field::Fixed64(u64::from_le_bytes(*b))
                }
                None => {
                    *buf = &[];
                    return None;
                }
            },
            2 => {
                let n = varint(buf)? as usize;
                let n = n.min(buf.len());
                let (head, rest) = buf.split_at(n);
                *buf = rest;
                Field::Bytes(head)
            }
            5 => {
                *buf = buf.get(4..).unwrap_or_default();
                Field::Other
            }
            _ => {
                *buf = &[];
                return None;
            }
        };
        Some(((key >> 3) as u32, f))
    }
}

/// The JSON members (`"name":"value"`) of the group labels an entry's metrics were cut
/// from ([`FamilyEntry::cut_proto_metrics`]), escaped once for all the metrics that point
/// to these splices.
struct SpliceJson {
    sp: Splices,
    /// The members, comma-separated: all of them in a row.
    json: Vec<u8>,
    /// Where member `k` ends in `json` (it starts after the comma behind member `k - 1`).
    ends: Vec<usize>,
    /// The raw names one after the other, for the order check, and where each ends.
    names: Vec<u8>,
    name_ends: Vec<usize>,
}

impl SpliceJson {
    /// The JSON of `sp`, in `reuse`'s buffers.
    fn new(sp: &Splices, reuse: Option<SpliceJson>) -> SpliceJson {
        let mut sj = match reuse {
            Some(mut sj) => {
                sj.sp = sp.clone();
                sj.json.clear();
                sj.ends.clear();
                sj.names.clear();
                sj.name_ends.clear();
                sj
            }
            None => SpliceJson {
                sp: sp.clone(),
                json: Vec::new(),
                ends: Vec::new(),
                names: Vec::new(),
                name_ends: Vec::new(),
            },
        };
        for k in 0..sp.label_count() {
            if k > 0 {
                sj.json.push(b',');
            }
            let (n, v) = sp.label(k);
            json_bytes(&mut sj.json, n);
            sj.json.push(b':');
            json_bytes(&mut sj.json, v);
            sj.ends.push(sj.json.len());
            sj.names.extend_from_slice(n);
            sj.name_ends.push(sj.names.len());
        }
        sj
    }

    /// How many labels there are.
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Member `k` (empty for an unknown `k`, which [`store::shared`]'s writer also leaves out).
    fn member(&self, k: usize) -> &[u8] {
        let Some(&end) = self.ends.get(k) else {
            return &[];
        };
        let start = if k == 0 { 0 } else { self.ends[k - 1] + 1 };
        &self.json[start..end]
    }

    /// Label `k`'s raw name (`k` < [`SpliceJson::len`]).
    fn name(&self, k: usize) -> &[u8] {
        let start = if k == 0 { 0 } else { self.name_ends[k - 1] };
        &self.names[start..self.name_ends[k]]
    }
}

/// How a family starts (`"name":{"help":"...","metrics":[`), for one family name and HELP
/// text: the same in every group that has the family.
struct FamilyHead {
    /// Held, so that the pointers compared stay these strings'.
    name: Arc<str>,
    help: Option<store::group::HelpText>,
    json: Vec<u8>,
}

/// Slots of the [`FamilyHead`] cache (direct-mapped by the name's address).
const HEADS: usize = 256;

/// What the JSON writer keeps between groups of one answer: the last family push time,
/// formatted and quoted (the families of a group share it), and scratch space for floats.
pub struct JsonCx {
    time: Option<(i64, Vec<u8>)>,
    times: QuotedTimes,
    scratch: String,
    /// The JSON of the last group labels seen.
    splices: Option<SpliceJson>,
    heads: Vec<Option<FamilyHead>>,
}

impl JsonCx {
    pub fn new(offset: time::UtcOffset) -> JsonCx {
        JsonCx {
            time: None,
            times: QuotedTimes::new(offset),
            scratch: String::new(),
            splices: None,
            heads: (0..HEADS).map(|_| None).collect(),
        }
    }

    /// Appends the time `ns` as a JSON string (RFC 3339 in the configured offset).
    fn time(&mut self, out: &mut Vec<u8>, ns: i64) {
        if self.time.as_ref().is_none_or(|(t, _)| *t != ns) {
            let (_, mut q) = self.time.take().unwrap_or_default();
            q.clear();
            self.times.write(&mut q, ns);
            self.time = Some((ns, q));
        }
        out.extend_from_slice(&self.time.as_ref().expect("just set").1);
    }

    /// Appends `"name":{"help":"...","metrics":[` for family `e` shown under `name`.
    fn family_head(&mut self, out: &mut Vec<u8>, name: &Arc<str>, e: &FamilyEntry) {
        let help = e.help.as_ref().filter(|h| !h.is_empty());
        let addr = Arc::as_ptr(name).cast::<u8>() as usize;
        let slot = (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) % HEADS;
        let hit = self.heads[slot].as_ref().is_some_and(|h| {
            Arc::ptr_eq(&h.name, name)
                && match (&h.help, help) {
                    (None, None) => true,
                    (Some(a), Some(b)) => store::group::HelpText::ptr_eq(a, b),
                    _ => false,
                }
        });
        if !hit {
            let mut json = Vec::with_capacity(name.len() + 40);
            json_bytes(&mut json, name.as_bytes());
            json.extend_from_slice(b":{");
            if let Some(h) = help {
                json.extend_from_slice(b"\"help\":");
                json_bytes(&mut json, h.as_bytes());
                json.push(b',');
            }
            json.extend_from_slice(b"\"metrics\":[");
            self.heads[slot] = Some(FamilyHead {
                name: name.clone(),
                help: help.cloned(),
                json,
            });
        }
        out.extend_from_slice(&self.heads[slot].as_ref().expect("just set").json);
    }

    fn float(&mut self, out: &mut Vec<u8>, v: f64) {
        json_float_bytes(out, &mut self.scratch, v);
    }

    /// A histogram count: a JSON string either way (`"3"`, `"2.5"`).
    fn count(&mut self, out: &mut Vec<u8>, c: Count) {
        match c {
            Count::Float(f) => self.float(out, f),
            Count::Int(n) => {
                out.push(b'"');
                push_u64(out, n);
                out.push(b'"');
            }
        }
    }
}

/// The name and value of a stored `LabelPair` message.
#[inline]
fn label_pair(msg: &[u8]) -> (&[u8], &[u8]) {
    // As we encode it: name (field 1) then value (field 2), both shorter than 128 bytes.
    if let [0x0A, n, rest @ ..] = msg {
        if let Some((name, [0x12, m, value @ ..])) = rest.split_at_checked(usize::from(*n)) {
            if *n < 0x80 && *m < 0x80 && usize::from(*m) == value.len() {
                return (name, value);
            }
        }
    }
    let (mut n, mut v): (&[u8], &[u8]) = (b"", b"");
    for (tag, f) in Fields(msg) {
        match tag {
            1 => n = f.bytes(),
            2 => v = f.bytes(),
            _ => {}
        }
    }
    (n, v)
}

/// `a < b` for short byte strings (label names), without a call to `memcmp`.
#[inline(always)]
fn less(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// The `labels` object of a metric from its stored `label` fields (the `LabelPair`s among
/// `fields`, and with `sj` the group's labels cut out of them: field 14 for all of them,
/// field 15 for one), in one pass when they are sorted by name and unique, as stored labels
/// are; otherwise sorted (by name, then value) with the first of each name kept.
fn labels_obj(out: &mut Vec<u8>, fields: &[u8], sj: Option<&SpliceJson>) {
    let start = out.len();
    out.push(b'{');
    let mut prev: Option<&[u8]> = None;
    let mut sorted = true;
    for (tag, f) in Fields(fields) {
        // The member(s) to write, and the first and last name among them.
        let (first, last, member) = match (tag, sj) {
            (1, _) => {
                let (n, v) = label_pair(f.bytes());
                if let Some(p) = prev {
                    if !less(p, n) {
                        sorted = false;
                        break;
                    }
                    out.push(b',');
                }
                prev = Some(n);
                json_bytes(out, n);
                out.push(b':');
                json_bytes(out, v);
                continue;
            }
            (14, Some(sj)) => match sj.len() {
                0 => continue,
                n => (sj.name(0), sj.name(n - 1), &sj.json[..]),
            },
            (15, Some(sj)) => {
                let k = f.u64().unwrap_or(u64::MAX) as usize;
                if k >= sj.len() {
                    continue;
                }
                let n = sj.name(k);
                (n, n, sj.member(k))
            }
            _ => continue,
        };
        if let Some(p) = prev {
            if !less(p, first) {
                sorted = false;
                break;
            }
            out.push(b',');
        }
        prev = Some(last);
        out.extend_from_slice(member);
    }
    if !sorted {
        out.truncate(start + 1);
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
        for (tag, f) in Fields(fields) {
            match (tag, sj) {
                (1, _) => pairs.push(label_pair(f.bytes())),
                (14, Some(sj)) => {
                    pairs.extend((0..sj.sp.label_count()).map(|k| sj.sp.label(k)));
                }
                (15, Some(sj)) => {
                    let k = f.u64().unwrap_or(u64::MAX) as usize;
                    if k < sj.sp.label_count() {
                        pairs.push(sj.sp.label(k));
                    }
                }
                _ => {}
            }
        }
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        for (i, (n, v)) in pairs.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_bytes(out, n);
            out.push(b':');
            json_bytes(out, v);
        }
    }
    out.push(b'}');
}

/// The `value` (field 1) of a `Counter`, `Gauge` or `Untyped` message.
fn value_of(msg: &[u8]) -> Option<f64> {
    Fields(msg).filter(|(t, _)| *t == 1).last()?.1.f64()
}

/// One metric as the API shows it, written straight from its stored `Metric` message
/// bytes (no decoding into a `Metric`; native histograms aside).
fn metric_obj(
    out: &mut Vec<u8>,
    t: MetricType,
    metric: &[u8],
    sj: Option<&SpliceJson>,
    cx: &mut JsonCx,
) {
    let want = match t {
        MetricType::Counter => 3,
        MetricType::Gauge => 2,
        MetricType::Summary => 4,
        MetricType::Untyped => 5,
        MetricType::Histogram | MetricType::GaugeHistogram => 7,
    };
    let mut body: Option<&[u8]> = None;
    // The span of the `label` fields and the splices among them (contiguous as we encode
    // them; labels_obj skips any other field within).
    let (mut from, mut to) = (usize::MAX, 0);
    let mut fields = Fields(metric);
    loop {
        let at = metric.len() - fields.0.len();
        let Some((tag, f)) = fields.next() else {
            break;
        };
        if matches!(tag, 1 | 14 | 15) {
            from = from.min(at);
            to = metric.len() - fields.0.len();
        } else if tag == want {
            body = Some(f.bytes());
        }
    }
    let metric = metric.get(from..to).unwrap_or_default();
    match t {
        MetricType::Summary => summary_obj(out, body.unwrap_or_default(), metric, sj, cx),
        MetricType::Histogram | MetricType::GaugeHistogram => {
            histogram_obj(out, body.unwrap_or_default(), metric, sj, cx)
        }
        _ => {
            let v = body.and_then(value_of).unwrap_or(0.0);
            out.extend_from_slice(b"{\"labels\":");
            labels_obj(out, metric, sj);
            out.extend_from_slice(b",\"value\":");
            cx.float(out, v);
            out.push(b'}');
        }
    }
}

/// A summary from its stored `Summary` message bytes (`metric`: for its labels).
fn summary_obj(
    out: &mut Vec<u8>,
    body: &[u8],
    metric: &[u8],
    sj: Option<&SpliceJson>,
    cx: &mut JsonCx,
) {
    let (mut count, mut sum) = (0, 0.0);
    for (tag, f) in Fields(body) {
        match tag {
            1 => count = f.u64().unwrap_or(0),
            2 => sum = f.f64().unwrap_or(0.0),
            _ => {}
        }
    }
    out.extend_from_slice(b"{\"count\":\"");
    push_u64(out, count);
    out.extend_from_slice(b"\",\"labels\":");
    labels_obj(out, metric, sj);
    out.extend_from_slice(b",\"quantiles\":{");
    let quantiles = Fields(body).filter(|(tag, _)| *tag == 3);
    for (i, (_, q)) in quantiles.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (mut quantile, mut value) = (0.0, 0.0);
        for (tag, f) in Fields(q.bytes()) {
            match tag {
                1 => quantile = f.f64().unwrap_or(0.0),
                2 => value = f.f64().unwrap_or(0.0),
                _ => {}
            }
        }
        cx.float(out, quantile);
        out.push(b':');
        cx.float(out, value);
    }
    out.extend_from_slice(b"},\"sum\":");
    cx.float(out, sum);
    out.push(b'}');
}

/// A histogram from its stored `Histogram` message bytes (native ones decoded).
fn histogram_obj(
    out: &mut Vec<u8>,
    h: &[u8],
    metric: &[u8],
    sj: Option<&SpliceJson>,
    cx: &mut JsonCx,
) {
    let (mut count, mut count_float, mut sum, mut native) = (None, None, 0.0, false);
    for (tag, f) in Fields(h) {
        match tag {
            1 => count = f.u64(),
            2 => sum = f.f64().unwrap_or(0.0),
            4 => count_float = f.f64(),
            9 | 12 => native = true,
            _ => {}
        }
    }
    // Native (any span, fields 9 and 12): decoded, shown as upstream 1.8+ does.
    if native {
        use prost::Message as _;
        let h = exposition::pb::Histogram::decode(h).unwrap_or_default();
        native_obj(out, &h, metric, sj, cx);
        return;
    }
    out.extend_from_slice(b"{\"buckets\":{");
    let buckets = Fields(h).filter(|(tag, _)| *tag == 3);
    for (i, (_, b)) in buckets.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (mut cum, mut cum_float, mut upper) = (None, None, 0.0);
        for (tag, f) in Fields(b.bytes()) {
            match tag {
                1 => cum = f.u64(),
                2 => upper = f.f64().unwrap_or(0.0),
                4 => cum_float = f.f64(),
                _ => {}
            }
        }
        cx.float(out, upper);
        out.push(b':');
        cx.count(out, Count::of(cum, cum_float));
    }
    out.extend_from_slice(b"},\"count\":");
    cx.count(out, Count::of(count, count_float));
    out.extend_from_slice(b",\"labels\":");
    labels_obj(out, metric, sj);
    out.extend_from_slice(b",\"sum\":");
    cx.float(out, sum);
    out.push(b'}');
}

/// A native histogram: `[boundary_rule, "lower", "upper", "count"]` per non-empty bucket
/// (api/v1/api.go, histogram/prometheus_model.go).
fn native_obj(
    out: &mut Vec<u8>,
    h: &exposition::pb::Histogram,
    metric: &[u8],
    sj: Option<&SpliceJson>,
    cx: &mut JsonCx,
) {
    let Some(v) = exposition::native::view(h) else {
        return;
    };
    out.extend_from_slice(b"{\"buckets\":[");
    for (i, b) in v.buckets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        push_u64(out, u64::from(b.boundary_rule()));
        out.push(b',');
        cx.float(out, b.lower);
        out.push(b',');
        cx.float(out, b.upper);
        out.push(b',');
        native_count(out, cx, b.count, v.float);
        out.push(b']');
    }
    out.extend_from_slice(b"],\"count\":");
    native_count(out, cx, v.count, v.float);
    out.extend_from_slice(b",\"labels\":");
    labels_obj(out, metric, sj);
    out.extend_from_slice(b",\"sum\":");
    cx.float(out, h.sample_sum.unwrap_or(0.0));
    out.push(b'}');
}

/// A native histogram count as a JSON string.
fn native_count(out: &mut Vec<u8>, cx: &mut JsonCx, count: f64, float: bool) {
    cx.scratch.clear();
    exposition::native::write_count(&mut cx.scratch, count, float);
    out.push(b'"');
    out.extend_from_slice(cx.scratch.as_bytes());
    out.push(b'"');
}

/// `"name":{...}`: family `e` under its name in the group (`name`).
fn family_obj(out: &mut Vec<u8>, name: &Arc<str>, e: &FamilyEntry, cx: &mut JsonCx) {
    cx.family_head(out, name, e);
    // The metrics as stored, the group's labels cut out and written from their JSON.
    let (stored, sp) = e.cut_proto_metrics();
    let mut sj = cx.splices.take();
    if let Some(sp) = sp {
        if !sj.as_ref().is_some_and(|sj| sj.sp.same(sp)) {
            sj = Some(SpliceJson::new(sp, sj));
        }
    }
    let metrics = Fields(stored).filter(|(tag, _)| *tag == 4);
    for (i, (_, m)) in metrics.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        metric_obj(out, e.mtype, m.bytes(), sp.and(sj.as_ref()), cx);
    }
    cx.splices = sj;
    out.extend_from_slice(b"],\"time_stamp\":");
    cx.time(out, e.timestamp_ns);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(e.mtype.as_str_name().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// Asks the CPU to start loading the cache line at `p` (no effect on what the program
/// does): the families' entries and bytes are scattered over the heap, and waiting for each
/// in turn was a quarter of the API's time at 1M series.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint to the cache: it reads nothing the program sees and
    // cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the two cache lines from `p` (an `Arc`'d `Group` or `FamilyEntry`: both
/// are larger than one line, and the fields read are in both).
#[inline(always)]
fn prefetch2<T>(p: *const T) {
    let p = p.cast::<u8>();
    prefetch(p);
    prefetch(p.wrapping_add(64));
}

/// One group as the API shows it: `labels`, `last_push_successful` and one key per family,
/// all sorted.
pub fn group_obj(out: &mut Vec<u8>, g: &Group, cx: &mut JsonCx) {
    // The group's own keys, sorted, merged with the (sorted) family names; a family named
    // like one of them is not shown. Groups with a TTL also show it and their expiry time
    // (an extension: groups without one look exactly as in the official API).
    const OWN: [&str; 4] = [
        "expires_at",
        "labels",
        "last_push_successful",
        "ttl_seconds",
    ];
    let shown = |i: usize| g.ttl_ms != 0 || !matches!(OWN[i], "expires_at" | "ttl_seconds");
    let own = |out: &mut Vec<u8>, cx: &mut JsonCx, i: usize| {
        json_bytes(out, OWN[i].as_bytes());
        out.push(b':');
        match OWN[i] {
            "labels" => {
                out.push(b'{');
                for (i, (n, v)) in g.key.labels().iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_bytes(out, n.as_bytes());
                    out.push(b':');
                    json_bytes(out, v.as_bytes());
                }
                out.push(b'}');
            }
            "last_push_successful" => out.extend_from_slice(if g.last_push_successful() {
                b"true"
            } else {
                b"false"
            }),
            "ttl_seconds" => {
                cx.scratch.clear();
                write_go_float(&mut cx.scratch, g.ttl_ms as f64 / 1000.0);
                out.push(b'"');
                out.extend_from_slice(cx.scratch.as_bytes());
                out.push(b'"');
            }
            _ => cx.time(out, (g.expires_at * 1e9) as i64),
        }
    };
    out.push(b'{');
    let mut first = true;
    let mut next = 0;
    for (name, e) in &g.families {
        while next < OWN.len() && less(OWN[next].as_bytes(), name.as_bytes()) {
            if shown(next) {
                if !first {
                    out.push(b',');
                }
                first = false;
                own(out, cx, next);
            }
            next += 1;
        }
        if (next..OWN.len()).any(|i| OWN[i] == &**name && shown(i)) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        family_obj(out, name, e, cx);
    }
    for i in next..OWN.len() {
        if shown(i) {
            if !first {
                out.push(b',');
            }
            first = false;
            own(out, cx, i);
        }
    }
    out.push(b'}');
}

/// The body of `GET /api/v1/metrics`, rendered group by group as it is sent
/// ([`crate::stream`]), from an O(1) clone of the snapshot's group map.
pub struct MetricsRender {
    groups: imbl::OrdMap<GroupKey, Arc<Group>>,
    /// The last group written.
    after: Option<GroupKey>,
    started: bool,
    cx: JsonCx,
}

impl MetricsRender {
    pub fn new(groups: imbl::OrdMap<GroupKey, Arc<Group>>, offset: time::UtcOffset) -> Self {
        MetricsRender {
            groups,
            after: None,
            started: false,
            cx: JsonCx::new(offset),
        }
    }
}

impl crate::stream::Render for MetricsRender {
    fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        use std::ops::Bound;
        let MetricsRender {
            groups,
            after,
            started,
            cx,
        } = self;
        if !*started {
            out.extend_from_slice(b"{\"status\":\"success\",\"data\":[");
        }
        let from = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let range = || groups.range((from.clone(), Bound::Unbounded));
        // What the groups ahead need is asked for in stages (see `prefetch`), so that the
        // cache misses of many entries overlap: four groups ahead the `Group`, two groups
        // ahead its entries, one group ahead the entries' stored metrics and group labels.
        // The entry stages advance by the families of the group being written, so they stay
        // about that many groups ahead whatever the groups' sizes.
        let mut groups_ahead = range().skip(4);
        let mut entries_ahead = range().skip(2).flat_map(|(_, g)| g.families.values());
        let mut bytes_ahead = range().skip(1).flat_map(|(_, g)| g.families.values());
        for (k, g) in range() {
            if let Some((_, g4)) = groups_ahead.next() {
                prefetch2(Arc::as_ptr(g4));
            }
            for _ in 0..g.families.len() {
                if let Some(e) = entries_ahead.next() {
                    prefetch2(Arc::as_ptr(e));
                }
                if let Some(e) = bytes_ahead.next() {
                    e.prefetch_proto();
                }
            }
            if *started {
                out.push(b',');
            }
            *started = true;
            group_obj(out, g, cx);
            if out.len() >= crate::stream::FRAME {
                *after = Some(k.clone());
                return false;
            }
        }
        out.extend_from_slice(b"]}");
        true
    }
}

/// GET /api/v1/metrics
pub fn metrics(app: &Arc<App>) -> Resp {
    let groups = app.store.snapshot().groups.clone();
    let render = MetricsRender::new(groups, app.cfg.utc_offset);
    let mut r = hyper::Response::new(crate::http::RespBody::stream(render, false));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    crate::json::cors(r)
}

/// `GET /api/v1/metrics/job/<job>{/<name>/<value>}` (an extension): the one group with this
/// grouping key, in the URL form of a push (`job@base64`, `<name>@base64`), as
/// `{"status":"success","data":[<group>]}`, the group written by [`group_obj`] exactly as in
/// `/api/v1/metrics`. A path that is not a valid grouping key is 400 and an unknown group 404,
/// both with the official API's error object (`status`, `errorType`, `error`).
pub fn group(app: &Arc<App>, base64: bool, rest: &str) -> Resp {
    use hyper::StatusCode;
    let key = match crate::push::parse_grouping_key_names(base64, rest, app.cfg.formats.utf8_names)
    {
        Ok(k) => k,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "bad_data", &e.to_string()),
    };
    let snap = app.store.snapshot();
    let Some(g) = snap.groups.get(&key) else {
        let mut why = String::from("no group with grouping key {");
        for (i, (n, v)) in key.labels().iter().enumerate() {
            if i > 0 {
                why.push(',');
            }
            let _ = write!(why, "{n}={v:?}");
        }
        why.push('}');
        return json_error(StatusCode::NOT_FOUND, "not_found", &why);
    };
    let mut out = b"{\"status\":\"success\",\"data\":[".to_vec();
    group_obj(&mut out, g, &mut JsonCx::new(app.cfg.utc_offset));
    out.extend_from_slice(b"]}");
    crate::json::cors(crate::http::with_type(
        StatusCode::OK,
        "application/json",
        out,
    ))
}

/// The official API's error answer: `{"status":"error","errorType":..,"error":..}`.
fn json_error(status: hyper::StatusCode, error_type: &str, why: &str) -> Resp {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    json_str(&mut out, error_type);
    out.push_str(",\"error\":");
    json_str(&mut out, why);
    out.push('}');
    crate::json::cors(crate::http::with_type(status, "application/json", out))
}

/// The JSON as it was written from decoded `Metric`s, kept to check the field walker
/// against.
#[cfg(test)]
mod decoded {
    use super::*;
    use crate::json::json_float;
    use crate::timefmt::TimeCache;
    use exposition::pb::Metric;

    fn labels_obj<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)> + Clone) {
        out.push('{');
        // Stored labels are sorted and unique already; only sort when they are not.
        let sorted = labels
            .clone()
            .zip(labels.clone().skip(1))
            .all(|(a, b)| a.0 < b.0);
        let mut write = |i: usize, n: &str, v: &str| {
            if i > 0 {
                out.push(',');
            }
            json_str(out, n);
            out.push(':');
            json_str(out, v);
        };
        if sorted {
            for (i, (n, v)) in labels.enumerate() {
                write(i, n, v);
            }
        } else {
            let mut pairs: Vec<(&str, &str)> = labels.collect();
            pairs.sort();
            pairs.dedup_by(|a, b| a.0 == b.0);
            for (i, (n, v)) in pairs.into_iter().enumerate() {
                write(i, n, v);
            }
        }
        out.push('}');
    }

    /// A histogram count: a JSON string either way (`"3"`, `"2.5"`).
    fn json_count(out: &mut String, c: Count) {
        match c {
            Count::Float(f) => json_float(out, f),
            Count::Int(n) => {
                let _ = write!(out, "\"{n}\"");
            }
        }
    }

    /// The group as it was written: its keys collected and sorted.
    pub fn group_obj(out: &mut String, g: &Group, times: &mut TimeCache) {
        enum Item<'a> {
            Labels,
            Success,
            Ttl,
            ExpiresAt,
            Family(&'a FamilyEntry),
        }
        let mut items: Vec<(&str, Item)> = vec![
            ("labels", Item::Labels),
            ("last_push_successful", Item::Success),
        ];
        if g.ttl_ms != 0 {
            items.push(("ttl_seconds", Item::Ttl));
            items.push(("expires_at", Item::ExpiresAt));
        }
        for (name, e) in &g.families {
            if items.iter().any(|(k, _)| *k == &**name) {
                continue;
            }
            items.push((name, Item::Family(e)));
        }
        items.sort_by(|a, b| a.0.cmp(b.0));
        out.push('{');
        for (i, (k, item)) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(out, k);
            out.push(':');
            match item {
                Item::Labels => labels_obj(out, g.key.labels().iter().map(|(n, v)| (&**n, &**v))),
                Item::Success => out.push_str(if g.last_push_successful() {
                    "true"
                } else {
                    "false"
                }),
                Item::Ttl => {
                    out.push('"');
                    write_go_float(out, g.ttl_ms as f64 / 1000.0);
                    out.push('"');
                }
                Item::ExpiresAt => json_str(out, times.get((g.expires_at * 1e9) as i64)),
                Item::Family(e) => family_obj(out, e, times),
            }
        }
        out.push('}');
    }

    pub fn metric_obj(out: &mut String, t: MetricType, m: &Metric) {
        let labels = || m.label.iter().map(|l| (l.name(), l.value()));
        match t {
            MetricType::Summary => {
                let default = exposition::pb::Summary::default();
                let s = m.summary.as_deref().unwrap_or(&default);
                let _ = write!(
                    out,
                    "{{\"count\":\"{}\",\"labels\":",
                    s.sample_count.unwrap_or(0)
                );
                labels_obj(out, labels());
                out.push_str(",\"quantiles\":{");
                for (i, q) in s.quantile.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_float(out, q.quantile.unwrap_or(0.0));
                    out.push(':');
                    json_float(out, q.value.unwrap_or(0.0));
                }
                out.push_str("},\"sum\":");
                json_float(out, s.sample_sum.unwrap_or(0.0));
                out.push('}');
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let default = exposition::pb::Histogram::default();
                let h = m.histogram.as_deref().unwrap_or(&default);
                // A native histogram (any span) shows its native buckets, as upstream 1.8+ does
                // (api/v1/api.go, histogram/prometheus_model.go):
                // `[boundary_rule, "lower", "upper", "count"]`, empty buckets skipped.
                if let Some(v) = exposition::native::view(h) {
                    out.push_str("{\"buckets\":[");
                    for (i, b) in v.buckets.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "[{},", b.boundary_rule());
                        json_float(out, b.lower);
                        out.push(',');
                        json_float(out, b.upper);
                        out.push_str(",\"");
                        exposition::native::write_count(out, b.count, v.float);
                        out.push_str("\"]");
                    }
                    out.push_str("],\"count\":\"");
                    exposition::native::write_count(out, v.count, v.float);
                    out.push_str("\",\"labels\":");
                    labels_obj(out, labels());
                    out.push_str(",\"sum\":");
                    json_float(out, h.sample_sum.unwrap_or(0.0));
                    out.push('}');
                    return;
                }
                out.push_str("{\"buckets\":{");
                for (i, b) in h.bucket.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_float(out, b.upper_bound.unwrap_or(0.0));
                    out.push(':');
                    json_count(out, Count::cumulative(b));
                }
                out.push_str("},\"count\":");
                json_count(out, Count::samples(h));
                out.push_str(",\"labels\":");
                labels_obj(out, labels());
                out.push_str(",\"sum\":");
                json_float(out, h.sample_sum.unwrap_or(0.0));
                out.push('}');
            }
            _ => {
                let v = match t {
                    MetricType::Counter => m.counter.as_ref().and_then(|c| c.value),
                    MetricType::Gauge => m.gauge.as_ref().and_then(|g| g.value),
                    _ => m.untyped.as_ref().and_then(|u| u.value),
                }
                .unwrap_or(0.0);
                out.push_str("{\"labels\":");
                labels_obj(out, labels());
                out.push_str(",\"value\":");
                json_float(out, v);
                out.push('}');
            }
        }
    }

    pub fn family_obj(out: &mut String, e: &FamilyEntry, times: &mut TimeCache) {
        out.push('{');
        if let Some(h) = e.help.as_deref().filter(|h| !h.is_empty()) {
            out.push_str("\"help\":");
            json_str(out, h);
            out.push(',');
        }
        out.push_str("\"metrics\":[");
        for (i, m) in e.metrics().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            metric_obj(out, e.mtype, m);
        }
        out.push_str("],\"time_stamp\":");
        json_str(out, times.get(e.timestamp_ns));
        out.push_str(",\"type\":");
        json_str(out, e.mtype.as_str_name());
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups whose keys collide with the group's own (`labels`, TTL keys), with and without
    /// a TTL, label values with controls and line separators, unsorted labels.
    async fn fill_special(app: &App) {
        use exposition::pb::{Gauge, LabelPair, Metric, MetricFamily};
        let text = "# TYPE labels gauge\nlabels 1\n# TYPE expires_at gauge\nexpires_at 2\n\
                    # TYPE ttl_seconds gauge\nttl_seconds 3\n# TYPE aaa gauge\naaa 4\n\
                    # TYPE last_push_successful gauge\nlast_push_successful 5\n\
                    # TYPE zzz gauge\nzzz{c=\"\u{1}\u{2028}\"} 6\n";
        for (i, ttl_ms) in [0u64, 3_600_000, 1_500].into_iter().enumerate() {
            let mut families = exposition::text_parse::parse_text(text.as_bytes()).unwrap();
            let label = |n: &str, v: &str| LabelPair {
                name: Some(n.into()),
                value: Some(v.into()),
            };
            families.push(MetricFamily {
                name: Some("unsorted".into()),
                r#type: Some(MetricType::Gauge as i32),
                metric: vec![Metric {
                    label: vec![
                        label("b", "x\u{1}\u{8}\u{2028}\u{2029}<&>"),
                        label("a", "y"),
                    ],
                    gauge: Some(Gauge { value: Some(-7.0) }),
                    ..Default::default()
                }],
                ..Default::default()
            });
            app.store
                .push(store::Push {
                    key: store::GroupKey::new([("job", format!("special{i}"))]),
                    families,
                    replace: true,
                    time: std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(1_700_000_000_000),
                    ttl_ms,
                    accumulate: None,
                    idempotency_key: None,
                })
                .await
                .unwrap_or_else(|e| panic!("special push {i}: {e}"));
        }
        // Keys the metrics' own labels sort between or around (the group's labels cut out
        // one by one, not in a row), a key without `instance` whose metrics carry their own,
        // odd and long values, and a failed push.
        let body = "# HELP c A <counter> & \"more\".\n# TYPE c counter\n\
                    c{b=\"1\",instance=\"own\",zz=\"\u{2028}\"} 1.5\nc{aa=\"0\"} 3\n\
                    # TYPE s summary\ns{b=\"x\",quantile=\"0.5\"} 2\ns_sum{b=\"x\"} 1e-7\ns_count{b=\"x\"} 4\n\
                    # TYPE h histogram\nh_bucket{aa=\"q\",le=\"1\"} 1\nh_bucket{aa=\"q\",le=\"+Inf\"} 2\n\
                    h_sum{aa=\"q\"} -0.0\nh_count{aa=\"q\"} 2\nu{instance=\"\"} NaN\n";
        let keys: [&[(&str, &str)]; 4] = [
            &[("job", "odd<&>\"\u{2028}é"), ("a", "1")],
            &[("job", "j"), ("instance", "i\u{1}"), ("a", "\\")],
            &[("job", "j"), ("long", &"w".repeat(100)), ("zzz", "<")],
            &[("job", "j2")],
        ];
        for (i, key) in keys.into_iter().enumerate() {
            let families = exposition::text_parse::parse_text(body.as_bytes()).unwrap();
            app.store
                .push(store::Push {
                    key: store::GroupKey::new(key.iter().map(|(n, v)| (*n, v.to_string()))),
                    families,
                    replace: true,
                    time: std::time::UNIX_EPOCH
                        + std::time::Duration::from_nanos(1_700_000_000_123_456_789 + i as u64),
                    ttl_ms: 0,
                    accumulate: None,
                    idempotency_key: None,
                })
                .await
                .unwrap_or_else(|e| panic!("cut push {i}: {e}"));
        }
        // A type conflict with the groups above: refused, recorded as a failure.
        let families = exposition::text_parse::parse_text(b"# TYPE c gauge\nc 1\n").unwrap();
        let failed = app
            .store
            .push(store::Push {
                key: store::GroupKey::new([("job", "j2")]),
                families,
                replace: false,
                time: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
                ttl_ms: 0,
                accumulate: None,
                idempotency_key: None,
            })
            .await;
        assert!(failed.is_err());
    }

    /// The JSON written from the stored bytes equals the JSON written from decoded metrics,
    /// group by group and as a streamed body of many frames.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn walked_equals_decoded() {
        let app = crate::testing::app(crate::testing::config());
        crate::testing::fill_varied(&app, 400).await;
        fill_special(&app).await;
        let snap = app.store.snapshot();
        // The entries' stored metrics hold the group's labels cut out both in a row
        // (field 14) and one by one (field 15), which the walker writes from their JSON.
        let mut marks = [0usize; 2];
        for g in snap.groups.values() {
            for e in g.families.values() {
                let (stored, sp) = e.cut_proto_metrics();
                assert!(sp.is_some(), "{:?} {}", g.key, e.name);
                for (_, m) in Fields(stored).filter(|(t, _)| *t == 4) {
                    for (t, _) in Fields(m.bytes()) {
                        match t {
                            14 => marks[0] += 1,
                            15 => marks[1] += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(marks[0] > 1000 && marks[1] > 10, "{marks:?}");
        for offset in [
            time::UtcOffset::UTC,
            time::UtcOffset::from_hms(5, 30, 0).unwrap(),
        ] {
            let mut want = String::from("{\"status\":\"success\",\"data\":[");
            let mut times = crate::timefmt::TimeCache::new(offset);
            let mut cx = JsonCx::new(offset);
            let mut families = 0;
            for (i, g) in snap.groups.values().enumerate() {
                if i > 0 {
                    want.push(',');
                }
                for (name, e) in &g.families {
                    let (mut a, mut b) = (Vec::new(), String::new());
                    family_obj(&mut a, name, e, &mut cx);
                    json_str(&mut b, name);
                    b.push(':');
                    decoded::family_obj(&mut b, e, &mut times);
                    assert_eq!(String::from_utf8(a).unwrap(), b, "family {}", e.name);
                    families += 1;
                }
                let (mut a, mut b) = (Vec::new(), String::new());
                group_obj(&mut a, g, &mut cx);
                decoded::group_obj(&mut b, g, &mut times);
                assert_eq!(String::from_utf8(a).unwrap(), b, "group {:?}", g.key);
                want.push_str(&b);
            }
            want.push_str("]}");
            assert!(families > 4000);
            let got = crate::stream::collect(MetricsRender::new(snap.groups.clone(), offset));
            assert!(got.len() > 3 * crate::stream::FRAME);
            assert!(got == want.as_bytes(), "streamed API JSON differs");
        }
        let got = crate::stream::collect(MetricsRender::new(
            snap.groups.clone(),
            time::UtcOffset::UTC,
        ));
        let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 407);
        // The special groups: own keys win over families of the same name.
        let special = |i: usize| {
            data.iter()
                .find(|g| g["labels"]["job"] == format!("special{i}").as_str())
                .unwrap()
                .clone()
        };
        assert_eq!(special(0)["labels"], serde_json::json!({"job": "special0"}));
        assert_eq!(special(0)["ttl_seconds"]["type"], "GAUGE");
        assert_eq!(special(1)["ttl_seconds"], "3600");
        assert_eq!(special(2)["ttl_seconds"], "1.5");
        assert!(special(1)["expires_at"].is_string());
        assert_eq!(special(1)["last_push_successful"], true);
        assert_eq!(special(1)["aaa"]["metrics"][0]["value"], "4");
        let u = &special(0)["unsorted"]["metrics"][0]["labels"];
        assert_eq!(u["b"], "x\u{1}\u{8}\u{2028}\u{2029}<&>", "{u}");
        // The groups whose labels are cut one by one: every metric shows all of them, in
        // order, with the metrics' own.
        let odd = data
            .iter()
            .find(|g| g["labels"]["a"] == "1")
            .expect("the odd group");
        assert_eq!(
            odd["labels"],
            serde_json::json!({"a": "1", "job": "odd<&>\"\u{2028}é"})
        );
        assert_eq!(odd["c"]["help"], "A <counter> & \"more\".");
        let c = &odd["c"]["metrics"];
        assert_eq!(
            c[0]["labels"],
            serde_json::json!({"a": "1", "b": "1", "instance": "own",
                "job": "odd<&>\"\u{2028}é", "zz": "\u{2028}"})
        );
        assert_eq!(c[0]["value"], "1.5");
        assert_eq!(
            c[1]["labels"],
            serde_json::json!({"a": "1", "aa": "0", "instance": "", "job": "odd<&>\"\u{2028}é"})
        );
        assert_eq!(odd["s"]["metrics"][0]["sum"], "1e-07");
        assert_eq!(odd["h"]["metrics"][0]["sum"], "-0");
        assert_eq!(odd["h"]["metrics"][0]["labels"]["aa"], "q");
        assert_eq!(odd["u"]["metrics"][0]["value"], "NaN");
        let long = data
            .iter()
            .find(|g| g["labels"]["zzz"] == "<")
            .expect("the long group");
        let labels = &long["h"]["metrics"][0]["labels"];
        assert_eq!(labels["long"], "w".repeat(100).as_str());
        let names: Vec<&String> = labels.as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            ["aa", "instance", "job", "long", "zzz"]
                .iter()
                .collect::<Vec<_>>()
        );
        let failed = data
            .iter()
            .find(|g| g["labels"] == serde_json::json!({"job": "j2"}))
            .expect("the failed group");
        assert_eq!(failed["last_push_successful"], false);
        assert_eq!(
            failed["push_failure_time_seconds"]["metrics"][0]["value"],
            "1.8e+09"
        );
    }
}
