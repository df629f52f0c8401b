//! From the parsed flags to the configurations of the parts the binary wires together: the
//! store's ([`store_config`]), the HTTP server's ([`server_config`]: routes, limits, formats,
//! TTL policy, OTLP), the cluster's ([`cluster_config`]), and the flag list that
//! `/api/v1/status` reports ([`status_flags`], derived from clap's definitions so no flag can
//! be left out by mistake). Pure mappings, apart from reading the files a flag names.

use crate::rules::parse_ttl_rules;
use anyhow::{Context, Result};
use clap::ArgMatches;
use pushgateway::flags::{format_go_duration, Flags};
use server::router::Routes;
use server::{BuildInfo, Config};
use std::collections::BTreeMap;
use std::time::Duration;
use store::wal::SyncMode;
use store::{PersistConfig, StoreConfig};

/// `computeRoutePrefix`: the route prefix, else the external URL's path; `/` means none.
pub fn route_prefix(prefix: &str, external_url: &str) -> String {
    let p = if prefix.is_empty() {
        external_path(external_url)
    } else {
        prefix.to_string()
    };
    let trimmed = p.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The path of `--web.external-url` (empty without one).
pub fn external_path(external_url: &str) -> String {
    let after_scheme = external_url
        .split_once("://")
        .map_or(external_url, |(_, r)| r);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].to_string(),
        None => String::new(),
    }
}

/// A `--web.listen-address` as an address to bind (`:9091` → `0.0.0.0:9091`).
pub fn listen_addr(a: &str) -> Result<String> {
    // Go's net.SplitHostPort: a host without a port is refused with this text.
    if !a.contains(':') {
        anyhow::bail!("listen tcp: address {a}: missing port in address");
    }
    Ok(if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_string()
    })
}

/// `--persistence.file` and `--persistence.sync` (none without a file).
pub fn persistence(flags: &Flags) -> Option<PersistConfig> {
    if flags.persistence_file.is_empty() {
        return None;
    }
    Some(PersistConfig {
        path: flags.persistence_file.clone().into(),
        sync: if flags.persistence_sync == "interval" {
            SyncMode::Interval(Duration::from_secs(1))
        } else {
            SyncMode::Always
        },
    })
}

/// The store's configuration: consistency checks, the reserved own families (the lazily
/// created ones too), persistence and quotas.
pub fn store_config(flags: &Flags) -> StoreConfig {
    let own_families = server::telemetry::OWN_FAMILIES
        .iter()
        .chain(server::telemetry::EXTRA_FAMILIES)
        .map(|(n, t, _)| (n.to_string(), *t))
        .collect();
    StoreConfig {
        checked: !flags.disable_consistency_check,
        own_families,
        persistence: persistence(flags),
        quotas: store::Quotas {
            max_series_per_group: flags.max_series_per_group,
            max_groups: flags.max_groups,
            max_total_series: flags.max_series,
        },
    }
}

/// The request limits (`--limits.*`, `--web.read-*timeout`, `--web.max-connections`).
pub fn limits(flags: &Flags) -> server::limits::Limits {
    server::limits::Limits {
        max_body_bytes: usize::try_from(flags.max_body_size).unwrap_or(usize::MAX),
        max_labels_per_series: flags.max_labels_per_series,
        max_label_value_bytes: usize::try_from(flags.max_label_value_length).unwrap_or(usize::MAX),
        max_series_per_push: flags.max_series_per_push,
        push_rate: flags.push_rate,
        push_burst: if flags.push_burst > 0.0 {
            flags.push_burst
        } else {
            flags.push_rate.ceil()
        },
        read_header_timeout: flags.read_header_timeout,
        read_body_timeout: flags.read_timeout,
        max_connections: flags.max_connections,
    }
}

/// The routes: the prefix, the telemetry path under it, and the optional APIs.
pub fn routes(flags: &Flags) -> Routes {
    let prefix = route_prefix(&flags.route_prefix, &flags.external_url);
    let telemetry = format!(
        "{}/{}",
        prefix,
        flags.telemetry_path.trim_start_matches('/')
    );
    Routes {
        prefix,
        telemetry: server::router::clean_path(&telemetry),
        admin_api: flags.enable_admin_api,
        otlp: flags.enable_otlp_receiver,
    }
}

