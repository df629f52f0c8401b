//! `/api/v1/status`, `/api/v1/metrics` and one group of it (`/api/v1/metrics/job/...`, an
//! extension): the official JSON, written directly (keys sorted, every value a string in Go's
//! `%v` format, Go's HTML-safe string escaping).

use crate::histogram::Count;
use crate::http::Resp;
use crate::json::{json_float, json_response, json_str};
use crate::timefmt::{rfc3339_nano, system_time_nanos, TimeCache};
use crate::App;
use exposition::float::write_go_float;
use exposition::pb::{Metric, MetricType};
use std::fmt::Write;
use std::sync::Arc;
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
#[inline]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    match buf.first() {
        Some(&b) if b < 0x80 => {
            *buf = &buf[1..];
            Some(u64::from(b))
        }
        Some(_) => prost::encoding::decode_varint(buf).ok(),
        None => None,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Field<'a>);

    #[inline]
    fn next(&mut self) -> Option<(u32, Field<'a>)> {
        let buf = &mut self.0;
        let key = varint(buf)?;
        let take = |buf: &mut &'a [u8], n: usize| {
            let n = n.min(buf.len());
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            head
        };
        let f = match key & 7 {
            0 => Field::Varint(varint(buf)?),
            1 => {
                let b = take(buf, 8);
                Field::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
            }
            2 => {
                let n = varint(buf)? as usize;
                Field::Bytes(take(buf, n))
            }
            5 => {
                take(buf, 4);
                Field::Other
            }
            _ => {
                self.0 = &[];
                return None;
            }
        };
        Some(((key >> 3) as u32, f))
    }
}

fn utf8(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// The `value` (field 1) of a `Counter`, `Gauge` or `Untyped` message.
fn value_of(msg: &[u8]) -> Option<f64> {
    Fields(msg).filter(|(t, _)| *t == 1).last()?.1.f64()
}

/// One metric as the API shows it, written straight from its stored `Metric` message
/// bytes (no decoding into a `Metric`; native histograms aside). `labels` is scratch space.
fn metric_obj<'a>(
    out: &mut String,
    t: MetricType,
    metric: &'a [u8],
    labels: &mut Vec<(&'a str, &'a str)>,
) {
    labels.clear();
    let mut body: Option<&'a [u8]> = None;
    let want = match t {
        MetricType::Counter => 3,
        MetricType::Gauge => 2,
        MetricType::Summary => 4,
        MetricType::Untyped => 5,
        MetricType::Histogram | MetricType::GaugeHistogram => 7,
    };
    for (tag, f) in Fields(metric) {
        if tag == 1 {
            let (mut n, mut v) = ("", "");
            for (tag, f) in Fields(f.bytes()) {
                match tag {
                    1 => n = utf8(f.bytes()),
                    2 => v = utf8(f.bytes()),
                    _ => {}
                }
            }
            labels.push((n, v));
        } else if tag == want {
            body = Some(f.bytes());
        }
    }
    let labels = labels.iter().copied();
    match t {
        MetricType::Summary => summary_obj(out, body.unwrap_or_default(), labels),
        MetricType::Histogram | MetricType::GaugeHistogram => {
            histogram_obj(out, body.unwrap_or_default(), labels)
        }
        _ => {
            let v = body.and_then(value_of).unwrap_or(0.0);
            out.push_str("{\"labels\":");
            labels_obj(out, labels);
            out.push_str(",\"value\":");
            json_float(out, v);
            out.push('}');
        }
    }
}

/// A summary from its stored `Summary` message bytes.
fn summary_obj<'a>(
    out: &mut String,
    body: &[u8],
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) {
    let (mut count, mut sum) = (0, 0.0);
    for (tag, f) in Fields(body) {
        match tag {
            1 => count = f.u64().unwrap_or(0),
            2 => sum = f.f64().unwrap_or(0.0),
            _ => {}
        }
    }
    let _ = write!(out, "{{\"count\":\"{count}\",\"labels\":");
    labels_obj(out, labels);
    out.push_str(",\"quantiles\":{");
    let quantiles = Fields(body).filter(|(tag, _)| *tag == 3);
    for (i, (_, q)) in quantiles.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (mut quantile, mut value) = (0.0, 0.0);
        for (tag, f) in Fields(q.bytes()) {
            match tag {
                1 => quantile = f.f64().unwrap_or(0.0),
                2 => value = f.f64().unwrap_or(0.0),
                _ => {}
            }
        }
        json_float(out, quantile);
        out.push(':');
        json_float(out, value);
    }
    out.push_str("},\"sum\":");
    json_float(out, sum);
    out.push('}');
}

/// A histogram from its stored `Histogram` message bytes (native ones decoded).
fn histogram_obj<'a>(
    out: &mut String,
    h: &[u8],
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
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
        let m = Metric {
            label: Vec::new(),
            histogram: Some(Box::new(
                exposition::pb::Histogram::decode(h).unwrap_or_default(),
            )),
            ..Default::default()
        };
        native_obj(out, &m, labels);
        return;
    }
    out.push_str("{\"buckets\":{");
    let buckets = Fields(h).filter(|(tag, _)| *tag == 3);
    for (i, (_, b)) in buckets.enumerate() {
        if i > 0 {
            out.push(',');
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
        json_float(out, upper);
        out.push(':');
        json_count(out, Count::of(cum, cum_float));
    }
    out.push_str("},\"count\":");
    json_count(out, Count::of(count, count_float));
    out.push_str(",\"labels\":");
    labels_obj(out, labels);
    out.push_str(",\"sum\":");
    json_float(out, sum);
    out.push('}');
}

