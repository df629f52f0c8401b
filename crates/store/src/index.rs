//! The consistency index: what a push must be checked against, kept up to date incrementally
//! so that a checked push costs O(size of the push), never O(size of the store).
//!
//! It knows, over every non-empty family of every group: how many families of each type carry a
//! name, how often each series identity occurs, which families hold metrics that could not be
//! part of a consistent scrape, and which summary/histogram names collide with `_count`, `_sum`
//! or `_bucket` families. The same counters tell a scrape in O(1) whether the store is
//! consistent (it can only become inconsistent with the check off, or through the official
//! failed-push semantics).

use crate::group::FamilyEntry;
use exposition::pb::MetricType;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Series identities are already hashes; hashing them again would be wasted work.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);
impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
type SeriesMap = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;
type SeriesSet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

const N_TYPES: usize = 6;

/// The consistency index (see the module documentation). The counters below `own` are kept
/// so that [`Index::has_problem`] is O(1): each counts the problems of one kind that the store
/// holds right now (they can only be non-zero with the check off, or after a failed push
/// recorded the official way).
#[derive(Default)]
pub(crate) struct Index {
    /// Per family name, how many non-empty families of each type carry it: a push of another
    /// type conflicts, and suffix collisions are looked up here.
    names: HashMap<Arc<str>, [u32; N_TYPES], ahash::RandomState>,
    /// Every series identity in the store (8 bytes each)...
    series: SeriesSet,
    /// ...and, for the rare identities that occur more than once, the number of extra copies.
    extra_series: SeriesMap,
    /// The gateway's own families (name and type): pushed families of these names must have
    /// the same type, as they would be scraped together.
    own: HashMap<String, MetricType, ahash::RandomState>,
    /// Series identities that occur more than once.
    dup_series: usize,
    /// Family names carried with more than one type.
    conflicted_names: usize,
    /// Families holding a metric that breaks a per-metric rule (`FamilyEntry::invalid`).
    invalid_entries: usize,
    /// Summary or histogram names `X` that meet an `X_count`/`X_sum`/`X_bucket` family.
    colliding_bases: HashSet<Arc<str>, ahash::RandomState>,
    /// Family names that are not legacy names, by their escaped (`underscores`) form, with
    /// the number of non-empty entries carrying each: a push whose names become the same as
    /// another family's after escaping is refused.
    escaped_names: HashMap<Box<str>, HashMap<Arc<str>, u32>, ahash::RandomState>,
}

fn escape(name: &str) -> std::borrow::Cow<'_, str> {
    exposition::names::escape_name(name, exposition::names::Escaping::Underscores)
}

const SUFFIXES: [&str; 3] = ["_count", "_sum", "_bucket"];

fn types_of(counts: &[u32; N_TYPES]) -> impl Iterator<Item = MetricType> + '_ {
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .filter_map(|(i, _)| MetricType::try_from(i as i32).ok())
}

