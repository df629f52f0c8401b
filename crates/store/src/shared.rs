//! Long grouping label values stored once per group instead of once per series.
//!
//! Every series of a group carries the group's labels. A value of a few bytes costs little to
//! repeat, but one push of 30,000 one-line series under a 60 KB grouping value would otherwise
//! store 30,000 copies of it in both encodings. A grouping label whose value is at least
//! [`SHARE_MIN`] bytes long is therefore *shared*: each metric carries a one-byte placeholder
//! value (`"\0"`) for it, the text lines record where the escaped value goes
//! ([`Spliced::text_at`]), and the value is kept once, pre-encoded for both formats, in a
//! [`SharedLabels`] that every entry of the group points to.
//!
//! Writers still only copy pre-encoded bytes: the text is the stored lines with the escaped
//! value copied in at the recorded offsets; protobuf is the stored `Metric` fields with the
//! placeholder `LabelPair`s replaced by the pre-encoded ones (and each metric's length
//! prefix adjusted). Identities, decoding and persistence see the real values.

use crate::key::GroupKey;
use std::sync::Arc;

/// Grouping label values at least this long are shared instead of repeated per series.
pub const SHARE_MIN: usize = 64;

/// The value that stands for a shared label in a stored metric.
pub const PLACEHOLDER: &str = "\0";

/// The shared labels of one group, pre-encoded.
#[derive(Debug)]
pub struct SharedLabels {
    /// Label names, sorted (as in the key).
    pub names: Box<[Box<str>]>,
    /// The raw values.
    pub values: Box<[Box<str>]>,
    /// Their digests, as series identities hash them (`group::write_value`).
    pub digests: Box<[u64]>,
    /// The values escaped for the text format (without the quotes).
    text: Box<[Box<[u8]>]>,
    /// Complete `label` fields (tag 1) of a `Metric` message holding the real pairs.
    proto: Box<[Box<[u8]>]>,
    /// The same fields with the placeholder value, as stored.
    proto_stored: Box<[Box<[u8]>]>,
}

impl SharedLabels {
    /// The labels of `key` that are long enough to share (`None` if there are none).
    pub fn of_key(key: &GroupKey) -> Option<Arc<SharedLabels>> {
        Self::with_names(key, |_, v| v.len() >= SHARE_MIN)
    }

    /// The labels of `key` picked by `pick` (`None` if none is picked).
    pub fn with_names(
        key: &GroupKey,
        pick: impl Fn(&str, &str) -> bool,
    ) -> Option<Arc<SharedLabels>> {
        let picked: Vec<(&str, &str)> = key
            .labels()
            .iter()
            .map(|(n, v)| (&**n, &**v))
            .filter(|(n, v)| pick(n, v))
            .collect();
        if picked.is_empty() {
            return None;
        }
        let field = |n: &str, v: &str| {
            let mut out = Vec::new();
            prost::encoding::message::encode(1, &exposition::pb::LabelPair::new(n, v), &mut out);
            out.into_boxed_slice()
        };
        Some(Arc::new(SharedLabels {
            names: picked.iter().map(|(n, _)| Box::from(*n)).collect(),
            values: picked.iter().map(|(_, v)| Box::from(*v)).collect(),
            digests: picked
                .iter()
                .map(|(_, v)| crate::group::value_digest(v.as_bytes()))
                .collect(),
            text: picked
                .iter()
                .map(|(_, v)| {
                    let mut s = String::new();
                    exposition::text_encode::escape_into(&mut s, v, true);
                    s.into_bytes().into_boxed_slice()
                })
                .collect(),
            proto: picked.iter().map(|(n, v)| field(n, v)).collect(),
            proto_stored: picked.iter().map(|(n, _)| field(n, PLACEHOLDER)).collect(),
        }))
    }

    /// Which shared label `name` is.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// Which shared label a stored `LabelPair` message body stands for, if it is a placeholder.
    fn placeholder_index(&self, pair: &[u8]) -> Option<usize> {
        self.proto_stored.iter().position(|f| {
            // `f` is key + length + body; compare the body.
            let mut b = &f[..];
            let _ = prost::encoding::decode_varint(&mut b);
            let _ = prost::encoding::decode_varint(&mut b);
            b == pair
        })
    }
}

