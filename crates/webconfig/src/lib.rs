//! The `--web.config.file` of the pushgateway: loading, TLS, authentication and scoped
//! authorization.
//!
//! This crate owns everything the web configuration file decides; the HTTP server only asks it:
//!
//! - [`WebConfig::load`] / [`WebConfig::parse`] read exporter-toolkit's format strictly (unknown
//!   or duplicate keys, bad values and unreadable files are a [`WebConfigError`] naming the key or
//!   file), so a file the official gateway accepts works unchanged.
//! - [`WebConfig::tls`] is the `rustls` server configuration (ring provider, ALPN `http/1.1`),
//!   or `None` for plain HTTP. [`WebConfig::headers`] are the `http_server_config.headers` to
//!   add to every response.
//! - [`WebConfig::authorize`] decides every request: basic auth against bcrypt hashes (cached,
//!   compared in constant time), verified client certificates ([`ClientIdentity`]), and the
//!   `access` extension's roles and push matchers.
//! - [`ReloadingWebConfig`] re-reads the file and the certificate, key and CA files it names
//!   when they change, keeping the last good configuration when the new one is invalid.
//!
//! # Format
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # or inline `cert:`; relative to the config file's directory
//!   key_file: server.key           # or inline `key:`
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt         # or inline `client_ca:`
//!   client_allowed_sans: [batch.example.org]
//!   min_version: TLS12             # TLS10/TLS11 as minimum mean TLS12; as maximum, an error
//!   max_version: TLS13
//!   cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
//!   curve_preferences: [X25519, CurveP256]
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   http2: true                    # accepted, ignored: the server speaks HTTP/1.1
//!   headers:
//!     X-Frame-Options: deny
//! basic_auth_users:
//!   dave: $2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq
//! rate_limit:                      # parsed and exposed by WebConfig::rate_limit
//!   interval: 1s
//!   burst: 20
//! access:                          # this project's extension, see below
//!   users:
//!     dave: { roles: [push], push_matchers: ['{job=~"ci-.*"}'] }
//! ```
//!
//! TLS details where rustls differs from Go: rustls implements TLS 1.2 and 1.3 only, so
//! `min_version: TLS10`/`TLS11` start at TLS 1.2 (with a warning) and `max_version: TLS10`/
//! `TLS11` is an error. `cipher_suites` orders and restricts the TLS 1.2 suites; Go names that
//! rustls does not implement (CBC, RSA key exchange) are ignored with a warning, TLS 1.3 suite
//! names are ignored (Go does not configure TLS 1.3 suites either), unknown names are an error.
//! `curve_preferences` likewise (`CurveP521` is not offered by the ring provider). With a
//! verifying `client_auth_type` and no client CA, certificates are verified against the web
//! PKI roots (Go uses the system roots).
//!
//! # Authorization
//!
//! Roles: `read` (scrapes, the API, the UI, `/-/healthy`, `/-/ready`), `push` (PUT, POST and
//! DELETE of a group, restricted to groups whose grouping key matches one of the
//! `push_matchers` selectors if any are given) and `admin` (wipe, bulk deletes, quit).
//!
//! ```yaml
//! access:
//!   users:            # by basic_auth_users name
//!     ci:  { roles: [push], push_matchers: ['{job=~"ci-.*"}'] }
//!     ops: { roles: [push, read, admin] }
//!   client_certs:     # by verified client certificate: subject CN or a SAN
//!     batch.example.org: { roles: [push, read] }
//!   default: { roles: [push, read, admin] }   # authenticated, not listed (default: all)
//!   anonymous: { roles: [read] }              # no credentials (default: see below)
//! ```
//!
//! The decision for a request, in order:
//!
//! 1. With `basic_auth_users` configured and an `Authorization` header present, the header must
//!    be valid `Basic` credentials of a configured user, else 401 (an unknown user is still
//!    checked against a dummy hash). The user's entry in `access.users` (else
//!    `access.default`) decides: 403 with a reason when the role or push matchers do not allow.
//! 2. A client certificate counts only when `client_auth_type` verifies certificates
//!    (`VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`). Its CN, then its SANs, are
//!    looked up in `access.client_certs`; the first listed name decides. A verified certificate
//!    not listed is `access.default` when no basic-auth users exist; with users it does not
//!    authenticate (as in exporter-toolkit, where certificates never replace basic auth).
//! 3. Otherwise the request is anonymous and `access.anonymous` decides. It defaults to all
//!    roles when nothing can authenticate (no `basic_auth_users`, no `access.client_certs`), and
//!    to no role otherwise. Refused anonymous requests are 401 (with basic-auth users) or 403.
//!
//! Without an `access` section this is exactly exporter-toolkit's behaviour: with users, every
//! request needs valid credentials and a valid user may do everything; without users, everything
//! is open.

#![forbid(unsafe_code)]

mod auth;
mod config;
mod identity;
mod reload;
mod tls;

pub use auth::{Action, AuthRequest, Denial, Principal};
pub use identity::ClientIdentity;
pub use reload::ReloadingWebConfig;
pub use tls::ClientAuth;
pub use tokio_rustls;

