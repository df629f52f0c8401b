//! Groups and their families, encoded once at push time.
//!
//! A [`FamilyEntry`] holds one family of one group in the forms the readers need: the text
//! exposition lines and the protobuf `Metric` fields, with the group's labels cut out and
//! kept once per group ([`crate::shared`]); the 64-bit identities of its series for the
//! consistency index are computed from those bytes. Nothing is re-encoded on a scrape.

use crate::check::check_metric;
use crate::key::GroupKey;
use crate::shared::{SharedLabels, Spliced, Splices};

/// Bytes in front of an entry's encodings holding the text's length.
const TEXT_LEN: usize = 4;
use exposition::pb::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use exposition::text_encode;
use prost::Message;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";
/// Present only for groups with a TTL: when the group will expire unless pushed again.
pub const PUSH_EXPIRY_TIME: &str = "push_expiry_time_seconds";
pub const PUSH_EXPIRY_TIME_HELP: &str =
    "Unix time at which this group expires unless it is pushed again.";

/// Whether a family name is one the gateway sets itself on every group it manages.
pub fn is_time_gauge(name: &str) -> bool {
    name == PUSH_TIME || name == PUSH_FAILURE_TIME
}

thread_local! {
    /// [`FamilyEntry::build`]'s text buffer, reused from push to push.
    static TEXT_SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// [`FamilyEntry::build`]'s protobuf and cut buffers, reused from push to push.
    static BYTES_SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Why a family cannot be part of a consistent scrape, if it cannot: an `Option<Box<str>>`
/// in one word (most entries have none).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Invalid(Option<Box<Box<str>>>);

impl Invalid {
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref().map(|s| &**s)
    }
    pub fn as_ref(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl From<Option<Box<str>>> for Invalid {
    fn from(v: Option<Box<str>>) -> Invalid {
        Invalid(v.map(Box::new))
    }
}

impl From<Option<String>> for Invalid {
    fn from(v: Option<String>) -> Invalid {
        Invalid(v.map(|s| Box::new(s.into_boxed_str())))
    }
}

impl std::fmt::Debug for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_deref().fmt(f)
    }
}

/// A HELP text, interned ([`intern_help`]): shared between all families that carry the same
/// text, and one pointer wide (a `FamilyEntry` keeps its 112-byte allocation class with its
/// series digest).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Help(Option<HelpText>);

impl Help {
    fn of(help: Option<&str>) -> Help {
        Help(help.map(intern_help))
    }
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_ref().map(|h| &**h.0)
    }
    /// The shared text itself (compared by address with [`HelpText::ptr_eq`]).
    pub fn as_ref(&self) -> Option<&HelpText> {
        self.0.as_ref()
    }
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Debug for Help {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_deref().fmt(f)
    }
}

/// The interned form of a HELP text: a thin pointer to the shared text.
#[derive(Clone)]
pub struct HelpText(Arc<Box<str>>);