impl Index {
    pub fn new(own: impl IntoIterator<Item = (String, MetricType)>) -> Index {
        Index {
            own: own.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Makes room for `series` more series identities (used when restoring).
    pub fn reserve(&mut self, series: usize) {
        self.series.reserve(series);
    }

    pub fn own_families(&self) -> Vec<(String, MetricType)> {
        self.own.iter().map(|(n, t)| (n.clone(), *t)).collect()
    }

    /// Everything the index holds, in a stable order (tests compare an index kept up to date
    /// with one built from scratch).
    #[cfg(test)]
    pub fn dump(&self) -> String {
        let mut names: Vec<_> = self.names.iter().collect();
        names.sort();
        let mut series: Vec<_> = self.series.iter().collect();
        series.sort();
        let mut extra: Vec<_> = self.extra_series.iter().collect();
        extra.sort();
        let mut bases: Vec<_> = self.colliding_bases.iter().collect();
        bases.sort();
        let mut escaped: Vec<_> = self
            .escaped_names
            .iter()
            .map(|(k, v)| {
                let mut v: Vec<_> = v.iter().collect();
                v.sort();
                (k, v)
            })
            .collect();
        escaped.sort();
        format!(
            "names {names:?}\nseries {series:?}\nextra {extra:?}\ndup {} conflicted {} invalid {}\nbases {bases:?}\nescaped {escaped:?}",
            self.dup_series, self.conflicted_names, self.invalid_entries
        )
    }

    /// True when the store as a whole would fail the official consistency check.
    pub fn has_problem(&self) -> bool {
        self.dup_series > 0
            || self.conflicted_names > 0
            || self.invalid_entries > 0
            || !self.colliding_bases.is_empty()
    }

    fn distinct_types(&self, name: &str) -> usize {
        let mut seen = [false; N_TYPES];
        if let Some(t) = self.own.get(name) {
            seen[*t as usize] = true;
        }
        if let Some(c) = self.names.get(name) {
            for t in types_of(c) {
                seen[t as usize] = true;
            }
        }
        seen.iter().filter(|s| **s).count()
    }

    fn present_types(&self, name: &str) -> Vec<MetricType> {
        let mut v: Vec<MetricType> = self.own.get(name).copied().into_iter().collect();
        if let Some(c) = self.names.get(name) {
            v.extend(types_of(c));
        }
        v
    }

    fn collides(&self, base: &str) -> bool {
        let types = self.present_types(base);
        let hist = types.contains(&MetricType::Histogram);
        let summ = types.contains(&MetricType::Summary);
        if !hist && !summ {
            return false;
        }
        let present = |s: &str| !self.present_types(&format!("{base}{s}")).is_empty();
        present("_count") || present("_sum") || (hist && present("_bucket"))
    }

    fn refresh_collisions(&mut self, name: &Arc<str>) {
        let mut bases: Vec<Arc<str>> = vec![name.clone()];
        for s in SUFFIXES {
            if let Some(b) = name.strip_suffix(s) {
                bases.push(Arc::from(b));
            }
        }
        for b in bases {
            if self.collides(&b) {
                self.colliding_bases.insert(b);
            } else {
                self.colliding_bases.remove(&b);
            }
        }
    }

    pub fn add(&mut self, e: &FamilyEntry) {
        self.add_series(e, &e.series());
    }

    /// [`Index::add`] with the entry's series identities ([`FamilyEntry::series`]) already
    /// computed.
    pub fn add_series(&mut self, e: &FamilyEntry, series: &[u64]) {
        if e.invalid.is_some() {
            self.invalid_entries += 1;
        }
        if e.metric_count == 0 {
            return;
        }
        if let std::borrow::Cow::Owned(esc) = escape(&e.name) {
            *self
                .escaped_names
                .entry(esc.into())
                .or_default()
                .entry(e.name.clone())
                .or_insert(0) += 1;
        }
        let t = e.mtype as usize;
        match self.names.get_mut(&*e.name) {
            // The name already has this type: neither conflicts nor collisions can change.
            Some(c) if c[t] > 0 => c[t] += 1,
            _ => {
                let before = self.distinct_types(&e.name);
                self.names.entry(e.name.clone()).or_default()[t] += 1;
                self.update_conflicts(&e.name, before);
                self.refresh_collisions(&e.name);
            }
        }
        for h in series {
            if !self.series.insert(*h) {
                let extra = self.extra_series.entry(*h).or_insert(0);
                *extra += 1;
                if *extra == 1 {
                    self.dup_series += 1;
                }
            }
        }
    }

    /// Replaces `old` by `new`, an entry of the same name, type and series
    /// ([`FamilyEntry::same_series`]): only whether the entry is invalid can change.
    pub fn replace_same(&mut self, old: &FamilyEntry, new: &FamilyEntry) {
        debug_assert!(old.name == new.name && old.mtype == new.mtype && old.same_series(new));
        if old.invalid.is_some() {
            self.invalid_entries -= 1;
        }
        if new.invalid.is_some() {
            self.invalid_entries += 1;
        }
    }

    pub fn remove(&mut self, e: &FamilyEntry) {
        self.remove_series(e, &e.series());
    }

    /// [`Index::remove`] with the entry's series identities already computed.
    pub fn remove_series(&mut self, e: &FamilyEntry, series: &[u64]) {
        if e.invalid.is_some() {
            self.invalid_entries -= 1;
        }
        if e.metric_count == 0 {
            return;
        }
        if let std::borrow::Cow::Owned(esc) = escape(&e.name) {
            if let Some(origs) = self.escaped_names.get_mut(esc.as_str()) {
                if let Some(c) = origs.get_mut(&e.name) {
                    *c -= 1;
                    if *c == 0 {
                        origs.remove(&e.name);
                    }
                }
                if origs.is_empty() {
                    self.escaped_names.remove(esc.as_str());
                }
            }
        }
        let t = e.mtype as usize;
        match self.names.get_mut(&*e.name) {
            // Other families of this name and type remain: nothing else changes.
            Some(c) if c[t] > 1 => c[t] -= 1,
            _ => {
                let before = self.distinct_types(&e.name);
                if let Some(c) = self.names.get_mut(&*e.name) {
                    c[t] = c[t].saturating_sub(1);
                    if c.iter().all(|c| *c == 0) {
                        self.names.remove(&*e.name);
                    }
                }
                self.update_conflicts(&e.name, before);
                self.refresh_collisions(&e.name);
            }
        }
        for h in series {
            match self.extra_series.get_mut(h) {
                Some(extra) => {
                    *extra -= 1;
                    if *extra == 0 {
                        self.extra_series.remove(h);
                        self.dup_series -= 1;
                    }
                }
                None => {
                    self.series.remove(h);
                }
            }
        }
    }

    /// Family names that become the same after escaping (`a.b` and `a_b`): refused, naming
    /// both, instead of serving two families of one name to scrapers without UTF-8 support.
    fn check_escaped_names(
        &self,
        removed: &[&FamilyEntry],
        added: &[&FamilyEntry],
        present_after: &dyn Fn(&str) -> bool,
    ) -> Result<(), Inconsistency> {
        // Legacy names are their own escaped form: with none of another form in the store,
        // distinct pushed legacy names cannot collide (the everyday push).
        if self.escaped_names.is_empty()
            && added
                .iter()
                .all(|e| e.metric_count == 0 || !e.needs_escaping)
        {
            return Ok(());
        }
        let collision = |a: &str, b: &str, esc: &str| Inconsistency::EscapedNames {
            name: a.to_string(),
            other: b.to_string(),
            escaped: esc.to_string(),
        };
        let removed_count = |name: &str| {
            removed
                .iter()
                .filter(|e| e.metric_count > 0 && &*e.name == name)
                .count() as u32
        };
        // Among the pushed families.
        let mut pushed: Vec<(std::borrow::Cow<'_, str>, &str)> = added
            .iter()
            .filter(|e| e.metric_count > 0)
            .map(|e| (escape(&e.name), &*e.name))
            .collect();
        pushed.sort();
        pushed.dedup();
        for w in pushed.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(collision(w[0].1, w[1].1, &w[0].0));
            }
        }
        for (esc, name) in &pushed {
            let is_escaped = matches!(esc, std::borrow::Cow::Owned(_));
            if is_escaped && present_after(esc) {
                return Err(collision(name, esc, esc));
            }
            if let Some(origs) = self.escaped_names.get(&**esc) {
                for (orig, count) in origs {
                    if &**orig != *name && *count > removed_count(orig) {
                        return Err(collision(name, orig, esc));
                    }
                }
            }
        }
        Ok(())
    }

    fn update_conflicts(&mut self, name: &str, before: usize) {
        let after = self.distinct_types(name);
        if before <= 1 && after > 1 {
            self.conflicted_names += 1;
        } else if before > 1 && after <= 1 {
            self.conflicted_names -= 1;
        }
    }

    /// Checks that replacing `removed` (entries of the pushed group that the push replaces)
    /// by `added` keeps the store consistent. Returns the first problem, worded like
    /// client_golang's `Gather` errors. Costs O(size of the push): sorted vectors, no walk of
    /// the store. The checks, in the order their problems are reported: families holding
    /// invalid metrics; duplicate series inside the push; per pushed family, its type (against
    /// the gateway's own families and the other families of its name) and suffix collisions;
    /// names that collide once escaped; duplicate series against the rest of the store.
    pub fn check(
        &self,
        removed: &[&FamilyEntry],
        added: &[&FamilyEntry],
    ) -> Result<(), Inconsistency> {
        let removed_ids: Vec<Vec<u64>> = removed.iter().map(|e| e.series()).collect();
        let added_ids: Vec<Vec<u64>> = added.iter().map(|e| e.series()).collect();
        let removed_ids: Vec<&[u64]> = removed_ids.iter().map(|v| &v[..]).collect();
        let added_ids: Vec<&[u64]> = added_ids.iter().map(|v| &v[..]).collect();
        self.check_series(removed, &removed_ids, added, &added_ids)
    }

    /// [`Index::check`] with the series identities of each entry already computed
    /// (`removed_ids[i]` are those of `removed[i]`, and likewise for `added`).
    pub fn check_series(
        &self,
        removed: &[&FamilyEntry],
        removed_ids: &[&[u64]],
        added: &[&FamilyEntry],
        added_ids: &[&[u64]],
    ) -> Result<(), Inconsistency> {
        if let Some(msg) = added.iter().find_map(|e| e.invalid.as_ref()) {
            return Err(Inconsistency::Invalid(msg.to_string()));
        }
        let after = After::new(self, removed, removed_ids, added);
        let pushed = pushed_series(added, added_ids);
        check_duplicates_in_push(added, &pushed)?;
        for e in added.iter().filter(|e| e.metric_count > 0) {
            after.check_type(e)?;
            after.check_suffix_collisions(e)?;
        }
        self.check_escaped_names(removed, added, &|n| after.present(n))?;
        after.check_duplicates_in_store(added, &pushed)
    }
}

/// Why a push would make the store inconsistent. The messages are client_golang's `Gather`
/// errors word for word (the official gateway answers with them, and clients and the
/// conformance suite compare them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Inconsistency {
    /// A pushed family holds a metric that breaks a per-metric rule ([`crate::check`]).
    #[error("{0}")]
    Invalid(String),
    /// A series (name and labels) occurs twice, in the push or in the store after it.
    #[error(
        "collected metric {name:?} {{ {labels}}} was collected before with the same name and label values"
    )]
    DuplicateSeries { name: Arc<str>, labels: String },
    /// A pushed family has another type than the gateway's own family of that name.
    #[error("gathered metric family {name} has type {found} but should have {own}")]
    OwnFamilyType {
        name: Arc<str>,
        found: &'static str,
        own: &'static str,
    },
    /// A pushed family has another type than other groups' families of that name.
    #[error("collected metric {name:?} {{ {labels}}} is not a {other}")]
    TypeConflict {
        name: Arc<str>,
        labels: String,
        other: &'static str,
    },
    /// A pushed `X_count`/`X_sum`/`X_bucket` meets a summary or histogram `X`.
    #[error(
        "collected metric named {name:?} collides with previously collected {kind} named {base:?}"
    )]
    SuffixOfHistogramOrSummary {
        name: Arc<str>,
        kind: &'static str,
        base: String,
    },
    /// A pushed summary or histogram `X` meets an `X_count`/`X_sum`/`X_bucket` family.
    #[error(
        "collected histogram or summary named {name:?} collides with previously collected metric named {other:?}"
    )]
    HistogramOrSummaryWithSuffix { name: Arc<str>, other: String },
    /// Two family names become the same once escaped for scrapers without UTF-8 support.
    #[error(
        "metric family {name:?} collides with metric family {other:?}: both are exposed as {escaped:?} to scrapers that do not accept UTF-8 names"
    )]
    EscapedNames {
        name: String,
        other: String,
        escaped: String,
    },
}

