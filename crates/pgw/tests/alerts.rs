//! The alerting rules shipped for pgw's metrics (`examples/pgw-alerts.yml`): valid for
//! `promtool check rules`, and passing their unit tests (`pgw-alerts.test.yml` here).
//! Skipped with a note when promtool is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn promtool() -> Option<PathBuf> {
    let candidates = [PathBuf::from("/usr/bin/promtool")];
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        eprintln!("note: promtool not found; skipping the alert rule checks");
    }
    found
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = promtool() else { return };
    for args in [
        vec!["check", "rules", "examples/pgw-alerts.yml"],
        vec!["test", "rules", "crates/pgw/tests/pgw-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(root())
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn alert_rules_use_only_metric_names_pgw_pushes() {
    let rules = std::fs::read_to_string(root().join("examples/pgw-alerts.yml")).unwrap();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("pgw_job_") {
            assert!(
                pgw::metrics::OWN_NAMES.contains(&word),
                "unknown metric {word}"
            );
        }
    }
}
