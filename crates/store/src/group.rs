//! Groups and their families, encoded once at push time.
//!
//! A [`FamilyEntry`] holds one family of one group in the forms the readers need: the text
//! exposition lines, the protobuf `Metric` fields, and the 64-bit identities of its series for
//! the consistency index. Nothing is re-encoded on a scrape.

use crate::check::check_metric;
use crate::key::GroupKey;
use exposition::pb::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use exposition::text_encode;
use prost::Message;
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

/// One family of one group.
#[derive(Debug)]
pub struct FamilyEntry {
    pub name: Arc<str>,
    /// HELP text, shared between all families that carry the same text.
    pub help: Option<Arc<str>>,
    pub mtype: MetricType,
    /// When the family was pushed, in Unix nanoseconds.
    pub timestamp_ns: i64,
    pub metric_count: u32,
    /// The text exposition lines (no HELP/TYPE) followed by the `metric` fields (tag 4) of a
    /// `MetricFamily` message: one allocation for both encodings.
    bytes: Box<[u8]>,
    /// Where the text ends and the protobuf bytes begin.
    text_len: u32,
    /// Why this family could not be part of a consistent scrape (only reachable when the
    /// consistency check is off).
    pub invalid: Option<Box<str>>,
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
        let mut text = String::new();
        let mut proto = Vec::new();
        // A protobuf push can carry any name; one the text format cannot express would break
        // the scrape for every group (the official 1.5.1 accepts and exposes it verbatim).
        let mut invalid =
            (!metrics.is_empty() && !crate::check::is_valid_metric_name(&name)).then(|| {
                format!("collected metric named {name:?} has an invalid name").into_boxed_str()
            });
        for m in metrics {
            if invalid.is_none() {
                if let Err(e) = check_metric(&name, mtype, m) {
                    invalid = Some(e.into_boxed_str());
                } else if let Err(e) = text_encode::write_metric(&mut text, &name, mtype, m) {
                    invalid = Some(e.to_string().into_boxed_str());
                }
            }
            prost::encoding::message::encode(4, m, &mut proto);
            if std::ptr::eq(m, &metrics[0]) && metrics.len() > 1 {
                // Metrics of one family are alike: size the buffers from the first one.
                let rest = metrics.len() - 1;
                text.reserve(text.len() * rest + text.len() / 4);
                proto.reserve(proto.len() * rest + proto.len() / 4);
            }
        }
        FamilyEntry {
            name,
            help: help.map(intern_help),
            mtype,
            timestamp_ns,
            metric_count: metrics.len() as u32,
            text_len: text.len() as u32,
            bytes: [text.as_bytes(), &proto[..]].concat().into_boxed_slice(),
            invalid,
        }
    }

    /// Rebuilds an entry from its persisted parts; only the series identities are recomputed,
    /// by walking the protobuf bytes without decoding them into messages.
    pub fn from_parts(
        name: Arc<str>,
        help: Option<&str>,
        mtype: MetricType,
        timestamp_ns: i64,
        proto: Vec<u8>,
        text: Vec<u8>,
        invalid: Option<String>,
    ) -> Result<FamilyEntry, String> {
        let metric_count = count_metrics(&proto)?;
        Ok(FamilyEntry {
            name,
            help: help.map(intern_help),
            mtype,
            timestamp_ns,
            metric_count,
            text_len: text.len() as u32,
            bytes: [&text[..], &proto[..]].concat().into_boxed_slice(),
            invalid: invalid.map(Into::into),
        })
    }

    /// Appends the persisted form of this entry (an `EntryRecord` message body).
    pub fn encode_entry_record(&self, out: &mut Vec<u8>) {
        prost::encoding::string::encode(1, &self.name.to_string(), out);
        if let Some(h) = &self.help {
            prost::encoding::string::encode(2, &h.to_string(), out);
        }
        prost::encoding::int32::encode(3, &(self.mtype as i32), out);
        prost::encoding::int64::encode(4, &self.timestamp_ns, out);
        for (tag, bytes) in [(6u32, self.proto_metrics()), (7, self.text())] {
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
            prost::encoding::encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(bytes);
        }
        if let Some(i) = &self.invalid {
            prost::encoding::string::encode(8, &i.to_string(), out);
        }
    }

    /// The identity of each series (family name and sorted labels), for the consistency
    /// index. Computed from the stored bytes when needed instead of kept: 8 bytes a series.
    pub fn series(&self) -> Vec<u64> {
        series_hashes_of(&self.name, self.proto_metrics()).unwrap_or_default()
    }

    /// The pre-encoded text exposition lines.
    pub fn text(&self) -> &[u8] {
        &self.bytes[..self.text_len as usize]
    }

    /// The pre-encoded `metric` fields of a `MetricFamily` message.
    pub fn proto_metrics(&self) -> &[u8] {
        &self.bytes[self.text_len as usize..]
    }

    /// Decodes the metrics (for the API, the UI and error messages; not on hot paths).
    pub fn metrics(&self) -> Vec<Metric> {
        let mut fam = MetricFamily::decode(self.proto_metrics()).unwrap_or_default();
        std::mem::take(&mut fam.metric)
    }

    /// Encodes the whole family as a `MetricFamily` message (header + stored metrics).
    pub fn encode_family(&self, out: &mut Vec<u8>) {
        prost::encoding::string::encode(1, &self.name.to_string(), out);
        if let Some(h) = &self.help {
            prost::encoding::string::encode(2, &h.to_string(), out);
        }
        prost::encoding::int32::encode(3, &(self.mtype as i32), out);
        out.extend_from_slice(self.proto_metrics());
    }
}

