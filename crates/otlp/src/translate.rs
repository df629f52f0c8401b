//! From an `ExportMetricsServiceRequest` to groups of Prometheus metric families, following
//! Prometheus 3's `prometheusremotewrite.PrometheusConverter.FromMetrics` rule by rule (the Go
//! function each step follows is named in its comment). Where a gateway has to differ, the
//! comment says so:
//!
//! * Points carry no timestamp (the gateway exposes the latest state; Prometheus stamps it at
//!   scrape time); start timestamps become created timestamps.
//! * A point Prometheus would store as a staleness marker (`NoRecordedValue`) is left out.
//! * A metric Prometheus would fail the whole request for (bad name, bad temporality, bad
//!   attribute name) only rejects its own points, reported as a partial success.
//! * Series repeated within one request (several resources of one group, several scopes, or
//!   batched points) are merged: the latest cumulative point wins, delta points add up.

use crate::common::{any_value, AnyValue, KeyValue};
use crate::names::{metric_name, LabelNamer, NameType};
use crate::proto::{
    self, exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    AggregationTemporality, Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint,
    NumberDataPoint, SummaryDataPoint,
};
use crate::{ExportMetricsServiceRequest, Settings};
use base64::Engine;
use exposition::pb;
use exposition::{LabelPair, Metric, MetricFamily, MetricType};
use std::collections::BTreeMap;

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const TARGET_INFO: &str = "target_info";
/// `maxExemplarRunes` (OpenMetrics): filtered attributes are kept only within this.
const MAX_EXEMPLAR_RUNES: usize = 128;
/// `defaultZeroThreshold` of converted exponential histograms.
const ZERO_THRESHOLD: f64 = 1e-128;
/// Native histogram schemas (`histogram.ExponentialSchemaMin/Max`).
const SCHEMA_MIN: i32 = -4;
const SCHEMA_MAX: i32 = 8;
/// Most distinct error messages kept for the partial-success answer.
const MAX_MESSAGES: usize = 5;
/// Widest bucket index range accepted when merging exponential histograms.
const MAX_MERGED_BUCKETS: i64 = 1 << 16;
const NO_RECORDED_VALUE: u32 = 1;

/// One group: what one resource (or several resources with the same key) pushed.
#[derive(Debug, Default)]
pub struct Group {
    /// The grouping key: `job`, `instance` (when `service.instance.id` is set) and the
    /// promoted resource attributes.
    pub key: Vec<(String, String)>,
    /// Data points the group's families carry (rejected together if the push fails).
    pub points: u64,
    /// How many of them are in `delta`.
    pub delta_points: u64,
    /// Every delta point carried its own time: the request is one export of one state, so a
    /// repeat of the same body is a client's retry (a key for exactly-once accumulation).
    pub delta_timed: bool,
    /// Families of gauges, cumulative sums and histograms, summaries and `target_info`:
    /// they replace the group's families of the same name.
    pub cumulative: Vec<MetricFamily>,
    /// Families of delta sums and histograms: they add to what the group holds.
    pub delta: Vec<MetricFamily>,
}

/// The outcome of [`translate`].
#[derive(Debug, Default)]
pub struct Translation {
    pub groups: Vec<Group>,
    /// Data points that could not be translated.
    pub rejected: u64,
    /// Why, a few distinct messages.
    pub messages: Vec<String>,
}

impl Translation {
    /// Records `n` rejected points and why.
    pub fn reject(&mut self, n: u64, why: String) {
        self.rejected += n;
        if self.messages.len() < MAX_MESSAGES && !self.messages.contains(&why) {
            self.messages.push(why);
        }
    }

    /// The partial-success message: the distinct reasons, `; `-joined.
    pub fn message(&self) -> String {
        self.messages.join("; ")
    }
}

