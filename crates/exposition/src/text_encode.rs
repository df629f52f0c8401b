//! Writer for the text exposition format 0.0.4, byte-compatible with Go's `expfmt`.
//!
//! The store calls [`write_metric`] once per pushed metric, at push time, and keeps the bytes;
//! a scrape then writes [`write_header`] per family and concatenates the stored bytes.

use crate::float::write_text_float;
use crate::names::{is_legacy_name, write_text_name};
use crate::pb::{Metric, MetricType};

/// A metric whose value kind does not match its family's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} in metric {name}")]
pub struct EncodeError {
    pub expected: &'static str,
    pub name: String,
}

/// Appends the `# HELP` (if any) and `# TYPE` lines of a family.
pub fn write_header(out: &mut String, name: &str, help: Option<&str>, t: MetricType) {
    if let Some(help) = help {
        out.push_str("# HELP ");
        write_text_name(out, name);
        out.push(' ');
        escape_into(out, help, false);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    write_text_name(out, name);
    out.push(' ');
    out.push_str(t.text_name());
    out.push('\n');
}

/// Appends the sample lines of one metric of family `name` with type `t`. Labels are written in
/// the order they are stored. Histograms without a `+Inf` bucket get one, from the sample count.
pub fn write_metric(
    out: &mut String,
    name: &str,
    t: MetricType,
    m: &Metric,
) -> Result<(), EncodeError> {
    SCRATCH.with_borrow_mut(|scratch| write_metric_with(out, name, t, m, scratch))
}

/// Buffers [`write_metric`] keeps per thread between calls: the escaped label list of the
/// metric, and the `le`/`quantile` values of the previous metric formatted once (the metrics of
/// a family nearly always share their bounds, so each is formatted once per family, not once
/// per metric).
#[derive(Default)]
struct Scratch {
    labels: String,
    bounds: Vec<(u64, String)>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl Scratch {
    /// The text of the `i`-th bound `v` of the current metric, formatted only if it differs
    /// from the `i`-th bound of the previous one.
    fn bound(&mut self, i: usize, v: f64) -> &str {
        if self.bounds.len() <= i {
            self.bounds.resize_with(i + 1, || (0, String::new()));
            self.bounds[i].0 = !v.to_bits(); // differs from `v`: formatted below
        }
        let slot = &mut self.bounds[i];
        if slot.0 != v.to_bits() {
            slot.0 = v.to_bits();
            slot.1.clear();
            write_text_float(&mut slot.1, v);
        }
        &slot.1
    }
}

fn write_metric_with(
    out: &mut String,
    name: &str,
    t: MetricType,
    m: &Metric,
    scratch: &mut Scratch,
) -> Result<(), EncodeError> {
    let err = |expected| EncodeError {
        expected,
        name: name.to_string(),
    };
    // The escaped label list is the same on every line of a metric: build it once.
    let Scratch { labels, bounds: _ } = scratch;
    labels.clear();
    for (i, lp) in m.label.iter().enumerate() {
        if i > 0 {
            labels.push(',');
        }
        write_text_name(labels, lp.name());
        labels.push_str("=\"");
        escape_into(labels, lp.value(), true);
        labels.push('"');
    }
    let labels = std::mem::take(labels);
    let line = Line {
        name,
        quoted: !is_legacy_name(name),
        labels: &labels,
        timestamp: m.timestamp_ms,
    };
    let result = write_lines(out, t, m, &line, scratch).ok_or_else(|| err(expected_kind(t)));
    scratch.labels = labels;
    result
}

/// What a metric of type `t` must carry (for [`EncodeError`]).
fn expected_kind(t: MetricType) -> &'static str {
    match t {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Untyped => "untyped",
        MetricType::Summary => "summary",
        MetricType::Histogram | MetricType::GaugeHistogram => "histogram",
    }
}

/// The sample lines of [`write_metric`]; `None` if the metric lacks its type's value.
fn write_lines(
    out: &mut String,
    t: MetricType,
    m: &Metric,
    line: &Line<'_>,
    scratch: &mut Scratch,
) -> Option<()> {
    match t {
        MetricType::Counter => {
            let c = m.counter.as_ref()?;
            line.write(out, "", None, c.value.unwrap_or(0.0));
        }
        MetricType::Gauge => {
            let g = m.gauge.as_ref()?;
            line.write(out, "", None, g.value.unwrap_or(0.0));
        }
        MetricType::Untyped => {
            let u = m.untyped.as_ref()?;
            line.write(out, "", None, u.value.unwrap_or(0.0));
        }
        MetricType::Summary => {
            let s = m.summary.as_ref()?;
            for (i, q) in s.quantile.iter().enumerate() {
                let bound = scratch.bound(i, q.quantile.unwrap_or(0.0));
                line.write(out, "", Some(("quantile", bound)), q.value.unwrap_or(0.0));
            }
            line.write(out, "_sum", None, s.sample_sum.unwrap_or(0.0));
            line.write(out, "_count", None, s.sample_count.unwrap_or(0) as f64);
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            let h = m.histogram.as_ref()?;
            // Float histograms carry their counts in the `_float` fields (expfmt writes the
            // float when it is non-zero, else the integer).
            let count = match h.sample_count_float {
                Some(f) if f != 0.0 => f,
                _ => h.sample_count.unwrap_or(0) as f64,
            };
            let mut inf_seen = false;
            for (i, b) in h.bucket.iter().enumerate() {
                let ub = b.upper_bound.unwrap_or(0.0);
                let c = match b.cumulative_count_float {
                    Some(f) if f != 0.0 => f,
                    _ => b.cumulative_count.unwrap_or(0) as f64,
                };
                line.write(out, "_bucket", Some(("le", scratch.bound(i, ub))), c);
                if ub == f64::INFINITY {
                    inf_seen = true;
                }
            }
            if !inf_seen {
                line.write(out, "_bucket", Some(("le", "+Inf")), count);
            }
            line.write(out, "_sum", None, h.sample_sum.unwrap_or(0.0));
            line.write(out, "_count", None, count);
        }
    }
    Some(())
}

/// What every sample line of one metric shares.
struct Line<'a> {
    name: &'a str,
    /// Not a legacy name: written quoted, inside the braces (`{"my.metric",a="b"}`).
    quoted: bool,
    labels: &'a str,
    timestamp: Option<i64>,
}

