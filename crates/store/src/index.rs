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

const N_TYPES: usize = 6;

#[derive(Default)]
pub(crate) struct Index {
    names: HashMap<Arc<str>, [u32; N_TYPES]>,
    series: SeriesMap,
    own: HashMap<String, MetricType>,
    dup_series: usize,
    conflicted_names: usize,
    invalid_entries: usize,
    colliding_bases: HashSet<Arc<str>>,
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

    pub fn own_families(&self) -> Vec<(String, MetricType)> {
        self.own.iter().map(|(n, t)| (n.clone(), *t)).collect()
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
        if e.invalid.is_some() {
            self.invalid_entries += 1;
        }
        if e.metric_count == 0 {
            return;
        }
        let before = self.distinct_types(&e.name);
        let new_name = !self.names.contains_key(&*e.name);
        self.names.entry(e.name.clone()).or_default()[e.mtype as usize] += 1;
        self.update_conflicts(&e.name, before);
        for h in e.series.iter() {
            let c = self.series.entry(*h).or_insert(0);
            *c += 1;
            if *c == 2 {
                self.dup_series += 1;
            }
        }
        if new_name || before != self.distinct_types(&e.name) || self.might_collide(&e.name) {
            self.refresh_collisions(&e.name);
        }
    }

    pub fn remove(&mut self, e: &FamilyEntry) {
        if e.invalid.is_some() {
            self.invalid_entries -= 1;
        }
        if e.metric_count == 0 {
            return;
        }
        let before = self.distinct_types(&e.name);
        if let Some(c) = self.names.get_mut(&*e.name) {
            c[e.mtype as usize] -= 1;
            if c.iter().all(|c| *c == 0) {
                self.names.remove(&*e.name);
            }
        }
        self.update_conflicts(&e.name, before);
        for h in e.series.iter() {
            if let Some(c) = self.series.get_mut(h) {
                *c -= 1;
                if *c == 1 {
                    self.dup_series -= 1;
                } else if *c == 0 {
                    self.series.remove(h);
                }
            }
        }
        if self.might_collide(&e.name) {
            self.refresh_collisions(&e.name);
        }
    }