/// The 64-bit identity of a series, as client_golang computes it for its uniqueness check
/// (family name and sorted label pairs; the hash function differs, the semantics do not).
pub fn series_hash(family: &str, labels: &[LabelPair]) -> u64 {
    use std::hash::Hasher;
    let mut h = HASHER.build_hasher();
    h.write(family.as_bytes());
    h.write_u8(0xff);
    for lp in labels {
        h.write(lp.name().as_bytes());
        h.write_u8(0xff);
        h.write(lp.value().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// Reads one length-delimited field body: `(field number, bytes)`; other wire types are
/// skipped and reported with empty bytes.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, &'a [u8]), String> {
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

/// The series identities of concatenated `metric` fields, computed like [`series_hash`]
/// straight from the protobuf bytes.
fn series_hashes_of(family: &str, mut proto: &[u8]) -> Result<Vec<u64>, String> {
    use std::hash::Hasher;
    let mut out = Vec::new();
    while !proto.is_empty() {
        let (tag, mut metric) = next_field(&mut proto)?;
        if tag != 4 {
            continue;
        }
        let mut h = HASHER.build_hasher();
        h.write(family.as_bytes());
        h.write_u8(0xff);
        while !metric.is_empty() {
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
            h.write(name);
            h.write_u8(0xff);
            h.write(value);
            h.write_u8(0xff);
        }
        out.push(h.finish());
    }
    Ok(out)
}

/// HELP strings are usually the same in every group that pushes a family: share them.
/// Bounded, so that a client pushing random HELP texts cannot grow it without limit.
fn intern_help(help: &str) -> Arc<str> {
    const MAX_INTERNED: usize = 100_000;
    static HELPS: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashSet<Arc<str>, ahash::RandomState>>,
    > = std::sync::OnceLock::new();
    let mut set = HELPS.get_or_init(Default::default).lock();
    if let Some(h) = set.get(help) {
        return h.clone();
    }
    let h: Arc<str> = Arc::from(help);
    if set.len() < MAX_INTERNED {
        set.insert(h.clone());
    }
    h
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
        Arc::new(FamilyEntry::build(
            name,
            Some(help),
            MetricType::Gauge,
            &[m],
            ts,
        ))
    }
}

/// Applies the grouping labels to a pushed metric: grouping labels override pushed values
/// and are added when missing, `instance=""` is added when there is no instance, and the
/// labels are sorted by name (official `sanitizeLabels`).
pub fn sanitize_labels(m: &mut Metric, key: &GroupKey) {
    let grouping = key.labels();
    let mut seen = vec![false; grouping.len()];
    for lp in m.label.iter_mut() {
        if let Some(i) = grouping.iter().position(|(n, _)| **n == *lp.name()) {
            lp.value = Some(grouping[i].1.to_string());
            seen[i] = true;
        }
    }
    for (i, (n, v)) in grouping.iter().enumerate() {
        if !seen[i] {
            m.label.push(LabelPair::new(&**n, &**v));
        }
    }
    if !m.label.iter().any(|lp| lp.name() == "instance") {
        m.label.push(LabelPair::new("instance", ""));
    }
    m.label.sort_by(|a, b| a.name().cmp(b.name()));
}

/// The persisted form of a group (a protobuf message, so that it can grow compatibly).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct GroupRecord {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPair>,
    #[prost(double, tag = "2")]
    pub push_time: f64,
    #[prost(double, tag = "3")]
    pub push_failure_time: f64,
    #[prost(message, repeated, tag = "4")]
    pub families: Vec<FamilyRecord>,
    #[prost(int64, tag = "5")]
    pub push_time_ts: i64,
    #[prost(int64, tag = "6")]
    pub push_failure_time_ts: i64,
    #[prost(message, repeated, tag = "7")]
    pub entries: Vec<EntryRecord>,
    #[prost(uint64, tag = "8")]
    pub ttl_ms: u64,
    #[prost(double, tag = "9")]
    pub expires_at: f64,
    #[prost(int64, tag = "10")]
    pub expiry_ts: i64,
    /// The group's idempotency keys ([`crate::idempotency::SeenKeys::encode`]).
    #[prost(bytes = "vec", tag = "11")]
    pub seen_keys: Vec<u8>,
}

/// A family as persisted: its header and both of its pre-encoded forms, so that a restart
/// copies bytes instead of decoding and re-encoding every metric.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct EntryRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    #[prost(int32, tag = "3")]
    pub mtype: i32,
    #[prost(int64, tag = "4")]
    pub timestamp_ns: i64,
    #[prost(bytes = "vec", tag = "6")]
    pub proto: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    pub text: Vec<u8>,
    #[prost(string, optional, tag = "8")]
    pub invalid: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FamilyRecord {
    #[prost(message, optional, tag = "1")]
    pub family: Option<MetricFamily>,
    #[prost(int64, tag = "2")]
    pub timestamp_ns: i64,
}

/// Version byte in front of every persisted group record.
pub const RECORD_VERSION: u8 = 1;

impl Group {
    /// Encodes the group for persistence without decoding its families.
    pub fn encode_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self
                .families
                .values()
                .map(|f| f.bytes.len() + 64)
                .sum::<usize>(),
        );
        out.push(RECORD_VERSION);
        for (n, v) in self.key.labels() {
            prost::encoding::message::encode(1, &LabelPair::new(&**n, &**v), &mut out);
        }
        prost::encoding::double::encode(2, &self.push_time, &mut out);
        prost::encoding::double::encode(3, &self.push_failure_time, &mut out);
        prost::encoding::int64::encode(5, &self.gauge_ts(PUSH_TIME), &mut out);
        prost::encoding::int64::encode(6, &self.gauge_ts(PUSH_FAILURE_TIME), &mut out);
        if self.ttl_ms != 0 {
            prost::encoding::uint64::encode(8, &self.ttl_ms, &mut out);
            prost::encoding::double::encode(9, &self.expires_at, &mut out);
            prost::encoding::int64::encode(10, &self.gauge_ts(PUSH_EXPIRY_TIME), &mut out);
        }
        let mut rec = Vec::new();
        for f in self.families.values() {
            if is_time_gauge(&f.name) || (self.ttl_ms != 0 && &*f.name == PUSH_EXPIRY_TIME) {
                continue;
            }
            rec.clear();
            f.encode_entry_record(&mut rec);
            prost::encoding::bytes::encode(7, &rec, &mut out);
        }
        if !self.seen_keys.is_empty() {
            prost::encoding::bytes::encode(11, &self.seen_keys.encode(), &mut out);
        }
        out
    }

    /// Rebuilds a group from [`Group::encode_record`]'s bytes.
    pub fn decode_record(
        bytes: &[u8],
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) -> Result<Group, String> {
        let (&version, body) = bytes.split_first().ok_or("empty record")?;
        if version != RECORD_VERSION {
            return Err(format!("unknown record version {version}"));
        }
        let rec = GroupRecord::decode(body).map_err(|e| e.to_string())?;
        let key = GroupKey::new(
            rec.labels
                .iter()
                .map(|lp| (lp.name().to_string(), lp.value().to_string())),
        );
        let mut families = BTreeMap::new();
        for er in rec.entries {
            let name = intern(&er.name);
            let mtype = MetricType::try_from(er.mtype).unwrap_or(MetricType::Untyped);
            let entry = FamilyEntry::from_parts(
                name.clone(),
                er.help.as_deref(),
                mtype,
                er.timestamp_ns,
                er.proto,
                er.text,
                er.invalid,
            )?;
            families.insert(name, Arc::new(entry));
        }
        // Records written before entries carried their encodings.
        for fr in rec.families {
            let Some(mf) = fr.family else { continue };
            let name = intern(mf.name());
            let entry = FamilyEntry::build(
                name.clone(),
                mf.help.as_deref(),
                mf.metric_type(),
                &mf.metric,
                fr.timestamp_ns,
            );
            families.insert(name, Arc::new(entry));
        }
        let mut g = Group::new(key);
        g.families = families;
        g.seen_keys = crate::idempotency::SeenKeys::decode(&rec.seen_keys)?;
        g.set_push_time(intern(PUSH_TIME), rec.push_time, rec.push_time_ts);
        g.set_push_failure_time(
            intern(PUSH_FAILURE_TIME),
            rec.push_failure_time,
            rec.push_failure_time_ts,
        );
        if rec.ttl_ms != 0 {
            g.ttl_ms = rec.ttl_ms;
            g.expires_at = rec.expires_at;
            let e = Group::time_gauge(
                &g.key,
                intern(PUSH_EXPIRY_TIME),
                PUSH_EXPIRY_TIME_HELP,
                rec.expires_at,
                rec.expiry_ts,
            );
            g.families.insert(e.name.clone(), e);
        }
        Ok(g)
    }

    /// Sets `push_time_seconds` to `value`, recorded as pushed at `ts`.
    pub fn set_push_time(&mut self, name: Arc<str>, value: f64, ts: i64) {
        self.push_time = value;
        let e = Group::time_gauge(&self.key, name.clone(), PUSH_TIME_HELP, value, ts);
        self.families.insert(name, e);
    }

    /// Sets `push_failure_time_seconds` to `value`, recorded as pushed at `ts`.
    pub fn set_push_failure_time(&mut self, name: Arc<str>, value: f64, ts: i64) {
        self.push_failure_time = value;
        let e = Group::time_gauge(&self.key, name.clone(), PUSH_FAILURE_TIME_HELP, value, ts);
        self.families.insert(name, e);
    }

    fn gauge_ts(&self, name: &str) -> i64 {
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
            back.families[PUSH_TIME].text(),
            b"push_time_seconds{instance=\"\",job=\"j\",x=\"\"} 12.5\n"
        );
    }

    #[test]
    fn invalid_metric_name_from_protobuf_marks_the_entry_invalid() {
        let m = Metric {
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        for bad in ["a\x17b", "1abc", "a-b", ""] {
            let e = FamilyEntry::build(
                bad.into(),
                None,
                MetricType::Gauge,
                std::slice::from_ref(&m),
                0,
            );
            assert!(
                e.invalid
                    .as_deref()
                    .is_some_and(|i| i.contains("invalid name")),
                "{bad:?}"
            );
        }
        for good in ["a", "_a:b_1", "ns:sub:name"] {
            let e = FamilyEntry::build(
                good.into(),
                None,
                MetricType::Gauge,
                std::slice::from_ref(&m),
                0,
            );
            assert!(e.invalid.is_none(), "{good}");
        }
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
            back.families[PUSH_EXPIRY_TIME].text(),
            b"push_expiry_time_seconds{instance=\"\",job=\"j\"} 190\n"
        );
        assert_eq!(back.families[PUSH_EXPIRY_TIME].timestamp_ns, 5);
        // Clearing the TTL removes the gauge, and the record has none.
        g.set_ttl(intern(PUSH_EXPIRY_TIME), 0, 200.0, 6);
        let back = Group::decode_record(&g.encode_record(), &mut intern).unwrap();
        assert_eq!((back.ttl_ms, back.expires_at), (0, 0.0));
        assert!(!back.families.contains_key(PUSH_EXPIRY_TIME));
    }
}
