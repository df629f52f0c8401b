//! The HTTP side: one blocking client (ureq on rustls) with timeouts, basic auth, TLS (CA
//! file, client certificate), gzip-compressed pushes, and bounded retries with exponential
//! backoff on connection errors and 5xx answers (never on 4xx).

use crate::grouping::GroupingKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The content type of a text-format push.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The header our gateway reads a per-push TTL from (Go duration syntax); the official
/// gateway ignores it.
pub const TTL_HEADER: &str = "Pushgateway-TTL";
/// First backoff delay; it doubles after every failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest single backoff delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Everything needed to talk to a gateway.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, e.g. `http://pushgateway:9091` (a path prefix is kept).
    pub gateway: String,
    /// Timeout of one request (connect, send and receive).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// No retry starts once this much time has passed since the first attempt.
    pub retry_max_time: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Do not print a line on stderr before each retry.
    pub quiet: bool,
}

/// Push semantics: PUT replaces the whole group, POST only the families with the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Put,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

/// A failure to set up the client or to get a successful answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid gateway URL {0:?}: expected http://host:port or https://host:port")]
    BadUrl(String),
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{method} {url}: the gateway answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{method} {url}: {reason}")]
    Transport {
        method: &'static str,
        url: String,
        reason: String,
        retryable: bool,
    },
    #[error("GET {url}: unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl ClientError {
    /// Connection problems and 5xx answers are worth another try; 4xx answers never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status >= 500,
            ClientError::Transport { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The HTTP status, if the gateway answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The delay before retry number `n` (0-based): 0.5s, 1s, 2s, 4s, 8s, 8s, ... with up to
/// ±20% jitter (so that many cron jobs started at the same second spread out).
pub fn backoff(n: u32, jitter_seed: u64) -> Duration {
    let base = INITIAL_BACKOFF
        .saturating_mul(1u32 << n.min(16))
        .min(MAX_BACKOFF);
    // A cheap deterministic hash of the seed: -0.2 ..= +0.2.
    let x = jitter_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_add(u64::from(n));
    let frac = (x % 4001) as f64 / 10_000.0 - 0.2;
    base.mul_f64(1.0 + frac)
}

/// A gateway client.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    options: ClientOptions,
}

