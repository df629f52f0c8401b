//! Per-metric consistency rules (the ones client_golang's `Gather` applies to every metric) and
//! the Go-style text form of a metric used in their error messages.

use exposition::float::write_go_float;
use exposition::pb::{Metric, MetricType};
use std::fmt::Write;

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: a metric name the text format (and Prometheus) can read.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// Checks one metric (whose labels are already sorted) against its family, with the rules and
/// messages of client_golang's `checkMetricConsistency` (except series uniqueness, which the
/// index checks across groups).
pub fn check_metric(family: &str, t: MetricType, m: &Metric) -> Result<(), String> {
    let kind_ok = match t {
        MetricType::Gauge => m.gauge.is_some(),
        MetricType::Counter => m.counter.is_some(),
        MetricType::Summary => m.summary.is_some(),
        MetricType::Histogram => m.histogram.is_some(),
        MetricType::Untyped => m.untyped.is_some(),
        MetricType::GaugeHistogram => true,
    };
    if !kind_ok {
        return Err(format!(
            "collected metric {:?} {{ {}}} is not a {}",
            family,
            metric_text(m),
            t.as_str_name()
        ));
    }
    let mut previous = "";
    for lp in &m.label {
        let name = lp.name();
        if name == previous {
            return Err(format!(
                "collected metric {:?} {{ {}}} has two or more labels with the same name: {}",
                family,
                metric_text(m),
                name
            ));
        }
        if !is_valid_label_name(name) || name.starts_with("__") {
            return Err(format!(
                "collected metric {:?} {{ {}}} has a label with an invalid name: {}",
                family,
                metric_text(m),
                name
            ));
        }
        // The text format adds `le` to every bucket line: a second one would make the
        // scrape unreadable for Prometheus (found by issue 15: `/le/5` in a grouping key).
        if m.histogram.is_some() && name == "le" {
            return Err(format!(
                "collected metric {:?} {{ {}}} must not have an explicit \"le\" label",
                family,
                metric_text(m)
            ));
        }
        if m.summary.is_some() && name == "quantile" {
            return Err(format!(
                "collected metric {:?} {{ {}}} must not have an explicit \"quantile\" label",
                family,
                metric_text(m)
            ));
        }
        previous = name;
    }
    Ok(())
}

/// The compact protobuf text form of a metric, as Go's `proto.CompactTextString` of the
/// client_model version used by Pushgateway 1.5.1 prints it
/// (`label:<name:"job" value:"j" > gauge:<value:1 > `).
pub fn metric_text(m: &Metric) -> String {
    let mut s = String::new();
    for lp in &m.label {
        let _ = write!(s, "label:<name:{:?} value:{:?} > ", lp.name(), lp.value());
    }
    let num = |s: &mut String, field: &str, v: f64| {
        s.push_str(field);
        s.push(':');
        write_go_float(s, v);
        s.push(' ');
    };
    if let Some(g) = &m.gauge {
        s.push_str("gauge:<");
        if let Some(v) = g.value {
            num(&mut s, "value", v);
        }
        s.push_str("> ");
    }
    if let Some(c) = &m.counter {
        s.push_str("counter:<");
        if let Some(v) = c.value {
            num(&mut s, "value", v);
        }
        s.push_str("> ");
    }
    if let Some(sm) = &m.summary {
        s.push_str("summary:<");
        if let Some(c) = sm.sample_count {
            let _ = write!(s, "sample_count:{c} ");
        }
        if let Some(v) = sm.sample_sum {
            num(&mut s, "sample_sum", v);
        }
        for q in &sm.quantile {
            s.push_str("quantile:<");
            if let Some(v) = q.quantile {
                num(&mut s, "quantile", v);
            }
            if let Some(v) = q.value {
                num(&mut s, "value", v);
            }
            s.push_str("> ");
        }
        s.push_str("> ");
    }
    if let Some(u) = &m.untyped {
        s.push_str("untyped:<");
        if let Some(v) = u.value {
            num(&mut s, "value", v);
        }
        s.push_str("> ");
    }
    if let Some(ts) = m.timestamp_ms {
        let _ = write!(s, "timestamp_ms:{ts} ");
    }
    if let Some(h) = &m.histogram {
        s.push_str("histogram:<");
        if let Some(c) = h.sample_count {
            let _ = write!(s, "sample_count:{c} ");
        }
        if let Some(v) = h.sample_sum {
            num(&mut s, "sample_sum", v);
        }
        for b in &h.bucket {
            s.push_str("bucket:<");
            if let Some(c) = b.cumulative_count {
                let _ = write!(s, "cumulative_count:{c} ");
            }
            if let Some(v) = b.upper_bound {
                num(&mut s, "upper_bound", v);
            }
            s.push_str("> ");
        }
        s.push_str("> ");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::pb::*;

    fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric {
            label: labels.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
            untyped: Some(Untyped { value: Some(2.0) }),
            ..Default::default()
        }
    }

    #[test]
    fn text_form_matches_go() {
        assert_eq!(
            metric_text(&metric(&[("instance", ""), ("job", "dup")])),
            "label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"dup\" > untyped:<value:2 > "
        );
    }

    #[test]
    fn rules() {
        assert!(check_metric("m", MetricType::Untyped, &metric(&[("a", "1")])).is_ok());
        let e = check_metric("m", MetricType::Gauge, &metric(&[])).unwrap_err();
        assert!(e.ends_with("is not a GAUGE"), "{e}");
        let e = check_metric("m", MetricType::Untyped, &metric(&[("__x", "y")])).unwrap_err();
        assert!(e.ends_with("has a label with an invalid name: __x"), "{e}");
        let e =
            check_metric("m", MetricType::Untyped, &metric(&[("a", "1"), ("a", "2")])).unwrap_err();
        assert!(e.ends_with("labels with the same name: a"), "{e}");
        let mut s = metric(&[("quantile", "x")]);
        s.untyped = None;
        s.summary = Some(Box::default());
        let e = check_metric("s", MetricType::Summary, &s).unwrap_err();
        assert!(
            e.contains("must not have an explicit \"quantile\" label"),
            "{e}"
        );
        assert!(
            !is_valid_label_name("a.b") && !is_valid_label_name("1a") && is_valid_label_name("_a1")
        );
    }
}
