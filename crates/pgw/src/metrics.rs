//! What pgw pushes: the names and text of the `pgw_job_*` outcome metrics of a `pgw run`, the
//! local validation of a metrics file (the gateway's own parser and its timestamp rule), and
//! the merged request body.

use crate::grouping::GroupingKey;
use exposition::pb::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use exposition::text_encode::{write_header, write_metric};
use exposition::text_parse::{parse_text, TextParseError};

/// Unix time (seconds) when pgw started the command.
pub const START_TIME: &str = "pgw_job_start_time_seconds";
/// Wall-clock run time of the command, in seconds.
pub const DURATION: &str = "pgw_job_duration_seconds";
/// The command's exit code; 128+N when it was killed by signal N (as shells report it).
pub const EXIT_CODE: &str = "pgw_job_exit_code";
/// The number of the signal that killed the command, 0 when it exited by itself.
pub const SIGNAL: &str = "pgw_job_signal";
/// 1 when the command exited with code 0, else 0.
pub const SUCCESS: &str = "pgw_job_success";
/// Unix time (seconds) when the command last finished successfully, kept across failed runs.
pub const LAST_SUCCESS_TIME: &str = "pgw_job_last_success_time_seconds";

/// Every name pgw owns; a metrics file must not use them.
pub const OWN_NAMES: [&str; 6] = [
    START_TIME,
    DURATION,
    EXIT_CODE,
    SIGNAL,
    SUCCESS,
    LAST_SUCCESS_TIME,
];

/// Why a metrics body cannot be pushed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The gateway's parser would refuse it (message includes the line number).
    #[error(transparent)]
    Parse(#[from] TextParseError),
    /// The gateway refuses samples with timestamps.
    #[error("metric {0} has a timestamp; the Pushgateway refuses pushed metrics with timestamps")]
    Timestamp(String),
    /// The body has no samples at all (only comments or HELP/TYPE lines).
    #[error("no metrics found")]
    Empty,
    /// The text cannot be written back (a sample that does not fit its family's type).
    #[error("{0}")]
    Encode(String),
}

/// The outcome of one run of the wrapped command.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Unix time of the start, in seconds.
    pub start_time: f64,
    /// Run time in seconds.
    pub duration: f64,
    /// Exit code (128+signal when killed by a signal).
    pub exit_code: i32,
    /// The signal that killed the command, if any.
    pub signal: Option<i32>,
}

impl Outcome {
    /// Success is exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Unix time of the end, in seconds.
    pub fn end_time(&self) -> f64 {
        self.start_time + self.duration
    }
}

/// Text of the `pgw_job_*` families for an outcome. `last_success` is the value of
/// [`LAST_SUCCESS_TIME`] to push: the end time after a success, the previous value (read from
/// the gateway) after a failure, or `None` to leave it out.
pub fn outcome_families(outcome: &Outcome, last_success: Option<f64>) -> Vec<MetricFamily> {
    let mut out = vec![
        gauge(
            START_TIME,
            "Unix time when pgw started the command.",
            outcome.start_time,
        ),
        gauge(
            DURATION,
            "Run time of the command in seconds.",
            outcome.duration,
        ),
        gauge(
            EXIT_CODE,
            "Exit code of the command; 128+N if it was killed by signal N.",
            f64::from(outcome.exit_code),
        ),
        gauge(
            SIGNAL,
            "Number of the signal that killed the command, 0 if it exited.",
            f64::from(outcome.signal.unwrap_or(0)),
        ),
        gauge(
            SUCCESS,
            "1 if the command exited with code 0, else 0.",
            if outcome.success() { 1.0 } else { 0.0 },
        ),
    ];
    if let Some(t) = last_success {
        out.push(gauge(
            LAST_SUCCESS_TIME,
            "Unix time when the command last finished successfully.",
            t,
        ));
    }
    out
}

fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        help: Some(help.to_string()),
        r#type: Some(MetricType::Gauge as i32),
        metric: vec![Metric {
            gauge: Some(Gauge { value: Some(value) }),
            ..Default::default()
        }],
        unit: None,
    }
}

/// Parses and checks a metrics body as the gateway would: the text parser's rules (errors
/// name the line) and no timestamps. An empty body is [`ValidationError::Empty`].
pub fn validate(body: &[u8]) -> Result<Vec<MetricFamily>, ValidationError> {
    let families = parse_text(body)?;
    for f in &families {
        if let Some(m) = f.metric.iter().find(|m| m.timestamp_ms.is_some()) {
            return Err(ValidationError::Timestamp(describe(f.name(), &m.label)));
        }
    }
    if families.is_empty() {
        return Err(ValidationError::Empty);
    }
    Ok(families)
}