impl Line<'_> {
    /// One line; `extra`: the `le`/`quantile` label, its value already formatted.
    fn write(&self, out: &mut String, suffix: &str, extra: Option<(&str, &str)>, value: f64) {
        let mut sep = '{';
        if self.quoted {
            out.push_str("{\"");
            escape_into(out, self.name, true);
            escape_into(out, suffix, true);
            out.push('"');
            sep = ',';
        } else {
            out.push_str(self.name);
            out.push_str(suffix);
        }
        if !self.labels.is_empty() || extra.is_some() {
            out.push(sep);
            out.push_str(self.labels);
            if let Some((ln, lv)) = extra {
                if !self.labels.is_empty() {
                    out.push(',');
                }
                out.push_str(ln);
                out.push_str("=\"");
                out.push_str(lv);
                out.push('"');
            }
            out.push('}');
        } else if self.quoted {
            out.push('}');
        }
        out.push(' ');
        write_text_float(out, value);
        if let Some(ts) = self.timestamp {
            out.push(' ');
            out.push_str(itoa::Buffer::new().format(ts));
        }
        out.push('\n');
    }
}

/// Escapes `\` and newline (and `"` in label values), as expfmt does.
pub fn escape_into(out: &mut String, s: &str, quote: bool) {
    if !s
        .bytes()
        .any(|b| b == b'\\' || b == b'\n' || (quote && b == b'"'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect()
    }

    #[test]
    fn counter_with_escaped_labels() {
        let m = Metric {
            label: labels(&[("a", "x\"y\\z\nw"), ("job", "j")]),
            counter: Some(Box::new(Counter {
                value: Some(1e6),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut s = String::new();
        write_metric(&mut s, "c_total", MetricType::Counter, &m).unwrap();
        assert_eq!(s, "c_total{a=\"x\\\"y\\\\z\\nw\",job=\"j\"} 1e+06\n");
    }

    #[test]
    fn histogram_without_inf_bucket_gets_one() {
        let m = Metric {
            histogram: Some(Box::new(Histogram {
                sample_count: Some(3),
                sample_sum: Some(2.5),
                bucket: vec![Bucket {
                    cumulative_count: Some(1),
                    upper_bound: Some(0.5),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut s = String::new();
        write_metric(&mut s, "h", MetricType::Histogram, &m).unwrap();
        assert_eq!(
            s,
            "h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 2.5\nh_count 3\n"
        );
    }

    /// The bounds of the previous metric are reused only where they are the same value: a
    /// metric with other, fewer or more bounds (and then a summary) still writes its own.
    #[test]
    fn bounds_remembered_between_metrics_never_leak_into_other_metrics() {
        let hist = |bounds: &[f64]| Metric {
            histogram: Some(Box::new(Histogram {
                sample_count: Some(9),
                bucket: bounds
                    .iter()
                    .map(|b| Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(*b),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let write = |m: &Metric, t| {
            let mut s = String::new();
            write_metric(&mut s, "h", t, m).unwrap();
            s
        };
        let h = MetricType::Histogram;
        let a = write(&hist(&[0.25, 1.0, 1e-7]), h);
        assert_eq!(
            a,
            "h_bucket{le=\"0.25\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1e-07\"} 1\n\
             h_bucket{le=\"+Inf\"} 9\nh_sum 0\nh_count 9\n"
        );
        assert_eq!(write(&hist(&[0.25, 1.0, 1e-7]), h), a);
        assert_eq!(
            write(&hist(&[0.5, -0.0]), h),
            "h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"0\"} 1\nh_bucket{le=\"+Inf\"} 9\nh_sum 0\nh_count 9\n"
        );
        assert_eq!(
            write(&hist(&[0.25, 0.0, 1e-7, f64::NAN, 3.0]), h),
            "h_bucket{le=\"0.25\"} 1\nh_bucket{le=\"0\"} 1\nh_bucket{le=\"1e-07\"} 1\n\
             h_bucket{le=\"NaN\"} 1\nh_bucket{le=\"3\"} 1\nh_bucket{le=\"+Inf\"} 9\nh_sum 0\nh_count 9\n"
        );
        let summary = Metric {
            summary: Some(Box::new(Summary {
                quantile: vec![
                    Quantile {
                        quantile: Some(0.25),
                        value: Some(1.0),
                    },
                    Quantile {
                        quantile: Some(0.99),
                        value: Some(2.0),
                    },
                ],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            write(&summary, MetricType::Summary),
            "h{quantile=\"0.25\"} 1\nh{quantile=\"0.99\"} 2\nh_sum 0\nh_count 0\n"
        );
    }

    #[test]
    fn summary_lines_and_header() {
        let m = Metric {
            label: labels(&[("job", "j")]),
            summary: Some(Box::new(Summary {
                sample_count: Some(1_000_000),
                sample_sum: Some(0.5),
                quantile: vec![Quantile {
                    quantile: Some(0.9),
                    value: Some(1.5e-7),
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut s = String::new();
        write_header(&mut s, "s", Some("a\\b\nc \"q\""), MetricType::Summary);
        write_metric(&mut s, "s", MetricType::Summary, &m).unwrap();
        assert_eq!(
            s,
            "# HELP s a\\\\b\\nc \"q\"\n# TYPE s summary\n\
             s{job=\"j\",quantile=\"0.9\"} 1.5e-07\ns_sum{job=\"j\"} 0.5\ns_count{job=\"j\"} 1e+06\n"
        );
    }

    #[test]
    fn utf8_names_are_quoted_and_gauge_histogram_is_a_histogram() {
        // prometheus/common v0.67 expfmt/text_create.go: non-legacy names go quoted inside
        // the braces, GAUGE_HISTOGRAM is written as `histogram`.
        let m = Metric {
            label: labels(&[("my.label", "v"), ("job", "j")]),
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        let mut s = String::new();
        write_header(&mut s, "my.metric", Some("h"), MetricType::Gauge);
        write_metric(&mut s, "my.metric", MetricType::Gauge, &m).unwrap();
        let bare = Metric {
            gauge: Some(Gauge { value: Some(2.0) }),
            ..Default::default()
        };
        write_metric(&mut s, "my.metric", MetricType::Gauge, &bare).unwrap();
        assert_eq!(
            s,
            "# HELP \"my.metric\" h\n# TYPE \"my.metric\" gauge\n\
             {\"my.metric\",\"my.label\"=\"v\",job=\"j\"} 1\n{\"my.metric\"} 2\n"
        );
        let mut s = String::new();
        write_header(&mut s, "gh", None, MetricType::GaugeHistogram);
        assert_eq!(s, "# TYPE gh histogram\n");
    }

    #[test]
    fn float_histogram_counts_are_written_as_floats() {
        let m = Metric {
            histogram: Some(Box::new(Histogram {
                sample_count_float: Some(2.5),
                sample_sum: Some(1.25),
                bucket: vec![Bucket {
                    cumulative_count_float: Some(0.5),
                    upper_bound: Some(1.0),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut s = String::new();
        write_metric(&mut s, "{h}", MetricType::Histogram, &m).unwrap();
        assert_eq!(
            s,
            "{\"{h}_bucket\",le=\"1\"} 0.5\n{\"{h}_bucket\",le=\"+Inf\"} 2.5\n\
             {\"{h}_sum\"} 1.25\n{\"{h}_count\"} 2.5\n"
        );
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        let m = Metric {
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        let mut s = String::new();
        let e = write_metric(&mut s, "x", MetricType::Counter, &m).unwrap_err();
        assert_eq!(e.to_string(), "expected counter in metric x");
    }
}
