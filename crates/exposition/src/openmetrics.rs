//! OpenMetrics 1.0 text: a writer (as prometheus/common v0.67 `expfmt`'s
//! `MetricFamilyToOpenMetrics` with created lines writes it) and a parser into the protobuf
//! families the store keeps (as client_golang represents them: counters named with `_total`,
//! created samples as created timestamps, exemplars as protobuf exemplars, `info` as a gauge
//! `<name>_info` of 1, `stateset` as a gauge with one series per state).
//!
//! Neither is used unless enabled (`--web.enable-openmetrics`, `--push.enable-openmetrics`).

use crate::float::write_go_float;
use crate::names::{is_legacy_name, write_text_name};
use crate::pb::{
    Bucket, Exemplar, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Timestamp, Untyped,
};
use crate::text_encode::escape_into;
use std::collections::HashMap;

/// Appends a float as OpenMetrics wants it (`1.0`, `0.0`, `+Inf`, always a `.` or exponent).
pub fn write_om_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let start = out.len();
        write_go_float(out, v);
        if !out[start..].contains(['e', '.']) {
            out.push_str(".0");
        }
    }
}

fn write_labels(out: &mut String, name: &str, labels: &[LabelPair], extra: Option<(&str, f64)>) {
    let quoted = !name.is_empty() && !is_legacy_name(name);
    let mut sep = '{';
    if quoted {
        out.push('{');
        write_text_name(out, name);
        sep = ',';
    } else {
        out.push_str(name);
    }
    if labels.is_empty() && extra.is_none() {
        if quoted {
            out.push('}');
        }
        return;
    }
    for l in labels {
        out.push(sep);
        write_text_name(out, l.name());
        out.push_str("=\"");
        escape_into(out, l.value(), true);
        out.push('"');
        sep = ',';
    }
    if let Some((n, v)) = extra {
        out.push(sep);
        out.push_str(n);
        out.push_str("=\"");
        write_om_float(out, v);
        out.push('"');
    }
    out.push('}');
}

fn ts_seconds(t: &Timestamp) -> f64 {
    t.seconds as f64 + f64::from(t.nanos) / 1e9
}

enum Value {
    Float(f64),
    Int(u64),
}

struct Sample<'a> {
    name: &'a str,
    suffix: &'a str,
    m: &'a Metric,
    extra: Option<(&'a str, f64)>,
    value: Value,
    exemplar: Option<&'a Exemplar>,
}

fn write_sample(out: &mut String, s: Sample) {
    let full = format!("{}{}", s.name, s.suffix);
    write_labels(out, &full, &s.m.label, s.extra);
    out.push(' ');
    match s.value {
        Value::Float(v) => write_om_float(out, v),
        Value::Int(v) => out.push_str(itoa::Buffer::new().format(v)),
    }
    if let Some(ts) = s.m.timestamp_ms {
        out.push(' ');
        write_om_float(out, ts as f64 / 1000.0);
    }
    if let Some(e) = s.exemplar.filter(|e| !e.label.is_empty()) {
        out.push_str(" # ");
        write_labels(out, "", &e.label, None);
        out.push(' ');
        write_om_float(out, e.value.unwrap_or(0.0));
        if let Some(t) = &e.timestamp {
            out.push(' ');
            write_om_float(out, ts_seconds(t));
        }
    }
    out.push('\n');
}

fn write_created(out: &mut String, name: &str, m: &Metric, t: Option<&Timestamp>) {
    if let Some(t) = t {
        write_labels(out, &format!("{name}_created"), &m.label, None);
        out.push(' ');
        write_om_float(out, ts_seconds(t));
        out.push('\n');
    }
}

