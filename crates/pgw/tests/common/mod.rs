//! Shared helpers for the integration tests: locating (or building) our `pushgateway`
//! binary, starting it or the official binary on a free 127.0.0.1 port, running `pgw`, and
//! reading back what a gateway exposes.

#![allow(dead_code)]

use exposition::pb::MetricFamily;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
pub use testkit::gateway::{free_port, OFFICIAL};

pub fn pgw_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgw"))
}

/// True (after printing a note) when the official binary is missing.
pub fn official_missing() -> bool {
    if Path::new(OFFICIAL).exists() {
        return false;
    }
    eprintln!("note: {OFFICIAL} not found; skipping the official-gateway part of this test");
    true
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

/// A running gateway (the kit's harness), killed on drop.
pub struct Gateway {
    pub gw: testkit::gateway::Gateway,
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
        let mut g = Self::spawn(kind, port, extra);
        g.wait_ready();
        g
    }

    /// Starts a gateway without waiting for it.
    pub fn spawn(kind: Kind, port: u16, extra: &[&str]) -> Gateway {
        let mut b = testkit::gateway::Gateway::builder().ready_on_connect();
        if kind == Kind::Official {
            b = b.bin(OFFICIAL).args(&["--persistence.file="]);
        }
        Gateway {
            gw: b.args(extra).spawn_on(port),
            port,
            url: format!("http://127.0.0.1:{port}"),
            kind,
        }
    }

    /// Waits (at most 20s) until the gateway accepts connections (both gateways open their
    /// listener only once they are ready to serve).
    pub fn wait_ready(&mut self) {
        assert!(
            self.gw.wait_ready(None, Duration::from_secs(20)),
            "gateway on port {} not ready",
            self.port
        );
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
