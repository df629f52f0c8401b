//! Accumulating groups, end to end through the real binary: the `/accumulate` route prefix,
//! the per-type rules, resets, idempotency keys (also across a restart) and the rules file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gw {
    child: Child,
    port: u16,
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

impl Gw {
    fn start(args: &[&str]) -> Gw {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pushgateway");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if http(port, "GET", "/-/ready", &[], "").is_ok_and(|r| r.status == 200) {
                    return Gw { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("gateway did not become ready");
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        http(self.port, method, path, headers, body).expect("request")
    }

    fn ok(&self, method: &str, path: &str, body: &str) {
        let r = self.req(method, path, &[], body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    }

    fn scrape(&self) -> String {
        let r = self.req("GET", "/metrics", &[], "");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// The value of the one scraped line that starts with `series` (name and labels).
    fn value(&self, series: &str) -> Option<f64> {
        let s = self.scrape();
        s.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok(Reply {
        status: status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        headers: headers.to_string(),
        body: body.to_string(),
    })
}

const NO_PERSIST: &[&str] = &["--persistence.file="];

#[test]
fn counter_pushes_under_the_accumulate_prefix_add_up() {
    let gw = Gw::start(NO_PERSIST);
    let c = "# TYPE runs_total counter\nruns_total{kind=\"a\"} 2\n";
    gw.ok("POST", "/accumulate/metrics/job/lambda", c);
    gw.ok("PUT", "/accumulate/metrics/job/lambda", c);
    gw.ok(
        "POST",
        "/accumulate/metrics/job/lambda",
        "# TYPE runs_total counter\nruns_total{kind=\"a\"} 0.5\n",
    );
    assert_eq!(
        gw.value("runs_total{instance=\"\",job=\"lambda\",kind=\"a\"}"),
        Some(4.5)
    );
}

#[test]
fn put_on_the_normal_route_resets_and_delete_under_the_prefix_removes() {
    let gw = Gw::start(NO_PERSIST);
    let c = |v: u32| format!("# TYPE n_total counter\nn_total {v}\n");
    let series = "n_total{instance=\"\",job=\"j\"}";
    gw.ok("POST", "/accumulate/metrics/job/j", &c(3));
    gw.ok("POST", "/accumulate/metrics/job/j", &c(4));
    assert_eq!(gw.value(series), Some(7.0));
    gw.ok("PUT", "/metrics/job/j", &c(1));
    assert_eq!(gw.value(series), Some(1.0), "PUT replaced the sum");
    gw.ok("POST", "/accumulate/metrics/job/j", &c(2));
    assert_eq!(gw.value(series), Some(3.0));
    let r = gw.req("DELETE", "/accumulate/metrics/job/j", &[], "");
    assert_eq!(r.status, 202);
    assert_eq!(gw.value(series), None);
    gw.ok("POST", "/accumulate/metrics/job/j", &c(5));
    assert_eq!(gw.value(series), Some(5.0), "starts over after DELETE");
}

#[test]
fn idempotency_key_is_applied_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let arg = format!("--persistence.file={}", file.display());
    let series = "n_total{instance=\"\",job=\"j\"}";
    let body = "# TYPE n_total counter\nn_total 2\n";
    let mut gw = Gw::start(&[&arg]);
    for _ in 0..3 {
        let r = gw.req(
            "POST",
            "/accumulate/metrics/job/j",
            &[("Idempotency-Key", "run-1")],
            body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(gw.value(series), Some(2.0), "retries did not add");
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "run-2")],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(gw.value(series), Some(4.0));
    gw.kill();
    let gw = Gw::start(&[&arg]);
    assert_eq!(gw.value(series), Some(4.0), "sum restored");
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "run-1")],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        gw.value(series),
        Some(4.0),
        "key remembered across the restart"
    );
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "")],
        body,
    );
    assert_eq!(r.status, 400, "empty key refused");
}

#[test]
fn summary_count_and_sum_add_and_quantiles_are_dropped_with_a_warning() {
    let gw = Gw::start(NO_PERSIST);
    let body = "# TYPE lat summary\nlat{quantile=\"0.5\"} 0.2\nlat{quantile=\"0.9\"} 0.7\nlat_sum 1.5\nlat_count 3\n";
    for _ in 0..2 {
        let r = gw.req("POST", "/accumulate/metrics/job/s", &[], body);
        assert_eq!(r.status, 200, "{}", r.body);
        let w = r.header("Pushgateway-Warning").expect("warning header");
        assert!(w.contains("dropped 2 summary quantiles"), "{w}");
    }
    let s = gw.scrape();
    assert!(s.contains("lat_sum{instance=\"\",job=\"s\"} 3\n"), "{s}");
    assert!(s.contains("lat_count{instance=\"\",job=\"s\"} 6\n"), "{s}");
    assert!(!s.contains("lat{"), "{s}");
    assert_eq!(
        gw.value("pushgateway_accumulate_dropped_quantiles_total"),
        Some(4.0)
    );
    // A plain push keeps its quantiles and says nothing.
    let r = gw.req("PUT", "/metrics/job/plain", &[], body);
    assert_eq!((r.status, r.header("Pushgateway-Warning")), (200, None));
}
