//! Reading groups from the gateway's `/api/v1/metrics` JSON (the official format, which our
//! gateway reproduces): finding a group by its grouping key, reading pgw's gauges, and
//! rendering the `pgw groups` table and JSON.

use crate::duration::format_age;
use crate::grouping::GroupingKey;
use crate::metrics;
use gocompat::strconv::parse_float as parse_go_float;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One group as `pgw groups` shows it. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupInfo {
    /// The grouping labels (`job` included).
    pub labels: BTreeMap<String, String>,
    /// Last successful change of the group (`push_time_seconds`), `None` when never.
    pub push_time_seconds: Option<f64>,
    /// Last failed push to the group (`push_failure_time_seconds`), `None` when never.
    pub push_failure_time_seconds: Option<f64>,
    /// The gateway's `last_push_successful`.
    pub last_push_successful: Option<bool>,
    /// `pgw_job_success == 1`, when the group was pushed by `pgw run`.
    pub success: Option<bool>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub start_time_seconds: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub last_success_time_seconds: Option<f64>,
}

/// An answer that is not the `/api/v1/metrics` format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected /api/v1/metrics answer: {0}")]
pub struct ApiFormatError(pub String);

/// Parses the whole `/api/v1/metrics` answer, groups sorted by labels.
pub fn parse_groups(v: &Value) -> Result<Vec<GroupInfo>, ApiFormatError> {
    if let Some(status) = v.get("status").and_then(Value::as_str) {
        if status != "success" {
            return Err(ApiFormatError(format!("status {status:?}")));
        }
    }
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiFormatError("no \"data\" array".to_string()))?;
    let mut out = Vec::with_capacity(data.len());
    for g in data {
        let labels = g
            .get("labels")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiFormatError("a group without \"labels\"".to_string()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        out.push(GroupInfo {
            labels,
            // 0: the group was never pushed successfully (only failed pushes created it).
            push_time_seconds: gauge_value(g, "push_time_seconds").filter(|t| *t != 0.0),
            push_failure_time_seconds: gauge_value(g, "push_failure_time_seconds")
                .filter(|t| *t != 0.0),
            last_push_successful: g.get("last_push_successful").and_then(Value::as_bool),
            success: gauge_value(g, metrics::SUCCESS).map(|v| v == 1.0),
            exit_code: gauge_value(g, metrics::EXIT_CODE).map(|v| v as i64),
            signal: gauge_value(g, metrics::SIGNAL).map(|v| v as i64),
            start_time_seconds: gauge_value(g, metrics::START_TIME),
            duration_seconds: gauge_value(g, metrics::DURATION),
            last_success_time_seconds: gauge_value(g, metrics::LAST_SUCCESS_TIME),
        });
    }
    out.sort_by(|a, b| {
        let ka = (a.labels.get("job"), &a.labels);
        let kb = (b.labels.get("job"), &b.labels);
        ka.cmp(&kb)
    });
    Ok(out)
}

/// The value of the first sample of a gauge (or untyped/counter) family in a group.
fn gauge_value(group: &Value, name: &str) -> Option<f64> {
    let s = group
        .get(name)?
        .get("metrics")?
        .as_array()?
        .first()?
        .get("value")?
        .as_str()?;
    parse_go_float(s)
}

/// The group with exactly this grouping key (empty label values count as absent).
pub fn find_group<'a>(groups: &'a [GroupInfo], key: &GroupingKey) -> Option<&'a GroupInfo> {
    let want = key.label_map();
    groups.iter().find(|g| {
        let have: BTreeMap<&String, &String> =
            g.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
        have.len() == want.len() && want.iter().all(|(k, v)| have.get(k) == Some(&v))
    })
}

fn ago(t: Option<f64>, now: f64) -> String {
    match t {
        Some(t) => format!("{} ago", format_age(now - t)),
        None => "-".to_string(),
    }
}

fn status(g: &GroupInfo) -> String {
    match (g.success, g.exit_code, g.signal) {
        (Some(true), _, _) => "ok".to_string(),
        (Some(false), _, Some(sig)) if sig > 0 => format!("failed (signal {sig})"),
        (Some(false), Some(code), _) => format!("failed (exit {code})"),
        (Some(false), None, _) => "failed".to_string(),
        (None, _, _) => "-".to_string(),
    }
}

