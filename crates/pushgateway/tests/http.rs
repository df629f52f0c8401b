//! Integration tests: start the real `pushgateway` binary on a loopback port and talk HTTP/1.1
//! to it over a plain socket. Each test is named after the behaviour it guards.

use std::process::Command;
use testkit::gateway::{free_port, has_line, Gateway};

#[test]
fn push_then_scrape_shows_grouping_labels_and_push_time() {
    let gw = Gateway::start(&["--persistence.file="]);
    let r = gw.put(
        "/metrics/job/j/instance/i",
        "# TYPE foo gauge\nfoo{a=\"1\"} 1e6\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let s = gw.scrape();
    assert!(
        has_line(&s, "foo{a=\"1\",instance=\"i\",job=\"j\"} 1e+06"),
        "{s}"
    );
    assert!(
        s.contains("push_time_seconds{instance=\"i\",job=\"j\"} 1."),
        "{s}"
    );
    assert!(
        has_line(&s, "push_failure_time_seconds{instance=\"i\",job=\"j\"} 0"),
        "{s}"
    );
}

#[test]
fn rejected_push_leaves_accepted_data_untouched() {
    let gw = Gateway::start(&["--persistence.file="]);
    assert_eq!(
        gw.put("/metrics/job/a", "# TYPE foo counter\nfoo 1\n")
            .status,
        200
    );
    let r = gw.put("/metrics/job/b", "# TYPE foo gauge\nfoo 2\n");
    assert_eq!(r.status, 400);
    assert!(r
        .body
        .starts_with("pushed metrics are invalid or inconsistent with existing metrics: "));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let s = gw.scrape();
    assert!(has_line(&s, "foo{instance=\"\",job=\"a\"} 1"), "{s}");
    assert!(!s.contains("job=\"b\"} 2"));
    // The failure is recorded for group b, as the official gateway does.
    assert!(
        s.contains("push_failure_time_seconds{instance=\"\",job=\"b\"} 1."),
        "{s}"
    );
}

#[test]
fn parse_error_is_400_with_line_number_and_store_untouched() {
    let gw = Gateway::start(&["--persistence.file="]);
    let r = gw.put("/metrics/job/a", "foo 1\nbar");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "text format parsing error in line 2: unexpected end of input stream\n"
    );
    let api = gw.req("GET", "/api/v1/metrics", &[], b"");
    assert_eq!(api.body, "{\"status\":\"success\",\"data\":[]}");
}

#[test]
fn inconsistent_store_scrape_is_500_when_check_disabled() {
    let gw = Gateway::start(&["--persistence.file=", "--push.disable-consistency-check"]);
    assert_eq!(gw.put("/metrics/job/a", "c 1\nc 2\n").status, 202);
    let r = gw.req("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 500);
    assert!(
        r.body
            .contains("was collected before with the same name and label values"),
        "{}",
        r.body
    );
    assert_eq!(gw.req("DELETE", "/metrics/job/a", &[], b"").status, 202);
    assert_eq!(gw.req("GET", "/metrics", &[], b"").status, 200);
}

#[test]
fn routing_quirks_match_official() {
    let gw = Gateway::start(&["--persistence.file="]);
    let r = gw.req("PUT", "/metrics/job/foo/label//bar", &[], b"foo 1\n");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/metrics/job/foo/label/bar"))
    );
    let r = gw.req("GET", "/metrics/job/x", &[], b"");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("DELETE, OPTIONS, POST, PUT"))
    );
    let r = gw.req("HEAD", "/metrics", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(gw.req("GET", "/nonexistent", &[], b"").status, 404);
}

#[test]
fn delete_is_applied_before_acknowledgement() {
    let gw = Gateway::start(&["--persistence.file="]);
    assert_eq!(gw.put("/metrics/job/gone", "foo 1\n").status, 200);
    assert_eq!(gw.req("DELETE", "/metrics/job/gone", &[], b"").status, 202);
    assert!(!gw.scrape().contains("job=\"gone\""));
}