    fn might_collide(&self, name: &str) -> bool {
        SUFFIXES.iter().any(|s| name.ends_with(s))
            || self.colliding_bases.contains(name)
            || matches!(
                self.present_types(name).first(),
                Some(MetricType::Summary | MetricType::Histogram)
            )
            || !self.colliding_bases.is_empty()
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
    /// client_golang's `Gather` errors.
    pub fn check(&self, removed: &[&FamilyEntry], added: &[&FamilyEntry]) -> Result<(), String> {
        // Counts of the removed entries, to subtract from the index.
        let mut removed_types: HashMap<&str, [u32; N_TYPES]> = HashMap::new();
        let mut removed_series: SeriesMap = SeriesMap::default();
        for e in removed.iter().filter(|e| e.metric_count > 0) {
            removed_types.entry(&e.name).or_default()[e.mtype as usize] += 1;
            for h in e.series.iter() {
                *removed_series.entry(*h).or_insert(0) += 1;
            }
        }
        let added_types: HashMap<&str, MetricType> = added
            .iter()
            .filter(|e| e.metric_count > 0)
            .map(|e| (&*e.name, e.mtype))
            .collect();
        // Types present for `name` after the push, excluding the pushed entries.
        let remaining_types = |name: &str| -> Vec<MetricType> {
            let mut counts = self.names.get(name).copied().unwrap_or_default();
            if let Some(r) = removed_types.get(name) {
                for i in 0..N_TYPES {
                    counts[i] -= r[i].min(counts[i]);
                }
            }
            types_of(&counts).collect()
        };
        let types_after = |name: &str| -> Vec<MetricType> {
            let mut v = remaining_types(name);
            v.extend(self.own.get(name).copied());
            v.extend(added_types.get(name).copied());
            v
        };

        for e in added {
            if let Some(msg) = &e.invalid {
                return Err(msg.to_string());
            }
        }
        let mut seen = SeriesMap::default();
        for e in added.iter().filter(|e| e.metric_count > 0) {
            if let Some(own) = self.own.get(&*e.name) {
                if *own != e.mtype {
                    return Err(format!(
                        "gathered metric family {} has type {} but should have {}",
                        e.name,
                        e.mtype.as_str_name(),
                        own.as_str_name()
                    ));
                }
            }
            if let Some(other) = remaining_types(&e.name).into_iter().find(|t| *t != e.mtype) {
                let m = e.metrics().into_iter().next().unwrap_or_default();
                return Err(format!(
                    "collected metric {:?} {{ {}}} is not a {}",
                    e.name,
                    crate::check::metric_text(&m),
                    other.as_str_name()
                ));
            }
            for (i, h) in e.series.iter().enumerate() {
                let existing = self.series.get(h).copied().unwrap_or(0)
                    - removed_series.get(h).copied().unwrap_or(0);
                let in_push = seen.entry(*h).or_insert(0);
                *in_push += 1;
                if existing > 0 || *in_push > 1 {
                    let m = e.metrics().into_iter().nth(i).unwrap_or_default();
                    return Err(format!(
                        "collected metric {:?} {{ {}}} was collected before with the same name and label values",
                        e.name,
                        crate::check::metric_text(&m)
                    ));
                }
            }
            // Suffix collisions, both ways round.
            for s in SUFFIXES {
                if let Some(base) = e.name.strip_suffix(s) {
                    for t in types_after(base) {
                        let clash = match t {
                            MetricType::Summary => s != "_bucket",
                            MetricType::Histogram => true,
                            _ => false,
                        };
                        if clash {
                            return Err(format!(
                                "collected metric named {:?} collides with previously collected {} named {:?}",
                                e.name,
                                if t == MetricType::Summary { "summary" } else { "histogram" },
                                base
                            ));
                        }
                    }
                }
            }
            if matches!(e.mtype, MetricType::Summary | MetricType::Histogram) {
                for s in SUFFIXES {
                    if s == "_bucket" && e.mtype != MetricType::Histogram {
                        continue;
                    }
                    let other = format!("{}{}", e.name, s);
                    if !types_after(&other).is_empty() {
                        return Err(format!(
                            "collected histogram or summary named {:?} collides with previously collected metric named {:?}",
                            e.name, other
                        ));
                    }
                }
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
                        m.counter = Some(Counter {
                            value: Some(1.0),
                            ..Default::default()
                        })
                    }
                    MetricType::Gauge => m.gauge = Some(Gauge { value: Some(1.0) }),
                    MetricType::Summary => m.summary = Some(Summary::default()),
                    MetricType::Histogram => m.histogram = Some(Histogram::default()),
                    _ => m.untyped = Some(Untyped { value: Some(1.0) }),
                }
                m
            })
            .collect();
        FamilyEntry::build(Arc::from(name), None, t, &metrics, 0)
    }

    #[test]
    fn type_conflict_across_groups_unless_replaced() {
        let mut ix = Index::new([]);
        let a = entry("foo", MetricType::Counter, &[&[("job", "a")]]);
        ix.add(&a);
        let b = entry("foo", MetricType::Gauge, &[&[("job", "b")]]);
        let e = ix.check(&[], &[&b]).unwrap_err();
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
            .contains("collides with previously collected histogram"));
        let mut ix = Index::new([]);
        let sc = entry("s_count", MetricType::Untyped, &[&[("job", "a")]]);
        ix.add(&sc);
        let s = entry("s", MetricType::Summary, &[&[("job", "b")]]);
        assert!(
            ix.check(&[], &[&s]).unwrap_err().contains("collided") || ix.check(&[], &[&s]).is_err()
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
            .contains("should have GAUGE"));
    }
}
