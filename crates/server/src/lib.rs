//! The HTTP side of the gateway: routing, push and delete handlers, the scrape, API v1, the web
//! UI and the gateway's own telemetry. It owns no metric state: every handler works on the
//! [`store::Store`] handed in, and readers work on one immutable [`store::Snapshot`] each.
//!
//! A request's way in: [`serve`] accepts connections (permits, TLS and the client's
//! certificate identity, graceful drain) and hands each request to [`App::handle`]
//! ([`dispatch`]), which decodes the path, authenticates and authorizes, applies the body
//! limits and calls the handler the route table names.
//!
//! * [`serve`](mod@serve): the accept loop, connection permits, TLS handshakes, the drain.
//! * [`dispatch`]: one request from path to handler; [`App::handle`], generic over the body.
//! * [`router`]: the official routing quirks (path cleaning, trailing slashes, 405/OPTIONS).
//! * [`push`]: grouping keys from the URL, body decoding, PUT/POST/DELETE.
//! * [`scrape`]: the merged exposition, text or protobuf, plain or gzip.
//! * [`api`]: `/api/v1/status` and `/api/v1/metrics` JSON.
//! * [`json`]: JSON writing in Go's escaping and the API's CORS headers; [`timefmt`]: RFC 3339
//!   times; [`histogram`]: the float-or-integer count rule. Shared by the API and the UI.
//! * [`expiry`]: push TTLs, the gateway's clock and the expiry loop.
//! * [`groups`]: `GET /api/v1/groups` and the bulk `DELETE /api/v1/admin/groups`.
//! * [`conns`]: open connections; idle ones are shed when file descriptors run out.
//! * [`reqline`]: request targets as Go takes them (long ones, bytes `http::Uri` refuses),
//!   between the connection and hyper.
//! * [`cpu`]: long CPU work (big push bodies) kept off the runtime's worker threads.
//! * [`limits`]: request limits, the per-client push rate, and the rejection counters.
//! * [`otlp`]: the OTLP/HTTP metrics receiver (groups per resource, then the push path).
//! * [`ui`]: the server-rendered web UI with embedded assets.
//! * [`telemetry`]: `pushgateway_*` and `process_*` metrics.
//! * [`error`]: the single mapping from errors to HTTP responses.

pub mod api;
// unsafe: getrlimit/setrlimit(RLIMIT_NOFILE) (SAFETY comments at the calls).
#[allow(unsafe_code)]
pub mod conns;
pub mod cpu;
pub mod dispatch;
pub mod error;
pub mod expiry;
pub mod groups;
pub mod headtimer;
pub mod histogram;
pub mod http;
pub mod json;
pub mod limits;
pub mod otlp;
pub mod push;
pub mod reqline;
pub mod router;
pub mod scrape;
pub mod serve;
pub mod stream;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod timefmt;
pub mod ui;

pub use dispatch::BoxError;
pub use serve::serve;

use crate::router::Routes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use store::Store;
use tokio::sync::watch;

/// Build information shown in `pushgateway_build_info`, `/api/v1/status` and the UI.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

impl BuildInfo {
    /// The fields by their Go names, sorted, as `/api/v1/status` and the UI list them.
    pub fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("branch", &self.branch),
            ("buildDate", &self.build_date),
            ("buildUser", &self.build_user),
            ("goVersion", &self.go_version),
            ("revision", &self.revision),
            ("version", &self.version),
        ]
    }
}

/// Server settings derived from the flags.
#[derive(Clone, Debug)]
pub struct Config {
    pub routes: Routes,
    /// Path of `--web.external-url` (or `.`), used for the UI's asset links.
    pub external_path: String,
    pub enable_lifecycle: bool,
    pub enable_admin_api: bool,
    /// Every flag with its value, as `/api/v1/status` reports them.
    pub flags: BTreeMap<String, String>,
    pub build: BuildInfo,
    /// Offset of the local time zone, for RFC 3339 timestamps (read once at start-up).
    pub utc_offset: time::UtcOffset,
    /// Which TTL each push gives its group (`--push.ttl-rules`, `--push.default-ttl`,
    /// `--push.max-ttl`).
    pub ttl: store::ttl::TtlPolicy,
    /// Groups not pushed for this long are marked in the web UI (zero: never).
    pub stale_warning_age: std::time::Duration,
    /// How often expired groups are looked for.
    pub expiry_period: std::time::Duration,
    pub limits: limits::Limits,
    /// `--web.config.file`: TLS, users and scoped access, re-read when the file changes.
    pub web: Option<Arc<webconfig::ReloadingWebConfig>>,
    /// Name rules and optional exposition formats (`--push.enable-utf8-names`,
    /// `--push.enable-openmetrics`, `--web.enable-openmetrics`).
    pub formats: Formats,
    /// `--web.enable-otlp-receiver` and the `--otlp.*` flags (`None`: no OTLP receiver).
    pub otlp: Option<::otlp::Settings>,
}

/// Name rules and the optional exposition formats; all off by default, as upstream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Formats {
    /// `--push.enable-utf8-names`: UTF-8 metric and label names in text pushes, and `U__`
    /// escaped label names in the push path.
    pub utf8_names: bool,
    /// `--push.enable-openmetrics`: `application/openmetrics-text` pushes parsed as
    /// OpenMetrics 1.0 (else as text 0.0.4, as upstream).
    pub openmetrics_push: bool,
    /// `--web.enable-openmetrics`: a scrape that prefers OpenMetrics gets OpenMetrics 1.0.
    pub openmetrics_scrape: bool,
}

/// Shared state of the server.
pub struct App {
    pub cfg: Config,
    /// Reads: snapshots of the local store (in replicated mode, the mirror of the shared log).
    pub store: Arc<Store>,
    /// Writes: the local store itself, or the replicated log.
    pub writer: Arc<dyn store::Writer>,
    pub telemetry: telemetry::Telemetry,
    pub start_time: SystemTime,
    pub clock: expiry::Clock,
    pub rejections: limits::Rejections,
    pub rate: limits::RateLimiter,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(cfg: Config, store: Arc<Store>) -> Arc<App> {
        let writer: Arc<dyn store::Writer> = store.clone();
        App::with_writer(cfg, store, writer)
    }

    /// An app whose changes go through `writer` (replicated mode) while reads use `store`.
    pub fn with_writer(cfg: Config, store: Arc<Store>, writer: Arc<dyn store::Writer>) -> Arc<App> {
        let (shutdown, _) = watch::channel(false);
        let telemetry = telemetry::Telemetry::new(&cfg.build);
        let rate = limits::RateLimiter::new(cfg.limits.push_rate, cfg.limits.push_burst);
        Arc::new(App {
            writer,
            rejections: limits::Rejections::default(),
            rate,
            cfg,
            store,
            telemetry,
            start_time: SystemTime::now(),
            clock: expiry::Clock::default(),
            shutdown,
        })
    }

    /// Asks the server to shut down gracefully (SIGTERM, SIGINT, `/-/quit`).
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves once a shutdown was requested.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}
