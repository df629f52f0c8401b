//! The in-process server harness (feature `server`): a `server::Config` with test defaults
//! ([`config`]), a store with the gateway's own families ([`store_builder`]), and
//! [`InProcess`], the real `server::serve` on a 127.0.0.1 port of this process, so a test can
//! move the gateway's clock (`app.clock`) instead of waiting.

use crate::store::StoreBuilder;
use server::router::Routes;
use server::{App, BuildInfo, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// Build information with every field set to `s`.
pub fn build_info(s: &str) -> BuildInfo {
    BuildInfo {
        version: s.into(),
        revision: s.into(),
        branch: s.into(),
        build_user: s.into(),
        build_date: s.into(),
        go_version: s.into(),
    }
}

/// The server config of a gateway started with no flags (routes at `/`, telemetry at
/// `/metrics`, no admin API, lifecycle or OTLP, default limits and TTLs, UTC), except that the
/// stale-group warning is off and the expiry loop runs every second. Tests change what they
/// need with struct update syntax.
pub fn config() -> Config {
    Config {
        routes: Routes {
            prefix: String::new(),
            telemetry: "/metrics".into(),
            admin_api: false,
            otlp: false,
        },
        external_path: ".".into(),
        enable_lifecycle: false,
        enable_admin_api: false,
        flags: BTreeMap::new(),
        build: build_info("test"),
        utc_offset: time::UtcOffset::UTC,
        ttl: Default::default(),
        stale_warning_age: Duration::ZERO,
        expiry_period: Duration::from_secs(1),
        limits: Default::default(),
        web: None,
        formats: Default::default(),
        otlp: None,
    }
}

/// The gateway's own families (name and type), which pushed families must match.
pub fn own_families() -> Vec<(String, exposition::pb::MetricType)> {
    server::telemetry::OWN_FAMILIES
        .iter()
        .map(|(n, t, _)| (n.to_string(), *t))
        .collect()
}

/// A checked store with the gateway's own families, as the binary opens it.
pub fn store_builder() -> StoreBuilder {
    StoreBuilder::new().own_families(own_families())
}

/// `server::serve` on a 127.0.0.1 port in this process, with an async HTTP client.
pub struct InProcess {
    pub app: Arc<App>,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// Serves `store` with `cfg` (call inside a tokio runtime).
    pub async fn start(cfg: Config, store: Store) -> InProcess {
        let app = App::new(cfg, Arc::new(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(server::serve(app.clone(), vec![listener]));
        InProcess {
            app,
            base,
            client: reqwest::Client::new(),
            server,
        }
    }

    /// Shuts the server down (waiting at most 10 s) and closes the store.
    pub async fn stop(self) {
        self.app.request_shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.app.store.close().unwrap();
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
