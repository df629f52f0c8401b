//! The grouping key (`job` plus `--label name=value` pairs): validation and the URL path
//! encoding the official client libraries use (`/metrics/job/<job>/<name>/<value>...`, with
//! `<name>@base64/<urlsafe base64>` for values that contain `/` or are empty).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;

/// What Go's `url.PathEscape` leaves alone: unreserved characters and `$&+,:;=@`.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// An invalid grouping key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupingError {
    #[error("the job name must not be empty")]
    EmptyJob,
    #[error("invalid label {0:?}: expected NAME=VALUE")]
    NotAPair(String),
    #[error("invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __")]
    BadName(String),
    #[error("label {0:?} given twice")]
    Duplicate(String),
    #[error("the job is set with --job, not with --label job=...")]
    JobLabel,
}

/// A group's identity on the gateway: the job name and further grouping labels, in the
/// order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingKey {
    pub job: String,
    pub labels: Vec<(String, String)>,
}

/// True for a valid Prometheus label name that is not reserved (`__` prefix).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__")
}

/// Splits one `--label` argument, `name=value` (the value may be empty or contain `=`).
pub fn parse_label_arg(arg: &str) -> Result<(String, String), GroupingError> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| GroupingError::NotAPair(arg.to_string()))?;
    Ok((name.trim().to_string(), value.to_string()))
}

impl GroupingKey {
    /// Validates a job name and `name=value` label arguments.
    pub fn new(job: &str, label_args: &[String]) -> Result<Self, GroupingError> {
        if job.is_empty() {
            return Err(GroupingError::EmptyJob);
        }
        let mut labels: Vec<(String, String)> = Vec::with_capacity(label_args.len());
        for arg in label_args {
            let (name, value) = parse_label_arg(arg)?;
            if name == "job" {
                return Err(GroupingError::JobLabel);
            }
            if !is_valid_label_name(&name) {
                return Err(GroupingError::BadName(name));
            }
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(GroupingError::Duplicate(name));
            }
            labels.push((name, value));
        }
        Ok(GroupingKey {
            job: job.to_string(),
            labels,
        })
    }

    /// The path below the gateway URL: `/metrics/job/<job>{/<name>/<value>}`.
    pub fn path(&self) -> String {
        let mut out = String::from("/metrics");
        push_component(&mut out, "job", &self.job);
        for (name, value) in &self.labels {
            push_component(&mut out, name, value);
        }
        out
    }

    /// The labels the gateway shows for this group (`/api/v1/metrics` `labels`): the job and
    /// every grouping label. Empty values are dropped, as a missing label and an empty one
    /// are the same to Prometheus.
    pub fn label_map(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        m.insert("job".to_string(), self.job.clone());
        m
    }
}

/// Appends `/<name>/<value>`, base64-encoded (`<name>@base64`) when the value contains `/`
/// or is empty, like the official client libraries.
fn push_component(out: &mut String, name: &str, value: &str) {
    out.push('/');
    out.push_str(name);
    if value.is_empty() {
        out.push_str("@base64/=");
    } else if value.contains('/') {
        out.push_str("@base64/");
        out.push_str(&URL_SAFE_NO_PAD.encode(value.as_bytes()));
    } else {
        out.push('/');
        out.extend(utf8_percent_encode(value, PATH_SEGMENT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str, labels: &[&str]) -> Result<GroupingKey, GroupingError> {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        GroupingKey::new(job, &labels)
    }

    #[test]
    fn plain_values_are_path_escaped() {
        let k = key("backup", &["instance=db-1", "env=prod eu"]).unwrap();
        assert_eq!(k.path(), "/metrics/job/backup/instance/db-1/env/prod%20eu");
        let k = key("a:b@c", &["x=ü?#%"]).unwrap();
        assert_eq!(k.path(), "/metrics/job/a:b@c/x/%C3%BC%3F%23%25");
    }

    #[test]
    fn slashes_and_empty_values_use_base64() {
        let k = key("dir/job", &["path=/var/tmp", "empty="]).unwrap();
        assert_eq!(
            k.path(),
            "/metrics/job@base64/ZGlyL2pvYg/path@base64/L3Zhci90bXA/empty@base64/="
        );
        // Values whose standard base64 would contain '+' or '/' use the URL-safe alphabet.
        let k = key("j", &["v=/??>"]).unwrap();
        assert_eq!(k.path(), "/metrics/job/j/v@base64/Lz8_Pg");
    }

    #[test]
    fn rejects_bad_labels() {
        assert_eq!(key("", &[]), Err(GroupingError::EmptyJob));
        assert_eq!(
            key("j", &["novalue"]),
            Err(GroupingError::NotAPair("novalue".into()))
        );
        assert_eq!(
            key("j", &["1x=a"]),
            Err(GroupingError::BadName("1x".into()))
        );
        assert_eq!(
            key("j", &["__x=a"]),
            Err(GroupingError::BadName("__x".into()))
        );
        assert_eq!(
            key("j", &["a-b=1"]),
            Err(GroupingError::BadName("a-b".into()))
        );
        assert_eq!(key("j", &["job=x"]), Err(GroupingError::JobLabel));
        assert_eq!(
            key("j", &["a=1", "a=2"]),
            Err(GroupingError::Duplicate("a".into()))
        );
        assert_eq!(key("j", &["a=x=y"]).unwrap().labels[0].1, "x=y");
    }

    #[test]
    fn label_map_drops_empty_values() {
        let k = key("j", &["a=1", "b="]).unwrap();
        let m = k.label_map();
        assert_eq!(m.len(), 2);
        assert_eq!(m["job"], "j");
        assert_eq!(m["a"], "1");
    }
}