impl Client {
    /// Checks the URL, loads TLS files and builds the HTTP agent.
    pub fn new(options: ClientOptions) -> Result<Client, ClientError> {
        let base = options.gateway.trim().trim_end_matches('/').to_string();
        let lower = base.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        let host_ok = match rest {
            Some(r) => !r.is_empty() && !r.starts_with('/'),
            None => false,
        };
        if !host_ok {
            return Err(ClientError::BadUrl(options.gateway.clone()));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            .timeout_connect(options.timeout)
            .redirects(0)
            .user_agent(concat!("pgw/", env!("CARGO_PKG_VERSION")));
        if options.ca_file.is_some() || options.cert_file.is_some() || options.key_file.is_some() {
            builder = builder.tls_config(tls_config(
                options.ca_file.as_deref(),
                options.cert_file.as_deref(),
                options.key_file.as_deref(),
            )?);
        }
        let auth = match (&options.username, &options.password) {
            (None, None) => None,
            (user, pass) => {
                let creds = format!(
                    "{}:{}",
                    user.as_deref().unwrap_or(""),
                    pass.as_deref().unwrap_or("")
                );
                Some(format!("Basic {}", STANDARD.encode(creds)))
            }
        };
        Ok(Client {
            agent: builder.build(),
            base,
            auth,
            options,
        })
    }

    /// The gateway's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Pushes a text-format body to a group, gzip-compressed, with an optional TTL header.
    pub fn push(
        &self,
        key: &GroupingKey,
        method: Method,
        body: &[u8],
        ttl: Option<&str>,
    ) -> Result<(), ClientError> {
        self.push_to(key, method, body, ttl, None)
    }

    /// Pushes to the group's `/accumulate` route (the values are added to the group's) with
    /// an `Idempotency-Key`: every retry sends the same key, so a push whose answer was lost
    /// is not added twice.
    pub fn push_accumulate(
        &self,
        key: &GroupingKey,
        method: Method,
        body: &[u8],
        ttl: Option<&str>,
        idempotency_key: &str,
    ) -> Result<(), ClientError> {
        self.push_to(key, method, body, ttl, Some(idempotency_key))
    }

    fn push_to(
        &self,
        key: &GroupingKey,
        method: Method,
        body: &[u8],
        ttl: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut gz = GzEncoder::new(
            Vec::with_capacity(body.len() / 4 + 64),
            Compression::default(),
        );
        gz.write_all(body).expect("writing to a Vec cannot fail");
        let compressed = gz.finish().expect("writing to a Vec cannot fail");
        let prefix = if idempotency_key.is_some() {
            "/accumulate"
        } else {
            ""
        };
        let url = format!("{}{prefix}{}", self.base, key.path());
        self.with_retries(|| {
            let mut req = self
                .request(method.as_str(), &url)
                .set("Content-Type", TEXT_CONTENT_TYPE)
                .set("Content-Encoding", "gzip");
            if let Some(ttl) = ttl {
                req = req.set(TTL_HEADER, ttl);
            }
            if let Some(k) = idempotency_key {
                req = req.set("Idempotency-Key", k);
            }
            self.finish(method.as_str(), &url, req.send_bytes(&compressed))
                .map(drop)
        })
    }

    /// Deletes a group (the gateway answers 202, also when the group does not exist).
    pub fn delete(&self, key: &GroupingKey) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base, key.path());
        self.with_retries(|| {
            self.finish("DELETE", &url, self.request("DELETE", &url).call())
                .map(drop)
        })
    }

    /// `GET /api/v1/metrics`, parsed as JSON.
    pub fn api_metrics(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/api/v1/metrics", self.base);
        let body = self.with_retries(|| {
            let resp = self.finish("GET", &url, self.request("GET", &url).call())?;
            let mut body = Vec::new();
            resp.into_reader()
                .read_to_end(&mut body)
                .map_err(|e| ClientError::Transport {
                    method: "GET",
                    url: url.clone(),
                    reason: format!("reading the answer: {e}"),
                    retryable: true,
                })?;
            Ok(body)
        })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
            url,
            reason: e.to_string(),
        })
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let req = self.agent.request(method, url);
        match &self.auth {
            Some(a) => req.set("Authorization", a),
            None => req,
        }
    }

    /// Turns ureq's result into ours: only 2xx is success.
    fn finish(
        &self,
        method: &'static str,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ClientError> {
        match result {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp),
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                let status = resp.status();
                let location = resp.header("Location").map(str::to_string);
                let mut text = String::new();
                let _ = resp.into_reader().take(4096).read_to_string(&mut text);
                let mut body = text.trim().to_string();
                if let Some(loc) = location {
                    body = format!("redirect to {loc} {body}").trim().to_string();
                }
                if body.is_empty() {
                    body = "(no body)".to_string();
                }
                Err(ClientError::Status {
                    method,
                    url: url.to_string(),
                    status,
                    body,
                })
            }
            Err(ureq::Error::Transport(t)) => {
                let retryable = !matches!(
                    t.kind(),
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
                );
                Err(ClientError::Transport {
                    method,
                    url: url.to_string(),
                    reason: transport_reason(&t),
                    retryable,
                })
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry budget (count and
    /// time) is spent.
    fn with_retries<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let start = Instant::now();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ u64::from(std::process::id()))
            .unwrap_or(0);
        let mut n = 0;
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < self.options.retries => {
                    let delay = backoff(n, seed);
                    if start.elapsed() + delay > self.options.retry_max_time {
                        return Err(e);
                    }
                    if !self.options.quiet {
                        eprintln!(
                            "pgw: {e}; retry {}/{} in {:.1}s",
                            n + 1,
                            self.options.retries,
                            delay.as_secs_f64()
                        );
                    }
                    std::thread::sleep(delay);
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// ureq's transport error without the URL (ours is in the message already) and without
/// repeated parts: "Connection Failed: Connect error: Connection refused (os error 111)".
fn transport_reason(t: &ureq::Transport) -> String {
    let mut parts: Vec<String> = vec![t.kind().to_string()];
    if let Some(m) = t.message() {
        parts.push(m.to_string());
    }
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        // A source's text often repeats its cause's: keep the longer, more specific one.
        if out
            .last()
            .is_some_and(|last: &String| p.contains(last.as_str()) && p != *last)
        {
            out.pop();
        }
        if !out.iter().any(|o| o.contains(p.as_str())) {
            out.push(p);
        }
    }
    out.join(": ")
}

fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A rustls configuration: the CA file's certificates (else the Mozilla roots) and, with
/// both files given, a client certificate chain and its private key (PEM).
pub fn tls_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let pem_err = |path: &Path, e: rustls_pki_types::pem::Error| ClientError::File {
        path: path.to_path_buf(),
        reason: format!("not valid PEM: {e}"),
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = read_file(path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| pem_err(path, e))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(ClientError::File {
                    path: path.to_path_buf(),
                    reason: "no CERTIFICATE found".to_string(),
                });
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (cert_file, key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert_path), Some(key_path)) => {
            let pem = read_file(cert_path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_err(cert_path, e))?;
            if certs.is_empty() {
                return Err(ClientError::File {
                    path: cert_path.to_path_buf(),
                    reason: "no CERTIFICATE found".to_string(),
                });
            }
            let key_pem = read_file(key_path)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ClientError::File {
                path: key_path.to_path_buf(),
                reason: format!("no private key found: {e}"),
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
        _ => {
            return Err(ClientError::Tls(
                "--cert-file and --key-file must be given together".to_string(),
            ))
        }
    };
    Ok(Arc::new(config))
}

/// A fresh idempotency key: unique per process and call (time, process id, a counter, and
/// the address of a stack value).
pub fn new_idempotency_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let local = 0u8;
    format!(
        "pgw-{nanos:x}-{:x}-{:x}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::ptr::addr_of!(local) as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(gateway: &str) -> ClientOptions {
        ClientOptions {
            gateway: gateway.to_string(),
            timeout: Duration::from_secs(1),
            retries: 0,
            retry_max_time: Duration::from_secs(1),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            quiet: true,
        }
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        for seed in [0u64, 1, 42, u64::MAX] {
            for (n, base) in [
                (0u32, 0.5f64),
                (1, 1.0),
                (2, 2.0),
                (3, 4.0),
                (4, 8.0),
                (9, 8.0),
            ] {
                let d = backoff(n, seed).as_secs_f64();
                assert!(
                    d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                    "n={n} {d}"
                );
            }
        }
    }

    #[test]
    fn retryable_errors() {
        let status = |s| ClientError::Status {
            method: "PUT",
            url: String::new(),
            status: s,
            body: String::new(),
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(401).is_retryable());
    }

    #[test]
    fn gateway_url_is_checked() {
        assert!(Client::new(options("http://127.0.0.1:9091")).is_ok());
        assert_eq!(
            Client::new(options("https://gw.example/prefix/"))
                .unwrap()
                .base_url(),
            "https://gw.example/prefix"
        );
        for bad in ["127.0.0.1:9091", "ftp://x", "http://", ""] {
            assert!(
                matches!(Client::new(options(bad)), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = tls_config(Some(&missing), None, None).unwrap_err();
        assert!(matches!(e, ClientError::File { .. }), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = tls_config(Some(&empty), None, None).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = tls_config(None, Some(&empty), None).unwrap_err();
        assert!(e.to_string().contains("together"), "{e}");
        assert!(tls_config(None, None, None).is_ok());
    }

    /// A one-thread HTTP server answering each request with the next of `statuses`;
    /// returns its URL and the number of requests it saw.
    fn scripted_server(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::BufRead;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = 0;
            for status in statuses {
                let (conn, _) = l.accept().unwrap();
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                seen += 1;
                let mut w = conn;
                write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
                )
                .unwrap();
            }
            seen
        });
        (url, h)
    }

    #[test]
    fn server_errors_are_retried_client_errors_are_not() {
        let (url, server) = scripted_server(vec![503, 500, 202]);
        let mut o = options(&url);
        o.retries = 3;
        o.retry_max_time = Duration::from_secs(30);
        let key = GroupingKey::new("j", &[]).unwrap();
        Client::new(o.clone()).unwrap().delete(&key).unwrap();
        assert_eq!(server.join().unwrap(), 3);

        let (url, server) = scripted_server(vec![400]);
        o.gateway = url;
        let e = Client::new(o).unwrap().delete(&key).unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert!(
            e.to_string().ends_with("the gateway answered 400: body"),
            "{e}"
        );
        assert_eq!(server.join().unwrap(), 1);
    }

    #[test]
    fn retries_stop_at_the_time_budget() {
        let (url, server) = scripted_server(vec![503, 503]);
        let mut o = options(&url);
        o.retries = 10;
        // The first backoff (at least 0.4s) fits, the second (at least 0.8s more) does not.
        o.retry_max_time = Duration::from_millis(1000);
        let e = Client::new(o)
            .unwrap()
            .delete(&GroupingKey::new("j", &[]).unwrap())
            .unwrap_err();
        assert_eq!(e.status(), Some(503));
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn connection_refused_is_retried_then_reported() {
        // A port nobody listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut o = options(&format!("http://127.0.0.1:{port}"));
        o.retries = 2;
        o.retry_max_time = Duration::from_secs(10);
        let client = Client::new(o).unwrap();
        let t = Instant::now();
        let e = client
            .delete(&GroupingKey::new("j", &[]).unwrap())
            .unwrap_err();
        assert!(e.is_retryable(), "{e}");
        // Two backoffs: at least 0.4s + 0.8s.
        assert!(
            t.elapsed() >= Duration::from_millis(1200),
            "{:?}",
            t.elapsed()
        );
        assert!(e.to_string().starts_with("DELETE http://127.0.0.1:"), "{e}");
    }
}