/// Appends one family in OpenMetrics 1.0 (no `# EOF`; see [`EOF`]). Counters whose name ends
/// in `_total` are written under the name without it, others as `unknown`; created
/// timestamps become `_created` samples. Gauge histograms use `_gcount`/`_gsum` as the
/// specification requires (expfmt writes `_count`/`_sum`); float histograms are written with
/// float counts (expfmt refuses them).
pub fn write_family(
    out: &mut String,
    name: &str,
    help: Option<&str>,
    unit: Option<&str>,
    t: MetricType,
    metrics: &[Metric],
) {
    let total = t == MetricType::Counter && name.ends_with("_total");
    let base = if total { &name[..name.len() - 6] } else { name };
    write_header(out, base, help, unit, t, total);
    for m in metrics {
        write_metric(out, name, base, total, t, m);
    }
}

/// The `# HELP`, `# TYPE` and `# UNIT` lines of a family written under `base`.
fn write_header(
    out: &mut String,
    base: &str,
    help: Option<&str>,
    unit: Option<&str>,
    t: MetricType,
    total: bool,
) {
    if let Some(h) = help {
        out.push_str("# HELP ");
        write_text_name(out, base);
        out.push(' ');
        escape_into(out, h, true);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    write_text_name(out, base);
    out.push_str(match t {
        MetricType::Counter if total => " counter\n",
        MetricType::Counter | MetricType::Untyped => " unknown\n",
        MetricType::Gauge => " gauge\n",
        MetricType::Summary => " summary\n",
        MetricType::Histogram => " histogram\n",
        MetricType::GaugeHistogram => " gaugehistogram\n",
    });
    if let Some(u) = unit.filter(|u| !u.is_empty() && base.ends_with(&format!("_{u}"))) {
        out.push_str("# UNIT ");
        write_text_name(out, base);
        out.push(' ');
        escape_into(out, u, true);
        out.push('\n');
    }
}

/// A sample line's parts.
fn sample<'a>(
    name: &'a str,
    suffix: &'a str,
    m: &'a Metric,
    extra: Option<(&'a str, f64)>,
    value: Value,
    exemplar: Option<&'a Exemplar>,
) -> Sample<'a> {
    Sample {
        name,
        suffix,
        m,
        extra,
        value,
        exemplar,
    }
}

/// The samples of one metric of a family of type `t` (`name` as pushed, `base` without a
/// counter's `_total`).
fn write_metric(out: &mut String, name: &str, base: &str, total: bool, t: MetricType, m: &Metric) {
    match t {
        MetricType::Counter => {
            let Some(c) = &m.counter else { return };
            let n = if total { name } else { base };
            write_sample(
                out,
                sample(
                    n,
                    "",
                    m,
                    None,
                    Value::Float(c.value.unwrap_or(0.0)),
                    c.exemplar.as_ref(),
                ),
            );
            write_created(out, base, m, c.created_timestamp.as_ref());
        }
        MetricType::Gauge => {
            let v = m.gauge.as_ref().and_then(|g| g.value).unwrap_or(0.0);
            write_sample(out, sample(base, "", m, None, Value::Float(v), None));
        }
        MetricType::Untyped => {
            let v = m.untyped.as_ref().and_then(|u| u.value).unwrap_or(0.0);
            write_sample(out, sample(base, "", m, None, Value::Float(v), None));
        }
        MetricType::Summary => {
            let Some(s) = &m.summary else { return };
            for q in &s.quantile {
                let extra = Some(("quantile", q.quantile.unwrap_or(0.0)));
                let v = Value::Float(q.value.unwrap_or(0.0));
                write_sample(out, sample(base, "", m, extra, v, None));
            }
            let sum = Value::Float(s.sample_sum.unwrap_or(0.0));
            write_sample(out, sample(base, "_sum", m, None, sum, None));
            let count = Value::Int(s.sample_count.unwrap_or(0));
            write_sample(out, sample(base, "_count", m, None, count, None));
            write_created(out, base, m, s.created_timestamp.as_ref());
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            let Some(h) = &m.histogram else { return };
            write_histogram(out, base, t == MetricType::GaugeHistogram, m, h);
        }
    }
}

