//! Integration tests: start the real `pushgateway` binary on a loopback port and talk HTTP/1.1
//! to it over a plain socket. Each test is named after the behaviour it guards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway {
    child: Child,
    port: u16,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Gateway {
    fn start(extra: &[&str]) -> Gateway {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pushgateway");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(r) = request_port(port, "GET", "/-/ready", &[], b"") {
                    if r.status == 200 {
                        return Gateway { child, port };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("gateway did not become ready");
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request_port(self.port, method, path, headers, body).expect("request")
    }

    fn put(&self, path: &str, body: &str) -> Reply {
        self.req("PUT", path, &[], body.as_bytes())
    }

    fn scrape(&self) -> String {
        let r = self.req("GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200);
        r.body
    }

    fn sigterm(mut self) -> i32 {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no exit after SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn request_port(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

fn has_line(scrape: &str, line: &str) -> bool {
    scrape.lines().any(|l| l == line)
}

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
    std::fs::write(&file, b"this is not a persistence file\x00\xff").unwrap();
    let flag = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(&[&flag]);
    assert_eq!(gw.put("/metrics/job/j", "foo 1\n").status, 200);
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
    let kept = std::fs::read(aside[0].path()).unwrap();
    assert_eq!(kept, b"this is not a persistence file\x00\xff");
}

/// Found by fuzzing (fuzz/regressions/store_push/invalid_metric_name_in_protobuf): a protobuf
/// family whose name the text format cannot express was accepted and then broke the scrape
/// for every group. It is refused as an inconsistent push (400), the scrape stays valid.
#[test]
fn protobuf_push_with_invalid_metric_name_is_refused_and_scrape_stays_valid() {
    use exposition::pb::{Gauge, Metric, MetricFamily, MetricType};
    use prost::Message;
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/ok", "good 1\n").status, 200);
    for name in ["a\u{17}b", "a-b", "1abc"] {
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
            "/metrics/job/x",
            &[(
                "Content-Type",
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            )],
            &body,
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.body);
        assert!(r.body.contains("invalid name"), "{}", r.body);
    }
    let scrape = gw.scrape();
    exposition::text_parse::parse_text(scrape.as_bytes()).expect("scrape parses");
    assert!(has_line(&scrape, "good{instance=\"\",job=\"ok\"} 1"));
}