#[test]
fn acknowledged_push_survives_sigkill_with_persistence_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/dir/pgw.data");
    let flag = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(&[&flag]);
    for i in 0..20 {
        assert_eq!(
            gw.put(&format!("/metrics/job/j{i}"), &format!("v {i}\n"))
                .status,
            200
        );
    }
    assert_eq!(gw.req("DELETE", "/metrics/job/j3", &[], b"").status, 202);
    drop(gw); // SIGKILL: no graceful shutdown
    let gw = Gateway::start(&[&flag]);
    let s = gw.scrape();
    for i in 0..20 {
        let present = has_line(&s, &format!("v{{instance=\"\",job=\"j{i}\"}} {i}"));
        assert_eq!(present, i != 3, "group j{i} after restart:\n{s}");
    }
    assert_eq!(gw.sigterm(), 0);
}

#[test]
fn damaged_persistence_file_is_moved_aside_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgw.data");
    let flag = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(&[&flag]);
    assert_eq!(gw.put("/metrics/job/j", "foo 1\n").status, 200);
    assert_eq!(gw.sigterm(), 0);
    // One damaged byte in the header of our own format: recovered, the damaged file kept.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[2] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let gw = Gateway::start(&[&flag]);
    assert!(has_line(&gw.scrape(), r#"foo{instance="",job="j"} 1"#));
    assert_eq!(gw.sigterm(), 0);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy() != "pgw.data")
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(
        !aside.is_empty(),
        "damaged file should have been kept beside the new one"
    );
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), bytes);
}

/// A file of neither our format nor the official gateway's is refused at start-up, and left
/// where it is, unchanged (issue 14: never renamed on its own).
#[test]
fn foreign_persistence_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgw.data");
    std::fs::write(&file, b"this is not a persistence file\x00\xff").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!("--persistence.file={}", file.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither this gateway's format nor the official"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"this is not a persistence file\x00\xff"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Found by fuzzing (fuzz/regressions/store_push/invalid_metric_name_in_protobuf): a protobuf
/// family whose name the text format cannot express broke the scrape for every group. As
/// upstream 1.11 does, it is accepted and its name escaped on scrape (`underscores` by
/// default), so the scrape stays valid; `escaping=allow-utf-8` gets it quoted.
#[test]
fn protobuf_push_with_utf8_metric_name_is_escaped_on_scrape() {
    use exposition::pb::{Gauge, Metric, MetricFamily, MetricType};
    use prost::Message;
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/ok", "good 1\n").status, 200);
    for (i, name) in ["a\u{17}b", "a-b", "1abc"].iter().enumerate() {
        let mf = MetricFamily {
            name: Some(name.to_string()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric {
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = mf.encode_length_delimited_to_vec();
        let r = gw.req(
            "PUT",
            &format!("/metrics/job/x{i}"),
            &[(
                "Content-Type",
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            )],
            &body,
        );
        if i == 1 {
            // `a-b` and `a\x17b` are both `a_b` once escaped: refused, naming both.
            assert_eq!(r.status, 400, "{name:?}: {}", r.body);
            assert!(
                r.body.contains("\"a-b\"") && r.body.contains("a_b"),
                "{}",
                r.body
            );
        } else {
            assert_eq!(r.status, 200, "{name:?}: {}", r.body);
        }
    }
    let scrape = gw.scrape();
    exposition::text_parse::parse_text(scrape.as_bytes()).expect("scrape parses");
    assert!(has_line(&scrape, "good{instance=\"\",job=\"ok\"} 1"));
    assert!(
        has_line(&scrape, "a_b{instance=\"\",job=\"x0\"} 1"),
        "{scrape}"
    );
    assert!(
        has_line(&scrape, "_abc{instance=\"\",job=\"x2\"} 1"),
        "{scrape}"
    );
}