/// Where an entry's shared labels go.
#[derive(Debug)]
pub struct Spliced {
    pub labels: Arc<SharedLabels>,
    /// Offsets in the stored text where the escaped values go, in order; the `i`-th one is
    /// label `i % labels.names.len()` (every line holds every shared label, in name order).
    pub text_at: Box<[u32]>,
    /// Length of the written text.
    pub text_len: usize,
    /// Length of the written protobuf.
    pub proto_len: usize,
}

/// Cuts the placeholders out of freshly encoded text: returns the stored text and the
/// offsets, or `None` if the lines do not hold every shared label once per line in order
/// (then the caller stores the entry without sharing).
pub fn cut_text(text: &[u8], labels: &SharedLabels) -> Option<(Vec<u8>, Vec<u32>)> {
    let k = labels.names.len();
    let mut out = Vec::with_capacity(text.len());
    let mut at = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while let Some(p) = text[i..].iter().position(|&b| b == 0).map(|p| p + i) {
        i = p + 1;
        if p < 2 || &text[p - 2..p] != b"=\"" || text.get(p + 1) != Some(&b'"') {
            continue;
        }
        let before = &text[..p - 2];
        let want = at.len() % k;
        let name = labels.names[want].as_bytes();
        let matches = before.ends_with(name)
            && before.len() > name.len()
            && matches!(before[before.len() - name.len() - 1], b'{' | b',');
        if !matches {
            // A placeholder of another shared label, or out of order: do not share.
            let is_label = |n: &[u8]| {
                before.ends_with(n)
                    && before.len() > n.len()
                    && matches!(before[before.len() - n.len() - 1], b'{' | b',')
            };
            if labels.names.iter().any(|n| is_label(n.as_bytes())) {
                return None;
            }
            continue;
        }
        out.extend_from_slice(&text[from..p]);
        at.push(u32::try_from(out.len()).ok()?);
        from = p + 1;
    }
    out.extend_from_slice(&text[from..]);
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    (at.len() == lines * k).then_some((out, at))
}

impl Spliced {
    /// Describes stored text and protobuf for `labels`.
    pub fn new(labels: Arc<SharedLabels>, text: &[u8], text_at: Vec<u32>, proto: &[u8]) -> Spliced {
        let k = labels.names.len();
        let text_len = text.len()
            + text_at
                .iter()
                .enumerate()
                .map(|(i, _)| labels.text[i % k].len())
                .sum::<usize>();
        let mut s = Spliced {
            labels,
            text_at: text_at.into_boxed_slice(),
            text_len,
            proto_len: 0,
        };
        s.proto_len = s.walk_proto(proto, None).unwrap_or(0);
        s
    }

    /// Appends the text with the shared values in place.
    pub fn write_text(&self, text: &[u8], out: &mut Vec<u8>) {
        let k = self.labels.names.len();
        out.reserve(self.text_len);
        let mut from = 0;
        for (i, &at) in self.text_at.iter().enumerate() {
            let at = at as usize;
            out.extend_from_slice(&text[from..at]);
            out.extend_from_slice(&self.labels.text[i % k]);
            from = at;
        }
        out.extend_from_slice(&text[from..]);
    }

    /// Appends the `metric` fields with the shared pairs in place.
    pub fn write_proto(&self, proto: &[u8], out: &mut Vec<u8>) {
        out.reserve(self.proto_len);
        let _ = self.walk_proto(proto, Some(out));
    }