/// A (gauge) histogram's samples: buckets with a `+Inf` one, sum and count, integer counts
/// unless it is a float histogram.
fn write_histogram(out: &mut String, base: &str, gauge: bool, m: &Metric, h: &Histogram) {
    let float = h.sample_count_float.unwrap_or(0.0) > 0.0
        || h.bucket
            .iter()
            .any(|b| b.cumulative_count_float.unwrap_or(0.0) > 0.0);
    let count = |i: Option<u64>, f: Option<f64>| {
        if float {
            Value::Float(f.filter(|f| *f != 0.0).unwrap_or(i.unwrap_or(0) as f64))
        } else {
            Value::Int(i.unwrap_or(0))
        }
    };
    let mut inf_seen = false;
    for b in &h.bucket {
        let ub = b.upper_bound.unwrap_or(0.0);
        inf_seen |= ub == f64::INFINITY;
        let v = count(b.cumulative_count, b.cumulative_count_float);
        let ex = b.exemplar.as_deref();
        write_sample(out, sample(base, "_bucket", m, Some(("le", ub)), v, ex));
    }
    if !inf_seen {
        let v = count(h.sample_count, h.sample_count_float);
        let extra = Some(("le", f64::INFINITY));
        write_sample(out, sample(base, "_bucket", m, extra, v, None));
    }
    let sum = Value::Float(h.sample_sum.unwrap_or(0.0));
    let (s_sum, s_count) = if gauge {
        ("_gsum", "_gcount")
    } else {
        ("_sum", "_count")
    };
    write_sample(out, sample(base, s_sum, m, None, sum, None));
    let c = count(h.sample_count, h.sample_count_float);
    write_sample(out, sample(base, s_count, m, None, c, None));
    if !gauge {
        write_created(out, base, m, h.created_timestamp.as_ref());
    }
}

/// The line that ends an OpenMetrics exposition.
pub const EOF: &str = "# EOF\n";

/// A parse failure of an OpenMetrics push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("openmetrics parsing error in line {line}: {msg}")]
pub struct OmParseError {
    pub line: usize,
    pub msg: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OmType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

struct OmFamily {
    name: String,
    t: OmType,
    help: Option<String>,
    unit: Option<String>,
    /// Metrics by their label set (sorted `name=value` pairs), in order of appearance.
    metrics: Vec<(Vec<(String, String)>, Metric)>,
    index: HashMap<Vec<(String, String)>, usize>,
}

/// Label pairs as read, in order.
type Labels = Vec<(String, String)>;

struct RawSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<f64>,
    exemplar: Option<Exemplar>,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn name(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(r.len(), |(i, _)| i);
        if n == 0 {
            return Err(format!("expected a name at {:?}", truncate(r)));
        }
        self.pos += n;
        Ok(r[..n].to_string())
    }
    fn quoted(&mut self) -> Result<String, String> {
        if !self.eat('"') {
            return Err(format!("expected '\"' at {:?}", truncate(self.rest())));
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    other => {
                        return Err(format!(
                            "invalid escape sequence '\\{}'",
                            other.map_or(String::new(), |(_, c)| c.to_string())
                        ))
                    }
                },
                c => out.push(c),
            }
        }
        Err("unterminated quoted string".into())
    }
    fn token(&mut self) -> &'a str {
        let r = self.rest();
        let n = r.find(' ').unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && !s.is_empty() =>
        {
            s.parse::<f64>()
                .map_err(|_| format!("invalid number {s:?}"))
        }
        _ => Err(format!("invalid number {s:?}")),
    }
}