/// A data point kept until its series is complete.
enum Point {
    Number(NumberDataPoint),
    Histogram(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
    Summary(SummaryDataPoint),
    /// Delta exponential histogram points of one series, merged once when the series is
    /// complete (merging pairwise would cost the width of the merged buckets per point).
    Exponentials(Vec<ExponentialHistogramDataPoint>),
}

impl Point {
    fn time(&self) -> u64 {
        match self {
            Point::Number(p) => p.time_unix_nano,
            Point::Histogram(p) => p.time_unix_nano,
            Point::Exponential(p) => p.time_unix_nano,
            Point::Summary(p) => p.time_unix_nano,
            Point::Exponentials(v) => v.iter().map(|p| p.time_unix_nano).max().unwrap_or(0),
        }
    }
}

type Labels = Vec<(String, String)>;

struct FamilyBuilder {
    help: String,
    mtype: MetricType,
    delta: bool,
    series: BTreeMap<Labels, Point>,
    /// Points accepted into `series` (merged ones included).
    points: u64,
}

#[derive(Default)]
struct GroupBuilder {
    points: u64,
    /// A delta point without `time_unix_nano` was seen.
    delta_untimed: bool,
    families: BTreeMap<String, FamilyBuilder>,
    target_info: BTreeMap<Labels, ()>,
}

/// pcommon `Value.AsString`: strings as they are, numbers and booleans as Go prints them,
/// bytes in base64, arrays and maps as JSON.
pub fn value_string(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => go_json_float(*d),
        Some(V::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(V::ArrayValue(_)) | Some(V::KvlistValue(_)) => {
            json_value(v.and_then(|v| v.value.as_ref())).to_string()
        }
        Some(_) => String::new(),
    }
}

/// The raw form of a value as pcommon's `AsRaw` and Go's `json.Marshal` print it (map keys
/// sorted).
fn json_value(v: Option<&any_value::Value>) -> serde_json::Value {
    use any_value::Value as V;
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(V::StringValue(s)) => J::String(s.clone()),
        Some(V::BoolValue(b)) => J::Bool(*b),
        Some(V::IntValue(i)) => J::from(*i),
        Some(V::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(V::BytesValue(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(V::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|x| json_value(x.value.as_ref()))
                .collect(),
        ),
        Some(V::KvlistValue(kv)) => {
            let mut m = serde_json::Map::new();
            for e in &kv.values {
                m.insert(
                    e.key.clone(),
                    json_value(e.value.as_ref().and_then(|v| v.value.as_ref())),
                );
            }
            J::Object(m)
        }
        Some(_) => J::Null,
    }
}

/// pcommon's `float64AsString`: like ES6 number-to-string (`1e+21`, `1e-7`, `0.5`).
fn go_json_float(f: f64) -> String {
    if f.is_infinite() || f.is_nan() {
        let g = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return format!("json: unsupported value: {g}");
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is the shortest round-trip form with an unpadded exponent (`1e-7`);
        // Go prints a sign on positive exponents (`1e+21`).
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        // Shortest round-trip digits, never an exponent: Go's 'f' with precision -1.
        format!("{f}")
    }
}

/// The first value of `key` (pcommon `Map.Get`).
fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// `createAttributes`: attributes (less `ignore`) sorted by key, names sanitized, values of
/// colliding names joined with `;`, empty values dropped (a `labels.Builder` drops them).
/// Names Prometheus reserves (`__*`) cannot be pushed and are left out.
fn attribute_labels(
    attrs: &[KeyValue],
    ignore: &[&str],
    namer: &LabelNamer,
) -> Result<Labels, String> {
    let mut sorted: Vec<(&str, String)> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), value_string(kv.value.as_ref())))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in sorted {
        let name = namer.build(k)?;
        if v.is_empty() || name.starts_with("__") {
            continue;
        }
        match out.get_mut(&name) {
            Some(existing) => {
                existing.push(';');
                existing.push_str(&v);
            }
            None => {
                out.insert(name, v);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The grouping key of a resource (`setResourceContext`): `job` from `service.namespace` +
/// `/` + `service.name`, `instance` from `service.instance.id`, then the promoted attributes.
fn resource_key(
    attrs: &[KeyValue],
    settings: &Settings,
    namer: &LabelNamer,
) -> Result<Labels, String> {
    let Some(name) = get(attrs, SERVICE_NAME) else {
        return Err("resource without service.name: no job to group its points under".into());
    };
    let mut job = value_string(name.value.as_ref());
    if let Some(ns) = get(attrs, SERVICE_NAMESPACE) {
        job = format!("{}/{job}", value_string(ns.value.as_ref()));
    }
    if job.is_empty() {
        return Err("resource with an empty service.name: no job to group its points under".into());
    }
    let mut key: BTreeMap<String, String> = BTreeMap::new();
    for attr in &settings.promote_resource_attributes {
        if let Some(kv) = get(attrs, attr) {
            let v = value_string(kv.value.as_ref());
            let n = namer.build(attr)?;
            if !v.is_empty() && !n.starts_with("__") {
                key.insert(n, v);
            }
        }
    }
    key.insert("job".into(), job);
    key.remove("instance");
    if let Some(inst) = get(attrs, SERVICE_INSTANCE_ID) {
        let v = value_string(inst.value.as_ref());
        if !v.is_empty() {
            key.insert("instance".into(), v);
        }
    }
    Ok(key.into_iter().collect())
}

fn count_points(data: &Data) -> u64 {
    (match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(e) => e.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }) as u64
}

/// Translates a request (see the module documentation).
pub fn translate(req: ExportMetricsServiceRequest, settings: &Settings) -> Translation {
    let namer = settings.label_namer();
    let mut out = Translation::default();
    let mut groups: BTreeMap<Labels, GroupBuilder> = BTreeMap::new();
    for rm in req.resource_metrics {
        let attrs = rm.resource.map(|r| r.attributes).unwrap_or_default();
        let total: u64 = rm
            .scope_metrics
            .iter()
            .flat_map(|s| s.metrics.iter())
            .filter_map(|m| m.data.as_ref())
            .map(count_points)
            .sum();
        let key = match resource_key(&attrs, settings, &namer) {
            Ok(k) => k,
            Err(e) => {
                if total > 0 {
                    out.reject(total, e);
                }
                continue;
            }
        };
        let group = groups.entry(key).or_default();
        let mut saw_points = false;
        for sm in rm.scope_metrics {
            let Some(scope_labels) = scope_labels(&sm, settings, &namer, &mut out) else {
                continue;
            };
            for metric in sm.metrics {
                saw_points |= add_metric(group, metric, &scope_labels, settings, &namer, &mut out);
            }
        }
        if saw_points {
            add_target_info(group, &attrs, settings, &namer, &mut out);
        }
    }
    for (key, g) in groups {
        if let Some(group) = finish_group(key, g, &mut out) {
            out.groups.push(group);
        }
    }
    out
}

/// `setScopeContext`: the scope's labels when scope metadata is promoted (empty otherwise),
/// or `None` (every point of the scope rejected) when an attribute has no valid label name.
fn scope_labels(
    sm: &proto::ScopeMetrics,
    settings: &Settings,
    namer: &LabelNamer,
    out: &mut Translation,
) -> Option<Labels> {
    let scope = match (&sm.scope, settings.promote_scope_metadata) {
        (Some(scope), true) if !scope.name.is_empty() => scope,
        _ => return Some(Vec::new()),
    };
    let mut l: BTreeMap<String, String> = BTreeMap::new();
    let mut failed = None;
    for kv in &scope.attributes {
        match namer.build(&format!("otel_scope_{}", kv.key)) {
            Ok(n) => {
                l.insert(n, value_string(kv.value.as_ref()));
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        let n = sm
            .metrics
            .iter()
            .filter_map(|m| m.data.as_ref())
            .map(count_points)
            .sum();
        out.reject(n, e);
        return None;
    }
    l.insert("otel_scope_name".into(), scope.name.clone());
    l.insert("otel_scope_version".into(), scope.version.clone());
    l.insert("otel_scope_schema_url".into(), sm.schema_url.clone());
    l.retain(|_, v| !v.is_empty());
    Some(l.into_iter().collect())
}

/// `aggregationTemporality` and the check in `FromMetrics`: whether the metric is delta, or
/// `None` for an invalid temporality.
fn is_delta(data: &Data) -> Option<bool> {
    let temporality = match data {
        Data::Sum(s) => s.aggregation_temporality,
        Data::Histogram(h) => h.aggregation_temporality,
        Data::ExponentialHistogram(e) => e.aggregation_temporality,
        Data::Gauge(_) | Data::Summary(_) => return Some(false),
    };
    if temporality == AggregationTemporality::Cumulative as i32 {
        Some(false)
    } else if temporality == AggregationTemporality::Delta as i32 {
        Some(true)
    } else {
        None
    }
}

/// `TranslatorMetricFromOtelMetric` and `otelMetricTypeToPromMetricType`.
fn kind_of(data: &Data) -> (NameType, MetricType) {
    match data {
        Data::Gauge(_) => (NameType::Gauge, MetricType::Gauge),
        Data::Sum(s) if s.is_monotonic => (NameType::MonotonicCounter, MetricType::Counter),
        Data::Sum(_) => (NameType::NonMonotonicCounter, MetricType::Gauge),
        Data::Histogram(_) => (NameType::Histogram, MetricType::Histogram),
        Data::ExponentialHistogram(_) => (NameType::ExponentialHistogram, MetricType::Histogram),
        Data::Summary(_) => (NameType::Summary, MetricType::Summary),
    }
}

/// Adds one OTLP metric's points to `group`; returns whether the metric had data points.
fn add_metric(
    group: &mut GroupBuilder,
    metric: proto::Metric,
    scope_labels: &Labels,
    settings: &Settings,
    namer: &LabelNamer,
    out: &mut Translation,
) -> bool {
    let Some(data) = metric.data else {
        out.reject(
            0,
            format!(
                "metric {:?} has no data (unsupported metric type)",
                metric.name
            ),
        );
        return false;
    };
    let n = count_points(&data);
    let Some(delta) = is_delta(&data) else {
        out.reject(
            n,
            format!(
                "invalid temporality and type combination for metric {:?}",
                metric.name
            ),
        );
        return n > 0;
    };
    let (name_type, mtype) = kind_of(&data);
    let name = match metric_name(&metric.name, &metric.unit, name_type, settings.strategy) {
        Ok(name) => name,
        Err(e) => {
            out.reject(n, e);
            return n > 0;
        }
    };
    if n == 0 {
        // "empty data points. %s is dropped"
        return false;
    }
    let family = group
        .families
        .entry(name.clone())
        .or_insert_with(|| FamilyBuilder {
            help: metric.description.clone(),
            mtype,
            delta,
            series: BTreeMap::new(),
            points: 0,
        });
    if family.mtype != mtype || family.delta != delta {
        out.reject(
            n,
            format!(
                "metric {:?} becomes {name:?}, which this request already has as a {}{} metric",
                metric.name,
                if family.delta { "delta " } else { "" },
                family.mtype.text_name()
            ),
        );
        return true;
    }
    let points = match data {
        Data::Gauge(g) => split(g.data_points, |p| &mut p.attributes, Point::Number),
        Data::Sum(s) => split(s.data_points, |p| &mut p.attributes, Point::Number),
        Data::Histogram(h) => split(h.data_points, |p| &mut p.attributes, Point::Histogram),
        Data::ExponentialHistogram(e) => {
            split(e.data_points, |p| &mut p.attributes, Point::Exponential)
        }
        Data::Summary(s) => split(s.data_points, |p| &mut p.attributes, Point::Summary),
    };
    // `le` and `quantile` are set per series by the converter, overriding any attribute of
    // that name.
    let reserved: &[&str] = match mtype {
        MetricType::Histogram => &["__name__", "le"],
        MetricType::Summary => &["__name__", "quantile"],
        _ => &["__name__"],
    };
    for (attrs, point) in points {
        if point_flags(&point) & NO_RECORDED_VALUE != 0 {
            continue;
        }
        let labels = match series_labels(&attrs, reserved, namer, scope_labels) {
            Ok(l) => l,
            Err(e) => {
                out.reject(1, e);
                continue;
            }
        };
        if let Err(e) = validate(&point) {
            out.reject(1, format!("metric {:?}: {e}", metric.name));
            continue;
        }
        let time = point.time();
        if let Err(e) = insert_point(family, labels, point, delta) {
            out.reject(1, format!("metric {:?}: {e}", metric.name));
            continue;
        }
        group.points += 1;
        family.points += 1;
        group.delta_untimed |= delta && time == 0;
    }
    true
}

/// A point's labels: its attributes (less `reserved`) and the scope's labels.
fn series_labels(
    attrs: &[KeyValue],
    reserved: &[&str],
    namer: &LabelNamer,
    scope_labels: &Labels,
) -> Result<Labels, String> {
    let labels = attribute_labels(attrs, reserved, namer)?;
    if scope_labels.is_empty() {
        return Ok(labels);
    }
    let mut m: BTreeMap<String, String> = labels.into_iter().collect();
    m.extend(scope_labels.iter().cloned());
    Ok(m.into_iter().collect())
}

/// Puts `point` into its series: cumulative, the latest point wins; delta, points add up.
fn insert_point(
    family: &mut FamilyBuilder,
    labels: Labels,
    point: Point,
    delta: bool,
) -> Result<(), String> {
    match family.series.remove(&labels) {
        None => {
            family.series.insert(labels, point);
            Ok(())
        }
        Some(old) if !delta => {
            let keep = if point.time() >= old.time() {
                point
            } else {
                old
            };
            family.series.insert(labels, keep);
            Ok(())
        }
        Some(mut old) => {
            let merged = merge_delta(&mut old, point);
            family.series.insert(labels, old);
            merged
        }
    }
}

/// `addResourceTargetInfo`: the resource's non-identifying attributes as a `target_info` series.
fn add_target_info(
    group: &mut GroupBuilder,
    attrs: &[KeyValue],
    settings: &Settings,
    namer: &LabelNamer,
    out: &mut Translation,
) {
    let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
    let non_identifying = attrs
        .iter()
        .filter(|kv| !identifying.contains(&kv.key.as_str()))
        .count();
    if non_identifying == 0 {
        return;
    }
    let ignore: &[&str] = if settings.keep_identifying_resource_attributes {
        &["__name__"]
    } else {
        &[
            "__name__",
            SERVICE_NAMESPACE,
            SERVICE_NAME,
            SERVICE_INSTANCE_ID,
        ]
    };
    match attribute_labels(attrs, ignore, namer) {
        Ok(l) => {
            group.target_info.insert(l, ());
        }
        Err(e) => out.reject(0, format!("target_info: {e}")),
    }
}

/// The group's families as `MetricFamily`s (cumulative and delta apart) with its
/// `target_info`; `None` when nothing is left of it.
fn finish_group(key: Labels, g: GroupBuilder, out: &mut Translation) -> Option<Group> {
    let mut group = Group {
        key,
        points: g.points,
        delta_timed: !g.delta_untimed,
        ..Group::default()
    };
    for (name, f) in g.families {
        finish_family(&mut group, name, f, out);
    }
    if !g.target_info.is_empty() {
        if group
            .cumulative
            .iter()
            .chain(&group.delta)
            .any(|f| f.name() == TARGET_INFO)
        {
            out.reject(
                0,
                "a metric named target_info hides the resource's target_info".into(),
            );
        } else {
            group.cumulative.push(MetricFamily {
                name: Some(TARGET_INFO.into()),
                help: Some("Target metadata".into()),
                r#type: Some(MetricType::Gauge as i32),
                metric: g
                    .target_info
                    .into_keys()
                    .map(|labels| Metric {
                        label: to_pairs(labels),
                        gauge: Some(pb::Gauge { value: Some(1.0) }),
                        ..Metric::default()
                    })
                    .collect(),
                unit: None,
            });
        }
    }
    (!group.cumulative.is_empty() || !group.delta.is_empty()).then_some(group)
}

/// One family's series as a `MetricFamily` in `group` (points that cannot be converted are
/// rejected).
fn finish_family(group: &mut Group, name: String, f: FamilyBuilder, out: &mut Translation) {
    if f.series.is_empty() {
        return;
    }
    let mut mf = MetricFamily {
        name: Some(name),
        help: (!f.help.is_empty()).then_some(f.help),
        r#type: Some(f.mtype as i32),
        metric: Vec::with_capacity(f.series.len()),
        unit: None,
    };
    let mut points = f.points;
    for (labels, point) in f.series {
        let n = match &point {
            Point::Exponentials(v) => v.len() as u64,
            _ => 1,
        };
        match to_metric(labels, point, f.mtype) {
            Ok(m) => mf.metric.push(m),
            Err(e) => {
                group.points -= n;
                points -= n;
                out.reject(n, format!("metric {:?}: {e}", mf.name()));
            }
        }
    }
    if mf.metric.is_empty() {
        return;
    }
    if f.delta {
        group.delta_points += points;
        group.delta.push(mf);
    } else {
        group.cumulative.push(mf);
    }
}

fn point_flags(p: &Point) -> u32 {
    match p {
        Point::Number(p) => p.flags,
        Point::Histogram(p) => p.flags,
        Point::Exponential(p) => p.flags,
        Point::Summary(p) => p.flags,
        Point::Exponentials(_) => 0,
    }
}

/// Refuses points the conversion cannot represent.
fn validate(p: &Point) -> Result<(), String> {
    if let Point::Exponential(e) = p {
        // `exponentialToNativeHistogram`.
        if e.scale < SCHEMA_MIN {
            return Err(format!(
                "cannot convert exponential to native histogram. Scale must be >= {SCHEMA_MIN}, was {}",
                e.scale
            ));
        }
        for b in [&e.positive, &e.negative].into_iter().flatten() {
            let last = b.offset as i64 + b.bucket_counts.len() as i64;
            if last >= i32::MAX as i64 - 1 {
                return Err("exponential histogram bucket index out of range".into());
            }
        }
    }
    Ok(())
}

/// Adds delta point `b` to `a` (same series); on a mismatch `a` is left as it was.
fn merge_delta(a: &mut Point, b: Point) -> Result<(), String> {
    match (a, b) {
        (Point::Number(a), Point::Number(b)) => {
            a.value = Some(number_data_point::Value::AsDouble(number(a) + number(&b)));
            merge_common(
                (
                    &mut a.start_time_unix_nano,
                    &mut a.time_unix_nano,
                    &mut a.exemplars,
                ),
                (b.start_time_unix_nano, b.time_unix_nano, b.exemplars),
            );
        }
        (Point::Histogram(a), Point::Histogram(b)) => {
            let same = a.explicit_bounds.len() == b.explicit_bounds.len()
                && a.explicit_bounds
                    .iter()
                    .zip(&b.explicit_bounds)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
                && a.bucket_counts.len() == b.bucket_counts.len();
            if !same {
                return Err(
                    "delta histogram points of one series with different bucket bounds".into(),
                );
            }
            for (x, y) in a.bucket_counts.iter_mut().zip(&b.bucket_counts) {
                *x = x.wrapping_add(*y);
            }
            a.count = a.count.wrapping_add(b.count);
            a.sum = add_sums(a.sum, b.sum);
            merge_common(
                (
                    &mut a.start_time_unix_nano,
                    &mut a.time_unix_nano,
                    &mut a.exemplars,
                ),
                (b.start_time_unix_nano, b.time_unix_nano, b.exemplars),
            );
        }
        (Point::Exponentials(v), Point::Exponential(b)) => v.push(b),
        (a @ Point::Exponential(_), Point::Exponential(b)) => {
            let Point::Exponential(first) = std::mem::replace(a, Point::Exponentials(Vec::new()))
            else {
                unreachable!("matched above")
            };
            *a = Point::Exponentials(vec![first, b]);
        }
        _ => return Err("points of different kinds in one series".into()),
    }
    Ok(())
}

fn add_sums(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    }
}

/// The earliest start, the latest time and all exemplars of two merged points.
fn merge_common(a: (&mut u64, &mut u64, &mut Vec<Exemplar>), b: (u64, u64, Vec<Exemplar>)) {
    let (start, time, exemplars) = a;
    if b.0 != 0 && (*start == 0 || b.0 < *start) {
        *start = b.0;
    }
    *time = (*time).max(b.1);
    exemplars.extend(b.2);
}

/// Data points with their attributes taken out.
fn split<P>(
    points: Vec<P>,
    attributes: fn(&mut P) -> &mut Vec<KeyValue>,
    wrap: fn(P) -> Point,
) -> Vec<(Vec<KeyValue>, Point)> {
    points
        .into_iter()
        .map(|mut p| (std::mem::take(attributes(&mut p)), wrap(p)))
        .collect()
}

/// Delta exponential histogram points of one series added up, at the coarsest scale among
/// them (each bucket index shifted down by the scale difference), in one pass.
fn merge_exponentials(points: Vec<ExponentialHistogramDataPoint>) -> Result<Point, String> {
    let scale = points.iter().map(|p| p.scale).min().unwrap_or(0);
    let mut pos: BTreeMap<i64, u64> = BTreeMap::new();
    let mut neg: BTreeMap<i64, u64> = BTreeMap::new();
    let mut out = ExponentialHistogramDataPoint {
        scale,
        ..ExponentialHistogramDataPoint::default()
    };
    let mut first = true;
    for p in points {
        let shift = (p.scale - scale).clamp(0, 62) as u32;
        for (buckets, into) in [(&p.positive, &mut pos), (&p.negative, &mut neg)] {
            let Some(b) = buckets else { continue };
            for (i, c) in b.bucket_counts.iter().enumerate() {
                let e = into
                    .entry((b.offset as i64 + i as i64) >> shift)
                    .or_insert(0);
                *e = e.wrapping_add(*c);
            }
        }
        out.count = out.count.wrapping_add(p.count);
        out.zero_count = out.zero_count.wrapping_add(p.zero_count);
        out.sum = if first {
            p.sum
        } else {
            add_sums(out.sum, p.sum)
        };
        out.attributes = p.attributes;
        merge_common(
            (
                &mut out.start_time_unix_nano,
                &mut out.time_unix_nano,
                &mut out.exemplars,
            ),
            (p.start_time_unix_nano, p.time_unix_nano, p.exemplars),
        );
        first = false;
    }
    out.positive = Some(dense(pos)?);
    out.negative = Some(dense(neg)?);
    Ok(Point::Exponential(out))
}

/// Sparse bucket counts as OTel's dense form, refused if unreasonably wide.
fn dense(counts: BTreeMap<i64, u64>) -> Result<Buckets, String> {
    let (Some((&lo, _)), Some((&hi, _))) = (counts.first_key_value(), counts.last_key_value())
    else {
        return Ok(Buckets::default());
    };
    if hi - lo >= MAX_MERGED_BUCKETS {
        return Err("exponential histogram buckets too far apart to merge".into());
    }
    let mut bucket_counts = vec![0u64; (hi - lo + 1) as usize];
    for (i, c) in counts {
        bucket_counts[(i - lo) as usize] = c;
    }
    Ok(Buckets {
        offset: lo as i32,
        bucket_counts,
    })
}

fn number(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

fn to_pairs(labels: Labels) -> Vec<LabelPair> {
    labels
        .into_iter()
        .map(|(n, v)| LabelPair::new(n, v))
        .collect()
}

fn timestamp(unix_nanos: u64) -> Option<pb::Timestamp> {
    (unix_nanos != 0).then_some(pb::Timestamp {
        seconds: (unix_nanos / 1_000_000_000) as i64,
        nanos: (unix_nanos % 1_000_000_000) as i32,
    })
}

/// `getPromExemplars`: value, timestamp, `trace_id`/`span_id` in hex, and the filtered
/// attributes when everything fits in 128 runes. Exemplars without a value are left out.
fn exemplars(ex: &[Exemplar]) -> Vec<pb::Exemplar> {
    let mut out = Vec::with_capacity(ex.len());
    for e in ex {
        let value = match e.value {
            Some(exemplar::Value::AsDouble(d)) => d,
            Some(exemplar::Value::AsInt(i)) => i as f64,
            None => continue,
        };
        let mut labels: Vec<LabelPair> = Vec::new();
        let mut runes = 0usize;
        for (k, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
            if id.iter().any(|b| *b != 0) {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                runes += k.len() + hex.len();
                labels.push(LabelPair::new(k, hex));
            }
        }
        let attrs: Vec<(String, String)> = e
            .filtered_attributes
            .iter()
            .map(|kv| (kv.key.clone(), value_string(kv.value.as_ref())))
            .collect();
        runes += attrs
            .iter()
            .map(|(k, v)| k.chars().count() + v.chars().count())
            .sum::<usize>();
        if runes <= MAX_EXEMPLAR_RUNES {
            for (k, v) in attrs {
                if !labels.iter().any(|l| l.name() == k) {
                    labels.push(LabelPair::new(k, v));
                }
            }
        }
        labels.sort_by(|a, b| a.name().cmp(b.name()));
        out.push(pb::Exemplar {
            label: labels,
            value: Some(value),
            timestamp: timestamp(e.time_unix_nano)
                .filter(|t| t.seconds != 0 || t.nanos >= 1_000_000),
        });
    }
    out
}

/// One series as an `io.prometheus.client.Metric` (the value conversions of
/// `addGaugeNumberDataPoints`, `addSumNumberDataPoints`, `addHistogramDataPoints`,
/// `addExponentialHistogramDataPoints` and `addSummaryDataPoints`).
fn to_metric(labels: Labels, point: Point, mtype: MetricType) -> Result<Metric, String> {
    let point = match point {
        Point::Exponentials(v) => merge_exponentials(v)?,
        p => p,
    };
    let mut m = Metric {
        label: to_pairs(labels),
        ..Metric::default()
    };
    match point {
        // A monotonic sum is a counter (with its last exemplar and its start time); a gauge
        // or a non-monotonic sum is a gauge.
        Point::Number(p) if mtype == MetricType::Counter => {
            m.counter = Some(Box::new(pb::Counter {
                value: Some(number(&p)),
                exemplar: exemplars(&p.exemplars).pop(),
                created_timestamp: timestamp(p.start_time_unix_nano),
            }));
        }
        Point::Number(p) => {
            m.gauge = Some(pb::Gauge {
                value: Some(number(&p)),
            })
        }
        Point::Histogram(p) => m.histogram = Some(Box::new(classic_histogram(&p))),
        Point::Exponential(p) => m.histogram = Some(Box::new(native_histogram(&p)?)),
        Point::Exponentials(_) => unreachable!("merged above"),
        Point::Summary(p) => {
            m.summary = Some(Box::new(pb::Summary {
                sample_count: Some(p.count),
                sample_sum: Some(p.sum),
                quantile: p
                    .quantile_values
                    .iter()
                    .map(|q| pb::Quantile {
                        quantile: Some(q.quantile),
                        value: Some(q.value),
                    })
                    .collect(),
                created_timestamp: timestamp(p.start_time_unix_nano),
            }))
        }
    }
    Ok(m)
}

/// `addHistogramDataPoints`: cumulative buckets for the explicit bounds, the count as the
/// `+Inf` bucket; each exemplar goes to the first bucket whose bound is not below its value
/// (one per bucket here, the last such one).
fn classic_histogram(p: &HistogramDataPoint) -> pb::Histogram {
    let ex = exemplars(&p.exemplars);
    let mut ex_sorted = ex;
    ex_sorted.sort_by(|a, b| a.value.unwrap_or(0.0).total_cmp(&b.value.unwrap_or(0.0)));
    let mut next = 0;
    let mut cumulative: u64 = 0;
    let mut buckets = Vec::with_capacity(p.explicit_bounds.len() + 1);
    for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
        cumulative = cumulative.wrapping_add(*count);
        let mut exemplar = None;
        while next < ex_sorted.len() && ex_sorted[next].value.unwrap_or(0.0) <= *bound {
            exemplar = Some(Box::new(ex_sorted[next].clone()));
            next += 1;
        }
        buckets.push(pb::Bucket {
            cumulative_count: Some(cumulative),
            upper_bound: Some(*bound),
            exemplar,
            ..pb::Bucket::default()
        });
    }
    if let Some(inf) = ex_sorted.get(next..).and_then(|r| r.last()) {
        buckets.push(pb::Bucket {
            cumulative_count: Some(p.count),
            upper_bound: Some(f64::INFINITY),
            exemplar: Some(Box::new(inf.clone())),
            ..pb::Bucket::default()
        });
    }
    pb::Histogram {
        sample_count: Some(p.count),
        sample_sum: p.sum,
        bucket: buckets,
        created_timestamp: timestamp(p.start_time_unix_nano),
        ..pb::Histogram::default()
    }
}

/// `exponentialToNativeHistogram`: the scale as the schema (scaled down to 8 at most), the
/// zero bucket with Prometheus' fixed threshold, sparse spans and deltas.
fn native_histogram(p: &ExponentialHistogramDataPoint) -> Result<pb::Histogram, String> {
    let mut scale = p.scale;
    if scale < SCHEMA_MIN {
        return Err(format!(
            "cannot convert exponential to native histogram. Scale must be >= {SCHEMA_MIN}, was {scale}"
        ));
    }
    let mut scale_down = 0;
    if scale > SCHEMA_MAX {
        scale_down = scale - SCHEMA_MAX;
        scale = SCHEMA_MAX;
    }
    let empty = Buckets::default();
    let pos = p.positive.as_ref().unwrap_or(&empty);
    let neg = p.negative.as_ref().unwrap_or(&empty);
    let (pspans, pdeltas) = buckets_layout(&pos.bucket_counts, pos.offset, scale_down);
    let (nspans, ndeltas) = buckets_layout(&neg.bucket_counts, neg.offset, scale_down);
    Ok(pb::Histogram {
        sample_count: Some(p.count),
        sample_sum: Some(p.sum.unwrap_or(0.0)),
        schema: Some(scale),
        zero_threshold: Some(ZERO_THRESHOLD),
        zero_count: Some(p.zero_count),
        positive_span: pspans,
        positive_delta: pdeltas,
        negative_span: nspans,
        negative_delta: ndeltas,
        created_timestamp: timestamp(p.start_time_unix_nano),
        exemplars: exemplars(&p.exemplars),
        ..pb::Histogram::default()
    })
}

/// `appendDelta`: one more bucket in the last span.
fn append_delta(spans: &mut [pb::BucketSpan], deltas: &mut Vec<i64>, c: i64, prev: &mut i64) {
    if let Some(s) = spans.last_mut() {
        s.length = Some(s.length.unwrap_or(0) + 1);
    }
    deltas.push(c.wrapping_sub(*prev));
    *prev = c;
}

/// A bucket after `gap` empty ones: a gap of more than two starts a new span, a smaller one
/// is filled with empty buckets.
fn step(spans: &mut Vec<pb::BucketSpan>, deltas: &mut Vec<i64>, gap: i64, c: i64, prev: &mut i64) {
    if gap > 2 {
        spans.push(pb::BucketSpan {
            offset: Some(gap as i32),
            length: Some(0),
        });
    } else {
        for _ in 0..gap {
            append_delta(spans, deltas, 0, prev);
        }
    }
    append_delta(spans, deltas, c, prev);
}

/// `convertBucketsLayout` with `adjustOffset`: OTel's dense buckets (index 0 is `(1, base]`)
/// to Prometheus' spans and deltas (index 0 is `(1/base, 1]`), merging `2^scale_down` buckets
/// into one; gaps of more than two buckets start a new span. Go's wrapping integer
/// arithmetic is kept; indices are validated by the caller.
fn buckets_layout(counts: &[u64], offset: i32, scale_down: i32) -> (Vec<pb::BucketSpan>, Vec<i64>) {
    if counts.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let sd = scale_down.clamp(0, 31) as u32;
    let off = offset as i64;
    let mut spans: Vec<pb::BucketSpan> = Vec::new();
    let mut deltas: Vec<i64> = Vec::new();
    let mut count: i64 = 0;
    let mut prev: i64 = 0;
    let mut bucket_idx = (off >> sd) + 1;
    spans.push(pb::BucketSpan {
        offset: Some(((off >> sd) + 1) as i32),
        length: Some(0),
    });
    for (i, c) in counts.iter().enumerate() {
        let next = ((i as i64 + off) >> sd) + 1;
        if bucket_idx == next {
            count = count.wrapping_add(*c as i64);
            continue;
        }
        if count == 0 {
            count = *c as i64;
            continue;
        }
        step(
            &mut spans,
            &mut deltas,
            next - bucket_idx - 1,
            count,
            &mut prev,
        );
        count = *c as i64;
        bucket_idx = next;
    }
    let gap = ((counts.len() as i64 + off - 1) >> sd) + 1 - bucket_idx;
    step(&mut spans, &mut deltas, gap, count, &mut prev);
    (spans, deltas)
}

#[cfg(test)]
mod tests;