    fn walk_proto(
        &self,
        mut proto: &[u8],
        mut sink: Option<&mut Vec<u8>>,
    ) -> Result<usize, String> {
        let mut total = 0;
        while !proto.is_empty() {
            let (tag, body) = crate::group::next_field(&mut proto)?;
            // Pass 1: the metric's length with the real pairs.
            let mut len = body.len();
            let mut b = body;
            while !b.is_empty() {
                let (t, pair) = crate::group::next_field(&mut b)?;
                if t == 1 {
                    if let Some(i) = self.labels.placeholder_index(pair) {
                        len = len + self.labels.proto[i].len() - self.labels.proto_stored[i].len();
                    }
                }
            }
            let mut head = Vec::with_capacity(10);
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut head);
            prost::encoding::encode_varint(len as u64, &mut head);
            total += head.len() + len;
            if let Some(out) = sink.as_deref_mut() {
                out.extend_from_slice(&head);
                let mut b = body;
                let mut from = 0;
                while !b.is_empty() {
                    let start = body.len() - b.len();
                    let (t, pair) = crate::group::next_field(&mut b)?;
                    if t == 1 {
                        if let Some(i) = self.labels.placeholder_index(pair) {
                            out.extend_from_slice(&body[from..start]);
                            out.extend_from_slice(&self.labels.proto[i]);
                            from = body.len() - b.len();
                        }
                    }
                }
                out.extend_from_slice(&body[from..]);
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{sanitize_labels, sanitize_labels_shared, FamilyEntry, Group};
    use exposition::pb::MetricType;

    /// Regression (issue 15 item 1): an entry that stores long grouping values once writes,
    /// decodes, identifies and persists exactly like one that repeats them.
    #[test]
    fn shared_grouping_labels_are_invisible_to_readers() {
        let long = format!("v\"\\\n{}", "x".repeat(200));
        let key = GroupKey::new([("job", "j"), ("a_long", long.as_str()), ("z", &*long)]);
        let shared = SharedLabels::of_key(&key).expect("long values are shared");
        assert_eq!(
            &*shared.names,
            &["a_long".into(), "z".into()] as &[Box<str>]
        );
        let body = "# TYPE h histogram\nh_bucket{le=\"1\",q=\"\\\"\"} 1\nh_bucket{le=\"+Inf\",q=\"\\\"\"} 2\nh_sum{q=\"\\\"\"} 3\nh_count{q=\"\\\"\"} 2\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n\
                    # TYPE g gauge\ng{z=\"pushed\",b=\"\0\"} 1\ng{b=\"2\"} 2\n";
        let families = exposition::text_parse::parse_text(body.as_bytes()).unwrap();
        for mf in families {
            let (mut plain, mut cut) = (mf.metric.clone(), mf.metric.clone());
            for m in plain.iter_mut() {
                sanitize_labels(m, &key);
            }
            for m in cut.iter_mut() {
                sanitize_labels_shared(m, &key, Some(&shared));
            }
            let name: Arc<str> = mf.name().into();
            let a = FamilyEntry::build(name.clone(), None, mf.metric_type(), &plain, 1);
            let b = FamilyEntry::build_shared(
                name.clone(),
                None,
                mf.metric_type(),
                &cut,
                1,
                Some(&shared),
            );
            assert!(b.shared_labels().is_some(), "{name}");
            assert_eq!(a.text(), b.text(), "{name}");
            assert_eq!(a.text_len(), b.text_len());
            assert_eq!(a.proto_metrics(), b.proto_metrics(), "{name}");
            assert_eq!(a.proto_len(), b.proto_len());
            assert_eq!(a.metrics(), b.metrics());
            assert_eq!(a.series(), b.series());
            assert!(b.stored_bytes() < a.stored_bytes() / 2, "{name}");
            let mut g = Group::new(key.clone());
            g.families.insert(name.clone(), Arc::new(b));
            let back = Group::decode_record(&g.encode_record(), &mut |s| Arc::from(s)).unwrap();
            let c = &back.families[&name];
            assert!(c.shared_labels().is_some());
            assert_eq!(a.text(), c.text());
            assert_eq!(a.proto_metrics(), c.proto_metrics());
            assert_eq!(a.series(), c.series());
            assert_eq!(c.metric_count, a.metric_count);
        }
        let _ = MetricType::Gauge;
    }

    #[test]
    fn short_values_are_not_shared() {
        let key = GroupKey::new([("job", "j".repeat(SHARE_MIN - 1))]);
        assert!(SharedLabels::of_key(&key).is_none());
    }
}