/// `{a="b",...}` (the cursor at `{`); an unquoted or quoted metric name may come first when
/// `name_inside` is set (then returned).
fn parse_labels(c: &mut Cursor, name_inside: bool) -> Result<(Option<String>, Labels), String> {
    let mut labels = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut name = None;
    if !c.eat('{') {
        return Ok((None, labels));
    }
    let mut first = true;
    loop {
        if c.eat('}') {
            return Ok((name, labels));
        }
        let n = c.name()?;
        if c.eat('=') {
            let v = c.quoted()?;
            // Linear also for a hostile line with very many labels.
            let dup = if labels.len() < 16 {
                labels.iter().any(|(k, _)| *k == n)
            } else {
                !seen.insert(n.clone())
            };
            if dup {
                return Err(format!("duplicate label name {n:?}"));
            }
            if labels.len() == 15 {
                seen.extend(labels.iter().map(|(k, _)| k.clone()));
                seen.insert(n.clone());
            }
            labels.push((n, v));
        } else if first && name_inside {
            name = Some(n);
        } else {
            return Err(format!("expected '=' after label name {n:?}"));
        }
        first = false;
        if c.eat(',') {
            continue;
        }
        if c.eat('}') {
            return Ok((name, labels));
        }
        return Err(format!("unexpected {:?} in label set", truncate(c.rest())));
    }
}

fn parse_sample(line: &str) -> Result<RawSample, String> {
    let mut c = Cursor { s: line, pos: 0 };
    let (name, labels) = if c.peek() == Some('{') {
        let (n, l) = parse_labels(&mut c, true)?;
        (n.ok_or("missing metric name")?, l)
    } else {
        let n = c.name()?;
        let (_, l) = parse_labels(&mut c, false)?;
        (n, l)
    };
    if !c.eat(' ') {
        return Err(format!(
            "expected ' ' before the value at {:?}",
            truncate(c.rest())
        ));
    }
    let value = parse_float(c.token())?;
    let mut timestamp = None;
    let mut exemplar = None;
    if c.eat(' ') {
        if c.rest().starts_with('#') {
            c.pos -= 1;
        } else {
            timestamp = Some(parse_float(c.token())?);
        }
    }
    if c.rest().starts_with(" # ") {
        c.pos += 3;
        let (_, labels) = parse_labels(&mut c, false)?;
        if !c.eat(' ') {
            return Err("expected the exemplar value".into());
        }
        let v = parse_float(c.token())?;
        let mut ex = Exemplar {
            label: labels
                .into_iter()
                .map(|(n, v)| LabelPair::new(n, v))
                .collect(),
            value: Some(v),
            timestamp: None,
        };
        if c.eat(' ') {
            ex.timestamp = Some(timestamp_of(parse_float(c.token())?));
        }
        exemplar = Some(ex);
    }
    if !c.rest().is_empty() {
        return Err(format!(
            "unexpected {:?} at the end of the sample",
            truncate(c.rest())
        ));
    }
    Ok(RawSample {
        name,
        labels,
        value,
        timestamp,
        exemplar,
    })
}

fn timestamp_of(seconds: f64) -> Timestamp {
    let s = seconds.floor();
    Timestamp {
        seconds: s as i64,
        nanos: ((seconds - s) * 1e9).round().min(999_999_999.0) as i32,
    }
}

fn om_type(s: &str) -> Option<OmType> {
    Some(match s {
        "counter" => OmType::Counter,
        "gauge" => OmType::Gauge,
        "histogram" => OmType::Histogram,
        "gaugehistogram" => OmType::GaugeHistogram,
        "summary" => OmType::Summary,
        "info" => OmType::Info,
        "stateset" => OmType::StateSet,
        "unknown" => OmType::Unknown,
        _ => return None,
    })
}

/// Every suffix of [`suffixes`], the empty one first.
const ALL_SUFFIXES: [&str; 9] = [
    "", "_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info",
];

/// The suffixes a sample of a family of type `t` may carry.
fn suffixes(t: OmType) -> &'static [&'static str] {
    match t {
        OmType::Counter => &["_total", "_created"],
        OmType::Histogram => &["_bucket", "_count", "_sum", "_created"],
        OmType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        OmType::Summary => &["", "_count", "_sum", "_created"],
        OmType::Info => &["_info"],
        _ => &[""],
    }
}