/// Every series identity of the push with its family and metric index, sorted.
fn pushed_series(added: &[&FamilyEntry], added_ids: &[&[u64]]) -> Vec<(u64, usize, usize)> {
    let mut pushed: Vec<(u64, usize, usize)> = Vec::new();
    for (ei, _) in added.iter().enumerate().filter(|(_, e)| e.metric_count > 0) {
        pushed.extend(added_ids[ei].iter().enumerate().map(|(mi, h)| (*h, ei, mi)));
    }
    pushed.sort_unstable();
    pushed
}

/// The duplicate-series error for metric `mi` of pushed family `ei`.
fn duplicate(added: &[&FamilyEntry], ei: usize, mi: usize) -> Inconsistency {
    let e = added[ei];
    let m = e.metrics().into_iter().nth(mi).unwrap_or_default();
    Inconsistency::DuplicateSeries {
        name: e.name.clone(),
        labels: crate::check::metric_text(&m),
    }
}

/// Duplicate series inside the push.
fn check_duplicates_in_push(
    added: &[&FamilyEntry],
    pushed: &[(u64, usize, usize)],
) -> Result<(), Inconsistency> {
    for w in pushed.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(duplicate(added, w[1].1, w[1].2));
        }
    }
    Ok(())
}

/// The (name, type) of every non-empty entry, sorted.
fn sorted_types<'a>(entries: &[&'a FamilyEntry]) -> Vec<(&'a str, MetricType)> {
    let mut types: Vec<(&str, MetricType)> = entries
        .iter()
        .filter(|e| e.metric_count > 0)
        .map(|e| (&*e.name, e.mtype))
        .collect();
    types.sort_unstable();
    types
}