/// The HTTP server's configuration. `status` is the flag list of `/api/v1/status`
/// ([`status_flags`]). Reads the `--push.ttl-rules` file and starts watching the
/// `--web.config.file`.
pub fn server_config(
    flags: &Flags,
    status: BTreeMap<String, String>,
    build: BuildInfo,
    utc_offset: time::UtcOffset,
) -> Result<Config> {
    let ext = external_path(&flags.external_url);
    Ok(Config {
        routes: routes(flags),
        external_path: if ext.is_empty() {
            ".".into()
        } else {
            ext.trim_end_matches('/').to_string()
        },
        enable_lifecycle: flags.enable_lifecycle,
        enable_admin_api: flags.enable_admin_api,
        flags: status,
        build,
        utc_offset,
        ttl: ttl_policy(flags)?,
        stale_warning_age: flags.stale_warning_age,
        expiry_period: Duration::from_secs(1),
        formats: server::Formats {
            utf8_names: flags.enable_utf8_names,
            openmetrics_push: flags.enable_openmetrics_push,
            openmetrics_scrape: flags.enable_openmetrics_scrape,
        },
        web: if flags.web_config_file.is_empty() {
            None
        } else {
            Some(
                webconfig::ReloadingWebConfig::start(&flags.web_config_file)
                    .with_context(|| format!("--web.config.file {:?}", flags.web_config_file))?,
            )
        },
        otlp: otlp_settings(flags)?,
        limits: limits(flags),
    })
}

/// The TTL and accumulation settings from the flags and the `--push.ttl-rules` file.
pub fn ttl_policy(flags: &Flags) -> Result<store::ttl::TtlPolicy> {
    let (rules, accumulate) = if flags.ttl_rules.is_empty() {
        Default::default()
    } else {
        let text = std::fs::read_to_string(&flags.ttl_rules)
            .with_context(|| format!("reading --push.ttl-rules file {:?}", flags.ttl_rules))?;
        parse_ttl_rules(&text)
            .map_err(|e| anyhow::anyhow!("--push.ttl-rules file {:?}: {e}", flags.ttl_rules))?
    };
    Ok(store::ttl::TtlPolicy {
        rules,
        default: flags.default_ttl,
        max: flags.max_ttl,
        accumulate,
    })
}

/// The OTLP receiver's settings from `--web.enable-otlp-receiver` and the `--otlp.*` flags
/// (checked even when the receiver is off, so a typo fails at start-up).
pub fn otlp_settings(f: &Flags) -> Result<Option<otlp::Settings>> {
    let strategy: otlp::Strategy = f
        .otlp_translation_strategy
        .parse()
        .map_err(|e| anyhow::anyhow!("--otlp.translation-strategy: {e}"))?;
    if !strategy.escapes() && !f.enable_utf8_names {
        anyhow::bail!(
            "--otlp.translation-strategy={strategy}: keeping UTF-8 metric and label names needs \
             --push.enable-utf8-names; without it use UnderscoreEscapingWithSuffixes or \
             UnderscoreEscapingWithoutSuffixes"
        );
    }
    let mut promote: Vec<String> = Vec::new();
    for a in f
        .otlp_promote_resource_attributes
        .iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
    {
        if a.is_empty() {
            continue;
        }
        if promote.iter().any(|p| p == a) {
            anyhow::bail!("--otlp.promote-resource-attributes: {a:?} given twice");
        }
        promote.push(a.to_string());
    }
    Ok(f.enable_otlp_receiver.then_some(otlp::Settings {
        strategy,
        promote_resource_attributes: promote,
        keep_identifying_resource_attributes: f.otlp_keep_identifying_resource_attributes,
        promote_scope_metadata: f.otlp_promote_scope_metadata,
    }))
}