use auth::{Access, Users};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The configuration file itself could not be read.
    #[error("reading web config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid YAML, an unknown or duplicate key, or a value of the wrong type.
    #[error("parsing web config file{}: {message}", .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Yaml {
        path: Option<PathBuf>,
        message: String,
    },
    /// A setting with an invalid value.
    #[error("web config: {key}: {message}")]
    Invalid { key: String, message: String },
    /// A file named by a setting could not be read.
    #[error("web config: {key}: reading {path}: {source}")]
    File {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Certificates or keys that rustls refuses.
    #[error("web config: TLS: {0}")]
    Tls(String),
    /// A reload may not switch TLS on or off (the listener is already plain or TLS).
    #[error("web config: TLS cannot be enabled or disabled by a reload; restart to change it")]
    TlsToggled,
}

impl WebConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// exporter-toolkit's `rate_limit`: a token bucket of `burst` requests refilled every
/// `interval`. Parsed and validated here; enforcing it is the server's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u64,
}

/// A loaded, validated web configuration.
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    client_auth: ClientAuth,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    http2: bool,
    rate_limit: Option<RateLimit>,
    users: Users,
    access: Access,
    /// The config file (if loaded from one) and the files it references, for change detection.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("headers", &self.headers)
            .field("users", &self.users.names().len())
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// exporter-toolkit's allowed headers and, where it restricts them, their allowed values.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl WebConfig {
    /// Reads and validates the file at `path`; relative paths in it are relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut c = Self::parse(&text, base).map_err(|e| match e {
            WebConfigError::Yaml { message, .. } => WebConfigError::Yaml {
                path: Some(path.to_path_buf()),
                message,
            },
            e => e,
        })?;
        c.files.insert(0, path.to_path_buf());
        Ok(c)
    }

    /// Parses and validates configuration text; relative paths are relative to `base_dir`.
    pub fn parse(yaml: &str, base_dir: &Path) -> Result<WebConfig, WebConfigError> {
        let raw = config::decode(yaml).map_err(|message| WebConfigError::Yaml {
            path: None,
            message,
        })?;

        let tls = tls::build(&raw.tls_server_config.unwrap_or_default(), base_dir)?;

        let http = raw.http_server_config.unwrap_or_default();
        let mut headers = Vec::new();
        for (name, value) in http.headers.unwrap_or_default().0 {
            let key = format!("http_server_config.headers.{name}");
            let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
                return Err(WebConfigError::invalid(
                    key,
                    format!("HTTP header {name:?} can not be configured"),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(WebConfigError::invalid(
                    key,
                    format!(
                        "invalid value for {name}. Expected one of: {allowed:?}, but got: {:?}",
                        value.as_str()
                    ),
                ));
            }
            if value.as_str().is_empty() {
                continue; // "Unset if blank."
            }
            let v = http::HeaderValue::from_str(value.as_str())
                .map_err(|_| WebConfigError::invalid(key, "invalid header value"))?;
            let n = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid name");
            headers.push((n, v));
        }

        let rate_limit = match raw.rate_limit {
            Some(r) => {
                let burst = r.burst.unwrap_or(0);
                let burst = u64::try_from(burst).map_err(|_| {
                    WebConfigError::invalid("rate_limit.burst", "must not be negative")
                })?;
                let interval = r.interval.map(|d| d.0).unwrap_or_default();
                (!interval.is_zero()).then_some(RateLimit { interval, burst })
            }
            None => None,
        };

        let mut hashes = HashMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default().0 {
            auth::validate_hash(&user, hash.as_str())?;
            hashes.insert(user, hash.0);
        }
        let access = Access::parse(raw.access.as_ref(), &hashes)?;
        if access.has_client_certs() && !tls.client_auth.verifies() {
            return Err(WebConfigError::invalid(
                "access.client_certs",
                "needs tls_server_config.client_auth_type VerifyClientCertIfGiven or \
                 RequireAndVerifyClientCert (unverified certificates are no identity)",
            ));
        }

        Ok(WebConfig {
            tls: tls.server_config,
            client_auth: tls.client_auth,
            headers,
            http2: http.http2.map(|b| b.0).unwrap_or(true),
            rate_limit,
            users: Users::new(hashes),
            access,
            files: tls.files,
        })
    }

    /// The TLS server configuration, or `None` when the file does not enable TLS. Take it anew
    /// for each accepted connection (from [`ReloadingWebConfig::current`]) so that rotated
    /// certificates are used.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// The `client_auth_type`.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// Headers to add to every response (`http_server_config.headers`).
    pub fn headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &self.headers
    }

    /// `http_server_config.http2`: accepted for compatibility; the server only speaks HTTP/1.1.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// `rate_limit`, when its interval is not zero.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// Whether `basic_auth_users` is non-empty.
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Decides a request (see the crate documentation). May run a bcrypt check (tens of
    /// milliseconds, one at a time) when the credentials are not in the cache yet, so call it
    /// where blocking is acceptable (e.g. `tokio::task::spawn_blocking` or `block_in_place`)
    /// or accept that cost on the first request of each client.
    pub fn authorize(&self, req: &AuthRequest<'_>) -> Result<Principal, Denial> {
        auth::authorize(&self.users, &self.access, self.client_auth.verifies(), req)
    }

    /// The configuration file and the certificate, key and CA files it references.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

#[cfg(test)]
mod tests;