/// A native histogram: `[boundary_rule, "lower", "upper", "count"]` per non-empty bucket
/// (api/v1/api.go, histogram/prometheus_model.go).
fn native_obj<'a>(
    out: &mut String,
    m: &Metric,
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) {
    let default = exposition::pb::Histogram::default();
    let h = m.histogram.as_deref().unwrap_or(&default);
    let Some(v) = exposition::native::view(h) else {
        return;
    };
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
    labels_obj(out, labels);
    out.push_str(",\"sum\":");
    json_float(out, h.sample_sum.unwrap_or(0.0));
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

fn family_obj(out: &mut String, e: &FamilyEntry, times: &mut TimeCache) {
    out.push('{');
    if let Some(h) = e.help.as_deref().filter(|h| !h.is_empty()) {
        out.push_str("\"help\":");
        json_str(out, h);
        out.push(',');
    }
    out.push_str("\"metrics\":[");
    let proto = e.proto_metrics();
    let mut labels = Vec::new();
    let metrics = Fields(&proto).filter(|(tag, _)| *tag == 4);
    for (i, (_, m)) in metrics.enumerate() {
        if i > 0 {
            out.push(',');
        }
        metric_obj(out, e.mtype, m.bytes(), &mut labels);
    }
    out.push_str("],\"time_stamp\":");
    json_str(out, times.get(e.timestamp_ns));
    out.push_str(",\"type\":");
    json_str(out, e.mtype.as_str_name());
    out.push('}');
}

/// One group as the API shows it: `labels`, `last_push_successful` and one key per family,
/// all sorted.
pub fn group_obj(out: &mut String, g: &Group, times: &mut TimeCache) {
    group_obj_with(out, g, times, family_obj)
}

fn group_obj_with(
    out: &mut String,
    g: &Group,
    times: &mut TimeCache,
    family_obj: fn(&mut String, &FamilyEntry, &mut TimeCache),
) {
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
    // Groups with a TTL also show it and their expiry time (an extension: groups without
    // one look exactly as in the official API).
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

/// The body of `GET /api/v1/metrics`, rendered group by group as it is sent
/// ([`crate::stream`]), from an O(1) clone of the snapshot's group map.
pub struct MetricsRender {
    groups: imbl::OrdMap<GroupKey, Arc<Group>>,
    /// The last group written.
    after: Option<GroupKey>,
    started: bool,
    times: TimeCache,
    scratch: String,
}

impl MetricsRender {
    pub fn new(groups: imbl::OrdMap<GroupKey, Arc<Group>>, offset: time::UtcOffset) -> Self {
        MetricsRender {
            groups,
            after: None,
            started: false,
            times: TimeCache::new(offset),
            scratch: String::new(),
        }
    }
}

impl crate::stream::Render for MetricsRender {
    fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        use std::ops::Bound;
        let s = &mut self.scratch;
        s.clear();
        if !self.started {
            s.push_str("{\"status\":\"success\",\"data\":[");
        }
        let from = match &self.after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut stop = None;
        for (k, g) in self.groups.range((from, Bound::Unbounded)) {
            if self.started {
                s.push(',');
            }
            self.started = true;
            group_obj(s, g, &mut self.times);
            if out.len() + s.len() >= crate::stream::FRAME {
                stop = Some(k.clone());
                break;
            }
        }
        if stop.is_none() {
            s.push_str("]}");
        }
        out.extend_from_slice(s.as_bytes());
        match stop {
            Some(k) => {
                self.after = Some(k);
                false
            }
            None => true,
        }
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
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    group_obj(&mut out, g, &mut TimeCache::new(app.cfg.utc_offset));
    out.push_str("]}");
    json_response(out)
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

    pub fn group_obj(out: &mut String, g: &Group, times: &mut TimeCache) {
        super::group_obj_with(out, g, times, family_obj)
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

    /// The JSON written from the stored bytes equals the JSON written from decoded metrics,
    /// group by group and as a streamed body of many frames.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn walked_equals_decoded() {
        let app = crate::testing::app(crate::testing::config());
        crate::testing::fill_varied(&app, 400).await;
        let snap = app.store.snapshot();
        let mut want = String::from("{\"status\":\"success\",\"data\":[");
        let mut times = TimeCache::new(time::UtcOffset::UTC);
        let mut families = 0;
        for (i, g) in snap.groups.values().enumerate() {
            if i > 0 {
                want.push(',');
            }
            for e in g.families.values() {
                let (mut a, mut b) = (String::new(), String::new());
                family_obj(&mut a, e, &mut times);
                decoded::family_obj(&mut b, e, &mut times);
                assert_eq!(a, b, "family {}", e.name);
                families += 1;
            }
            decoded::group_obj(&mut want, g, &mut times);
        }
        want.push_str("]}");
        assert!(families > 4000);
        let got = crate::stream::collect(MetricsRender::new(
            snap.groups.clone(),
            time::UtcOffset::UTC,
        ));
        assert!(got.len() > 3 * crate::stream::FRAME);
        assert!(got == want.as_bytes(), "streamed API JSON differs");
        let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 400);
    }
}
