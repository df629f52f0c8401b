//! Accumulating pushes: a push that adds to its group instead of replacing it.
//!
//! The store merges an accumulating push into the stored version of its group where it plans
//! the new group version (`Store::plan`), so persistence, TTLs, quotas, the consistency check
//! and the replicated compare-and-set (which re-plans after a lost race) apply unchanged.
//! The merge works on decoded [`Metric`]s and the result is encoded like any pushed family.
//!
//! Per type: counters add; classic histograms add bucket by bucket (equal bounds required),
//! with `_sum` and `_count`; native histograms merge as Prometheus' `model/histogram` adds
//! them (the coarser schema wins, zero buckets are widened to the larger threshold); summaries
//! add `_count` and `_sum` and lose their quantiles; gauges and untyped follow [`GaugeMode`];
//! gauge histograms keep the last value. Each series' created timestamp is the time of its
//! first contribution. Series a push does not mention keep their values.

use crate::check::metric_text;
use exposition::pb::{Bucket, BucketSpan, Histogram, Metric, MetricType, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// What an accumulating push does to gauges and untyped series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GaugeMode {
    /// The pushed value replaces the stored one.
    #[default]
    Last,
    Sum,
    Max,
    Min,
}

impl GaugeMode {
    pub fn parse(s: &str) -> Result<GaugeMode, String> {
        match s {
            "last" => Ok(GaugeMode::Last),
            "sum" => Ok(GaugeMode::Sum),
            "max" => Ok(GaugeMode::Max),
            "min" => Ok(GaugeMode::Min),
            _ => Err(format!(
                "invalid gauges mode {s:?} (want one of sum, max, min, last)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GaugeMode::Last => "last",
            GaugeMode::Sum => "sum",
            GaugeMode::Max => "max",
            GaugeMode::Min => "min",
        }
    }

    fn combine(self, old: f64, new: f64) -> f64 {
        match self {
            GaugeMode::Last => new,
            GaugeMode::Sum => old + new,
            GaugeMode::Max => old.max(new),
            GaugeMode::Min => old.min(new),
        }
    }
}

/// How a push asks to be accumulated (`Push::accumulate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accumulate {
    pub gauges: GaugeMode,
}

/// A rules-file entry about accumulation (`accumulate: true`, `gauges: sum`): first match wins.
#[derive(Clone, Debug)]
pub struct AccumulateRule {
    pub selector: crate::matcher::Selector,
    /// Plain POSTs to matching groups accumulate.
    pub accumulate: bool,
    /// What accumulating pushes to matching groups do to gauges and untyped series.
    pub gauges: GaugeMode,
}

fn timestamp_of_nanos(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// Prepares pushed metrics of one family for accumulation: drops summary quantiles (returns
/// how many), drops a histogram's explicit `+Inf` bucket (the count is its value; the text
/// writer adds it back), and sets the created timestamp of counters, summaries and histograms
/// to the push time (`now_ns`): a series' first contribution is its start.
pub fn normalize(mtype: MetricType, metrics: &mut [Metric], now_ns: i64) -> u64 {
    let created = Some(timestamp_of_nanos(now_ns));
    let mut dropped = 0;
    for m in metrics {
        match mtype {
            MetricType::Counter => {
                if let Some(c) = m.counter.as_mut() {
                    c.created_timestamp = created;
                }
            }
            MetricType::Summary => {
                if let Some(s) = m.summary.as_mut() {
                    dropped += s.quantile.len() as u64;
                    s.quantile.clear();
                    s.created_timestamp = created;
                }
            }
            MetricType::Histogram => {
                if let Some(h) = m.histogram.as_mut() {
                    if h.bucket
                        .last()
                        .is_some_and(|b| b.upper_bound() == f64::INFINITY)
                    {
                        h.bucket.pop();
                    }
                    h.created_timestamp = created;
                }
            }
            _ => {}
        }
    }
    dropped
}

/// Refuses what cannot be an increment: a negative or NaN counter value (it would make the
/// sum go down, which Prometheus reads as a reset).
pub fn validate(name: &str, mtype: MetricType, pushed: &[Metric]) -> Result<(), String> {
    if mtype != MetricType::Counter {
        return Ok(());
    }
    for m in pushed {
        let v = m.counter.as_ref().map_or(0.0, |c| c.value());
        if v.is_nan() || v < 0.0 {
            return Err(format!(
                "cannot accumulate counter {name:?} {{{}}}: an increment must not be negative or NaN",
                labels_text(m)
            ));
        }
    }
    Ok(())
}

/// The identity of a series within its family: its (sorted) labels.
fn series_key(m: &Metric) -> String {
    let mut k = String::new();
    for lp in &m.label {
        k.push_str(lp.name());
        k.push('\u{0}');
        k.push_str(lp.value());
        k.push('\u{0}');
    }
    k
}

/// Merges `pushed` (normalized, labels sanitized) into the stored metrics `old` of family
/// `name`. `old_created_ns` is the start time of stored series that carry none (the time the
/// stored family was pushed). Stored series the push does not mention are kept, in order;
/// new series are appended.
pub fn merge_family(
    name: &str,
    mtype: MetricType,
    mut old: Vec<Metric>,
    old_created_ns: i64,
    pushed: &[Metric],
    mode: GaugeMode,
) -> Result<Vec<Metric>, String> {
    let mut at: HashMap<String, usize> = old
        .iter()
        .enumerate()
        .map(|(i, m)| (series_key(m), i))
        .collect();
    let mut touched = vec![false; old.len()];
    for m in pushed {
        let k = series_key(m);
        match at.get(&k) {
            Some(&i) if touched[i] => {
                return Err(format!(
                    "collected metric {name:?} {{ {}}} was collected before with the same name and label values",
                    metric_text(m)
                ))
            }
            Some(&i) => {
                touched[i] = true;
                merge_metric(name, mtype, &mut old[i], m, old_created_ns, mode)?;
            }
            None => {
                at.insert(k, old.len());
                touched.push(true);
                old.push(m.clone());
            }
        }
    }
    Ok(old)
}

fn keep_created(old: &mut Option<Timestamp>, fallback_ns: i64) {
    if old.is_none() {
        *old = Some(timestamp_of_nanos(fallback_ns));
    }
}

fn merge_metric(
    name: &str,
    mtype: MetricType,
    o: &mut Metric,
    n: &Metric,
    created_ns: i64,
    mode: GaugeMode,
) -> Result<(), String> {
    match mtype {
        MetricType::Counter => {
            let (Some(oc), Some(nc)) = (o.counter.as_mut(), n.counter.as_ref()) else {
                *o = n.clone();
                return Ok(());
            };
            oc.value = Some(oc.value() + nc.value());
            if nc.exemplar.is_some() {
                oc.exemplar = nc.exemplar.clone();
            }
            keep_created(&mut oc.created_timestamp, created_ns);
        }
        MetricType::Gauge => {
            let (Some(og), Some(ng)) = (o.gauge.as_mut(), n.gauge.as_ref()) else {
                *o = n.clone();
                return Ok(());
            };
            og.value = Some(mode.combine(og.value(), ng.value()));
        }
        MetricType::Untyped => {
            let (Some(ou), Some(nu)) = (o.untyped.as_mut(), n.untyped.as_ref()) else {
                *o = n.clone();
                return Ok(());
            };
            ou.value = Some(mode.combine(ou.value(), nu.value()));
        }
        MetricType::Summary => {
            let (Some(os), Some(ns)) = (o.summary.as_mut(), n.summary.as_ref()) else {
                *o = n.clone();
                return Ok(());
            };
            os.sample_count = Some(os.sample_count().saturating_add(ns.sample_count()));
            os.sample_sum = Some(os.sample_sum() + ns.sample_sum());
            os.quantile.clear();
            keep_created(&mut os.created_timestamp, created_ns);
        }
        MetricType::Histogram => {
            let (Some(oh), Some(nh)) = (o.histogram.as_mut(), n.histogram.as_ref()) else {
                *o = n.clone();
                return Ok(());
            };
            merge_histogram(oh, nh).map_err(|e| {
                format!(
                    "cannot accumulate histogram {name:?} {{{}}}: {e}",
                    labels_text(n)
                )
            })?;
            keep_created(&mut oh.created_timestamp, created_ns);
        }
        MetricType::GaugeHistogram => *o = n.clone(),
    }
    Ok(())
}

/// The labels of `m` as `name="value",...`, the value quoted as Go's `%q` does.
fn labels_text(m: &Metric) -> String {
    m.label
        .iter()
        .map(|lp| {
            format!(
                "{}={}",
                lp.name(),
                gocompat::quote::quote(lp.value().as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A count of a histogram: integer unless either side is a float histogram.
fn add_counts(oi: Option<u64>, of: Option<f64>, ni: Option<u64>, nf: Option<f64>) -> Count {
    if of.is_some() || nf.is_some() {
        let a = of.unwrap_or(oi.unwrap_or(0) as f64);
        let b = nf.unwrap_or(ni.unwrap_or(0) as f64);
        Count::Float(a + b)
    } else {
        Count::Int(oi.unwrap_or(0).saturating_add(ni.unwrap_or(0)))
    }
}

enum Count {
    Int(u64),
    Float(f64),
}

impl Count {
    fn set(self, int: &mut Option<u64>, float: &mut Option<f64>) {
        match self {
            Count::Int(v) => {
                *int = Some(v);
                *float = None;
            }
            Count::Float(v) => {
                *int = None;
                *float = Some(v);
            }
        }
    }
}

fn fmt_bounds(b: &[Bucket]) -> String {
    let mut s = String::from("[");
    for (i, b) in b.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        exposition::float::write_go_float(&mut s, b.upper_bound());
    }
    s.push(']');
    s
}

/// Whether a histogram carries a native (sparse) part.
pub fn is_native(h: &Histogram) -> bool {
    h.schema.is_some()
        || h.zero_threshold.is_some()
        || !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
}

fn merge_histogram(o: &mut Histogram, n: &Histogram) -> Result<(), String> {
    let bounds_equal = o.bucket.len() == n.bucket.len()
        && o.bucket
            .iter()
            .zip(&n.bucket)
            .all(|(a, b)| a.upper_bound().to_bits() == b.upper_bound().to_bits());
    if !bounds_equal {
        return Err(format!(
            "the pushed bucket bounds {} differ from the stored bounds {} (push to a new group, or replace the group with a PUT on the normal route)",
            fmt_bounds(&n.bucket),
            fmt_bounds(&o.bucket)
        ));
    }
    match (is_native(o), is_native(n)) {
        (true, false) => {
            return Err("the stored histogram is native, the pushed one is not".into());
        }
        (false, true) => {
            return Err("the pushed histogram is native, the stored one is not".into());
        }
        (true, true) => merge_native(o, n),
        (false, false) => {}
    }
    let c = add_counts(
        o.sample_count,
        o.sample_count_float,
        n.sample_count,
        n.sample_count_float,
    );
    c.set(&mut o.sample_count, &mut o.sample_count_float);
    o.sample_sum = Some(o.sample_sum() + n.sample_sum());
    for (ob, nb) in o.bucket.iter_mut().zip(&n.bucket) {
        let c = add_counts(
            ob.cumulative_count,
            ob.cumulative_count_float,
            nb.cumulative_count,
            nb.cumulative_count_float,
        );
        c.set(&mut ob.cumulative_count, &mut ob.cumulative_count_float);
        if nb.exemplar.is_some() {
            ob.exemplar = nb.exemplar.clone();
        }
    }
    if !n.exemplars.is_empty() {
        o.exemplars = n.exemplars.clone();
    }
    Ok(())
}

/// The sparse buckets of a native histogram with absolute counts, by bucket index.
#[derive(Debug, Clone, PartialEq)]
struct Native {
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    positive: BTreeMap<i32, f64>,
    negative: BTreeMap<i32, f64>,
}

fn is_float_native(h: &Histogram) -> bool {
    h.sample_count_float.is_some()
        || h.zero_count_float.is_some()
        || !h.positive_count.is_empty()
        || !h.negative_count.is_empty()
}

fn decode_side(spans: &[BucketSpan], deltas: &[i64], counts: &[f64]) -> BTreeMap<i32, f64> {
    let mut out = BTreeMap::new();
    let mut idx: i32 = 0;
    let mut pos = 0usize;
    let mut running: i64 = 0;
    for s in spans {
        idx = idx.saturating_add(s.offset());
        for _ in 0..s.length() {
            let c = if !counts.is_empty() {
                counts.get(pos).copied().unwrap_or(0.0)
            } else {
                running = running.wrapping_add(deltas.get(pos).copied().unwrap_or(0));
                running as f64
            };
            *out.entry(idx).or_insert(0.0) += c;
            pos += 1;
            idx = idx.saturating_add(1);
        }
    }
    out
}

/// The spans and (integer deltas or float counts) of one side.
fn encode_side(buckets: &BTreeMap<i32, f64>, float: bool) -> (Vec<BucketSpan>, Vec<i64>, Vec<f64>) {
    let (mut spans, mut deltas, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    let mut next: Option<i32> = None;
    let mut prev: i64 = 0;
    for (&idx, &c) in buckets {
        match next {
            Some(n) if n == idx => {
                let s: &mut BucketSpan = spans.last_mut().expect("a span is open");
                s.length = Some(s.length() + 1);
            }
            _ => {
                let offset = match next {
                    None => idx,
                    Some(n) => idx - n,
                };
                spans.push(BucketSpan {
                    offset: Some(offset),
                    length: Some(1),
                });
            }
        }
        next = Some(idx + 1);
        if float {
            counts.push(c);
        } else {
            let v = c as i64;
            deltas.push(v - prev);
            prev = v;
        }
    }
    (spans, deltas, counts)
}

/// The upper bound of the absolute values in bucket `idx` at `schema`.
fn bound(idx: i32, schema: i32) -> f64 {
    2f64.powf(f64::from(idx) * 2f64.powi(-schema))
}

impl Native {
    fn of(h: &Histogram) -> Native {
        let float = is_float_native(h);
        Native {
            schema: h.schema(),
            zero_threshold: h.zero_threshold(),
            zero_count: if float {
                h.zero_count_float()
            } else {
                h.zero_count() as f64
            },
            positive: decode_side(&h.positive_span, &h.positive_delta, &h.positive_count),
            negative: decode_side(&h.negative_span, &h.negative_delta, &h.negative_count),
        }
    }

    /// Lowers the resolution to `target` (≤ the current schema): each bucket goes to the
    /// coarser bucket that contains it.
    fn reduce(&mut self, target: i32) {
        if target >= self.schema {
            return;
        }
        let shift = (self.schema - target) as u32;
        for side in [&mut self.positive, &mut self.negative] {
            let mut out = BTreeMap::new();
            for (&idx, &c) in side.iter() {
                let t = (idx.wrapping_sub(1) >> shift.min(31)).wrapping_add(1);
                *out.entry(t).or_insert(0.0) += c;
            }
            *side = out;
        }
        self.schema = target;
    }

    /// The zero count this histogram would have with the zero threshold raised to `larger`,
    /// and the threshold actually needed: raised to the upper bound of a populated bucket
    /// that `larger` falls into.
    fn zero_count_for(&self, mut larger: f64) -> (f64, f64) {
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold.max(larger));
        }
        'outer: loop {
            let mut count = self.zero_count;
            for (i, side) in [&self.positive, &self.negative].into_iter().enumerate() {
                for (&idx, &c) in side {
                    let (lower, upper) = (bound(idx - 1, self.schema), bound(idx, self.schema));
                    if lower >= larger {
                        break;
                    }
                    count += c;
                    if upper > larger {
                        if c != 0.0 {
                            larger = upper;
                            if i == 1 {
                                continue 'outer;
                            }
                        }
                        break;
                    }
                }
            }
            return (count, larger);
        }
    }

    /// Raises the zero threshold to `t` (a bucket boundary), moving the buckets below it
    /// into the zero bucket.
    fn widen_zero(&mut self, t: f64) {
        let (count, t) = self.zero_count_for(t);
        self.zero_count = count;
        self.zero_threshold = t;
        let schema = self.schema;
        for side in [&mut self.positive, &mut self.negative] {
            side.retain(|&idx, _| bound(idx - 1, schema) >= t);
        }
    }

    fn add(&mut self, other: &Native) {
        let mut other = other.clone();
        let target = self.schema.min(other.schema);
        self.reduce(target);
        other.reduce(target);
        // Both zero buckets grow to a threshold that is no populated bucket's interior.
        let mut guard = 0;
        while self.zero_threshold != other.zero_threshold && guard < 64 {
            guard += 1;
            if self.zero_threshold > other.zero_threshold {
                other.widen_zero(self.zero_threshold);
            } else {
                self.widen_zero(other.zero_threshold);
            }
        }
        self.zero_count += other.zero_count;
        for (mine, theirs) in [
            (&mut self.positive, &other.positive),
            (&mut self.negative, &other.negative),
        ] {
            for (&idx, &c) in theirs {
                *mine.entry(idx).or_insert(0.0) += c;
            }
        }
    }

    fn write(&self, h: &mut Histogram, float: bool) {
        h.schema = Some(self.schema);
        h.zero_threshold = Some(self.zero_threshold);
        if float {
            h.zero_count = None;
            h.zero_count_float = Some(self.zero_count);
        } else {
            h.zero_count = Some(self.zero_count as u64);
            h.zero_count_float = None;
        }
        let (ps, pd, pc) = encode_side(&self.positive, float);
        let (ns, nd, nc) = encode_side(&self.negative, float);
        h.positive_span = ps;
        h.positive_delta = pd;
        h.positive_count = pc;
        h.negative_span = ns;
        h.negative_delta = nd;
        h.negative_count = nc;
        if h.positive_span.is_empty() && h.negative_span.is_empty() {
            // As client_golang marks a native histogram without buckets.
            h.positive_span.push(BucketSpan {
                offset: Some(0),
                length: Some(0),
            });
        }
    }
}

/// Adds the native part of `n` to `o` (count and sum are added by the caller).
fn merge_native(o: &mut Histogram, n: &Histogram) {
    let float = is_float_native(o) || is_float_native(n);
    let mut a = Native::of(o);
    a.add(&Native::of(n));
    a.write(o, float);
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::pb::{Counter, Gauge, LabelPair, Quantile, Summary};

    fn counter(v: f64) -> Metric {
        Metric {
            label: vec![LabelPair::new("job", "j")],
            counter: Some(Box::new(Counter {
                value: Some(v),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn counters_add_and_keep_first_created() {
        let mut first = vec![counter(2.0)];
        normalize(MetricType::Counter, &mut first, 5_000_000_000);
        let mut second = vec![counter(3.5)];
        normalize(MetricType::Counter, &mut second, 9_000_000_000);
        let m = merge_family("c", MetricType::Counter, first, 0, &second, GaugeMode::Last).unwrap();
        let c = m[0].counter.as_ref().unwrap();
        assert_eq!(c.value(), 5.5);
        assert_eq!(c.created_timestamp.unwrap().seconds, 5);
    }

    #[test]
    fn gauge_modes() {
        let g = |v: f64| Metric {
            gauge: Some(Gauge { value: Some(v) }),
            ..Default::default()
        };
        for (mode, want) in [
            (GaugeMode::Last, 2.0),
            (GaugeMode::Sum, 7.0),
            (GaugeMode::Max, 5.0),
            (GaugeMode::Min, 2.0),
        ] {
            let m = merge_family("g", MetricType::Gauge, vec![g(5.0)], 0, &[g(2.0)], mode).unwrap();
            assert_eq!(m[0].gauge.unwrap().value(), want, "{mode:?}");
        }
    }

    #[test]
    fn summary_quantiles_are_dropped() {
        let mut s = vec![Metric {
            summary: Some(Box::new(Summary {
                sample_count: Some(2),
                sample_sum: Some(1.5),
                quantile: vec![Quantile {
                    quantile: Some(0.5),
                    value: Some(0.7),
                }],
                ..Default::default()
            })),
            ..Default::default()
        }];
        assert_eq!(normalize(MetricType::Summary, &mut s, 1), 1);
        let m = merge_family("s", MetricType::Summary, s.clone(), 0, &s, GaugeMode::Last).unwrap();
        let s = m[0].summary.as_ref().unwrap();
        assert_eq!((s.sample_count(), s.sample_sum()), (4, 3.0));
        assert!(s.quantile.is_empty());
    }

    fn native(schema: i32, zt: f64, zc: u64, spans: &[(i32, u32)], deltas: &[i64]) -> Histogram {
        Histogram {
            schema: Some(schema),
            zero_threshold: Some(zt),
            zero_count: Some(zc),
            sample_count: Some(zc + decode_total(spans, deltas)),
            sample_sum: Some(1.0),
            positive_span: spans
                .iter()
                .map(|&(o, l)| BucketSpan {
                    offset: Some(o),
                    length: Some(l),
                })
                .collect(),
            positive_delta: deltas.to_vec(),
            ..Default::default()
        }
    }

    fn decode_total(spans: &[(i32, u32)], deltas: &[i64]) -> u64 {
        let s: Vec<BucketSpan> = spans
            .iter()
            .map(|&(o, l)| BucketSpan {
                offset: Some(o),
                length: Some(l),
            })
            .collect();
        decode_side(&s, deltas, &[]).values().sum::<f64>() as u64
    }

    #[test]
    fn native_same_schema_adds_buckets_and_keeps_integer_encoding() {
        // Buckets 0,1 (counts 1,2) + buckets 1,2 (counts 3,4) = 0:1, 1:5, 2:4.
        let mut a = native(0, 0.0, 1, &[(0, 2)], &[1, 1]);
        let b = native(0, 0.0, 2, &[(1, 2)], &[3, 1]);
        merge_histogram(&mut a, &b).unwrap();
        assert_eq!(a.positive_span.len(), 1);
        assert_eq!(a.positive_span[0].offset(), 0);
        assert_eq!(a.positive_span[0].length(), 3);
        assert_eq!(a.positive_delta, vec![1, 4, -1]);
        assert_eq!(a.zero_count(), 3);
        assert_eq!(a.sample_count(), 3 + 3 + 7);
        assert!(a.positive_count.is_empty());
    }

    #[test]
    fn native_coarser_schema_wins() {
        // Schema 1 buckets 1..=4 (bounds sqrt2, 2, 2sqrt2, 4) into schema 0 buckets 1, 2.
        let mut a = native(0, 0.0, 0, &[(1, 1)], &[10]);
        let b = native(1, 0.0, 0, &[(1, 4)], &[1, 0, 0, 0]);
        merge_histogram(&mut a, &b).unwrap();
        assert_eq!(a.schema(), 0);
        let got = decode_side(&a.positive_span, &a.positive_delta, &[]);
        assert_eq!(got, BTreeMap::from([(1, 12.0), (2, 2.0)]));
    }

    #[test]
    fn native_zero_thresholds_reconciled() {
        // a: threshold 1 (upper bound of bucket 0 at schema 0). b: threshold 0, a bucket at
        // index 0 ((0.5, 1]) that falls inside a's zero bucket, and one at 1 ((1, 2]).
        let mut a = native(0, 1.0, 4, &[(1, 1)], &[1]);
        let b = native(0, 0.0, 1, &[(0, 2)], &[2, 1]);
        merge_histogram(&mut a, &b).unwrap();
        assert_eq!(a.zero_threshold(), 1.0);
        assert_eq!(a.zero_count(), 4 + 1 + 2);
        let got = decode_side(&a.positive_span, &a.positive_delta, &[]);
        assert_eq!(got, BTreeMap::from([(1, 4.0)]));
    }

    #[test]
    fn float_and_integer_native_merge_to_float() {
        let mut a = native(0, 0.0, 1, &[(0, 1)], &[2]);
        let b = Histogram {
            schema: Some(0),
            zero_threshold: Some(0.0),
            zero_count_float: Some(0.5),
            sample_count_float: Some(3.0),
            sample_sum: Some(2.0),
            positive_span: vec![BucketSpan {
                offset: Some(0),
                length: Some(1),
            }],
            positive_count: vec![2.5],
            ..Default::default()
        };
        merge_histogram(&mut a, &b).unwrap();
        assert_eq!(a.positive_count, vec![4.5]);
        assert!(a.positive_delta.is_empty());
        assert_eq!(a.zero_count_float(), 1.5);
        assert_eq!(a.sample_count_float(), 6.0);
        assert_eq!(a.sample_count, None);
    }

    #[test]
    fn classic_bounds_must_match() {
        let h = |bounds: &[f64]| Histogram {
            sample_count: Some(1),
            bucket: bounds
                .iter()
                .map(|&b| Bucket {
                    upper_bound: Some(b),
                    cumulative_count: Some(1),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut a = h(&[0.1, 1.0]);
        merge_histogram(&mut a, &h(&[0.1, 1.0])).unwrap();
        assert_eq!(a.bucket[1].cumulative_count(), 2);
        let e = merge_histogram(&mut a, &h(&[0.5, 1.0])).unwrap_err();
        assert!(e.contains("[0.5, 1]") && e.contains("[0.1, 1]"), "{e}");
    }

    #[test]
    fn duplicate_series_in_one_push_is_refused() {
        let e = merge_family(
            "c",
            MetricType::Counter,
            vec![],
            0,
            &[counter(1.0), counter(2.0)],
            GaugeMode::Last,
        )
        .unwrap_err();
        assert!(e.contains("collected before"), "{e}");
    }
}