impl HelpText {
    /// Whether both are the same shared text (one allocation per distinct text).
    pub fn ptr_eq(a: &HelpText, b: &HelpText) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl std::ops::Deref for HelpText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for HelpText {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}
impl Eq for HelpText {}
impl std::hash::Hash for HelpText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the `str` it borrows as, so that the interner can look texts up by `&str`.
        (**self.0).hash(state)
    }
}
impl std::borrow::Borrow<str> for HelpText {
    fn borrow(&self) -> &str {
        &self.0
    }
}
impl crate::intern::Shared for HelpText {
    fn new(s: &str) -> Self {
        HelpText(Arc::new(s.into()))
    }
    fn only_in_set(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

/// The largest scratch buffer kept between builds (a large push's is given back).
const TEXT_SCRATCH_KEEP: usize = 1 << 20;

/// One family of one group.
#[derive(Debug)]
pub struct FamilyEntry {
    pub name: Arc<str>,
    /// HELP text, shared between all families that carry the same text.
    pub help: Help,
    pub mtype: MetricType,
    /// When the family was pushed, in Unix nanoseconds.
    pub timestamp_ns: i64,
    pub metric_count: u32,
    /// The length of the text (`u32`, little-endian), the text exposition lines (no
    /// HELP/TYPE), then the `metric` fields (tag 4) of a `MetricFamily` message: one
    /// allocation for both encodings. With `splices`, the group's labels are cut out of both
    /// ([`crate::shared`]).
    pub(crate) bytes: Box<[u8]>,
    /// Length of the `metric` fields as written (with the group's labels).
    proto_len: u32,
    /// Why this family could not be part of a consistent scrape (only reachable when the
    /// consistency check is off).
    pub invalid: Invalid,
    /// The group's labels, stored once instead of in every series ([`crate::shared`]).
    splices: Option<Splices>,
    /// The family name or a label name is not a legacy name: a scrape that does not allow
    /// UTF-8 names re-encodes this entry with escaped names (the stored text has them quoted).
    pub needs_escaping: bool,
    /// A digest of the series identities ([`FamilyEntry::series`]) in order, set when they
    /// are first computed (0: not yet). Two entries with the same digest and metric count
    /// have the same identities, so replacing one by the other needs neither recomputed
    /// (see [`FamilyEntry::same_series`]). 8 bytes an entry instead of 8 bytes a series.
    series_digest: std::sync::atomic::AtomicU64,
}

impl FamilyEntry {
    /// Builds an entry from a family whose metrics are already sanitized (grouping labels
    /// applied, labels sorted).
    pub fn build(
        name: Arc<str>,
        help: Option<&str>,
        mtype: MetricType,
        metrics: &[Metric],
        timestamp_ns: i64,
    ) -> FamilyEntry {
        FamilyEntry::build_shared(name, help, mtype, metrics, timestamp_ns, None)
    }

    /// [`FamilyEntry::build`] for the group `key`: the group's labels, which sanitized
    /// metrics carry, are stored once for the group ([`crate::shared`]).
    pub fn build_shared(
        name: Arc<str>,
        help: Option<&str>,
        mtype: MetricType,
        metrics: &[Metric],
        timestamp_ns: i64,
        key: Option<&GroupKey>,
    ) -> FamilyEntry {
        // A protobuf push can carry any non-empty UTF-8 name (upstream 1.11 accepts it and
        // escapes it on scrape); an empty one cannot be exposed at all.
        let mut invalid = (!metrics.is_empty() && name.is_empty()).then(|| {
            format!("collected metric named {name:?} has an invalid name").into_boxed_str()
        });
        let needs_escaping = !exposition::names::is_legacy_name(&name)
            || metrics.iter().any(|m| {
                m.label
                    .iter()
                    .any(|l| !exposition::names::is_legacy_name(l.name()))
            });
        // Both encodings go to per-thread scratch buffers first (and are cut there); then
        // they are copied into one allocation of the exact size.
        let (proto_len, bytes, splices) = TEXT_SCRATCH.with_borrow_mut(|text| {
            BYTES_SCRATCH.with_borrow_mut(|(proto, cut)| {
                text.clear();
                proto.clear();
                cut.clear();
                for m in metrics {
                    if invalid.is_none() {
                        if let Err(e) = check_metric(&name, mtype, m) {
                            invalid = Some(e.into_boxed_str());
                        } else if let Err(e) = text_encode::write_metric(text, &name, mtype, m) {
                            invalid = Some(e.to_string().into_boxed_str());
                        }
                    }
                }
                for m in metrics {
                    prost::encoding::message::encode(4, m, proto);
                }
                let mut proto_len = proto.len();
                let placeheld = uses_placeholders(key, metrics);
                let splices = key.map(|k| k.splices()).filter(|sp| {
                    // Metrics sanitized with placeholders carry them where the long values go:
                    // they are found in that form and stored as the group's labels.
                    let placeholders;
                    let find = if placeheld {
                        placeholders = crate::shared::Splices::placeholders_of_key(key.unwrap());
                        &placeholders
                    } else {
                        *sp
                    };
                    cut.extend_from_slice(&[0; TEXT_LEN]);
                    if !crate::shared::cut_text(text.as_bytes(), find, name.as_bytes(), cut) {
                        return false;
                    }
                    let text_len = (cut.len() - TEXT_LEN) as u32;
                    cut[..TEXT_LEN].copy_from_slice(&text_len.to_le_bytes());
                    let cut_at = cut.len();
                    let ok = crate::shared::cut_proto(proto, find, cut);
                    if ok && placeheld {
                        // The length as written, with the real values.
                        proto_len = crate::shared::written_proto_len(&cut[cut_at..], sp);
                    }
                    ok
                });
                let bytes = match splices {
                    Some(_) => Box::<[u8]>::from(&cut[..]),
                    None => join(text.as_bytes(), proto),
                };
                if text.capacity() > TEXT_SCRATCH_KEEP {
                    *text = String::new();
                }
                if proto.capacity() > TEXT_SCRATCH_KEEP {
                    *proto = Vec::new();
                }
                if cut.capacity() > TEXT_SCRATCH_KEEP {
                    *cut = Vec::new();
                }
                (proto_len, bytes, splices.cloned())
            })
        });
        FamilyEntry {
            name,
            help: Help::of(help),
            mtype,
            timestamp_ns,
            metric_count: metrics.len() as u32,
            proto_len: proto_len as u32,
            bytes,
            invalid: invalid.into(),
            splices,
            needs_escaping,
            series_digest: Default::default(),
        }
    }

    /// [`FamilyEntry::build_shared`], also returning the series identities of the entry
    /// ([`FamilyEntry::series`]; computed once here, outside the store lock, and remembered
    /// as their digest).
    pub fn build_shared_series(
        name: Arc<str>,
        help: Option<&str>,
        mtype: MetricType,
        metrics: &[Metric],
        timestamp_ns: i64,
        key: Option<&GroupKey>,
    ) -> (FamilyEntry, Vec<u64>) {
        let e = FamilyEntry::build_shared(name, help, mtype, metrics, timestamp_ns, key);
        // Hashed from the metrics' labels (no walk of the encoded bytes), unless they hold
        // placeholders for long grouping values (then from the bytes, which have the group's).
        let ids = if uses_placeholders(key, metrics) {
            e.series()
        } else {
            let ids = series_hashes_of_metrics(&e.name, metrics);
            debug_assert_eq!(ids, e.series(), "identities of {:?}", e.name);
            e.series_digest
                .store(series_digest(&ids), std::sync::atomic::Ordering::Relaxed);
            ids
        };
        (e, ids)
    }

    /// This entry, a push-time gauge ([`Group::time_gauge`]: one metric, no timestamp, the
    /// group's labels cut out), with another value and push time: its bytes copied with the
    /// value written again, instead of building the metric, encoding and cutting it (a push
    /// makes one). `None` when this entry is not of that form (then build it).
    pub(crate) fn with_gauge_value(&self, value: f64, timestamp_ns: i64) -> Option<FamilyEntry> {
        if self.mtype != MetricType::Gauge
            || self.metric_count != 1
            || self.invalid.is_some()
            || self.splices.is_none()
        {
            return None;
        }
        let text = self.text_raw();
        let proto = self.proto_raw();
        // One metric whose last field is `gauge` (2) holding only `value` (1, fixed64), and
        // no timestamp (which the text would carry after the value).
        let mut fields = proto;
        let (4, mut metric) = next_field(&mut fields).ok()? else {
            return None;
        };
        if !fields.is_empty() {
            return None;
        }
        let mut last = None;
        while !metric.is_empty() {
            let (tag, body) = next_field(&mut metric).ok()?;
            if tag == 6 {
                return None;
            }
            last = Some((tag, body));
        }
        if !last.is_some_and(|(tag, body)| tag == 2 && body.len() == 9 && body[0] == 0x09) {
            return None;
        }
        let value_at = proto.len() - 8;
        // The last literal of the text ends the line: `... VALUE\n`.
        let (len_at, lit_at) = crate::shared::last_literal(text)?;
        let lit = &text[lit_at..];
        if lit.last() != Some(&b'\n') {
            return None;
        }
        let space = lit.iter().rposition(|b| *b == b' ')?;
        let mut line = String::with_capacity(space + 26);
        line.push_str(std::str::from_utf8(&lit[..=space]).ok()?);
        exposition::float::write_text_float(&mut line, value);
        line.push('\n');
        let mut bytes = Vec::with_capacity(self.bytes.len() + 24);
        bytes.extend_from_slice(&[0; TEXT_LEN]);
        bytes.extend_from_slice(&text[..len_at]);
        prost::encoding::encode_varint(line.len() as u64, &mut bytes);
        bytes.extend_from_slice(line.as_bytes());
        let text_len = (bytes.len() - TEXT_LEN) as u32;
        bytes[..TEXT_LEN].copy_from_slice(&text_len.to_le_bytes());
        bytes.extend_from_slice(&proto[..value_at]);
        bytes.extend_from_slice(&value.to_le_bytes());
        use std::sync::atomic::Ordering::Relaxed;
        Some(FamilyEntry {
            name: self.name.clone(),
            help: self.help.clone(),
            mtype: self.mtype,
            timestamp_ns,
            metric_count: 1,
            bytes: bytes.into_boxed_slice(),
            proto_len: self.proto_len,
            invalid: Invalid::default(),
            splices: self.splices.clone(),
            needs_escaping: self.needs_escaping,
            // The same series.
            series_digest: self.series_digest.load(Relaxed).into(),
        })
    }

    /// Rebuilds an entry from its persisted parts; only the series identities are recomputed,
    /// by walking the protobuf bytes without decoding them into messages. With `key`, the
    /// group's labels are cut out again ([`crate::shared`]).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        name: Arc<str>,
        help: Option<&str>,
        mtype: MetricType,
        timestamp_ns: i64,
        proto: &[u8],
        text: &[u8],
        invalid: Option<String>,
        shared: Option<(Arc<SharedLabels>, Vec<u32>)>,
        key: Option<&GroupKey>,
    ) -> Result<FamilyEntry, String> {
        // Long grouping values persisted once. When they are the key's (always, for records
        // this store wrote), the holes get placeholders, as a push's metrics carry them, and
        // the entry is cut from that: a long value is never written back once per series
        // (issue 15 item 1). Otherwise they are written back first.
        let full;
        let mut placeheld = false;
        let (proto, text) = match shared {
            Some((labels, at)) => {
                if at.iter().any(|&a| a as usize > text.len()) || !at.is_sorted() {
                    return Err("shared label offsets out of range".into());
                }
                let keys_own = key
                    .and_then(SharedLabels::of_key)
                    .is_some_and(|own| own.names == labels.names && own.values == labels.values);
                if keys_own {
                    let mut t = Vec::with_capacity(text.len() + at.len());
                    let mut from = 0;
                    for &a in &at {
                        t.extend_from_slice(&text[from..a as usize]);
                        t.extend_from_slice(crate::shared::PLACEHOLDER.as_bytes());
                        from = a as usize;
                    }
                    t.extend_from_slice(&text[from..]);
                    placeheld = true;
                    full = (Vec::new(), t);
                    (proto, &full.1[..])
                } else {
                    let s = Spliced::new(labels, text, at, proto);
                    let (mut t, mut p) = (Vec::new(), Vec::new());
                    s.write_text(text, &mut t);
                    s.write_proto(proto, &mut p);
                    full = (p, t);
                    (&full.0[..], &full.1[..])
                }
            }
            None => (proto, text),
        };
        let metric_count = count_metrics(proto)?;
        let needs_escaping =
            !exposition::names::is_legacy_name(&name) || label_names_need_escaping(proto)?;
        let mut cut = vec![0; TEXT_LEN];
        let mut proto_len = proto.len();
        let splices = key.map(|k| k.splices()).filter(|sp| {
            let placeholders;
            let find = match key {
                Some(k) if placeheld => {
                    placeholders = crate::shared::Splices::placeholders_of_key(k);
                    &placeholders
                }
                _ => *sp,
            };
            if !crate::shared::cut_text(text, find, name.as_bytes(), &mut cut) {
                return false;
            }
            let text_len = (cut.len() - TEXT_LEN) as u32;
            cut[..TEXT_LEN].copy_from_slice(&text_len.to_le_bytes());
            let cut_at = cut.len();
            let ok = crate::shared::cut_proto(proto, find, &mut cut);
            if ok && placeheld {
                proto_len = crate::shared::written_proto_len(&cut[cut_at..], sp);
            }
            ok
        });
        if placeheld && splices.is_none() {
            return Err("record with shared labels whose metrics cannot be cut".into());
        }
        let bytes = match splices {
            Some(_) => cut.into_boxed_slice(),
            None => join(text, proto),
        };
        Ok(FamilyEntry {
            splices: splices.cloned(),
            name,
            help: Help::of(help),
            mtype,
            timestamp_ns,
            metric_count,
            proto_len: proto_len as u32,
            bytes,
            invalid: invalid.into(),
            needs_escaping,
            series_digest: Default::default(),
        })
    }

    /// Appends the persisted form of this entry (an `EntryRecord` message body): the
    /// encodings in full, long grouping values as [`SharedLabels`] leaves them out.
    pub fn encode_entry_record(&self, out: &mut Vec<u8>) {
        prost::encoding::string::encode(1, &self.name.to_string(), out);
        if let Some(h) = self.help.as_deref() {
            prost::encoding::string::encode(2, &h.to_string(), out);
        }
        prost::encoding::int32::encode(3, &(self.mtype as i32), out);
        prost::encoding::int64::encode(4, &self.timestamp_ns, out);
        let bytes_field = |tag: u32, bytes: &[u8], out: &mut Vec<u8>| {
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
            prost::encoding::encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(bytes);
        };
        let mut long = None;
        match &self.splices {
            None => {
                bytes_field(6, self.proto_raw(), out);
                bytes_field(7, self.text_raw(), out);
            }
            Some(sp) => {
                let (mut text, mut at, mut proto) = (Vec::new(), Vec::new(), Vec::new());
                long = crate::shared::write_record_form(
                    self.text_raw(),
                    self.proto_raw(),
                    sp,
                    self.name.as_bytes(),
                    &mut text,
                    &mut at,
                    &mut proto,
                )
                .map(|long| (sp, long, at));
                if long.is_none() {
                    text.clear();
                    proto.clear();
                    self.write_text(&mut text);
                    self.write_proto_metrics(&mut proto);
                }
                bytes_field(6, &proto, out);
                bytes_field(7, &text, out);
            }
        }
        if let Some(i) = self.invalid.as_deref() {
            prost::encoding::string::encode(8, &i.to_string(), out);
        }
        if let Some((sp, long, at)) = long {
            let at: Vec<u8> = at.iter().flat_map(|a| a.to_le_bytes()).collect();
            prost::encoding::bytes::encode(9, &at, out);
            for k in long {
                prost::encoding::string::encode(
                    10,
                    &String::from_utf8_lossy(sp.name(k)).into_owned(),
                    out,
                );
            }
        }
    }

    /// The identity of each series (family name and sorted labels), for the consistency
    /// index. Computed from the stored bytes when needed instead of kept: 8 bytes a series.
    /// Also remembers their digest ([`FamilyEntry::same_series`]).
    pub fn series(&self) -> Vec<u64> {
        let ids = series_hashes_of(&self.name, self.proto_raw(), self.splices.as_ref())
            .unwrap_or_default();
        self.series_digest
            .store(series_digest(&ids), std::sync::atomic::Ordering::Relaxed);
        ids
    }

    /// Whether `other`'s series identities are known to be this entry's, in the same order,
    /// without computing either: both digests are known ([`FamilyEntry::series`] ran on
    /// each) and equal, and so are the metric counts. A PUT or POST that pushes the same
    /// series again (the everyday push) replaces every family by one with the same series.
    pub(crate) fn same_series(&self, other: &FamilyEntry) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let d = self.series_digest.load(Relaxed);
        d != 0 && d == other.series_digest.load(Relaxed) && self.metric_count == other.metric_count
    }

