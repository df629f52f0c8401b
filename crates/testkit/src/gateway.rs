//! The binary-spawning gateway harness: starts the real `pushgateway` binary (or the official
//! one) on a free 127.0.0.1 port with the given flags, waits until it is ready, speaks
//! HTTP/1.1 to it over a plain socket, and kills it on drop. Every wait is bounded.
//!
//! ```ignore
//! let gw = Gateway::start(&["--persistence.file="]);
//! assert_eq!(gw.put("/metrics/job/j", "x 1\n").status, 200);
//! assert!(has_line(&gw.scrape(), "x{instance=\"\",job=\"j\"} 1"));
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one request may wait for its answer unless told otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Our `pushgateway` binary: beside the running test executable's profile directory
/// (`target/<profile>/pushgateway`; cargo builds it before the `pushgateway` crate's
/// integration tests). If it is not there yet (e.g. `cargo test -p pgw`), it is built once
/// with `cargo build -p pushgateway` into the same target directory and profile.
pub fn pushgateway_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current test executable");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable in target/<profile>/deps");
        let bin = profile_dir.join("pushgateway");
        if bin.exists() {
            return bin;
        }
        let target_dir = profile_dir.parent().expect("profile dir has a parent");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("-p")
            .arg("pushgateway")
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.arg("--profile").arg(other);
            }
        }
        eprintln!("building the pushgateway binary for these tests: {cmd:?}");
        let status = cmd.status().expect("running cargo build -p pushgateway");
        assert!(status.success(), "cargo build -p pushgateway failed");
        assert!(bin.exists(), "{} not found after the build", bin.display());
        bin
    })
    .clone()
}

/// An HTTP answer, read to the end of the connection.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy).
    pub body: String,
    /// The body as sent.
    pub raw_body: Vec<u8>,
}

impl Reply {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an answer to the end of the connection and splits it into status, headers, body.
pub fn read_reply(s: &mut TcpStream) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut raw_body = raw.get(split + 4..).unwrap_or_default().to_vec();
    // Large scrape and API bodies are streamed: `Transfer-Encoding: chunked`.
    if head.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked"
        })
    }) {
        raw_body = dechunk(&raw_body);
    }
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
        body: String::from_utf8_lossy(&raw_body).to_string(),
        raw_body,
    })
}

/// The data of a chunked body (chunk extensions and trailers ignored; stops at a malformed
/// or truncated chunk).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0 && b.len() >= eol + 2 + n) else {
            break;
        };
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = b.get(eol + 4 + size..).unwrap_or_default();
    }
    out
}

/// One HTTP/1.1 request (`Connection: close`, `Content-Length`) to 127.0.0.1:`port`,
/// connecting and reading within `timeout`.
pub fn request_timeout(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
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
    read_reply(&mut s)
}

/// [`request_timeout`] with [`REQUEST_TIMEOUT`].
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    request_timeout(port, method, path, headers, body, REQUEST_TIMEOUT)
}

/// Whether the text has exactly this line.
pub fn has_line(scrape: &str, line: &str) -> bool {
    scrape.lines().any(|l| l == line)
}

/// How to start a gateway: [`Gateway::builder`], then [`Builder::start`].
pub struct Builder {
    bin: PathBuf,
    args: Vec<String>,
    nofile: Option<(u64, u64)>,
    ready_path: Option<String>,
    tls: bool,
    capture_log: bool,
    timeout: Duration,
}

