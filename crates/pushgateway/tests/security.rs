//! Security and abuse: the real binary with `--web.config.file` (TLS, mTLS, basic auth, scoped
//! users, reloads) and with every limit, checked over real sockets. Certificates are made in
//! the test with rcgen; bcrypt hashes use the minimum cost to keep the tests fast.

use reqwest::blocking::{Client, Response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::certs::{write_atomically, Pki, TLS};
use testkit::gateway::{free_port, Gateway};

/// The kit's gateway, ready once its port accepts connections (TLS or not).
fn start(tls: bool, extra: &[String]) -> Gateway {
    let b = Gateway::builder().args(extra).ready_on_connect();
    match tls {
        true => b.tls().start(),
        false => b.start(),
    }
}

fn plain() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn body(r: Response) -> (u16, String) {
    let code = r.status().as_u16();
    (code, r.text().unwrap_or_default())
}

fn hash(pass: &str) -> String {
    bcrypt::hash(pass, 4).unwrap()
}

// ---------------------------------------------------------------------------------- tests

#[test]
fn tls_with_basic_auth_serves_https_and_refuses_missing_or_wrong_credentials() {
    let pki = Pki::new();
    let cfg = pki.config(&format!(
        "{TLS}basic_auth_users:\n  alice: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        hash("secret")
    ));
    let gw = start(true, &[format!("--web.config.file={}", cfg.display())]);
    let c = pki.client(false);
    let r = c.get(gw.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic");
    let r = c
        .put(gw.url("/metrics/job/a"))
        .basic_auth("alice", Some("wrong"))
        .body("x 1\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .put(gw.url("/metrics/job/a"))
        .basic_auth("alice", Some("secret"))
        .body("x 1\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-frame-options"],
        "deny",
        "configured headers are sent"
    );
    let (code, text) = body(
        c.get(gw.url("/metrics"))
            .basic_auth("alice", Some("secret"))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 200);
    assert!(text.contains("x{instance=\"\",job=\"a\"} 1"), "{text}");
    // Plain HTTP on the TLS port gets no answer it could use.
    let plain_url = format!("http://127.0.0.1:{}/metrics", gw.port);
    assert!(plain()
        .get(plain_url)
        .send()
        .map(|r| r.status().as_u16() == 200)
        .map_or(true, |ok| !ok));
}

#[test]
fn mutual_tls_requires_a_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let cfg = pki.config(&format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    ));
    let gw = start(true, &[format!("--web.config.file={}", cfg.display())]);
    assert!(
        pki.client(false).get(gw.url("/metrics")).send().is_err(),
        "handshake without a client certificate must fail"
    );
    let c = pki.client(true);
    assert_eq!(
        c.put(gw.url("/metrics/job/m"))
            .body("x 1\n")
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(c.get(gw.url("/metrics")).send().unwrap().status(), 200);
}

#[test]
fn scoped_users_get_only_their_roles_and_grouping_keys() {
    let pki = Pki::new();
    let yaml = format!(
        "basic_auth_users:\n  ci: {}\n  reader: {}\n  ops: {}\n\
access:\n  users:\n    ci: {{ roles: [push], push_matchers: ['{{job=~\"ci-.*\"}}'] }}\n    \
reader: {{ roles: [read] }}\n    ops: {{ roles: [push, read, admin] }}\n",
        hash("c"),
        hash("r"),
        hash("o")
    );
    let cfg = pki.config(&yaml);
    let gw = start(
        false,
        &[
            format!("--web.config.file={}", cfg.display()),
            "--web.enable-admin-api".into(),
            "--web.enable-lifecycle".into(),
        ],
    );
    let c = plain();
    let send = |m: reqwest::Method, path: &str, user: Option<(&str, &str)>| {
        let mut r = c.request(m, gw.url(path)).body("x 1\n");
        if let Some((u, p)) = user {
            r = r.basic_auth(u, Some(p));
        }
        body(r.send().unwrap())
    };
    use reqwest::Method as M;
    let ci = Some(("ci", "c"));
    let reader = Some(("reader", "r"));
    let ops = Some(("ops", "o"));
    assert_eq!(send(M::PUT, "/metrics/job/ci-build", ci).0, 200);
    assert_eq!(send(M::DELETE, "/metrics/job/ci-old", ci).0, 202);
    let (code, why) = send(M::PUT, "/metrics/job/prod", ci);
    assert_eq!(code, 403);
    assert!(why.contains("ci") && why.contains("prod"), "{why}");
    assert_eq!(send(M::GET, "/metrics", ci).0, 403, "ci may not read");
    assert_eq!(send(M::GET, "/api/v1/metrics", ci).0, 403);
    assert_eq!(send(M::GET, "/metrics", reader).0, 200);
    assert_eq!(send(M::GET, "/api/v1/groups", reader).0, 200);
    assert_eq!(send(M::GET, "/", reader).0, 200);
    assert_eq!(
        send(M::PUT, "/metrics/job/ci-x", reader).0,
        403,
        "reader may not push"
    );
    assert_eq!(send(M::PUT, "/api/v1/admin/wipe", reader).0, 403);
    assert_eq!(send(M::PUT, "/-/quit", ci).0, 403);
    let (code, _) = send(M::GET, "/metrics", None);
    assert_eq!(code, 401);
    // Only ops may wipe; the ci push is still there until then.
    let (_, scrape) = send(M::GET, "/metrics", ops);
    assert!(scrape.contains("job=\"ci-build\""), "{scrape}");
    assert_eq!(send(M::PUT, "/api/v1/admin/wipe", ops).0, 202);
    let (_, scrape) = send(M::GET, "/metrics", ops);
    assert!(!scrape.contains("job=\"ci-build\""));
}

#[test]
fn changed_web_config_is_picked_up_without_restart_and_a_broken_one_is_ignored() {
    let pki = Pki::new();
    let cfg = pki.config(&format!("basic_auth_users:\n  alice: {}\n", hash("a")));
    let gw = start(false, &[format!("--web.config.file={}", cfg.display())]);
    let c = plain();
    let status = |u: &str, p: &str| {
        c.get(gw.url("/metrics"))
            .basic_auth(u, Some(p))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("alice", "a"), 200);
    assert_eq!(status("bob", "b"), 401);
    write_atomically(
        &cfg,
        &format!(
            "basic_auth_users:\n  alice: {}\n  bob: {}\n",
            hash("a"),
            hash("b")
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("bob", "b") != 200 {
        assert!(Instant::now() < deadline, "new user not picked up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A broken file is logged and ignored: the last good config stays.
    write_atomically(&cfg, "basic_auth_users: [this is not a map\n");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status("bob", "b"), 200);
    assert_eq!(status("mallory", "x"), 401);
}

#[test]
fn invalid_web_config_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.yml");
    std::fs::write(&cfg, "basic_auth_users:\n  a: notahash\nunknown_key: 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(format!("--web.config.file={}", cfg.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.config.file"), "{err}");
}

// ------------------------------------------------------------------------------ limits

fn scrape(gw: &Gateway) -> String {
    body(plain().get(gw.url("/metrics")).send().unwrap()).1
}

fn put(gw: &Gateway, path: &str, data: impl Into<reqwest::blocking::Body>) -> (u16, String) {
    body(plain().put(gw.url(path)).body(data).send().unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn request_limits_refuse_with_reasons_and_leave_stored_data_alone() {
    let gw = start(
        false,
        &[
            "--limits.max-body-size=4KiB".into(),
            "--limits.max-labels-per-series=3".into(),
            "--limits.max-label-value-length=16".into(),
            "--limits.max-series-per-push=5".into(),
        ],
    );
    assert_eq!(put(&gw, "/metrics/job/keep", "kept 1\n").0, 200);
    let before = scrape(&gw);

    let big = "y 1\n".repeat(2000);
    let (code, why) = put(&gw, "/metrics/job/keep", big.clone());
    assert_eq!(code, 413, "{why}");
    assert!(why.contains("max-body-size"), "{why}");
    // A gzip bomb: small on the wire, over the limit once inflated.
    let bomb = gzip(&vec![b'#'; 1 << 20]);
    assert!(bomb.len() < 4096);
    let r = plain()
        .put(gw.url("/metrics/job/keep"))
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .unwrap();
    let (code, why) = body(r);
    assert_eq!(code, 413, "{why}");
    assert!(why.contains("decompressed"), "{why}");
    let (code, why) = put(
        &gw,
        "/metrics/job/keep",
        "z{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\n",
    );
    assert_eq!(code, 400);
    assert!(why.contains("max-labels-per-series"), "{why}");
    let (code, why) = put(
        &gw,
        "/metrics/job/keep",
        "z{a=\"01234567890123456789\"} 1\n",
    );
    assert_eq!(code, 400);
    assert!(why.contains("max-label-value-length"), "{why}");
    let (code, why) = put(&gw, "/metrics/job/01234567890123456789", "z 1\n");
    assert_eq!(code, 400, "grouping key values count too: {why}");
    let (code, why) = put(&gw, "/metrics/job/keep", "a 1\nb 1\nc 1\nd 1\ne 1\nf 1\n");
    assert_eq!(code, 413);
    assert!(why.contains("max-series-per-push"), "{why}");

    // Nothing stored changed: not even push_failure_time_seconds.
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| l.contains("job=\"keep\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let after = scrape(&gw);
    assert_eq!(strip(&before), strip(&after));
    assert!(!after.contains("job=\"01234567890123456789\""));
    for reason in [
        "body_size\"} 2",
        "labels_per_series\"} 1",
        "label_value_length\"} 2",
        "series_per_push\"} 1",
    ] {
        assert!(
            after.contains(&format!(
                "pushgateway_pushes_rejected_total{{reason=\"{reason}"
            )),
            "{reason}: {after}"
        );
    }
    // Others are still served normally.
    assert_eq!(put(&gw, "/metrics/job/other", "o 1\n").0, 200);
}

#[test]
fn quotas_refuse_new_groups_and_series_but_keep_existing_ones_pushable() {
    let gw = start(
        false,
        &[
            "--limits.max-groups=2".into(),
            "--limits.max-series=6".into(),
            "--limits.max-series-per-group=4".into(),
        ],
    );
    assert_eq!(put(&gw, "/metrics/job/a", "a 1\nb 1\n").0, 200);
    assert_eq!(put(&gw, "/metrics/job/b", "a 1\nb 1\n").0, 200);
    let (code, why) = put(&gw, "/metrics/job/c", "a 1\n");
    assert_eq!(code, 403);
    assert!(why.contains("max-groups"), "{why}");
    // Existing groups may still be pushed (and grow up to the quotas).
    assert_eq!(put(&gw, "/metrics/job/a", "a 2\nb 2\nc 2\n").0, 200);
    // POST merges: the group would hold 5 series > 4 per group.
    let r = plain()
        .post(gw.url("/metrics/job/a"))
        .body("d 1\ne 1\n")
        .send()
        .unwrap();
    let (code, why) = body(r);
    assert_eq!(code, 413);
    assert!(why.contains("max-series-per-group"), "{why}");
    // 3 + 2 stored; growing b to 4 would make 7 > 6.
    let (code, why) = put(&gw, "/metrics/job/b", "a 1\nb 1\nc 1\nd 1\n");
    assert_eq!(code, 403);
    assert!(why.contains("max-series"), "{why}");
    let s = scrape(&gw);
    assert!(!s.contains("job=\"c\""));
    assert!(s.contains("c{instance=\"\",job=\"a\"} 2"), "{s}");
    assert!(!s.contains("d{instance=\"\",job=\"a\"}"));
    assert!(!s.contains("c{instance=\"\",job=\"b\"}"));
    assert!(
        !s.contains("push_failure_time_seconds{instance=\"\",job=\"b\"} 1"),
        "a refused quota push is not a recorded failure"
    );
    assert!(s.contains("reason=\"groups\"} 1"));
    assert!(s.contains("reason=\"series\"} 1"));
    assert!(s.contains("reason=\"series_per_group\"} 1"));
}

#[test]
fn push_rate_limit_answers_429_with_retry_after() {
    let gw = start(
        false,
        &[
            "--limits.push-rate=1".into(),
            "--limits.push-burst=3".into(),
        ],
    );
    let c = plain();
    let mut codes = Vec::new();
    let mut retry = None;
    for i in 0..6 {
        let r = c
            .put(gw.url(&format!("/metrics/job/r{i}")))
            .body("x 1\n")
            .send()
            .unwrap();
        if r.status() == 429 {
            retry = r.headers().get("retry-after").cloned();
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert!(codes[3..].contains(&429), "{codes:?}");
    assert!(retry.is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1));
    // Scrapes are not pushes: never rate limited.
    assert_eq!(c.get(gw.url("/metrics")).send().unwrap().status(), 200);
}

#[test]
fn slow_clients_are_timed_out_and_do_not_block_others() {
    let gw = start(
        false,
        &[
            "--web.read-header-timeout=1s".into(),
            "--web.read-timeout=1s".into(),
        ],
    );
    // A client that never finishes its headers is disconnected.
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    slow.write_all(b"PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Meanwhile others are served.
    assert_eq!(put(&gw, "/metrics/job/fast", "x 1\n").0, 200);
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "slow header client not cut off"
    );

    // A client that sends headers but dribbles the body gets 408.
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    slow.write_all(
        b"PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx 1\n",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(!scrape(&gw).contains("job=\"slow\""));
}

/// The header timeout runs from the start of each request head: a keep-alive connection is
/// closed once it has been idle that long after its last request, not that long after its
/// first (the timer is shared by the heads of a connection and re-armed lazily).
#[test]
fn keep_alive_connection_times_out_after_its_last_request_not_its_first() {
    let gw = start(false, &["--web.read-header-timeout=2s".into()]);
    let mut c = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let exchange = |c: &mut TcpStream| {
        c.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    };
    exchange(&mut c);
    std::thread::sleep(Duration::from_millis(1500));
    // Past the first request's deadline (2 s after it) this one is still served...
    exchange(&mut c);
    std::thread::sleep(Duration::from_millis(1000));
    exchange(&mut c);
    let last = Instant::now();
    // ...and the connection ends about 2 s after the last request.
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    let idle = last.elapsed();
    assert_eq!(n, 0, "connection not closed: {:?}", &buf[..n]);
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_secs(15),
        "closed after {idle:?} idle"
    );
}

#[test]
fn connection_limit_queues_extra_connections_instead_of_failing() {
    let gw = start(false, &["--web.max-connections=2".into()]);
    // Two idle keep-alive connections hold both slots...
    let a = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let b = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ...so a third waits in the backlog until one of them closes.
    let waiter = {
        let url = gw.url("/metrics");
        std::thread::spawn(move || {
            let t = Instant::now();
            let ok = plain().get(url).send().map(|r| r.status() == 200);
            (ok.unwrap_or(false), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !waiter.is_finished(),
        "third connection served beyond the limit"
    );
    drop(a);
    let (ok, _) = waiter.join().unwrap();
    assert!(ok, "queued connection served once a slot freed");
    drop(b);
}

#[test]
fn push_rate_is_per_user_so_one_runaway_client_does_not_slow_others() {
    let pki = Pki::new();
    let cfg = pki.config(&format!(
        "basic_auth_users:\n  runaway: {}\n  calm: {}\n",
        hash("r"),
        hash("c")
    ));
    let gw = start(
        false,
        &[
            format!("--web.config.file={}", cfg.display()),
            "--limits.push-rate=1".into(),
            "--limits.push-burst=2".into(),
        ],
    );
    let c = plain();
    let push = |user: &str, pass: &str, job: &str| {
        c.put(gw.url(&format!("/metrics/job/{job}")))
            .basic_auth(user, Some(pass))
            .body("x 1\n")
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let runaway: Vec<u16> = (0..6)
        .map(|i| push("runaway", "r", &format!("r{i}")))
        .collect();
    assert!(runaway.contains(&429), "{runaway:?}");
    // The other user, from the same address, is not affected.
    assert_eq!(push("calm", "c", "calm1"), 200);
    assert_eq!(push("calm", "c", "calm2"), 200);
}