/// Replicated-mode settings from the `--cluster.*` flags (reads the password file).
pub fn cluster_config(f: &Flags) -> Result<cluster::ClusterConfig> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let password = match f.cluster_nats_password_file.as_str() {
        "" => None,
        path => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--cluster.nats-password-file {path:?}"))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
    };
    Ok(cluster::ClusterConfig {
        urls: f
            .cluster_nats_url
            .iter()
            .flat_map(|u| u.split(','))
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        bucket: f.cluster_bucket.clone(),
        replicas: f.cluster_replicas,
        user: opt(&f.cluster_nats_user),
        password,
        token: None,
        creds_file: opt(&f.cluster_nats_creds).map(Into::into),
        tls_ca: opt(&f.cluster_tls_ca).map(Into::into),
        tls_cert: opt(&f.cluster_tls_cert).map(Into::into),
        tls_key: opt(&f.cluster_tls_key).map(Into::into),
        require_tls: false,
        timeout: f.cluster_timeout,
    })
}

/// Visible flags that `/api/v1/status` does not list: the actions (`--version`, `--help-*`),
/// the ignored `--web.local-assets`, and the `--cluster.*` connection details, as before the
/// list was derived from the flag definitions. Every other flag is listed.
pub const NOT_IN_STATUS: &[&str] = &[
    "version",
    "help-long",
    "help-man",
    "web.local-assets",
    "cluster.nats-user",
    "cluster.nats-password-file",
    "cluster.nats-creds",
    "cluster.tls-ca",
    "cluster.tls-cert",
    "cluster.tls-key",
    "cluster.import-file",
    "cluster.timeout",
];

/// Every flag with its current value as `/api/v1/status` reports it, from the command's
/// definitions (hidden `--no-*` negations and [`NOT_IN_STATUS`] left out): durations as Go
/// prints them (`5m0s`), repeated flags joined with commas, sizes in bytes.
pub fn status_flags(cmd: &clap::Command, matches: &ArgMatches) -> BTreeMap<String, String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            if NOT_IN_STATUS.contains(&long) {
                return None;
            }
            Some((long.to_string(), value_text(matches, a.get_id().as_str())?))
        })
        .collect()
}