impl Builder {
    /// Flags after `--web.listen-address`.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Builder {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Another binary (the official one: [`OFFICIAL`]).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Builder {
        self.bin = bin.into();
        self
    }

    /// Runs the binary under `prlimit --nofile=<soft>:<hard>`.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Builder {
        self.nofile = Some((soft, hard));
        self
    }

    /// Ready when `GET <prefix>/-/ready` answers 200 (`--web.route-prefix`).
    pub fn route_prefix(mut self, prefix: &str) -> Builder {
        self.ready_path = Some(format!("{prefix}/-/ready"));
        self
    }

    /// The listener speaks TLS: ready once it accepts connections, URLs are `https://localhost`.
    pub fn tls(mut self) -> Builder {
        self.tls = true;
        self
    }

    /// Ready once the port accepts connections (not by asking `/-/ready`).
    pub fn ready_on_connect(mut self) -> Builder {
        self.ready_path = None;
        self
    }

    /// Keeps the gateway's standard error in a file ([`Gateway::log`]); else it is discarded.
    pub fn capture_log(mut self) -> Builder {
        self.capture_log = true;
        self
    }

    /// How long to wait for readiness (per attempt; default 20 s).
    pub fn ready_timeout(mut self, t: Duration) -> Builder {
        self.timeout = t;
        self
    }

    fn command(&self, port: u16) -> Command {
        let mut cmd = match self.nofile {
            Some((soft, hard)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:{hard}")).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(&self.args);
        cmd
    }

    /// Starts the binary without waiting for it.
    pub fn spawn(&self) -> Gateway {
        self.spawn_on(free_port())
    }

    /// Starts the binary on `port` without waiting for it.
    pub fn spawn_on(&self, port: u16) -> Gateway {
        let log = self
            .capture_log
            .then(|| tempfile::NamedTempFile::new().expect("log file"));
        let stderr = match &log {
            Some(f) => Stdio::from(f.reopen().expect("log file")),
            None => Stdio::null(),
        };
        let child = self
            .command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the gateway");
        Gateway {
            child,
            port,
            tls: self.tls,
            log,
        }
    }

    /// Starts the binary on a free port and waits (bounded) until it is ready; a start that
    /// fails (e.g. the port was taken meanwhile) is retried on another port, 5 times at most.
    pub fn start(&self) -> Gateway {
        for _ in 0..5 {
            let mut gw = self.spawn();
            if gw.wait_ready(self.ready_path.as_deref(), self.timeout) {
                return gw;
            }
            gw.kill();
        }
        panic!("gateway did not become ready");
    }

    /// Runs the binary to its exit (for flags or files it must refuse), on a free port.
    pub fn output(&self) -> Output {
        self.command(free_port())
            .stdin(Stdio::null())
            .output()
            .expect("run the gateway")
    }
}

/// The official binary, as Debian installs it.
pub const OFFICIAL: &str = "/usr/bin/prometheus-pushgateway";

/// A running gateway, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    tls: bool,
    log: Option<tempfile::NamedTempFile>,
}

impl Gateway {
    /// Our binary with these flags; ready once `/-/ready` answers 200.
    pub fn builder() -> Builder {
        Builder {
            bin: pushgateway_bin(),
            args: Vec::new(),
            nofile: None,
            ready_path: Some("/-/ready".into()),
            tls: false,
            capture_log: false,
            timeout: Duration::from_secs(20),
        }
    }

    /// Starts our binary with these flags and waits until it is ready.
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::builder().args(args).start()
    }

    /// Waits until the gateway is ready (`GET ready_path` answers 200, or with `None` the port
    /// accepts connections), at most `timeout`; false if it exited or the time ran out.
    pub fn wait_ready(&mut self, ready_path: Option<&str>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let ready = match ready_path {
                Some(p) => request_timeout(self.port, "GET", p, &[], b"", Duration::from_secs(5))
                    .is_ok_and(|r| r.status == 200),
                None => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `http://127.0.0.1:<port><path>`, or `https://localhost:<port><path>` for TLS.
    pub fn url(&self, path: &str) -> String {
        match self.tls {
            true => format!("https://localhost:{}{path}", self.port),
            false => format!("http://127.0.0.1:{}{path}", self.port),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Any request; panics if there is no answer.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.port, method, path, headers, body).expect("request")
    }

    /// A request without headers.
    pub fn send(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.req(method, path, &[], body)
    }

    pub fn put(&self, path: &str, body: &str) -> Reply {
        self.req("PUT", path, &[], body.as_bytes())
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.req("POST", path, &[], body.as_bytes())
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.req("DELETE", path, &[], b"")
    }

    /// `GET /metrics` in the text format; asserts 200.
    pub fn scrape(&self) -> String {
        let r = self.req("GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit; returns the exit code.
    pub fn sigterm(mut self) -> i32 {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no exit after SIGTERM");
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// What the gateway wrote to standard error so far ([`Builder::capture_log`]).
    pub fn log(&self) -> String {
        let f = self.log.as_ref().expect("started with capture_log()");
        std::fs::read_to_string(f.path()).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n"),
            b"hello, world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"");
    }

    #[test]
    fn request_and_reply_over_a_loopback_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"\r\n\r\nbody") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(b"HTTP/1.1 202 Accepted\r\nX-A: 1\r\nContent-Type: text/plain\r\n\r\nok\r\n\r\nmore")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let r = request(port, "PUT", "/p", &[("X-Req", "v")], b"body").unwrap();
        let sent = server.join().unwrap();
        assert!(sent.starts_with("PUT /p HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\nX-Req: v\r\n") && sent.contains("Content-Length: 4\r\n"));
        assert_eq!(r.status, 202);
        assert_eq!(r.header("x-a"), Some("1"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "ok\r\n\r\nmore");
        assert_eq!(r.raw_body, b"ok\r\n\r\nmore");
    }
}