impl OmFamily {
    fn metric(&mut self, key: Vec<(String, String)>) -> &mut Metric {
        let i = match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let mut sorted = key.clone();
                sorted.sort();
                let m = Metric {
                    label: sorted
                        .iter()
                        .map(|(n, v)| LabelPair::new(n.clone(), v.clone()))
                        .collect(),
                    ..Default::default()
                };
                self.metrics.push((key.clone(), m));
                self.index.insert(key, self.metrics.len() - 1);
                self.metrics.len() - 1
            }
        };
        &mut self.metrics[i].1
    }

    fn add(&mut self, suffix: &str, mut s: RawSample) -> Result<(), String> {
        let take = |labels: &mut Vec<(String, String)>, name: &str| -> Option<String> {
            let i = labels.iter().position(|(n, _)| n == name)?;
            Some(labels.remove(i).1)
        };
        let special = match self.t {
            OmType::Histogram | OmType::GaugeHistogram if suffix == "_bucket" => {
                let le = take(&mut s.labels, "le").ok_or("bucket without an \"le\" label")?;
                Some(parse_float(&le)?)
            }
            OmType::Summary if suffix.is_empty() => {
                let q = take(&mut s.labels, "quantile")
                    .ok_or("summary sample without a \"quantile\" label")?;
                Some(parse_float(&q)?)
            }
            OmType::StateSet => None,
            _ => None,
        };
        let mut key = s.labels.clone();
        key.sort();
        let ts_ms = s.timestamp.map(|t| (t * 1000.0).round() as i64);
        let name = self.name.clone();
        let t = self.t;
        let m = self.metric(key);
        if ts_ms.is_some() {
            m.timestamp_ms = ts_ms;
        }
        let whole = |v: f64| -> Result<u64, String> {
            if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 {
                Ok(v as u64)
            } else {
                Err(format!(
                    "count {v} of {name:?} is not a non-negative integer"
                ))
            }
        };
        match (t, suffix) {
            (OmType::Counter, "_total") => {
                let c = m.counter.get_or_insert_with(Default::default);
                c.value = Some(s.value);
                c.exemplar = s.exemplar;
            }
            (OmType::Counter, "_created") => {
                m.counter
                    .get_or_insert_with(Default::default)
                    .created_timestamp = Some(timestamp_of(s.value));
            }
            (OmType::Gauge, _) => {
                m.gauge = Some(Gauge {
                    value: Some(s.value),
                })
            }
            (OmType::Unknown, _) => {
                m.untyped = Some(Untyped {
                    value: Some(s.value),
                })
            }
            (OmType::Info, _) => {
                m.gauge = Some(Gauge {
                    value: Some(s.value),
                })
            }
            (OmType::StateSet, _) => {
                m.gauge = Some(Gauge {
                    value: Some(s.value),
                })
            }
            (OmType::Summary, _) => {
                let sm = m.summary.get_or_insert_with(Default::default);
                match suffix {
                    "" => sm.quantile.push(Quantile {
                        quantile: special,
                        value: Some(s.value),
                    }),
                    "_count" => sm.sample_count = Some(whole(s.value)?),
                    "_sum" => sm.sample_sum = Some(s.value),
                    _ => sm.created_timestamp = Some(timestamp_of(s.value)),
                }
            }
            (OmType::Histogram | OmType::GaugeHistogram, _) => {
                let h: &mut Histogram = m.histogram.get_or_insert_with(Default::default);
                match suffix {
                    "_bucket" => h.bucket.push(Bucket {
                        cumulative_count: Some(whole(s.value)?),
                        upper_bound: special,
                        exemplar: s.exemplar.map(Box::new),
                        ..Default::default()
                    }),
                    "_count" | "_gcount" => h.sample_count = Some(whole(s.value)?),
                    "_sum" | "_gsum" => h.sample_sum = Some(s.value),
                    _ => h.created_timestamp = Some(timestamp_of(s.value)),
                }
            }
            (OmType::Counter, _) => unreachable!("suffix checked"),
        }
        Ok(())
    }

    fn into_family(self) -> MetricFamily {
        let (name, t) = match self.t {
            OmType::Counter => (format!("{}_total", self.name), MetricType::Counter),
            OmType::Gauge | OmType::StateSet => (self.name.clone(), MetricType::Gauge),
            OmType::Info => (format!("{}_info", self.name), MetricType::Gauge),
            OmType::Histogram => (self.name.clone(), MetricType::Histogram),
            OmType::GaugeHistogram => (self.name.clone(), MetricType::GaugeHistogram),
            OmType::Summary => (self.name.clone(), MetricType::Summary),
            OmType::Unknown => (self.name.clone(), MetricType::Untyped),
        };
        MetricFamily {
            name: Some(name),
            help: self.help,
            r#type: Some(t as i32),
            metric: self.metrics.into_iter().map(|(_, m)| m).collect(),
            unit: self.unit,
        }
    }
}

