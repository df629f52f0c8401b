//! The persisted form of one group: the value the store keeps under a group's key in the
//! log (a version byte, then a [`GroupRecord`] protobuf message, so it can grow compatibly),
//! and the encoding of a change to part of a group as bytes that, appended to the record,
//! merge into it (the log's append op).

use std::collections::BTreeMap;
use std::sync::Arc;

use exposition::pb::{LabelPair, MetricFamily, MetricType};
use prost::Message;

use crate::group::{
    is_time_gauge, FamilyEntry, Group, PUSH_EXPIRY_TIME, PUSH_EXPIRY_TIME_HELP, PUSH_FAILURE_TIME,
    PUSH_TIME,
};
use crate::key::GroupKey;
use crate::shared::SharedLabels;

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
    /// `bytes::Bytes`, so that decoding from a [`bytes::Bytes`] (the persistence file's
    /// bytes at restore) borrows instead of copying.
    #[prost(bytes = "bytes", tag = "6")]
    pub proto: bytes::Bytes,
    #[prost(bytes = "bytes", tag = "7")]
    pub text: bytes::Bytes,
    #[prost(string, optional, tag = "8")]
    pub invalid: Option<String>,
    /// Offsets (u32 little-endian) in `text` where the shared grouping labels go.
    #[prost(bytes = "vec", tag = "9")]
    pub text_at: Vec<u8>,
    /// The grouping labels stored once for the group (placeholders in `proto`, holes in
    /// `text`).
    #[prost(string, repeated, tag = "10")]
    pub shared: Vec<String>,
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

    /// The bytes that, appended to this group's previous record, turn it into this
    /// version's record (protobuf merging: header fields are replaced, entries of the same
    /// name override earlier ones): the header and the families named in `changed`. For a
    /// change that only adds or replaces those families, this costs the size of the change
    /// instead of the whole group.
    pub fn encode_delta<'a>(&self, changed: impl Iterator<Item = &'a Arc<str>>) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        prost::encoding::double::encode(2, &self.push_time, &mut out);
        prost::encoding::double::encode(3, &self.push_failure_time, &mut out);
        prost::encoding::int64::encode(5, &self.gauge_ts(PUSH_TIME), &mut out);
        prost::encoding::int64::encode(6, &self.gauge_ts(PUSH_FAILURE_TIME), &mut out);
        // Written even when 0, so that they replace the previous values.
        prost::encoding::uint64::encode(8, &self.ttl_ms, &mut out);
        prost::encoding::double::encode(9, &self.expires_at, &mut out);
        prost::encoding::int64::encode(10, &self.gauge_ts(PUSH_EXPIRY_TIME), &mut out);
        let mut rec = Vec::new();
        for name in changed {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            if self.is_gateway_family(name) {
                continue;
            }
            rec.clear();
            f.encode_entry_record(&mut rec);
            prost::encoding::bytes::encode(7, &rec, &mut out);
        }
        // Written even when empty, so that it replaces the previous keys (an accumulating
        // POST's Idempotency-Key must survive a restart as a PUT's does).
        prost::encoding::bytes::encode(11, &self.seen_keys.encode(), &mut out);
        out
    }

    /// Rebuilds a group from [`Group::encode_record`]'s bytes.
    pub fn decode_record(
        bytes: &[u8],
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) -> Result<Group, String> {
        Group::decode_record_bytes(bytes::Bytes::copy_from_slice(bytes), intern)
    }

    /// [`Group::decode_record`] from shared bytes: the entries' encodings are read in place
    /// and copied once, into each entry's single allocation.
    pub fn decode_record_bytes(
        mut bytes: bytes::Bytes,
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) -> Result<Group, String> {
        use bytes::Buf;
        let version = *bytes.first().ok_or("empty record")?;
        if version != RECORD_VERSION {
            return Err(format!("unknown record version {version}"));
        }
        bytes.advance(1);
        let rec = GroupRecord::decode(bytes).map_err(|e| e.to_string())?;
        let key = GroupKey::new(
            rec.labels
                .iter()
                .map(|lp| (lp.name().to_string(), lp.value().to_string())),
        );
        let mut families = BTreeMap::new();
        // Records written before entries carried their encodings (first: entries appended
        // by later changes override them).
        for fr in rec.families {
            let Some(mf) = fr.family else { continue };
            let name = intern(mf.name());
            let entry = FamilyEntry::build_shared(
                name.clone(),
                mf.help.as_deref(),
                mf.metric_type(),
                &mf.metric,
                fr.timestamp_ns,
                Some(&key),
            );
            families.insert(name, Arc::new(entry));
        }
        let mut shared: Option<Arc<SharedLabels>> = None;
        for er in rec.entries {
            let name = intern(&er.name);
            let mtype = MetricType::try_from(er.mtype).unwrap_or(MetricType::Untyped);
            let spliced = if er.shared.is_empty() {
                None
            } else {
                let same = shared.as_ref().is_some_and(|s| {
                    s.names
                        .iter()
                        .map(|n| &**n)
                        .eq(er.shared.iter().map(|n| &**n))
                });
                if !same {
                    shared =
                        SharedLabels::with_names(&key, |n, _| er.shared.iter().any(|s| s == n));
                }
                let labels = shared
                    .clone()
                    .filter(|s| s.names.len() == er.shared.len())
                    .ok_or("shared labels missing from the grouping key")?;
                let at = er
                    .text_at
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Some((labels, at))
            };
            let entry = FamilyEntry::from_parts(
                name.clone(),
                er.help.as_deref(),
                mtype,
                er.timestamp_ns,
                &er.proto,
                &er.text,
                er.invalid,
                spliced,
                Some(&key),
            )?;
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
}
