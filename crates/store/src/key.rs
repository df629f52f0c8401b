//! Grouping keys: the label set in a push URL that names a group.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The labels of a group, sorted by name, behind an `Arc` so that the snapshot maps can clone
/// keys for free. Groups compare by their canonical form (`name 0xFF value 0xFF name ...`), the
/// same order the official web UI lists groups in.
#[derive(Clone)]
pub struct GroupKey(Arc<KeyData>);

struct KeyData {
    canonical: Box<[u8]>,
    labels: Box<[(Box<str>, Box<str>)]>,
    /// The labels pre-encoded for the entries that store them once ([`crate::shared`]).
    splices: std::sync::OnceLock<crate::shared::Splices>,
}

impl GroupKey {
    /// Builds a key from label pairs; a repeated name keeps the last value.
    pub fn new<I, N, V>(labels: I) -> GroupKey
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut map = std::collections::BTreeMap::new();
        for (n, v) in labels {
            map.insert(n.into(), v.into());
        }
        let mut canonical = Vec::new();
        for (i, (n, v)) in map.iter().enumerate() {
            if i > 0 {
                canonical.push(0xff);
            }
            canonical.extend_from_slice(n.as_bytes());
            canonical.push(0xff);
            canonical.extend_from_slice(v.as_bytes());
        }
        let labels = map
            .into_iter()
            .map(|(n, v)| (n.into_boxed_str(), v.into_boxed_str()))
            .collect();
        GroupKey(Arc::new(KeyData {
            canonical: canonical.into_boxed_slice(),
            labels,
            splices: std::sync::OnceLock::new(),
        }))
    }

    /// The labels, sorted by name.
    pub fn labels(&self) -> &[(Box<str>, Box<str>)] {
        &self.0.labels
    }

    /// The value of one grouping label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .labels
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| &**v)
    }

    /// The labels every series of the group carries, pre-encoded (computed once per key).
    pub(crate) fn splices(&self) -> &crate::shared::Splices {
        self.0
            .splices
            .get_or_init(|| crate::shared::Splices::of_key(self))
    }

    /// The canonical byte form, used as the persistence key.
    pub fn canonical(&self) -> &[u8] {
        &self.0.canonical
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.canonical == other.0.canonical
    }
}
impl Eq for GroupKey {}
impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // A stored group's key is handed on to its next versions: lookups of it in the
        // snapshot maps end on the same allocation.
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        self.0.canonical.cmp(&other.0.canonical)
    }
}
impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.canonical.hash(state)
    }
}
impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.labels.iter().map(|(n, v)| (n, v)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_matches_official_grouping_key() {
        assert_eq!(
            GroupKey::new(Vec::<(String, String)>::new()).canonical(),
            b""
        );
        assert_eq!(GroupKey::new([("foo", "bar")]).canonical(), b"foo\xffbar");
        assert_eq!(
            GroupKey::new([("foo", "bar"), ("dings", "bums")]).canonical(),
            b"dings\xffbums\xfffoo\xffbar"
        );
    }

    #[test]
    fn repeated_label_keeps_last_value_and_empty_instance_is_distinct() {
        let k = GroupKey::new([("job", "j"), ("a", "1"), ("a", "2")]);
        assert_eq!(k.get("a"), Some("2"));
        assert_ne!(
            GroupKey::new([("job", "j")]),
            GroupKey::new([("job", "j"), ("instance", "")])
        );
    }
}