/// Parses an OpenMetrics 1.0 exposition (ending in `# EOF`) into protobuf families.
pub fn parse_openmetrics(body: &[u8]) -> Result<Vec<MetricFamily>, OmParseError> {
    let err = |line: usize, msg: String| OmParseError { line, msg };
    let text = std::str::from_utf8(body).map_err(|_| err(0, "body is not valid UTF-8".into()))?;
    let mut p = OmParser::default();
    let mut eof = false;
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        if eof {
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            return Err(err(n, "content after \"# EOF\"".into()));
        }
        if line.is_empty() {
            if lines.peek().is_none() {
                break;
            }
            return Err(err(n, "empty line".into()));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        let done = if let Some(rest) = line.strip_prefix("# ") {
            p.comment(rest)
        } else if line.starts_with('#') {
            Err("invalid comment".into())
        } else {
            p.sample(line)
        };
        done.map_err(|m| err(n, m))?;
    }
    if !eof {
        return Err(err(text.split('\n').count(), "missing \"# EOF\"".into()));
    }
    Ok(p.families
        .into_iter()
        .filter(|f| !f.metrics.is_empty())
        .map(OmFamily::into_family)
        .collect())
}

/// The families of an OpenMetrics body being parsed, in the order they appear.
#[derive(Default)]
struct OmParser {
    families: Vec<OmFamily>,
    /// Index into `families` by name (lookups stay O(1): a push with many families must
    /// stay linear).
    by_name: HashMap<String, usize>,
}

impl OmParser {
    /// A new family of type unknown named `name`.
    fn add_family(&mut self, name: String) -> usize {
        self.families.push(OmFamily {
            name: name.clone(),
            t: OmType::Unknown,
            help: None,
            unit: None,
            metrics: Vec::new(),
            index: HashMap::new(),
        });
        self.by_name.insert(name, self.families.len() - 1);
        self.families.len() - 1
    }

    /// A `# TYPE`, `# HELP` or `# UNIT` line (`rest` after the `# `).
    fn comment(&mut self, rest: &str) -> Result<(), String> {
        let (kw, rest) = rest.split_once(' ').ok_or("invalid comment")?;
        let mut c = Cursor { s: rest, pos: 0 };
        let name = c.name()?;
        if !c.eat(' ') && kw != "HELP" {
            return Err(format!("missing value in # {kw} line"));
        }
        let value = c.rest();
        let fi = match self.by_name.get(&name) {
            Some(fi) => *fi,
            None => self.add_family(name.clone()),
        };
        let f = &mut self.families[fi];
        if !f.metrics.is_empty() {
            return Err(format!("# {kw} line for {name:?} after its samples"));
        }
        match kw {
            "TYPE" => {
                f.t = om_type(value).ok_or_else(|| format!("invalid metric type {value:?}"))?
            }
            "HELP" => f.help = Some(unescape_help(value)?),
            "UNIT" => f.unit = Some(value.to_string()),
            _ => return Err(format!("invalid comment keyword {kw:?}")),
        }
        Ok(())
    }