/// The current value of the flag `id` as text, for the value types the flags use; `None`
/// for another type (a test checks that every listed flag has one of these).
fn value_text(m: &ArgMatches, id: &str) -> Option<String> {
    fn joined<T: Clone + Send + Sync + 'static>(
        m: &ArgMatches,
        id: &str,
        show: impl Fn(&T) -> String,
    ) -> Option<String> {
        match m.try_get_many::<T>(id) {
            Ok(Some(values)) => Some(values.map(show).collect::<Vec<_>>().join(",")),
            Ok(None) => Some(String::new()),
            Err(_) => None,
        }
    }
    joined::<String>(m, id, String::clone)
        .or_else(|| joined::<bool>(m, id, bool::to_string))
        .or_else(|| joined::<Duration>(m, id, |d| format_go_duration(*d)))
        .or_else(|| joined::<u64>(m, id, u64::to_string))
        .or_else(|| joined::<usize>(m, id, usize::to_string))
        .or_else(|| joined::<f64>(m, id, f64::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> (Flags, ArgMatches) {
        let mut argv = vec!["pushgateway"];
        argv.extend_from_slice(args);
        let m = pushgateway::command().try_get_matches_from(argv).unwrap();
        (Flags::from_arg_matches(&m).unwrap(), m)
    }

    fn status(args: &[&str]) -> BTreeMap<String, String> {
        status_flags(&pushgateway::command(), &parse(args).1)
    }

    #[test]
    fn route_prefix_rules() {
        assert_eq!(route_prefix("", ""), "");
        assert_eq!(route_prefix("/", ""), "");
        assert_eq!(route_prefix("pgw/", ""), "/pgw");
        assert_eq!(route_prefix("/pgw", "http://x/ext/"), "/pgw");
        assert_eq!(route_prefix("", "http://example.com/ext/"), "/ext");
    }

    /// The list as the hand-written map reported it before it was derived from clap.
    const DEFAULT_STATUS: &[(&str, &str)] = &[
        ("cluster.bucket", "pushgateway"),
        ("cluster.nats-url", ""),
        ("cluster.replicas", "1"),
        ("limits.max-body-size", "268435456"),
        ("limits.max-groups", "5000000"),
        ("limits.max-label-value-length", "1048576"),
        ("limits.max-labels-per-series", "128"),
        ("limits.max-series", "100000000"),
        ("limits.max-series-per-group", "2000000"),
        ("limits.max-series-per-push", "2000000"),
        ("limits.push-burst", "0"),
        ("limits.push-rate", "0"),
        ("log.format", "logfmt"),
        ("log.level", "info"),
        ("otlp.keep-identifying-resource-attributes", "false"),
        ("otlp.promote-resource-attributes", ""),
        ("otlp.promote-scope-metadata", "false"),
        (
            "otlp.translation-strategy",
            "UnderscoreEscapingWithSuffixes",
        ),
        ("persistence.file", ""),
        ("persistence.interval", "5m0s"),
        ("persistence.sync", "always"),
        ("push.default-ttl", "0s"),
        ("push.disable-consistency-check", "false"),
        ("push.enable-openmetrics", "false"),
        ("push.enable-utf8-names", "false"),
        ("push.max-ttl", "0s"),
        ("push.ttl-rules", ""),
        ("web.config.file", ""),
        ("web.enable-admin-api", "false"),
        ("web.enable-lifecycle", "false"),
        ("web.enable-openmetrics", "false"),
        ("web.enable-otlp-receiver", "false"),
        ("web.external-url", ""),
        ("web.listen-address", ":9091"),
        ("web.max-connections", "16384"),
        ("web.read-header-timeout", "2m0s"),
        ("web.read-timeout", "2m0s"),
        ("web.route-prefix", ""),
        ("web.stale-warning-age", "24h0m0s"),
        ("web.systemd-socket", "false"),
        ("web.telemetry-path", "/metrics"),
    ];

    #[test]
    fn status_flags_default_run() {
        let want: BTreeMap<String, String> = DEFAULT_STATUS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(status(&[]), want);
    }

    #[test]
    fn status_flags_with_flags_set() {
        let got = status(&[
            "--web.listen-address=127.0.0.1:1",
            "--web.listen-address=[::1]:2",
            "--persistence.interval=90s",
            "--persistence.sync=interval",
            "--push.default-ttl=1.5h",
            "--push.rules=/r.yml",
            "--web.enable-admin-api=true",
            "--web.enable-lifecycle=false",
            "--no-web.enable-admin-api",
            "--push.enable-utf8-names",
            "--limits.max-body-size=64KiB",
            "--limits.push-rate=2.5",
            "--limits.max-series=7",
            "--web.max-connections=3",
            "--cluster.nats-url=nats://127.0.0.1:1,nats://127.0.0.1:2",
            "--cluster.nats-url=nats://127.0.0.1:3",
            "--cluster.timeout=3s",
            "--otlp.promote-resource-attributes=a, b",
            "--web.read-timeout=500ms",
            "--log.format=json",
        ]);
        for (k, v) in [
            ("web.listen-address", "127.0.0.1:1,[::1]:2"),
            ("persistence.interval", "1m30s"),
            ("persistence.sync", "interval"),
            ("push.default-ttl", "1h30m0s"),
            ("push.ttl-rules", "/r.yml"),
            ("web.enable-lifecycle", "false"),
            ("web.enable-admin-api", "false"),
            ("push.enable-utf8-names", "true"),
            ("limits.max-body-size", "65536"),
            ("limits.push-rate", "2.5"),
            ("limits.push-burst", "0"),
            ("limits.max-series", "7"),
            ("web.max-connections", "3"),
            (
                "cluster.nats-url",
                "nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3",
            ),
            ("otlp.promote-resource-attributes", "a, b"),
            ("web.read-timeout", "500ms"),
            ("log.format", "json"),
        ] {
            assert_eq!(got.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(got.len(), DEFAULT_STATUS.len());
        assert!(!got.contains_key("cluster.timeout"));
    }

    /// A flag added to `Flags` shows up in `/api/v1/status` unless it is hidden or named in
    /// `NOT_IN_STATUS`: its value type must be one `value_text` shows.
    #[test]
    fn status_lists_every_visible_flag() {
        let cmd = pushgateway::command();
        let got = status(&[]);
        let mut visible = 0;
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let long = a.get_long().expect("every flag has a long name");
            if NOT_IN_STATUS.contains(&long) {
                continue;
            }
            visible += 1;
            assert!(
                got.contains_key(long),
                "--{long} missing from /api/v1/status"
            );
        }
        assert_eq!(got.len(), visible);
        for name in NOT_IN_STATUS {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(name)),
                "NOT_IN_STATUS names --{name}, which is not a flag"
            );
        }
    }

    #[test]
    fn flags_map_to_store_and_limits() {
        let (f, _) = parse(&[
            "--persistence.file=/x/p",
            "--persistence.sync=interval",
            "--push.disable-consistency-check",
            "--limits.max-groups=9",
            "--limits.push-rate=2.5",
        ]);
        let s = store_config(&f);
        assert!(!s.checked);
        let p = s.persistence.unwrap();
        assert_eq!(p.path, std::path::PathBuf::from("/x/p"));
        assert!(matches!(p.sync, SyncMode::Interval(d) if d == Duration::from_secs(1)));
        assert_eq!(s.quotas.max_groups, 9);
        let reserved = |name: &str| s.own_families.iter().any(|(n, _)| n == name);
        assert!(reserved("process_max_fds") && reserved("pushgateway_groups_expired_total"));
        let l = limits(&f);
        assert_eq!(l.push_burst, 3.0, "one second's worth, rounded up");
        assert_eq!(l.max_body_bytes, 256 << 20);
        let (f, _) = parse(&[]);
        assert!(store_config(&f).checked);
        assert!(store_config(&f).persistence.is_none());
        let (f, _) = parse(&["--web.route-prefix=/pgw/", "--web.telemetry-path=m"]);
        let r = routes(&f);
        assert_eq!(
            (r.prefix.as_str(), r.telemetry.as_str()),
            ("/pgw", "/pgw/m")
        );
    }

    #[test]
    fn flags_map_to_cluster() {
        let (f, _) = parse(&[
            "--cluster.nats-url=nats://127.0.0.1:1, nats://127.0.0.1:2",
            "--cluster.nats-url=nats://127.0.0.1:3",
            "--cluster.bucket=b",
            "--cluster.nats-user=u",
            "--cluster.timeout=3s",
        ]);
        let c = cluster_config(&f).unwrap();
        assert_eq!(
            c.urls,
            [
                "nats://127.0.0.1:1",
                "nats://127.0.0.1:2",
                "nats://127.0.0.1:3"
            ]
        );
        assert_eq!(c.bucket, "b");
        assert_eq!(c.user.as_deref(), Some("u"));
        assert!(c.password.is_none() && c.tls_ca.is_none());
        assert_eq!(c.timeout, Duration::from_secs(3));
        let (f, _) = parse(&["--cluster.nats-password-file=/nonexistent/pw"]);
        let e = cluster_config(&f).unwrap_err().to_string();
        assert!(e.contains("--cluster.nats-password-file"), "{e}");
    }

    #[test]
    fn otlp_flags() {
        let settings = |args: &[&str]| otlp_settings(&parse(args).0);
        assert!(settings(&[]).unwrap().is_none(), "off by default");
        let s = settings(&[
            "--web.enable-otlp-receiver",
            "--otlp.promote-resource-attributes=a, b",
            "--otlp.promote-resource-attributes=c",
            "--otlp.translation-strategy=UnderscoreEscapingWithoutSuffixes",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.promote_resource_attributes, ["a", "b", "c"]);
        assert_eq!(
            s.strategy,
            otlp::Strategy::UnderscoreEscapingWithoutSuffixes
        );
        let err = |args: &[&str]| settings(args).unwrap_err().to_string();
        assert!(err(&["--otlp.translation-strategy=Nope"]).contains("unknown OTLP translation"));
        // The UTF-8 strategies need UTF-8 names: refused with the reason without the flag.
        for s in ["NoUTF8EscapingWithSuffixes", "NoTranslation"] {
            let flag = format!("--otlp.translation-strategy={s}");
            let e = err(&["--web.enable-otlp-receiver", &flag]);
            assert!(e.contains("--push.enable-utf8-names"), "{e}");
            let ok = settings(&[
                "--web.enable-otlp-receiver",
                "--push.enable-utf8-names",
                &flag,
            ])
            .unwrap()
            .unwrap();
            assert!(!ok.strategy.escapes());
        }
        assert!(err(&["--otlp.promote-resource-attributes=a,a"]).contains("twice"));
    }
}