    /// The stored text (with markers where the group's labels go).
    fn text_raw(&self) -> &[u8] {
        &self.bytes[TEXT_LEN..TEXT_LEN + self.text_len_raw()]
    }

    fn text_len_raw(&self) -> usize {
        let b = &self.bytes[..TEXT_LEN];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// The stored `metric` fields (with markers where the group's labels go).
    fn proto_raw(&self) -> &[u8] {
        &self.bytes[TEXT_LEN + self.text_len_raw()..]
    }

    /// The text exposition lines (copied when the group's labels are stored once).
    pub fn text(&self) -> Cow<'_, [u8]> {
        match &self.splices {
            None => Cow::Borrowed(self.text_raw()),
            Some(_) => {
                let mut out = Vec::new();
                self.write_text(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Appends the pre-encoded text exposition lines.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        match &self.splices {
            None => out.extend_from_slice(self.text_raw()),
            Some(sp) => crate::shared::write_text(self.text_raw(), sp, self.name.as_bytes(), out),
        }
    }

    /// Length of [`FamilyEntry::text`] (walks the stored text).
    pub fn text_len(&self) -> usize {
        match &self.splices {
            None => self.text_len_raw(),
            Some(sp) => crate::shared::text_len(self.text_raw(), sp, self.name.as_bytes()),
        }
    }

    /// The `metric` fields of a `MetricFamily` message (copied when the group's labels are
    /// stored once).
    pub fn proto_metrics(&self) -> Cow<'_, [u8]> {
        match &self.splices {
            None => Cow::Borrowed(self.proto_raw()),
            Some(_) => {
                let mut out = Vec::with_capacity(self.proto_len as usize);
                self.write_proto_metrics(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Appends the pre-encoded `metric` fields.
    pub fn write_proto_metrics(&self, out: &mut Vec<u8>) {
        match &self.splices {
            None => out.extend_from_slice(self.proto_raw()),
            Some(sp) => {
                out.reserve(self.proto_len as usize);
                crate::shared::write_proto(self.proto_raw(), sp, out)
            }
        }
    }

    /// The `metric` fields as stored, and the group's labels they were cut from (`None`:
    /// stored in full). In cut bytes a `label` field (tag 1) may be replaced, at its place
    /// among the metric's labels, by field 14 (varint: all of the group's labels in a row) or
    /// field 15 (varint `k`: the group's label `k`); see [`crate::shared`]. For readers that
    /// walk the metrics without writing the labels back (the API's JSON).
    pub fn cut_proto_metrics(&self) -> (&[u8], Option<&Splices>) {
        (self.proto_raw(), self.splices.as_ref())
    }

    /// Length of [`FamilyEntry::proto_metrics`].
    pub fn proto_len(&self) -> usize {
        self.proto_len as usize
    }

    /// Asks the CPU to start loading this entry's encodings (and its group's labels): a
    /// scrape calls it a few entries ahead, so that the cache misses of consecutive entries
    /// (each of another group) overlap instead of stalling one after the other.
    #[inline]
    pub fn prefetch(&self) {
        prefetch(self.bytes.as_ptr());
        if let Some(sp) = &self.splices {
            prefetch(sp.as_ptr());
        }
    }

    /// Asks the CPU to start loading the end of this entry's bytes, where its stored
    /// `metric` fields are (up to 256 bytes; [`FamilyEntry::cut_proto_metrics`]), and its
    /// group's labels, without reading the bytes: for readers of the metrics alone.
    #[inline]
    pub fn prefetch_proto(&self) {
        let (p, len) = (self.bytes.as_ptr(), self.bytes.len());
        let mut at = len.saturating_sub(256);
        while at < len {
            prefetch(p.wrapping_add(at));
            at += 64;
        }
        prefetch(p.wrapping_add(len.saturating_sub(1)));
        if let Some(sp) = &self.splices {
            prefetch(sp.as_ptr());
        }
    }

    /// Asks the CPU to start loading the entry behind `e` (one step before
    /// [`FamilyEntry::prefetch`]).
    #[inline]
    pub fn prefetch_arc(e: &Arc<FamilyEntry>) {
        prefetch(Arc::as_ptr(e).cast());
    }

    /// Whether this entry stores its group's labels once ([`crate::shared`]).
    pub fn is_spliced(&self) -> bool {
        self.splices.is_some()
    }

    /// Bytes this entry keeps (its encodings, without the group's labels).
    pub fn stored_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Decodes the metrics (for the API, the UI and error messages; not on hot paths).
    pub fn metrics(&self) -> Vec<Metric> {
        let mut fam = MetricFamily::decode(&*self.proto_metrics()).unwrap_or_default();
        std::mem::take(&mut fam.metric)
    }

    /// Encodes the whole family as a `MetricFamily` message (header + stored metrics).
    pub fn encode_family(&self, out: &mut Vec<u8>) {
        prost::encoding::string::encode(1, &self.name.to_string(), out);
        if let Some(h) = self.help.as_deref() {
            prost::encoding::string::encode(2, &h.to_string(), out);
        }
        prost::encoding::int32::encode(3, &(self.mtype as i32), out);
        self.write_proto_metrics(out);
    }
}

/// A prefetch hint for the cache line at `p`.
#[allow(unsafe_code)]
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, reads nothing into the program and
    // changes no memory, whatever the address (SSE is part of the x86_64 baseline).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `[text length][text][proto]` in one allocation of the exact size.
/// Whether `metrics` were sanitized with placeholders for `key`'s long grouping values
/// ([`sanitize_labels_placeholders`]): then their first metric carries one.
fn uses_placeholders(key: Option<&GroupKey>, metrics: &[Metric]) -> bool {
    let Some(key) = key else { return false };
    if !key
        .labels()
        .iter()
        .any(|(_, v)| v.len() >= crate::shared::SHARE_MIN)
    {
        return false;
    }
    metrics.first().is_some_and(|m| {
        m.label.iter().any(|l| {
            l.value() == crate::shared::PLACEHOLDER
                && key
                    .get(l.name())
                    .is_some_and(|v| v.len() >= crate::shared::SHARE_MIN)
        })
    })
}

fn join(text: &[u8], proto: &[u8]) -> Box<[u8]> {
    let mut bytes = Vec::with_capacity(TEXT_LEN + text.len() + proto.len());
    bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
    bytes.extend_from_slice(text);
    bytes.extend_from_slice(proto);
    bytes.into_boxed_slice()
}

/// The 64-bit identity of a series, as client_golang computes it for its uniqueness check
/// (family name and sorted label pairs; the hash function differs, the semantics do not).
/// Names are hashed as a scrape without UTF-8 support sees them (escaped with `underscores`),
/// so that `{a.b="1"}` and `{a_b="1"}` are the same series.
pub fn series_hash(family: &str, labels: &[LabelPair]) -> u64 {
    use std::hash::Hasher;
    let mut h = HASHER.build_hasher();
    h.write(escaped(family.as_bytes()).as_bytes());
    h.write_u8(0xff);
    for lp in labels {
        h.write(escaped(lp.name().as_bytes()).as_bytes());
        h.write_u8(0xff);
        write_value(&mut h, lp.value().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// Hashes a label value into a series identity. Long values go in as their own 64-bit digest,
/// so that a group whose long grouping value is shared by 30,000 series hashes it once, not
/// 30,000 times ([`crate::shared`]); the identity stays a function of the labels alone.
pub(crate) fn write_value(h: &mut impl std::hash::Hasher, v: &[u8]) {
    if v.len() >= crate::shared::SHARE_MIN {
        h.write_u64(value_digest(v));
    } else {
        h.write(v);
    }
}

/// The digest of a long label value ([`write_value`]).
pub(crate) fn value_digest(v: &[u8]) -> u64 {
    HASHER.hash_one(v)
}

/// Reads one length-delimited field body: `(field number, bytes)`; other wire types are
/// skipped and reported with empty bytes.
pub(crate) fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, &'a [u8]), String> {
    let key = prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?;
    let (tag, wire) = ((key >> 3) as u32, key & 7);
    let skip = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err("truncated protobuf field".into());
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    };
    match wire {
        0 => {
            prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?;
            Ok((tag, &[]))
        }
        1 => skip(buf, 8).map(|_| (tag, &[][..])),
        2 => {
            let len = prost::encoding::decode_varint(buf).map_err(|e| e.to_string())? as usize;
            skip(buf, len).map(|b| (tag, b))
        }
        5 => skip(buf, 4).map(|_| (tag, &[][..])),
        w => Err(format!("unexpected wire type {w}")),
    }
}

/// The number of `metric` fields in concatenated protobuf bytes.
fn count_metrics(mut proto: &[u8]) -> Result<u32, String> {
    let mut n = 0;
    while !proto.is_empty() {
        if next_field(&mut proto)?.0 == 4 {
            n += 1;
        }
    }
    Ok(n)
}

/// A name as the default escaping (`underscores`) presents it; legacy names are borrowed.
fn escaped(name: &[u8]) -> std::borrow::Cow<'_, str> {
    let s = String::from_utf8_lossy(name);
    match s {
        std::borrow::Cow::Borrowed(b) => {
            exposition::names::escape_name(b, exposition::names::Escaping::Underscores)
        }
        std::borrow::Cow::Owned(o) => std::borrow::Cow::Owned(
            exposition::names::escape_name(&o, exposition::names::Escaping::Underscores)
                .into_owned(),
        ),
    }
}

/// Hashes `escaped(name)`; a legacy name (or an empty one) is its own escaped form, hashed
/// without validating or copying it.
fn write_name(h: &mut impl std::hash::Hasher, name: &[u8]) {
    if is_legacy_name_bytes(name) {
        h.write(name);
    } else {
        h.write(escaped(name).as_bytes());
    }
}

/// [`exposition::names::is_legacy_name`] on bytes (legacy names are ASCII), or empty.
fn is_legacy_name_bytes(b: &[u8]) -> bool {
    match b.split_first() {
        None => true,
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_' || *first == b':')
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        }
    }
}

/// Whether any label name in concatenated `metric` fields is not a legacy name.
fn label_names_need_escaping(mut proto: &[u8]) -> Result<bool, String> {
    while !proto.is_empty() {
        let (tag, mut metric) = next_field(&mut proto)?;
        if tag != 4 {
            continue;
        }
        while !metric.is_empty() {
            let (tag, mut pair) = next_field(&mut metric)?;
            if tag != 1 {
                continue;
            }
            while !pair.is_empty() {
                if let (1, b) = next_field(&mut pair)? {
                    if !std::str::from_utf8(b).is_ok_and(exposition::names::is_legacy_name) {
                        return Ok(true);
                    }
                }
            }
        }
    }
    Ok(false)
}

/// The series identities of concatenated `metric` fields, computed like [`series_hash`]
/// straight from the protobuf bytes (with the group's labels where `splices` has them).
fn series_hashes_of(
    family: &str,
    mut proto: &[u8],
    splices: Option<&Splices>,
) -> Result<Vec<u64>, String> {
    use std::hash::Hasher;
    let mut out = Vec::new();
    // The family name's part of the hash, computed once for all series.
    let mut family_h = HASHER.build_hasher();
    write_name(&mut family_h, family.as_bytes());
    family_h.write_u8(0xff);
    while !proto.is_empty() {
        let (tag, mut metric) = next_field(&mut proto)?;
        if tag != 4 {
            continue;
        }
        let mut h = family_h.clone();
        while !metric.is_empty() {
            if matches!(
                metric[0],
                crate::shared::PROTO_MARK | crate::shared::PROTO_ALL
            ) {
                let all = metric[0] == crate::shared::PROTO_ALL;
                metric = &metric[1..];
                let k = prost::encoding::decode_varint(&mut metric).map_err(|e| e.to_string())?
                    as usize;
                let sp = splices
                    .filter(|sp| all || k < sp.len())
                    .ok_or("spliced label without splices")?;
                let ks = if all { 0..sp.len() } else { k..k + 1 };
                for k in ks {
                    write_name(&mut h, sp.name(k));
                    h.write_u8(0xff);
                    let v = sp.value(k);
                    if v.len() >= crate::shared::SHARE_MIN {
                        h.write_u64(sp.digest(k));
                    } else {
                        h.write(v);
                    }
                    h.write_u8(0xff);
                }
                continue;
            }
            let (tag, mut pair) = next_field(&mut metric)?;
            if tag != 1 {
                continue;
            }
            let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
            while !pair.is_empty() {
                match next_field(&mut pair)? {
                    (1, b) => name = b,
                    (2, b) => value = b,
                    _ => {}
                }
            }
            write_name(&mut h, name);
            h.write_u8(0xff);
            write_value(&mut h, value);
            h.write_u8(0xff);
        }
        out.push(h.finish());
    }
    Ok(out)
}

/// The digest of a sequence of series identities ([`FamilyEntry::same_series`]): never 0,
/// keyed per process (it is never persisted), so that no one can prepare two different
/// sequences of identities with the same digest.
fn series_digest(ids: &[u64]) -> u64 {
    static SEED: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(ahash::RandomState::new)
        .hash_one(ids)
        .max(1)
}

/// The series identities of `metrics` (labels sanitized and sorted), as [`series_hash`]
/// computes them, with the family name's part hashed once.
fn series_hashes_of_metrics(family: &str, metrics: &[Metric]) -> Vec<u64> {
    use std::hash::Hasher;
    let mut family_h = HASHER.build_hasher();
    write_name(&mut family_h, family.as_bytes());
    family_h.write_u8(0xff);
    metrics
        .iter()
        .map(|m| {
            let mut h = family_h.clone();
            for lp in &m.label {
                write_name(&mut h, lp.name().as_bytes());
                h.write_u8(0xff);
                write_value(&mut h, lp.value().as_bytes());
                h.write_u8(0xff);
            }
            h.finish()
        })
        .collect()
}

/// HELP strings are usually the same in every group that pushes a family: share them. Swept
/// like the family names ([`crate::intern`]), so unique HELP texts do not pile up.
fn intern_help(help: &str) -> HelpText {
    help_interner().lock().intern(help)
}

fn help_interner() -> &'static parking_lot::Mutex<crate::intern::Interner<HelpText>> {
    static HELPS: std::sync::OnceLock<parking_lot::Mutex<crate::intern::Interner<HelpText>>> =
        std::sync::OnceLock::new();
    HELPS.get_or_init(Default::default)
}

/// How many distinct HELP texts are interned.
#[cfg(test)]
pub(crate) fn interned_help_count() -> usize {
    help_interner().lock().len()
}

static HASHER: ahash::RandomState = ahash::RandomState::with_seeds(
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// One group: its key, its families (including the two push-time gauges), and the times of
/// its last successful and failed changes (0 = never).
#[derive(Debug, Clone)]
pub struct Group {
    pub key: GroupKey,
    pub families: BTreeMap<Arc<str>, Arc<FamilyEntry>>,
    pub push_time: f64,
    pub push_failure_time: f64,
    /// Time to live in milliseconds (0: the group never expires).
    pub ttl_ms: u64,
    /// Unix time (seconds) at which the group expires; 0 when it has no TTL.
    pub expires_at: f64,
    /// The idempotency keys of pushes this group accepted (see [`crate::idempotency`]).
    pub seen_keys: crate::idempotency::SeenKeys,
}

impl Group {
    /// An empty group (no families, never pushed, no TTL).
    pub fn new(key: GroupKey) -> Group {
        Group {
            key,
            families: BTreeMap::new(),
            push_time: 0.0,
            push_failure_time: 0.0,
            ttl_ms: 0,
            expires_at: 0.0,
            seen_keys: Default::default(),
        }
    }

    /// Pushed series in the group (the gateway's own time gauges are not counted).
    pub fn pushed_series(&self) -> u64 {
        self.families
            .iter()
            .filter(|(n, _)| !self.is_gateway_family(n))
            .map(|(_, e)| u64::from(e.metric_count))
            .sum()
    }

    /// Whether a family of this group is one the gateway sets itself (the push-time gauges,
    /// and the expiry gauge while the group has a TTL).
    pub fn is_gateway_family(&self, name: &str) -> bool {
        is_time_gauge(name) || (self.ttl_ms != 0 && name == PUSH_EXPIRY_TIME)
    }

    /// The later of the last successful and the last failed push (0 if never pushed).
    pub fn last_pushed(&self) -> f64 {
        self.push_time.max(self.push_failure_time)
    }

    /// Sets the TTL and arms the expiry at `from + ttl`; with `ttl_ms == 0` the group never
    /// expires and the gateway's `push_expiry_time_seconds` gauge is removed.
    pub fn set_ttl(&mut self, name: Arc<str>, ttl_ms: u64, from: f64, ts: i64) {
        if ttl_ms == 0 {
            if self.ttl_ms != 0 {
                self.families.remove(PUSH_EXPIRY_TIME);
            }
            self.ttl_ms = 0;
            self.expires_at = 0.0;
            return;
        }
        self.ttl_ms = ttl_ms;
        self.expires_at = from + ttl_ms as f64 / 1000.0;
        let e = Group::time_gauge(
            &self.key,
            name.clone(),
            PUSH_EXPIRY_TIME_HELP,
            self.expires_at,
            ts,
        );
        self.families.insert(name, e);
    }

    /// `false` when the last change failed (the API's `last_push_successful`).
    pub fn last_push_successful(&self) -> bool {
        self.push_failure_time <= self.push_time
    }

    /// Labels of the push-time gauges: the grouping labels plus `instance=""` if missing.
    pub fn gauge_labels(key: &GroupKey) -> Vec<LabelPair> {
        let mut labels: Vec<LabelPair> = key
            .labels()
            .iter()
            .map(|(n, v)| LabelPair::new(&**n, &**v))
            .collect();
        if key.get("instance").is_none() {
            labels.push(LabelPair::new("instance", ""));
            labels.sort_by(|a, b| a.name().cmp(b.name()));
        }
        labels
    }

    /// [`Group::time_gauge`], made from `template`, the group's previous version of the
    /// gauge, when it can be ([`FamilyEntry::with_gauge_value`]).
    pub(crate) fn time_gauge_from(
        template: Option<&FamilyEntry>,
        key: &GroupKey,
        name: Arc<str>,
        help: &str,
        value: f64,
        ts: i64,
    ) -> Arc<FamilyEntry> {
        let quick = template
            .filter(|t| t.name == name && t.help.as_deref() == Some(help))
            .and_then(|t| t.with_gauge_value(value, ts));
        match quick {
            Some(e) => {
                #[cfg(debug_assertions)]
                {
                    let slow = Group::time_gauge(key, name, help, value, ts);
                    assert_eq!(e.bytes, slow.bytes, "gauge with a new value");
                    assert_eq!(e.proto_len, slow.proto_len);
                    assert_eq!(e.needs_escaping, slow.needs_escaping);
                }
                Arc::new(e)
            }
            None => Group::time_gauge(key, name, help, value, ts),
        }
    }

    /// A push-time gauge entry with `value` for this group.
    pub fn time_gauge(
        key: &GroupKey,
        name: Arc<str>,
        help: &str,
        value: f64,
        ts: i64,
    ) -> Arc<FamilyEntry> {
        let m = Metric {
            label: Self::gauge_labels(key),
            gauge: Some(Gauge { value: Some(value) }),
            ..Default::default()
        };
        Arc::new(FamilyEntry::build_shared(
            name,
            Some(help),
            MetricType::Gauge,
            &[m],
            ts,
            Some(key),
        ))
    }
}

/// Applies the grouping labels to a pushed metric: grouping labels override pushed values
/// and are added when missing, `instance=""` is added when there is no instance, and the
/// labels are sorted by name (official `sanitizeLabels`).
pub fn sanitize_labels(m: &mut Metric, key: &GroupKey) {
    sanitize_labels_with(m, key, false)
}

/// [`sanitize_labels`], with [`crate::shared::PLACEHOLDER`] for the long grouping values
/// (at least [`crate::shared::SHARE_MIN`] bytes): a push of many series to a group with a
/// long grouping value then never holds that value once per series, not even while its
/// entries are encoded ([`FamilyEntry::build_shared`] finds the placeholders and stores the
/// group's real labels once).
pub fn sanitize_labels_placeholders(m: &mut Metric, key: &GroupKey) {
    sanitize_labels_with(m, key, true)
}

fn sanitize_labels_with(m: &mut Metric, key: &GroupKey, placeholders: bool) {
    let grouping = key.labels();
    fn value(v: &str, placeholders: bool) -> &str {
        if placeholders && v.len() >= crate::shared::SHARE_MIN {
            crate::shared::PLACEHOLDER
        } else {
            v
        }
    }
    // Which grouping labels the metric carries: a bit each (a vector past 64 labels).
    let mut seen_bits = 0u64;
    let mut seen_more = vec![false; grouping.len().saturating_sub(64)];
    let mut has_instance = false;
    for lp in m.label.iter_mut() {
        has_instance |= lp.name() == "instance";
        // Grouping labels are sorted by name.
        if let Ok(i) = grouping.binary_search_by(|(n, _)| (**n).cmp(lp.name())) {
            let v = value(&grouping[i].1, placeholders);
            match &mut lp.value {
                // Usually pushed with the grouping value already: nothing to copy.
                Some(old) if old == v => {}
                Some(old) => {
                    old.clear();
                    old.push_str(v);
                }
                slot @ None => *slot = Some(v.to_string()),
            }
            match i {
                0..64 => seen_bits |= 1 << i,
                _ => seen_more[i - 64] = true,
            }
        }
    }
    let missing =
        grouping.len() - seen_bits.count_ones() as usize - seen_more.iter().filter(|s| **s).count();
    m.label.reserve(missing + usize::from(!has_instance));
    for (i, (n, v)) in grouping.iter().enumerate() {
        let seen = match i {
            0..64 => seen_bits & (1 << i) != 0,
            _ => seen_more[i - 64],
        };
        if !seen {
            has_instance |= &**n == "instance";
            m.label.push(LabelPair {
                name: Some(String::from(&**n)),
                value: Some(String::from(value(v, placeholders))),
            });
        }
    }
    if !has_instance {
        m.label.push(LabelPair::new("instance", ""));
    }
    // A stable sort, skipped when the labels are in order already (the usual case).
    if !m.label.is_sorted_by(|a, b| a.name() <= b.name()) {
        m.label.sort_by(|a, b| a.name().cmp(b.name()));
    }
}

pub use crate::wal::record::{EntryRecord, FamilyRecord, GroupRecord, RECORD_VERSION};

impl Group {
    /// Sets `push_time_seconds` to `value`, recorded as pushed at `ts`.
    pub fn set_push_time(&mut self, name: Arc<str>, value: f64, ts: i64) {
        self.push_time = value;
        let e = Group::time_gauge(&self.key, name.clone(), PUSH_TIME_HELP, value, ts);
        self.families.insert(name, e);
    }

    /// [`Group::set_push_time`] with the gauge already built ([`Group::time_gauge`] for this
    /// group's key, `PUSH_TIME_HELP` and `value`): a push builds it before taking the lock.
    pub(crate) fn put_push_time(&mut self, value: f64, e: Arc<FamilyEntry>) {
        self.push_time = value;
        self.families.insert(e.name.clone(), e);
    }

    /// Sets `push_failure_time_seconds` to `value`, recorded as pushed at `ts`.
    pub fn set_push_failure_time(&mut self, name: Arc<str>, value: f64, ts: i64) {
        self.push_failure_time = value;
        let e = Group::time_gauge(&self.key, name.clone(), PUSH_FAILURE_TIME_HELP, value, ts);
        self.families.insert(name, e);
    }

    pub(crate) fn gauge_ts(&self, name: &str) -> i64 {
        self.families.get(name).map(|f| f.timestamp_ns).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_overrides_and_adds_grouping_labels() {
        let key = GroupKey::new([("job", "job1"), ("instance", "instance2")]);
        let mut m = Metric {
            label: vec![LabelPair::new("job", "job2"), LabelPair::new("a", "x")],
            ..Default::default()
        };
        sanitize_labels(&mut m, &key);
        let got: Vec<_> = m.label.iter().map(|l| (l.name(), l.value())).collect();
        assert_eq!(
            got,
            [("a", "x"), ("instance", "instance2"), ("job", "job1")]
        );

        let key = GroupKey::new([("job", "j")]);
        let mut m = Metric {
            label: vec![LabelPair::new("instance", "fromBody")],
            ..Default::default()
        };
        sanitize_labels(&mut m, &key);
        let got: Vec<_> = m.label.iter().map(|l| (l.name(), l.value())).collect();
        assert_eq!(got, [("instance", "fromBody"), ("job", "j")]);
    }

    #[test]
    fn record_round_trip_keeps_everything() {
        let key = GroupKey::new([("job", "j"), ("x", "")]);
        let mut intern = |s: &str| Arc::<str>::from(s);
        let m = Metric {
            label: vec![
                LabelPair::new("instance", ""),
                LabelPair::new("job", "j"),
                LabelPair::new("x", ""),
            ],
            gauge: Some(Gauge { value: Some(1.5) }),
            ..Default::default()
        };
        let mut g = Group::new(key);
        g.families.insert(
            intern("foo"),
            Arc::new(FamilyEntry::build(
                intern("foo"),
                Some("h"),
                MetricType::Gauge,
                &[m],
                42,
            )),
        );
        g.set_push_time(intern(PUSH_TIME), 12.5, 42);
        g.set_push_failure_time(intern(PUSH_FAILURE_TIME), 3.0, 7);
        let back = Group::decode_record(&g.encode_record(), &mut intern).unwrap();
        assert_eq!(back.key, g.key);
        assert_eq!(back.push_time, 12.5);
        assert_eq!(back.push_failure_time, 3.0);
        assert_eq!(back.families.len(), 3);
        let foo = &back.families["foo"];
        assert_eq!(foo.text(), g.families["foo"].text());
        assert_eq!(foo.help.as_deref(), Some("h"));
        assert_eq!(foo.timestamp_ns, 42);
        assert_eq!(back.families[PUSH_FAILURE_TIME].timestamp_ns, 7);
        assert_eq!(
            foo.series(),
            vec![series_hash("foo", &g.families["foo"].metrics()[0].label)],
            "identities recomputed from bytes"
        );
        assert_eq!(foo.proto_metrics(), g.families["foo"].proto_metrics());
        assert_eq!(
            &*back.families[PUSH_TIME].text(),
            b"push_time_seconds{instance=\"\",job=\"j\",x=\"\"} 12.5\n"
        );
    }

    #[test]
    fn utf8_family_names_are_kept_and_marked_for_escaping() {
        // Pushgateway 1.11 (client_golang v1.23, UTF-8 validation) accepts any non-empty
        // name from a protobuf push and escapes it on scrape; only an empty one is invalid.
        let m = Metric {
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        let build = |name: &str, m: &Metric| {
            FamilyEntry::build(
                name.into(),
                None,
                MetricType::Gauge,
                std::slice::from_ref(m),
                0,
            )
        };
        let e = build("", &m);
        assert!(e
            .invalid
            .as_deref()
            .is_some_and(|i| i.contains("invalid name")));
        for utf8 in ["a\x17b", "1abc", "a-b", "my.metric"] {
            let e = build(utf8, &m);
            assert!(e.invalid.is_none() && e.needs_escaping, "{utf8:?}");
        }
        for good in ["a", "_a:b_1", "ns:sub:name"] {
            let e = build(good, &m);
            assert!(e.invalid.is_none() && !e.needs_escaping, "{good}");
        }
        let labelled = Metric {
            label: vec![LabelPair::new("my.label", "v")],
            ..m.clone()
        };
        let e = build("a", &labelled);
        assert!(e.invalid.is_none() && e.needs_escaping);
        let back = FamilyEntry::from_parts(
            e.name.clone(),
            None,
            e.mtype,
            0,
            &e.proto_metrics(),
            &e.text(),
            None,
            None,
            None,
        )
        .unwrap();
        assert!(back.needs_escaping);
        // Same series once escaped.
        assert_eq!(
            series_hash("a", &[LabelPair::new("my.label", "v")]),
            series_hash("a", &[LabelPair::new("my_label", "v")])
        );
    }

    #[test]
    fn record_round_trip_keeps_ttl_and_expiry_gauge() {
        let mut intern = |s: &str| Arc::<str>::from(s);
        let mut g = Group::new(GroupKey::new([("job", "j")]));
        g.set_push_time(intern(PUSH_TIME), 100.0, 1);
        g.set_push_failure_time(intern(PUSH_FAILURE_TIME), 0.0, 1);
        g.set_ttl(intern(PUSH_EXPIRY_TIME), 90_000, 100.0, 5);
        assert_eq!(g.expires_at, 190.0);
        let back = Group::decode_record(&g.encode_record(), &mut intern).unwrap();
        assert_eq!((back.ttl_ms, back.expires_at), (90_000, 190.0));
        assert_eq!(
            &*back.families[PUSH_EXPIRY_TIME].text(),
            b"push_expiry_time_seconds{instance=\"\",job=\"j\"} 190\n"
        );
        assert_eq!(back.families[PUSH_EXPIRY_TIME].timestamp_ns, 5);
        // Clearing the TTL removes the gauge, and the record has none.
        g.set_ttl(intern(PUSH_EXPIRY_TIME), 0, 200.0, 6);
        let back = Group::decode_record(&g.encode_record(), &mut intern).unwrap();
        assert_eq!((back.ttl_ms, back.expires_at), (0, 0.0));
        assert!(!back.families.contains_key(PUSH_EXPIRY_TIME));
    }

    #[test]
    fn series_identities_from_bytes_match_series_hash() {
        // Legacy, escaped and empty names take different paths in `series_hashes_of`.
        for family in ["foo", "a.b", "", "_x:y", "1abc", "名前", "a-b_c"] {
            let label_sets: &[&[(&str, &str)]] = &[
                &[("instance", ""), ("job", "j")],
                &[("a.b", "1"), ("job", "j"), ("z", &"v".repeat(100))],
                &[("", "x"), ("ä", "ö")],
                &[],
            ];
            let metrics: Vec<Metric> = label_sets
                .iter()
                .map(|ls| Metric {
                    label: ls.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
                    gauge: Some(Gauge { value: Some(1.0) }),
                    ..Default::default()
                })
                .collect();
            let e = FamilyEntry::build(Arc::from(family), None, MetricType::Gauge, &metrics, 0);
            let want: Vec<u64> = metrics
                .iter()
                .map(|m| series_hash(family, &m.label))
                .collect();
            assert_eq!(e.series(), want, "{family:?}");
        }
    }

    /// A push-time gauge made from the previous one with a new value has the bytes of one
    /// built from scratch, whatever the value and the group's labels.
    #[test]
    fn gauge_with_a_new_value_is_built_like_a_new_gauge() {
        let keys = [
            GroupKey::new([("job", "j")]),
            GroupKey::new([("job", "j"), ("instance", "i")]),
            GroupKey::new([("job", "j".to_string()), ("long", "v".repeat(100))]),
            GroupKey::new([("job", "j"), ("a.b", "ü\"\\\n")]),
        ];
        let values = [
            0.0,
            -0.0,
            1.0,
            12.5,
            1.7e9 + 0.123,
            1e21,
            -3.25e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
        ];
        for key in &keys {
            let name: Arc<str> = Arc::from(PUSH_TIME);
            let mut prev = Group::time_gauge(key, name.clone(), PUSH_TIME_HELP, 0.0, 1);
            assert!(prev.is_spliced(), "{key:?}");
            prev.series();
            for (i, v) in values.iter().enumerate() {
                let quick = prev.with_gauge_value(*v, i as i64).expect("quick");
                let slow = Group::time_gauge(key, name.clone(), PUSH_TIME_HELP, *v, i as i64);
                assert_eq!(quick.bytes, slow.bytes, "{key:?} {v}");
                assert_eq!(quick.text(), slow.text(), "{key:?} {v}");
                assert_eq!(quick.proto_metrics(), slow.proto_metrics(), "{key:?} {v}");
                assert_eq!(quick.proto_len(), slow.proto_len());
                assert_eq!(quick.timestamp_ns, i as i64);
                assert_eq!(quick.series(), slow.series());
                assert!(quick.same_series(&prev));
                prev = Arc::new(quick);
            }
        }
        // A gauge with a timestamp (a record written by something else): the long way.
        let key = &keys[0];
        let mut m = Metric {
            label: Group::gauge_labels(key),
            gauge: Some(Gauge { value: Some(1.5) }),
            timestamp_ms: Some(1_700_000_000_000),
            ..Default::default()
        };
        sanitize_labels(&mut m, key);
        let stamped = FamilyEntry::build_shared(
            Arc::from(PUSH_TIME),
            Some(PUSH_TIME_HELP),
            MetricType::Gauge,
            &[m],
            0,
            Some(key),
        );
        assert!(stamped.is_spliced());
        assert!(stamped.with_gauge_value(2.0, 0).is_none());
        // Not a time gauge: built the long way.
        let two = FamilyEntry::build(
            Arc::from("g"),
            None,
            MetricType::Gauge,
            &[Metric::default(), Metric::default()],
            0,
        );
        assert!(two.with_gauge_value(1.0, 0).is_none());
    }

    /// An entry (with its `Arc` counts) stays in mimalloc's 112-byte size class: the series
    /// digest costs no memory (the HELP text is a thin pointer for it).
    #[test]
    fn family_entry_keeps_its_allocation_class() {
        assert!(
            std::mem::size_of::<FamilyEntry>() + 16 <= 112,
            "{}",
            std::mem::size_of::<FamilyEntry>()
        );
    }

    /// The identities `build_shared_series` hands to the index are the ones recomputed from
    /// the stored bytes (also after a record round trip), and `same_series` tells entries
    /// with the same identities from entries with others, and never guesses.
    #[test]
    fn series_cached_at_build_equal_the_recomputed_ones() {
        let key = GroupKey::new([("job", "j".to_string()), ("long", "v".repeat(100))]);
        let metrics = |n: &str| -> Vec<Metric> {
            (0..3)
                .map(|i| {
                    let mut m = Metric {
                        label: vec![LabelPair::new(n, i.to_string())],
                        gauge: Some(Gauge {
                            value: Some(i as f64),
                        }),
                        ..Default::default()
                    };
                    sanitize_labels_placeholders(&mut m, &key);
                    m
                })
                .collect()
        };
        let build = |ms: &[Metric]| {
            FamilyEntry::build_shared_series(
                Arc::from("g"),
                Some("h"),
                MetricType::Gauge,
                ms,
                0,
                Some(&key),
            )
        };
        let (a, ids) = build(&metrics("a"));
        assert!(a.is_spliced());
        assert_eq!(ids, a.series());
        let want: Vec<u64> = (0..3)
            .map(|i| {
                let mut m = Metric {
                    label: vec![LabelPair::new("a", i.to_string())],
                    ..Default::default()
                };
                sanitize_labels(&mut m, &key);
                series_hash("g", &m.label)
            })
            .collect();
        assert_eq!(ids, want, "identities of the real grouping values");
        // Pushed again with other values: the same series.
        let (again, _) = build(&metrics("a"));
        assert!(again.same_series(&a) && a.same_series(&again));
        // Other label values or names: other series.
        let (other, other_ids) = build(&metrics("b"));
        assert_ne!(other_ids, ids);
        assert!(!other.same_series(&a));
        assert!(!a.same_series(&build(&metrics("a")[..2]).0));
        // Restored from its record: nothing known until the identities are computed again.
        let mut g = Group::new(key.clone());
        g.families.insert(Arc::from("g"), Arc::new(a));
        let mut intern = |s: &str| Arc::<str>::from(s);
        let back = Group::decode_record(&g.encode_record(), &mut intern).unwrap();
        let restored = &back.families["g"];
        assert!(!restored.same_series(&g.families["g"]));
        assert!(!g.families["g"].same_series(restored));
        assert_eq!(restored.series(), ids);
        assert!(restored.same_series(&g.families["g"]));
    }

    #[test]
    fn build_stores_text_then_protobuf_in_one_buffer() {
        let metrics: Vec<Metric> = (0..5)
            .map(|i| Metric {
                label: vec![
                    LabelPair::new("job", "j"),
                    LabelPair::new("i", i.to_string()),
                ],
                gauge: Some(Gauge {
                    value: Some(i as f64 + 0.5),
                }),
                ..Default::default()
            })
            .collect();
        for ms in [&metrics[..], &metrics[..1], &[]] {
            let e = FamilyEntry::build(Arc::from("g"), Some("h"), MetricType::Gauge, ms, 0);
            let mut text = String::new();
            let mut proto = Vec::new();
            for m in ms {
                text_encode::write_metric(&mut text, "g", MetricType::Gauge, m).unwrap();
                prost::encoding::message::encode(4, m, &mut proto);
            }
            assert_eq!(e.text_raw(), text.as_bytes());
            assert_eq!(e.proto_raw(), &proto[..]);
            assert_eq!(e.bytes.len(), 4 + text.len() + proto.len());
        }
    }
}
