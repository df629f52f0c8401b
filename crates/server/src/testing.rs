//! Test-only builders for the unit tests: a server config with official defaults and an app
//! on an in-memory store.

use crate::router::Routes;
use crate::{telemetry, App, BuildInfo, Config};
use std::sync::Arc;
use store::{Store, StoreConfig};

/// Defaults as the flags give them (no admin API, no web config), fixed build information.
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
        flags: Default::default(),
        build: BuildInfo {
            version: "1.2.3".into(),
            revision: "abc".into(),
            branch: "main".into(),
            build_user: "me@host".into(),
            build_date: "20240101".into(),
            go_version: "rust".into(),
        },
        utc_offset: time::UtcOffset::UTC,
        ttl: Default::default(),
        stale_warning_age: std::time::Duration::from_secs(3600),
        expiry_period: std::time::Duration::from_secs(1),
        limits: Default::default(),
        web: None,
        formats: Default::default(),
        otlp: None,
    }
}

/// An app on an empty, checked, in-memory store.
pub fn app(cfg: Config) -> Arc<App> {
    let own_families = telemetry::OWN_FAMILIES
        .iter()
        .map(|(n, t, _)| (n.to_string(), *t))
        .collect();
    let store = Store::open(StoreConfig {
        checked: true,
        own_families,
        persistence: None,
        quotas: Default::default(),
    })
    .unwrap();
    App::new(cfg, Arc::new(store))
}