    /// A sample line, added to its family: the longest declared name the sample name extends
    /// with a suffix of its type, else a family of type unknown named as the sample.
    fn sample(&mut self, line: &str) -> Result<(), String> {
        let s = parse_sample(line)?;
        // Candidates are looked up by name (never a walk over all families).
        let mut found = None;
        for sfx in ALL_SUFFIXES {
            let Some(base) = s.name.strip_suffix(sfx) else {
                continue;
            };
            if let Some(&fi) = self.by_name.get(base) {
                if suffixes(self.families[fi].t).contains(&sfx) {
                    found = Some((fi, sfx.to_string()));
                    break;
                }
            }
        }
        let (fi, sfx) = match found {
            Some(x) => x,
            None => {
                if self.by_name.contains_key(&s.name) {
                    return Err(format!("invalid sample name {:?} for its family", s.name));
                }
                (self.add_family(s.name.clone()), String::new())
            }
        };
        if s.exemplar.is_some() && !(sfx == "_total" || sfx == "_bucket") {
            return Err(format!(
                "exemplar on {:?}: only counters and buckets carry them",
                s.name
            ));
        }
        self.families[fi].add(&sfx, s)
    }
}

/// A `# HELP` text with its escapes (`\\n`, `\\"`, `\\\\`) undone.
fn unescape_help(value: &str) -> Result<String, String> {
    let mut h = String::new();
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.next() {
                Some('n') => h.push('\n'),
                Some('"') => h.push('"'),
                Some('\\') => h.push('\\'),
                other => return Err(format!("invalid escape \\{other:?}")),
            }
        } else {
            h.push(ch);
        }
    }
    Ok(h)
}

