//! Hostile and unlucky clients at the connection level (issue 15): huge label sets must not
//! stall the server, running out of file descriptors must not lock clients out, and a
//! half-closed request must always be answered and applied. Each test starts the real
//! binary on a loopback port.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::gateway::request_timeout;

/// The kit's gateway, answering `(status, body)`.
struct Gateway(testkit::gateway::Gateway);

impl std::ops::Deref for Gateway {
    type Target = testkit::gateway::Gateway;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Gateway {
    /// Starts the binary, optionally under `prlimit --nofile=<soft>:<hard>`.
    fn start(nofile: Option<(u64, u64)>, extra: &[&str]) -> Gateway {
        let mut b = testkit::gateway::Gateway::builder().args(extra);
        if let Some((soft, hard)) = nofile {
            b = b.nofile(soft, hard);
        }
        Gateway(b.start())
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        request_timeout(self.port, method, path, &[], body, timeout).map(|r| (r.status, r.body))
    }

    fn scrape(&self) -> String {
        let (code, body) = self
            .request("GET", "/metrics", b"", Duration::from_secs(10))
            .expect("scrape");
        assert_eq!(code, 200);
        body
    }
}

fn read_reply(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    testkit::gateway::read_reply(s).map(|r| (r.status, r.body))
}

/// One series with `n` labels (about 10 bytes each).
fn wide_series(n: usize) -> Vec<u8> {
    let mut b = b"wide{".to_vec();
    for i in 0..n {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(format!("l{i}=\"v\"").as_bytes());
    }
    b.extend_from_slice(b"} 1\n");
    b
}

#[test]
fn series_with_100k_labels_is_refused_early_and_does_not_stall_health_checks() {
    let body = wide_series(100_000);
    assert!(body.len() > 900_000);
    // Default limits: refused with the reason, quickly enough to be a 400 at all.
    let gw = Gateway::start(None, &[]);
    let (code, why) = gw
        .request("PUT", "/metrics/job/wide", &body, Duration::from_secs(60))
        .unwrap();
    assert_eq!(code, 400, "{why}");
    assert!(why.contains("max-labels-per-series"), "{why}");
    assert!(gw
        .scrape()
        .contains("pushgateway_pushes_rejected_total{reason=\"labels_per_series\"} 1"));
    drop(gw);

    // Limits off: the whole label set is parsed, checked and stored, on a CPU pool.
    // Meanwhile health checks keep being answered (bounded waits as a hang detector).
    let gw = Arc::new(Gateway::start(
        None,
        &["--limits.max-labels-per-series=0", "--web.read-timeout=5m"],
    ));
    let done = Arc::new(AtomicBool::new(false));
    let hostile: Vec<_> = (0..3)
        .map(|t| {
            let (gw, body, done) = (gw.clone(), body.clone(), done.clone());
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                let until = Instant::now() + Duration::from_secs(4);
                while Instant::now() < until && !done.load(Ordering::Relaxed) {
                    let path = format!("/metrics/job/wide{t}");
                    let r = gw.request("PUT", &path, &body, Duration::from_secs(120));
                    codes.push(r.map(|r| r.0).unwrap_or(0));
                }
                codes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut answered = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (code, _) = gw
            .request("GET", "/-/healthy", b"", Duration::from_secs(10))
            .expect("/-/healthy answers while huge pushes are processed");
        assert_eq!(code, 200);
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    for h in hostile {
        let codes = h.join().unwrap();
        assert!(!codes.is_empty());
        assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    }
    assert!(answered >= 5, "{answered}");
    assert!(gw.scrape().contains("l99999=\"v\""));
}

#[test]
fn protobuf_series_with_100k_labels_is_refused_with_the_limit_reason() {
    use prost::Message;
    let metric = exposition::Metric {
        label: (0..100_000)
            .map(|i| exposition::LabelPair::new(format!("l{i}"), "v"))
            .collect(),
        untyped: Some(exposition::pb::Untyped { value: Some(1.0) }),
        ..Default::default()
    };
    let family = exposition::MetricFamily {
        name: Some("wide".into()),
        r#type: Some(exposition::MetricType::Untyped as i32),
        metric: vec![metric],
        ..Default::default()
    };
    let body = family.encode_length_delimited_to_vec();
    let gw = Gateway::start(None, &[]);
    let ct = exposition::delimited::CONTENT_TYPE;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], gw.port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "PUT /metrics/job/wide HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let (code, why) = read_reply(&mut s).unwrap();
    assert_eq!(code, 400, "{why}");
    assert!(why.contains("max-labels-per-series"), "{why}");
    let (code, _) = gw
        .request("GET", "/-/healthy", b"", Duration::from_secs(10))
        .unwrap();
    assert_eq!(code, 200);
}

/// A connection that sends only part of a request head and then waits.
fn half_sent(port: u16) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"PUT /metrics/job/idle HTTP/1.1\r\nHost: a\r\n")
        .ok()?;
    Some(s)
}

#[test]
fn idle_connections_beyond_the_fd_limit_do_not_lock_clients_out() {
    // Soft and hard limit 256: nothing to raise, the gateway has to shed.
    // Idle connections are not timed out during the test: only shedding can help.
    let gw = Gateway::start(Some((256, 256)), &["--web.read-header-timeout=10m"]);
    let idle: Vec<TcpStream> = (0..400).filter_map(|_| half_sent(gw.port)).collect();
    assert!(idle.len() > 300, "{}", idle.len());
    // A normal client is served (it may wait while idle connections are shed).
    let started = Instant::now();
    for i in 0..5 {
        let (code, why) = gw
            .request(
                "PUT",
                &format!("/metrics/job/normal{i}"),
                b"ok 1\n",
                Duration::from_secs(30),
            )
            .expect("served despite the idle connections");
        assert_eq!(code, 200, "{why}");
    }
    // A hang detector, far above the milliseconds this takes.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(gw.scrape().contains("ok{instance=\"\",job=\"normal4\"} 1"));
    drop(idle);
}

#[test]
fn soft_fd_limit_is_raised_to_the_hard_limit_at_start() {
    let gw = Gateway::start(Some((256, 4096)), &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.child.id()))
        .expect("read /proc/<pid>/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["4096", "4096"], "{line}");
    // So 400 idle connections fit without any being shed.
    let idle: Vec<TcpStream> = (0..400).filter_map(|_| half_sent(gw.port)).collect();
    assert_eq!(idle.len(), 400);
    let (code, _) = gw
        .request("GET", "/-/healthy", b"", Duration::from_secs(10))
        .unwrap();
    assert_eq!(code, 200);
}

#[test]
fn half_closed_request_is_always_answered_and_applied() {
    let gw = Gateway::start(None, &[]);
    for i in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = format!("half_closed {i}\n");
        // Half of them keep-alive, half `Connection: close`.
        let conn = if i % 2 == 0 { "close" } else { "keep-alive" };
        let req = format!(
            "PUT /metrics/job/hc HTTP/1.1\r\nHost: a\r\nConnection: {conn}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let (code, why) = read_reply(&mut s).expect("an answer");
        assert_eq!(code, 200, "round {i}: {why}");
        let scrape = gw.scrape();
        let want = format!("half_closed{{instance=\"\",job=\"hc\"}} {i}");
        assert!(scrape.lines().any(|l| l == want), "round {i}: {scrape}");
    }
}