/// `name{a="b",...}` for messages.
fn describe(name: &str, labels: &[LabelPair]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name(), l.value()))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Splits families of a metrics file into the ones to push and the names that clash with
/// pgw's own metrics (those are dropped).
pub fn split_own_names(families: Vec<MetricFamily>) -> (Vec<MetricFamily>, Vec<String>) {
    let mut keep = Vec::with_capacity(families.len());
    let mut dropped = Vec::new();
    for f in families {
        if OWN_NAMES.contains(&f.name()) {
            dropped.push(f.name().to_string());
        } else {
            keep.push(f);
        }
    }
    (keep, dropped)
}

/// Writes families in the text format (one HELP/TYPE header per family).
pub fn encode(families: &[MetricFamily]) -> Result<String, ValidationError> {
    let mut out = String::new();
    for f in families {
        let t = f.metric_type();
        write_header(&mut out, f.name(), f.help.as_deref(), t);
        for m in &f.metric {
            write_metric(&mut out, f.name(), t, m)
                .map_err(|e| ValidationError::Encode(e.to_string()))?;
        }
    }
    Ok(out)
}

/// Labels in the metrics that the gateway will overwrite with the grouping key's value
/// (it does so silently): one message per label name.
pub fn grouping_conflicts(families: &[MetricFamily], key: &GroupingKey) -> Vec<String> {
    let grouping = key.label_map();
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for f in families {
        for m in &f.metric {
            for lp in &m.label {
                let name = lp.name();
                if seen.contains(&name) {
                    continue;
                }
                let wanted = grouping
                    .get(name)
                    .map(String::as_str)
                    .or_else(|| key.labels.iter().any(|(n, _)| n == name).then_some(""));
                if let Some(wanted) = wanted {
                    if lp.value() != wanted {
                        seen.push(name);
                        out.push(format!(
                            "label {name}={:?} of metric {} will be replaced by the grouping key's {name}={wanted:?}",
                            lp.value(),
                            f.name()
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_label_conflicts_are_found() {
        let key = GroupingKey::new("j", &["instance=a".to_string()]).unwrap();
        let fams = validate(b"x{job=\"j\",instance=\"b\"} 1\ny{job=\"other\"} 2\nz{env=\"p\"} 3\n")
            .unwrap();
        let c = grouping_conflicts(&fams, &key);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].contains("instance=\"b\" of metric x"), "{c:?}");
        assert!(c[1].contains("job=\"other\" of metric y"), "{c:?}");
    }

    fn outcome(code: i32, signal: Option<i32>) -> Outcome {
        Outcome {
            start_time: 1_700_000_000.5,
            duration: 2.25,
            exit_code: code,
            signal,
        }
    }

    #[test]
    fn success_pushes_every_outcome_metric() {
        let o = outcome(0, None);
        let text = encode(&outcome_families(&o, Some(o.end_time()))).unwrap();
        assert!(text.contains("# TYPE pgw_job_start_time_seconds gauge\npgw_job_start_time_seconds 1.7000000005e+09\n"), "{text}");
        assert!(text.contains("pgw_job_duration_seconds 2.25\n"));
        assert!(text.contains("pgw_job_exit_code 0\n"));
        assert!(text.contains("pgw_job_signal 0\n"));
        assert!(text.contains("pgw_job_success 1\n"));
        assert!(text.contains("pgw_job_last_success_time_seconds 1.70000000275e+09\n"));
        // What we write, the gateway's parser reads.
        assert_eq!(validate(text.as_bytes()).unwrap().len(), 6);
    }

    #[test]
    fn failure_without_known_last_success_leaves_it_out() {
        let o = outcome(143, Some(15));
        let text = encode(&outcome_families(&o, None)).unwrap();
        assert!(text.contains("pgw_job_exit_code 143\n"));
        assert!(text.contains("pgw_job_signal 15\n"));
        assert!(text.contains("pgw_job_success 0\n"));
        assert!(!text.contains(LAST_SUCCESS_TIME));
    }

    #[test]
    fn validation_reports_line_numbers_and_timestamps() {
        let e = validate(b"ok 1\nbad{ 2\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("text format parsing error in line 2:"),
            "{e}"
        );
        let e = validate(b"ok 1").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = validate(b"x{a=\"b\"} 1 1700000000000\n").unwrap_err();
        assert_eq!(e, ValidationError::Timestamp("x{a=\"b\"}".into()));
        assert_eq!(validate(b"# just a comment\n"), Err(ValidationError::Empty));
        assert_eq!(validate(b""), Err(ValidationError::Empty));
    }

    #[test]
    fn own_names_are_split_off() {
        let fams = validate(b"pgw_job_success 1\nrows_total 5\n").unwrap();
        let (keep, dropped) = split_own_names(fams);
        assert_eq!(dropped, vec!["pgw_job_success".to_string()]);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep[0].name(), "rows_total");
    }

    #[test]
    fn file_families_round_trip() {
        let body = b"# HELP rows Rows.\n# TYPE rows counter\nrows{table=\"a\"} 5\n# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n";
        let fams = validate(body).unwrap();
        let text = encode(&fams).unwrap();
        assert!(text.contains("rows{table=\"a\"} 5\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert_eq!(validate(text.as_bytes()).unwrap(), fams);
    }
}