/// The `pgw groups` table: one line per group, ages relative to `now`.
pub fn render_table(groups: &[GroupInfo], now: f64) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "JOB".into(),
        "LABELS".into(),
        "PUSHED".into(),
        "STATUS".into(),
        "LAST SUCCESS".into(),
        "PUSH FAILED".into(),
    ]];
    for g in groups {
        let others: Vec<String> = g
            .labels
            .iter()
            .filter(|(k, _)| *k != "job")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let last_success = match (g.last_success_time_seconds, g.success) {
            (Some(t), _) => ago(Some(t), now),
            (None, Some(_)) => "never".to_string(),
            (None, None) => "-".to_string(),
        };
        let mut push_failed = ago(g.push_failure_time_seconds, now);
        if g.last_push_successful == Some(false) {
            push_failed.push_str(" (last push)");
        }
        rows.push([
            g.labels.get("job").cloned().unwrap_or_default(),
            if others.is_empty() {
                "-".to_string()
            } else {
                others.join(",")
            },
            match g.push_time_seconds {
                Some(t) => ago(Some(t), now),
                None => "never".to_string(),
            },
            status(g),
            last_success,
            push_failed,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One group in `pgw groups --output json`: [`GroupInfo`] plus ages relative to now.
#[derive(Serialize)]
struct JsonGroup<'a> {
    #[serde(flatten)]
    group: &'a GroupInfo,
    age_seconds: Option<f64>,
    last_success_age_seconds: Option<f64>,
}

/// The `pgw groups --output json` document: a JSON array of groups.
pub fn render_json(groups: &[GroupInfo], now: f64) -> String {
    let items: Vec<JsonGroup> = groups
        .iter()
        .map(|g| JsonGroup {
            group: g,
            age_seconds: g.push_time_seconds.map(|t| now - t),
            last_success_age_seconds: g.last_success_time_seconds.map(|t| now - t),
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&items).expect("serializing plain data");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Value {
        serde_json::from_str(
            r#"{"status":"success","data":[
              {"labels":{"job":"backup","instance":"db1"},
               "last_push_successful":true,
               "push_time_seconds":{"metrics":[{"labels":{},"value":"1.7e+09"}],"type":"GAUGE"},
               "push_failure_time_seconds":{"metrics":[{"labels":{},"value":"0"}],"type":"GAUGE"},
               "pgw_job_success":{"metrics":[{"labels":{},"value":"0"}],"type":"GAUGE"},
               "pgw_job_exit_code":{"metrics":[{"labels":{},"value":"2"}],"type":"GAUGE"},
               "pgw_job_signal":{"metrics":[{"labels":{},"value":"0"}],"type":"GAUGE"},
               "pgw_job_last_success_time_seconds":{"metrics":[{"labels":{},"value":"1.6999e+09"}],"type":"GAUGE"}},
              {"labels":{"job":"adhoc"},
               "last_push_successful":false,
               "push_time_seconds":{"metrics":[{"labels":{},"value":"1699999990"}],"type":"GAUGE"},
               "push_failure_time_seconds":{"metrics":[{"labels":{},"value":"1699999995"}],"type":"GAUGE"},
               "some_metric":{"metrics":[{"labels":{},"value":"3"}],"type":"UNTYPED"}}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn parses_groups_and_pgw_gauges() {
        let groups = parse_groups(&api()).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].labels["job"], "adhoc");
        assert_eq!(groups[0].success, None);
        assert_eq!(groups[0].push_failure_time_seconds, Some(1_699_999_995.0));
        let b = &groups[1];
        assert_eq!(b.success, Some(false));
        assert_eq!(b.exit_code, Some(2));
        assert_eq!(b.last_success_time_seconds, Some(1_699_900_000.0));
        assert_eq!(b.push_failure_time_seconds, None);
    }

    #[test]
    fn finds_group_by_exact_key() {
        let groups = parse_groups(&api()).unwrap();
        let key = GroupingKey::new("backup", &["instance=db1".to_string()]).unwrap();
        assert!(find_group(&groups, &key).is_some());
        let key = GroupingKey::new("backup", &[]).unwrap();
        assert!(find_group(&groups, &key).is_none());
        let key = GroupingKey::new("adhoc", &["x=".to_string()]).unwrap();
        assert!(find_group(&groups, &key).is_some());
    }

    #[test]
    fn renders_table_and_json() {
        let groups = parse_groups(&api()).unwrap();
        let t = render_table(&groups, 1_700_000_000.0);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[0].starts_with("JOB     LABELS        PUSHED   STATUS"),
            "{t}"
        );
        assert!(lines[1].contains("adhoc"), "{t}");
        assert!(lines[1].contains("5s ago (last push)"), "{t}");
        assert!(lines[2].contains("instance=db1"), "{t}");
        assert!(lines[2].contains("failed (exit 2)"), "{t}");
        assert!(lines[2].contains("1d3h ago"), "{t}");
        let j: Value = serde_json::from_str(&render_json(&groups, 1_700_000_000.0)).unwrap();
        assert_eq!(j[1]["labels"]["job"], "backup");
        assert_eq!(j[1]["success"], false);
        assert_eq!(j[1]["age_seconds"], 0.0);
        assert_eq!(j[1]["last_success_age_seconds"], 100000.0);
        assert_eq!(j[0]["success"], Value::Null);
    }

    #[test]
    fn group_created_by_a_failed_push_was_never_pushed() {
        let v = serde_json::json!({"status":"success","data":[{"labels":{"job":"j"},
            "last_push_successful":false,
            "push_time_seconds":{"metrics":[{"labels":{},"value":"0"}],"type":"GAUGE"},
            "push_failure_time_seconds":{"metrics":[{"labels":{},"value":"1699999995"}],"type":"GAUGE"}}]});
        let groups = parse_groups(&v).unwrap();
        assert_eq!(groups[0].push_time_seconds, None);
        let t = render_table(&groups, 1_700_000_000.0);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("j    -       never"), "{t}");
        let j: Value = serde_json::from_str(&render_json(&groups, 1_700_000_000.0)).unwrap();
        assert_eq!(j[0]["age_seconds"], Value::Null);
    }

    #[test]
    fn rejects_other_documents() {
        assert!(parse_groups(&serde_json::json!({"status":"error"})).is_err());
        assert!(parse_groups(&serde_json::json!({"foo":1})).is_err());
    }
}
