//! Shared helpers for the integration tests: locating (or building) our `pushgateway`
//! binary, starting it or the official binary on a free 127.0.0.1 port, running `pgw`, and
//! reading back what a gateway exposes.

#![allow(dead_code)]

use exposition::pb::MetricFamily;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The official binary, as Debian installs it.
pub const OFFICIAL: &str = "/usr/bin/prometheus-pushgateway";

pub fn pgw_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgw"))
}

/// Our gateway binary: next to `pgw` (same target directory and profile); if it is not
/// there yet (e.g. `cargo test -p pgw`), built once with `cargo build -p pushgateway`.
pub fn our_gateway_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let pgw = pgw_bin();
        let profile_dir = pgw.parent().expect("pgw has a directory");
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
        let cargo = option_env!("CARGO").unwrap_or("cargo");
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
        eprintln!("building the pushgateway binary for the pgw tests: {cmd:?}");
        let status = cmd.status().expect("running cargo build -p pushgateway");
        assert!(status.success(), "cargo build -p pushgateway failed");
        assert!(bin.exists(), "{} not found after the build", bin.display());
        bin
    })
    .clone()
}

/// True (after printing a note) when the official binary is missing.
pub fn official_missing() -> bool {
    if Path::new(OFFICIAL).exists() {
        return false;
    }
    eprintln!("note: {OFFICIAL} not found; skipping the official-gateway part of this test");
    true
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Which gateway a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Official,
}

/// The gateways a test should run against: ours, and the official one when installed.
pub fn kinds() -> Vec<Kind> {
    let mut k = vec![Kind::Ours];
    if !official_missing() {
        k.push(Kind::Official);
    }
    k
}

/// A running gateway, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub url: String,
    pub kind: Kind,
}

impl Gateway {
    /// Starts a gateway on a free port and waits until it is ready.
    pub fn start(kind: Kind) -> Gateway {
        Self::start_with(kind, free_port(), &[])
    }

    /// Starts a gateway on `port` with extra flags and waits until it is ready.
    pub fn start_with(kind: Kind, port: u16, extra: &[&str]) -> Gateway {
        let g = Self::spawn(kind, port, extra);
        g.wait_ready();
        g
    }

    /// Starts a gateway without waiting for it.
    pub fn spawn(kind: Kind, port: u16, extra: &[&str]) -> Gateway {
        let bin = match kind {
            Kind::Ours => our_gateway_bin(),
            Kind::Official => PathBuf::from(OFFICIAL),
        };
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if kind == Kind::Official {
            cmd.arg("--persistence.file=");
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("starting the gateway");
        Gateway {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            kind,
        }
    }

    /// Waits (at most 20s) until the gateway accepts connections (both gateways open their
    /// listener only once they are ready to serve).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway on port {} not ready",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway on port {} not ready", self.port);
    }

    /// `GET /metrics`, parsed.
    pub fn scrape(&self) -> Vec<MetricFamily> {
        let body = http_get(&format!("{}/metrics", self.url));
        exposition::text_parse::parse_text(body.as_bytes()).expect("scrape parses")
    }

    /// `GET /api/v1/metrics` as JSON.
    pub fn api(&self) -> serde_json::Value {
        serde_json::from_str(&http_get(&format!("{}/api/v1/metrics", self.url))).expect("api json")
    }

    /// Runs pgw with `--gateway` pointing here (and short retry settings).
    pub fn pgw(&self, args: &[&str]) -> Output {
        pgw_with_gateway(&self.url, args, None)
    }

    /// Like [`Gateway::pgw`] with standard input.
    pub fn pgw_stdin(&self, args: &[&str], stdin: &str) -> Output {
        pgw_with_gateway(&self.url, args, Some(stdin))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(url: &str) -> String {
    let resp = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut s = String::new();
    resp.into_reader().read_to_string(&mut s).unwrap();
    s
}

/// Runs `pgw SUBCOMMAND --gateway URL ARGS...` (the subcommand is `args[0]`); the rest of
/// `args` may contain `--` and a command. Bounded: pgw's own timeouts bound every call.
pub fn pgw_with_gateway(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(pgw_bin());
    cmd.arg(args[0]).arg("--gateway").arg(url);
    cmd.args(&args[1..]);
    run_output(cmd, stdin)
}

/// Runs a prepared command to completion, feeding `stdin`.
pub fn run_output(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.env_remove("PGW_GATEWAY")
        .env_remove("PGW_PASSWORD")
        .env_remove("PGW_USERNAME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pgw");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("wait for pgw")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The value of the single sample of `name` whose labels include all of `labels`.
pub fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let f = fams.iter().find(|f| f.name() == name)?;
    let m = f.metric.iter().find(|m| {
        labels
            .iter()
            .all(|(n, v)| m.label.iter().any(|l| l.name() == *n && l.value() == *v))
    })?;
    m.gauge
        .as_ref()
        .and_then(|g| g.value)
        .or_else(|| m.counter.as_ref().and_then(|c| c.value))
        .or_else(|| m.untyped.as_ref().and_then(|u| u.value))
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