/// The store as it would be after the push, as far as the checks need it: the index, minus
/// the replaced entries, plus the pushed ones (sorted vectors, so O(size of the push)).
struct After<'a> {
    index: &'a Index,
    removed_types: Vec<(&'a str, MetricType)>,
    removed_series: Vec<u64>,
    added_types: Vec<(&'a str, MetricType)>,
}

impl<'a> After<'a> {
    fn new(
        index: &'a Index,
        removed: &[&'a FamilyEntry],
        removed_ids: &[&[u64]],
        added: &[&'a FamilyEntry],
    ) -> Self {
        let removed_types = sorted_types(removed);
        let mut removed_series: Vec<u64> = removed
            .iter()
            .zip(removed_ids)
            .filter(|(e, _)| e.metric_count > 0)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        removed_series.sort_unstable();
        let added_types = sorted_types(added);
        After {
            index,
            removed_types,
            removed_series,
            added_types,
        }
    }

    /// Types present for `name` in other entries after the push (pushed entries excluded).
    fn remaining(&self, name: &str) -> [u32; N_TYPES] {
        let mut counts = self.index.names.get(name).copied().unwrap_or_default();
        let lo = self.removed_types.partition_point(|(n, _)| *n < name);
        for (_, t) in self.removed_types[lo..]
            .iter()
            .take_while(|(n, _)| *n == name)
        {
            let c = &mut counts[*t as usize];
            *c = c.saturating_sub(1);
        }
        counts
    }

    fn has_type(&self, name: &str, t: MetricType) -> bool {
        self.index.own.get(name) == Some(&t)
            || self.remaining(name)[t as usize] > 0
            || self.added_types.binary_search(&(name, t)).is_ok()
    }

    fn present(&self, name: &str) -> bool {
        self.index.own.contains_key(name) || self.remaining(name).iter().any(|c| *c > 0) || {
            let lo = self.added_types.partition_point(|(n, _)| *n < name);
            self.added_types.get(lo).is_some_and(|(n, _)| *n == name)
        }
    }

    /// The pushed family's type against the gateway's own families and the other families
    /// of its name.
    fn check_type(&self, e: &FamilyEntry) -> Result<(), Inconsistency> {
        if let Some(own) = self.index.own.get(&*e.name) {
            if *own != e.mtype {
                return Err(Inconsistency::OwnFamilyType {
                    name: e.name.clone(),
                    found: e.mtype.as_str_name(),
                    own: own.as_str_name(),
                });
            }
        }
        if let Some(other) = types_of(&self.remaining(&e.name)).find(|t| *t != e.mtype) {
            let m = e.metrics().into_iter().next().unwrap_or_default();
            return Err(Inconsistency::TypeConflict {
                name: e.name.clone(),
                labels: crate::check::metric_text(&m),
                other: other.as_str_name(),
            });
        }
        Ok(())
    }

    /// Suffix collisions, both ways round: `X_count` (etc.) against a summary or histogram
    /// `X`, and a summary or histogram `X` against `X_count` (etc.).
    fn check_suffix_collisions(&self, e: &FamilyEntry) -> Result<(), Inconsistency> {
        for s in SUFFIXES {
            let Some(base) = e.name.strip_suffix(s) else {
                continue;
            };
            for (t, kind) in [
                (MetricType::Histogram, "histogram"),
                (MetricType::Summary, "summary"),
            ] {
                if (t == MetricType::Histogram || s != "_bucket") && self.has_type(base, t) {
                    return Err(Inconsistency::SuffixOfHistogramOrSummary {
                        name: e.name.clone(),
                        kind,
                        base: base.to_string(),
                    });
                }
            }
        }
        if matches!(e.mtype, MetricType::Summary | MetricType::Histogram) {
            for s in SUFFIXES {
                if s == "_bucket" && e.mtype != MetricType::Histogram {
                    continue;
                }
                let other = format!("{}{}", e.name, s);
                if self.present(&other) {
                    return Err(Inconsistency::HistogramOrSummaryWithSuffix {
                        name: e.name.clone(),
                        other,
                    });
                }
            }
        }
        Ok(())
    }

    /// Duplicates of pushed series against the rest of the store.
    fn check_duplicates_in_store(
        &self,
        added: &[&FamilyEntry],
        pushed: &[(u64, usize, usize)],
    ) -> Result<(), Inconsistency> {
        let count_in = |v: &[u64], h: u64| -> u32 {
            let lo = v.partition_point(|x| *x < h);
            v[lo..].iter().take_while(|x| **x == h).count() as u32
        };
        for (h, ei, mi) in pushed {
            let existing = if self.index.series.contains(h) {
                1 + self.index.extra_series.get(h).copied().unwrap_or(0)
            } else {
                0
            };
            if existing > count_in(&self.removed_series, *h) {
                return Err(duplicate(added, *ei, *mi));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::pb::*;

    fn entry(name: &str, t: MetricType, label_sets: &[&[(&str, &str)]]) -> FamilyEntry {
        let metrics: Vec<Metric> = label_sets
            .iter()
            .map(|ls| {
                let mut m = Metric {
                    label: ls.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
                    ..Default::default()
                };
                match t {
                    MetricType::Counter => {
                        m.counter = Some(Box::new(Counter {
                            value: Some(1.0),
                            ..Default::default()
                        }))
                    }
                    MetricType::Gauge => m.gauge = Some(Gauge { value: Some(1.0) }),
                    MetricType::Summary => m.summary = Some(Box::default()),
                    MetricType::Histogram => m.histogram = Some(Box::default()),
                    _ => m.untyped = Some(Untyped { value: Some(1.0) }),
                }
                m
            })
            .collect();
        FamilyEntry::build(Arc::from(name), None, t, &metrics, 0)
    }

    #[test]
    fn names_that_collide_after_escaping_are_refused_naming_both() {
        let mut ix = Index::new([]);
        let dotted = entry("a.b", MetricType::Gauge, &[&[("job", "x")]]);
        let plain = entry("a_b", MetricType::Gauge, &[&[("job", "y")]]);
        let dashed = entry("a-b", MetricType::Gauge, &[&[("job", "z")]]);
        // Within one push.
        let e = ix.check(&[], &[&dotted, &plain]).unwrap_err().to_string();
        assert!(e.contains("\"a.b\"") && e.contains("\"a_b\""), "{e}");
        // Against the store, both ways round.
        ix.add(&dotted);
        let e = ix.check(&[], &[&plain]).unwrap_err().to_string();
        assert!(e.contains("\"a_b\"") && e.contains("\"a.b\""), "{e}");
        let e = ix.check(&[], &[&dashed]).unwrap_err().to_string();
        assert!(e.contains("\"a-b\"") && e.contains("\"a.b\""), "{e}");
        // Replacing the group that holds a.b is fine, and so is a.b again.
        ix.check(&[&dotted], &[&plain]).unwrap();
        ix.check(&[], &[&entry("a.b", MetricType::Gauge, &[&[("job", "w")]])])
            .unwrap();
        ix.remove(&dotted);
        ix.add(&plain);
        let e = ix.check(&[], &[&dotted]).unwrap_err().to_string();
        assert!(e.contains("\"a.b\"") && e.contains("\"a_b\""), "{e}");
        ix.remove(&plain);
        ix.check(&[], &[&dotted]).unwrap();
        // Label names that collide inside one metric.
        let e = entry("m", MetricType::Gauge, &[&[("a.b", "1"), ("a_b", "2")]]);
        let msg = e.invalid.as_deref().unwrap_or_default();
        assert!(msg.contains("\"a.b\" and \"a_b\""), "{msg}");
        // The same series once escaped, in two groups.
        ix.add(&entry(
            "m",
            MetricType::Gauge,
            &[&[("job", "1"), ("l.x", "v")]],
        ));
        let e = ix
            .check(
                &[],
                &[&entry(
                    "m",
                    MetricType::Gauge,
                    &[&[("job", "1"), ("l_x", "v")]],
                )],
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("was collected before"), "{e}");
    }

    #[test]
    fn type_conflict_across_groups_unless_replaced() {
        let mut ix = Index::new([]);
        let a = entry("foo", MetricType::Counter, &[&[("job", "a")]]);
        ix.add(&a);
        let b = entry("foo", MetricType::Gauge, &[&[("job", "b")]]);
        let e = ix.check(&[], &[&b]).unwrap_err().to_string();
        assert!(e.contains("is not a COUNTER"), "{e}");
        // Replacing group a's own family is fine.
        let a2 = entry("foo", MetricType::Gauge, &[&[("job", "a")]]);
        ix.check(&[&a], &[&a2]).unwrap();
    }

    #[test]
    fn duplicate_series_within_push_and_across_groups() {
        let mut ix = Index::new([]);
        let d = entry(
            "c",
            MetricType::Untyped,
            &[&[("job", "dup")], &[("job", "dup")]],
        );
        assert!(ix
            .check(&[], &[&d])
            .unwrap_err()
            .to_string()
            .contains("was collected before"));
        let a = entry(
            "c",
            MetricType::Untyped,
            &[&[("instance", ""), ("job", "j")]],
        );
        ix.add(&a);
        let b = entry(
            "c",
            MetricType::Untyped,
            &[&[("instance", ""), ("job", "j")]],
        );
        assert!(ix.check(&[], &[&b]).is_err());
        ix.check(&[&a], &[&b]).unwrap();
        ix.add(&b);
        assert!(ix.has_problem());
        ix.remove(&b);
        assert!(!ix.has_problem());
    }

    #[test]
    fn suffix_collisions_both_orders_and_own_types() {
        let mut ix = Index::new([("pushgateway_build_info".to_string(), MetricType::Gauge)]);
        let h = entry("h", MetricType::Histogram, &[&[("job", "a")]]);
        ix.add(&h);
        let hc = entry("h_bucket", MetricType::Untyped, &[&[("job", "b")]]);
        assert!(ix
            .check(&[], &[&hc])
            .unwrap_err()
            .to_string()
            .contains("collides with previously collected histogram"));
        let mut ix = Index::new([]);
        let sc = entry("s_count", MetricType::Untyped, &[&[("job", "a")]]);
        ix.add(&sc);
        let s = entry("s", MetricType::Summary, &[&[("job", "b")]]);
        assert!(
            ix.check(&[], &[&s])
                .unwrap_err()
                .to_string()
                .contains("collided")
                || ix.check(&[], &[&s]).is_err()
        );
        ix.add(&s);
        assert!(ix.has_problem());
        ix.remove(&sc);
        assert!(!ix.has_problem());
        let own = Index::new([("pushgateway_build_info".to_string(), MetricType::Gauge)]);
        let bi = entry(
            "pushgateway_build_info",
            MetricType::Counter,
            &[&[("job", "a")]],
        );
        assert!(own
            .check(&[], &[&bi])
            .unwrap_err()
            .to_string()
            .contains("should have GAUGE"));
    }
}