/// Whether a `Content-Type` names OpenMetrics text.
pub fn is_openmetrics(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP requests Requests served.\n\
# TYPE requests counter\n\
requests_total{path=\"/\"} 3.0 # {trace_id=\"abc\"} 1.0 1700000000.5\n\
requests_created{path=\"/\"} 1700000000.25\n\
# TYPE latency_seconds histogram\n\
# UNIT latency_seconds seconds\n\
latency_seconds_bucket{le=\"0.5\"} 1 # {trace_id=\"x\"} 0.3\n\
latency_seconds_bucket{le=\"+Inf\"} 2\n\
latency_seconds_count 2\n\
latency_seconds_sum 1.5\n\
latency_seconds_created 1700000000.0\n\
# TYPE build info\n\
build_info{version=\"1.2\"} 1\n\
# TYPE state stateset\n\
state{state=\"a\"} 1\n\
state{state=\"b\"} 0\n\
# TYPE temp gauge\n\
temp 21.5\n\
# TYPE queue gaugehistogram\n\
queue_bucket{le=\"+Inf\"} 4\n\
queue_gcount 4\n\
queue_gsum 10\n\
# TYPE q summary\n\
q{quantile=\"0.5\"} 0.2\n\
q_count 3\n\
q_sum 0.9\n\
something_else 7\n\
# EOF\n";

    #[test]
    fn parses_every_type_into_client_golang_families() {
        let fams = parse_openmetrics(BODY.as_bytes()).unwrap();
        let by: HashMap<&str, &MetricFamily> = fams.iter().map(|f| (f.name(), f)).collect();
        let c = &by["requests_total"];
        assert_eq!(c.metric_type(), MetricType::Counter);
        assert_eq!(c.help.as_deref(), Some("Requests served."));
        let ctr = c.metric[0].counter.as_ref().unwrap();
        assert_eq!(ctr.value, Some(3.0));
        assert_eq!(ctr.created_timestamp.as_ref().unwrap().nanos, 250_000_000);
        let ex = ctr.exemplar.as_ref().unwrap();
        assert_eq!(ex.label[0].value(), "abc");
        assert_eq!(ex.timestamp.as_ref().unwrap().seconds, 1_700_000_000);
        let h = &by["latency_seconds"];
        assert_eq!(h.unit.as_deref(), Some("seconds"));
        let hist = h.metric[0].histogram.as_ref().unwrap();
        assert_eq!(hist.bucket.len(), 2);
        assert!(hist.bucket[0].exemplar.is_some());
        assert_eq!(hist.sample_count, Some(2));
        assert!(hist.created_timestamp.is_some());
        assert_eq!(by["build_info"].metric_type(), MetricType::Gauge);
        assert_eq!(by["state"].metric.len(), 2);
        assert_eq!(by["queue"].metric_type(), MetricType::GaugeHistogram);
        assert_eq!(
            by["q"].metric[0].summary.as_ref().unwrap().quantile.len(),
            1
        );
        assert_eq!(by["something_else"].metric_type(), MetricType::Untyped);
    }

    #[test]
    fn many_families_parse_in_linear_time() {
        let mut body = String::new();
        for i in 0..50_000 {
            body.push_str(&format!("# TYPE f{i} counter\nf{i}_total 1\n"));
        }
        body.push_str("# EOF\n");
        // A lookup walking all families made this quadratic (minutes); by name it is linear.
        assert_eq!(parse_openmetrics(body.as_bytes()).unwrap().len(), 50_000);
    }

    #[test]
    fn refuses_malformed_input() {
        let many = format!(
            "a{{{}x0=\"1\"}} 1\n# EOF\n",
            (0..40).map(|i| format!("x{i}=\"1\",")).collect::<String>()
        );
        for (body, want) in [
            (many.as_str(), "duplicate label"),
            ("a 1\n", "missing \"# EOF\""),
            ("a 1\n# EOF\nb 2\n", "after \"# EOF\""),
            ("# TYPE a counter\na 1\n# EOF\n", "invalid sample name"),
            (
                "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n",
                "duplicate label",
            ),
            ("# TYPE a gauge\na 1 # {t=\"x\"} 1\n# EOF\n", "exemplar"),
            ("# TYPE a foo\n# EOF\n", "invalid metric type"),
            ("a x\n# EOF\n", "invalid number"),
        ] {
            let e = parse_openmetrics(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{body:?}: {e}");
        }
    }

    #[test]
    fn written_families_parse_back() {
        let fams = parse_openmetrics(BODY.as_bytes()).unwrap();
        let mut out = String::new();
        for f in &fams {
            write_family(
                &mut out,
                f.name(),
                f.help.as_deref(),
                f.unit.as_deref(),
                f.metric_type(),
                &f.metric,
            );
        }
        out.push_str(EOF);
        assert!(out.contains("# TYPE requests counter\nrequests_total{path=\"/\"} 3.0 # {trace_id=\"abc\"} 1.0 1.7000000005e+09\n"), "{out}");
        assert!(
            out.contains("requests_created{path=\"/\"} 1.70000000025e+09\n"),
            "{out}"
        );
        assert!(out.contains("queue_gcount 4\n"), "{out}");
        let again = parse_openmetrics(out.as_bytes()).unwrap();
        let names = |f: &[MetricFamily]| {
            let mut v: Vec<String> = f.iter().map(|f| f.name().to_string()).collect();
            v.sort();
            v
        };
        // `info` and `stateset` come back as gauges named as stored.
        let mut want = names(&fams);
        want.retain(|n| n != "build_info" && n != "state");
        let mut got = names(&again);
        got.retain(|n| n != "build_info" && n != "state");
        assert_eq!(got, want);
        let ctr = again.iter().find(|f| f.name() == "requests_total").unwrap();
        assert!(ctr.metric[0]
            .counter
            .as_ref()
            .unwrap()
            .created_timestamp
            .is_some());
    }
}
