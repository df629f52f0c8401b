//! The `pushgateway` binary: parses the official flags, sets up logging, opens the store
//! (restoring from `--persistence.file`), binds the listeners and serves until SIGTERM,
//! SIGINT or `/-/quit`.

use pushgateway::flags;
mod systemd;

use anyhow::{Context, Result};
use clap::Parser;
use flags::{format_go_duration, Flags};
use server::router::Routes;
use server::{App, BuildInfo, Config};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::wal::SyncMode;
use store::{PersistConfig, Store, StoreConfig};

/// mimalloc: pushes allocate many small, short-lived objects; glibc's malloc showed up as a
/// quarter of the push profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Build information from `build.rs` (git revision and branch, build user and date, rustc).
fn build_info() -> BuildInfo {
    BuildInfo {
        version: VERSION.to_string(),
        revision: env!("PGW_REVISION").to_string(),
        branch: env!("PGW_BRANCH").to_string(),
        build_user: env!("PGW_BUILD_USER").to_string(),
        build_date: env!("PGW_BUILD_DATE").to_string(),
        // The `goVersion` field and `goversion` label carry the rustc version.
        go_version: env!("PGW_RUSTC").to_string(),
    }
}

/// `computeRoutePrefix`: the route prefix, else the external URL's path; `/` means none.
fn route_prefix(prefix: &str, external_url: &str) -> String {
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

fn external_path(external_url: &str) -> String {
    let after_scheme = external_url
        .split_once("://")
        .map_or(external_url, |(_, r)| r);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].to_string(),
        None => String::new(),
    }
}

fn init_logging(flags: &Flags) {
    use pushgateway::logging::{Format, GoKitFormat};
    let level = match flags.log_level.as_str() {
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let format = if flags.log_format == "json" {
        Format::Json
    } else {
        Format::Logfmt
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(GoKitFormat(format))
        .init();
}

fn listen_addr(a: &str) -> Result<String> {
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

fn main() -> Result<()> {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            // --help prints and exits 0; a bad flag exits 1, as kingpin does.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if flags.help_man {
        let man = clap_mangen::Man::new(pushgateway::command());
        let mut out = std::io::stdout().lock();
        man.render(&mut out).context("writing the man page")?;
        return Ok(());
    }
    if flags.version {
        let b = build_info();
        println!(
            "pushgateway, version {} (branch: {}, revision: {})",
            b.version, b.branch, b.revision
        );
        println!("  build user:       {}", b.build_user);
        println!("  build date:       {}", b.build_date);
        println!("  rustc version:    {}", b.go_version);
        println!(
            "  platform:         {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        println!("  tags:             unknown");
        return Ok(());
    }
    // Read the local offset before any thread exists (the time crate requires it).
    let utc_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    init_logging(&flags);
    // As Go's runtime does: the soft descriptor limit (often 1,024) up to the hard one.
    if let Some((old, new)) = server::conns::raise_fd_limit() {
        tracing::debug!(old, new, "raised the open files soft limit (RLIMIT_NOFILE)");
    }
    if !flags.max_ttl.is_zero() && flags.default_ttl > flags.max_ttl {
        tracing::warn!(default_ttl = %format_go_duration(flags.default_ttl),
            max_ttl = %format_go_duration(flags.max_ttl),
            "--push.default-ttl exceeds --push.max-ttl: groups get the maximum");
    }
    // Taken before any thread exists: it clears the LISTEN_* variables.
    let activated = flags.systemd_socket.then(systemd::listeners).transpose();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| {
            let activated = activated.map_err(anyhow::Error::msg)?;
            rt.block_on(run(flags, utc_offset, activated))
        });
    if let Err(e) = result {
        // One log line with the whole chain of causes, as the official gateway logs a fatal
        // error, and exit code 1; no backtrace.
        let mut text = String::new();
        for cause in e.chain() {
            let c = cause.to_string();
            if !text.contains(&c) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&c);
            }
        }
        tracing::error!(err = %text, "pushgateway could not start or stopped with an error");
        std::process::exit(1);
    }
    Ok(())
}

fn flag_map(f: &Flags) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put("log.format", f.log_format.clone());
    put("log.level", f.log_level.clone());
    put("persistence.file", f.persistence_file.clone());
    put(
        "persistence.interval",
        format_go_duration(f.persistence_interval),
    );
    put("persistence.sync", f.persistence_sync.clone());
    put("push.default-ttl", format_go_duration(f.default_ttl));
    put("push.max-ttl", format_go_duration(f.max_ttl));
    put("push.ttl-rules", f.ttl_rules.clone());
    put("cluster.nats-url", f.cluster_nats_url.join(","));
    put("cluster.bucket", f.cluster_bucket.clone());
    put("cluster.replicas", f.cluster_replicas.to_string());
    put(
        "web.stale-warning-age",
        format_go_duration(f.stale_warning_age),
    );
    put("limits.max-body-size", f.max_body_size.to_string());
    put(
        "limits.max-labels-per-series",
        f.max_labels_per_series.to_string(),
    );
    put(
        "limits.max-label-value-length",
        f.max_label_value_length.to_string(),
    );
    put(
        "limits.max-series-per-push",
        f.max_series_per_push.to_string(),
    );
    put(
        "limits.max-series-per-group",
        f.max_series_per_group.to_string(),
    );
    put("limits.max-groups", f.max_groups.to_string());
    put("limits.max-series", f.max_series.to_string());
    put("limits.push-rate", f.push_rate.to_string());
    put("limits.push-burst", f.push_burst.to_string());
    put(
        "web.read-header-timeout",
        format_go_duration(f.read_header_timeout),
    );
    put("web.read-timeout", format_go_duration(f.read_timeout));
    put("web.max-connections", f.max_connections.to_string());
    put(
        "push.disable-consistency-check",
        f.disable_consistency_check.to_string(),
    );
    put("push.enable-utf8-names", f.enable_utf8_names.to_string());
    put(
        "push.enable-openmetrics",
        f.enable_openmetrics_push.to_string(),
    );
    put(
        "web.enable-openmetrics",
        f.enable_openmetrics_scrape.to_string(),
    );
    put("web.config.file", f.web_config_file.clone());
    put("web.enable-admin-api", f.enable_admin_api.to_string());
    put("web.enable-lifecycle", f.enable_lifecycle.to_string());
    put("web.external-url", f.external_url.clone());
    put("web.listen-address", f.listen_address.join(","));
    put("web.route-prefix", f.route_prefix.clone());
    put("web.systemd-socket", f.systemd_socket.to_string());
    put(
        "web.enable-otlp-receiver",
        f.enable_otlp_receiver.to_string(),
    );
    put(
        "otlp.translation-strategy",
        f.otlp_translation_strategy.clone(),
    );
    put(
        "otlp.promote-resource-attributes",
        f.otlp_promote_resource_attributes.join(","),
    );
    put(
        "otlp.keep-identifying-resource-attributes",
        f.otlp_keep_identifying_resource_attributes.to_string(),
    );
    put(
        "otlp.promote-scope-metadata",
        f.otlp_promote_scope_metadata.to_string(),
    );
    put("web.telemetry-path", f.telemetry_path.clone());
    m
}

/// The TTL and accumulation settings from the flags and the `--push.ttl-rules` file.
fn ttl_policy(flags: &Flags) -> Result<store::ttl::TtlPolicy> {
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

/// One entry of the rules file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    #[serde(rename = "match")]
    selector: String,
    ttl: Option<String>,
    accumulate: Option<bool>,
    gauges: Option<String>,
}

type Rules = (
    Vec<store::ttl::TtlRule>,
    Vec<store::accumulate::AccumulateRule>,
);

/// The rules file: a YAML list of `{match, ttl, accumulate, gauges}` (or the same list under
/// a `rules:` key). Entries with a `ttl` are TTL rules; entries with `accumulate` or `gauges`
/// are accumulation rules; each kind is looked up first-match-wins on its own.
fn parse_ttl_rules(text: &str) -> Result<Rules, String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Doc {
        List(Vec<RuleEntry>),
        Keyed { rules: Vec<RuleEntry> },
    }
    let doc: Option<Doc> = serde_norway::from_str(text).map_err(|e| {
        format!(
            "{e} (want a list of entries like `- match: '{{job=~\"backup-.*\"}}'` and `ttl: 25h`)"
        )
    })?;
    let entries = match doc {
        None => Vec::new(),
        Some(Doc::List(l)) | Some(Doc::Keyed { rules: l }) => l,
    };
    let mut ttls = Vec::new();
    let mut acc = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let n = i + 1;
        if e.ttl.is_none() && e.accumulate.is_none() && e.gauges.is_none() {
            return Err(format!(
                "rule {n}: needs at least one of `ttl`, `accumulate`, `gauges`"
            ));
        }
        if let Some(ttl) = &e.ttl {
            let mut r = store::ttl::rules_from_entries(&[(e.selector.clone(), ttl.clone())])
                .map_err(|e| e.replacen("rule 1:", &format!("rule {n}:"), 1))?;
            ttls.append(&mut r);
        }
        if e.accumulate.is_some() || e.gauges.is_some() {
            let selector = store::matcher::Selector::parse(&e.selector)
                .map_err(|err| format!("rule {n}: {err}"))?;
            let gauges = match &e.gauges {
                Some(g) => store::GaugeMode::parse(g).map_err(|err| format!("rule {n}: {err}"))?,
                None => store::GaugeMode::Last,
            };
            acc.push(store::accumulate::AccumulateRule {
                selector,
                accumulate: e.accumulate.unwrap_or(false),
                gauges,
            });
        }
    }
    Ok((ttls, acc))
}

#[cfg(test)]
mod ttl_rules_tests {
    use super::*;

    #[test]
    fn rules_file_formats_and_errors() {
        let text = "- match: '{job=~\"backup-.*\"}'\n  ttl: 25h\n- match: '{}'\n  ttl: 1h\n";
        let (r, acc) = parse_ttl_rules(text).unwrap();
        assert_eq!(r.len(), 2);
        assert!(acc.is_empty());
        assert_eq!(r[0].ttl, Duration::from_secs(25 * 3600));
        let keyed = "rules:\n  - match: '{env=\"dev\"}'\n    ttl: 2d\n";
        assert_eq!(parse_ttl_rules(keyed).unwrap().0.len(), 1);
        assert!(parse_ttl_rules("").unwrap().0.is_empty());
        assert!(parse_ttl_rules("- match: '{job='\n  ttl: 1h\n")
            .unwrap_err()
            .contains("rule 1"));
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: 1h\n  extra: 1\n").is_err());
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: soon\n")
            .unwrap_err()
            .contains("invalid duration"));
    }

    #[test]
    fn rules_file_accumulate_entries() {
        let text =
            "- match: '{job=~\"lambda-.*\"}'\n  accumulate: true\n  ttl: 25h\n  gauges: max\n\
                    - match: '{job=\"w\"}'\n  gauges: sum\n- match: '{}'\n  ttl: 1h\n";
        let (ttls, acc) = parse_ttl_rules(text).unwrap();
        assert_eq!(ttls.len(), 2);
        assert_eq!(acc.len(), 2);
        assert!(acc[0].accumulate);
        assert_eq!(acc[0].gauges, store::GaugeMode::Max);
        assert!(!acc[1].accumulate);
        assert_eq!(acc[1].gauges, store::GaugeMode::Sum);
        assert!(parse_ttl_rules("- match: '{}'\n  gauges: avg\n")
            .unwrap_err()
            .contains("rule 1: invalid gauges mode"));
        assert!(parse_ttl_rules("- match: '{}'\n  ttl: 1h\n- match: '{}'\n")
            .unwrap_err()
            .contains("rule 2: needs"));
        assert!(
            parse_ttl_rules("- match: '{}'\n  ttl: 1h\n- match: '{}'\n  ttl: 1q\n")
                .unwrap_err()
                .starts_with("rule 2:")
        );
    }
}

/// Imports the official Pushgateway's persistence file at `path` (if it is one) into our
/// format, keeping the original as `PATH.official-<ts>`; refuses a file of neither format.
fn take_over_official_file(path: &std::path::Path, sync: SyncMode) -> Result<()> {
    let started = std::time::Instant::now();
    if let Some(t) = store::official::take_over(path, sync)? {
        tracing::info!(file = %path.display(), groups = t.groups, original_kept_at = %t.kept_at.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "imported the official Pushgateway's persistence file into this gateway's format; \
             the original is kept unchanged (to go back to the official gateway, move it back)");
    }
    Ok(())
}

/// `--cluster.import-file`: copies a single-node persistence file's groups (ours, or the
/// official gateway's) into the bucket.
async fn import_into_cluster(cluster: &cluster::Cluster, path: &str) -> Result<()> {
    use store::official::FileKind;
    let p = std::path::Path::new(path);
    match store::official::classify(p)? {
        FileKind::Official => {
            let groups = store::official::read_groups(p)?;
            let groups = groups.into_iter().map(Arc::new).collect();
            return import_groups_into_cluster(cluster, path, groups).await;
        }
        // Refused with the reason, the file untouched.
        FileKind::Unrecognized => drop(store::official::take_over(p, SyncMode::Always)?),
        FileKind::Ours | FileKind::Missing => {}
    }
    let old = Store::open(StoreConfig {
        checked: false,
        own_families: Vec::new(),
        persistence: Some(PersistConfig {
            path: path.into(),
            sync: SyncMode::Always,
        }),
        quotas: Default::default(),
    })
    .with_context(|| format!("--cluster.import-file {path:?}"))?;
    let groups: Vec<_> = old.snapshot().groups.values().cloned().collect();
    old.close()
        .context("closing the imported persistence file")?;
    import_groups_into_cluster(cluster, path, groups).await
}

async fn import_groups_into_cluster(
    cluster: &cluster::Cluster,
    path: &str,
    groups: Vec<Arc<store::Group>>,
) -> Result<()> {
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("--cluster.import-file: NATS not ready: {e}"))?;
    let (imported, present) = cluster
        .import(groups)
        .await
        .map_err(|e| anyhow::anyhow!("--cluster.import-file {path:?}: {e}"))?;
    tracing::info!(file = %path, imported, already_present = present,
        "imported single-node groups into the NATS bucket");
    Ok(())
}

/// The OTLP receiver's settings from `--web.enable-otlp-receiver` and the `--otlp.*` flags
/// (checked even when the receiver is off, so a typo fails at start-up).
fn otlp_settings(f: &Flags) -> Result<Option<otlp::Settings>> {
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

/// Replicated-mode settings from the `--cluster.*` flags.
fn cluster_config(f: &Flags) -> Result<cluster::ClusterConfig> {
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

async fn run(
    flags: Flags,
    utc_offset: time::UtcOffset,
    activated: Option<Vec<std::net::TcpListener>>,
) -> Result<()> {
    let build = build_info();
    tracing::info!(
        version = %format!("(version={}, branch={}, revision={})", build.version, build.branch, build.revision),
        "starting pushgateway"
    );
    tracing::info!(
        build_context = %format!("(rustc={}, platform={}/{}, user={}, date={})", build.go_version,
            std::env::consts::OS, std::env::consts::ARCH, build.build_user, build.build_date),
        "Build context"
    );
    // Replicated mode: the NATS bucket is the durable store; a --persistence.file only
    // keeps a local copy of the mirror, so a restarted replica has data before it catches up.
    let clustered = !flags.cluster_nats_url.is_empty();
    let persistence = if flags.persistence_file.is_empty() {
        None
    } else {
        Some(PersistConfig {
            path: flags.persistence_file.clone().into(),
            sync: if flags.persistence_sync == "interval" {
                SyncMode::Interval(Duration::from_secs(1))
            } else {
                SyncMode::Always
            },
        })
    };
    if let Some(p) = &persistence {
        // The official gateway's (gob) file is imported into our format before the log opens.
        take_over_official_file(&p.path, p.sync.clone())?;
    }
    // The lazily created ones are reserved from the start too.
    let own_families = server::telemetry::OWN_FAMILIES
        .iter()
        .chain(server::telemetry::EXTRA_FAMILIES)
        .map(|(n, t, _)| (n.to_string(), *t))
        .collect();
    let store = Arc::new(Store::open(StoreConfig {
            checked: !flags.disable_consistency_check,
            own_families,
            persistence,
            quotas: store::store::Quotas {
                max_series_per_group: flags.max_series_per_group,
                max_groups: flags.max_groups,
                max_total_series: flags.max_series,
            },
        })
        // The error names the file.
        ?);
    store.allow_utf8_label_names(flags.enable_utf8_names);

    let prefix = route_prefix(&flags.route_prefix, &flags.external_url);
    let telemetry = format!(
        "{}/{}",
        prefix,
        flags.telemetry_path.trim_start_matches('/')
    );
    let ext = external_path(&flags.external_url);
    let cfg = Config {
        routes: Routes {
            prefix: prefix.clone(),
            telemetry: server::router::clean_path(&telemetry),
            admin_api: flags.enable_admin_api,
            otlp: flags.enable_otlp_receiver,
        },
        external_path: if ext.is_empty() {
            ".".into()
        } else {
            ext.trim_end_matches('/').to_string()
        },
        enable_lifecycle: flags.enable_lifecycle,
        enable_admin_api: flags.enable_admin_api,
        flags: flag_map(&flags),
        build,
        utc_offset,
        ttl: ttl_policy(&flags)?,
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
        otlp: otlp_settings(&flags)?,
        limits: server::limits::Limits {
            max_body_bytes: usize::try_from(flags.max_body_size).unwrap_or(usize::MAX),
            max_labels_per_series: flags.max_labels_per_series,
            max_label_value_bytes: usize::try_from(flags.max_label_value_length)
                .unwrap_or(usize::MAX),
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
        },
    };
    let tls_on = cfg
        .web
        .as_ref()
        .is_some_and(|w| w.current().tls().is_some());
    let app = if clustered {
        let cluster = cluster::Cluster::start(cluster_config(&flags)?, store.clone())
            .await
            .context("--cluster.nats-url")?;
        tracing::info!(urls = %flags.cluster_nats_url.join(","), bucket = %flags.cluster_bucket,
            "replicated mode: changes go through the NATS bucket");
        if !flags.cluster_import_file.is_empty() {
            import_into_cluster(&cluster, &flags.cluster_import_file).await?;
        }
        App::with_writer(cfg, store.clone(), cluster)
    } else {
        App::new(cfg, store.clone())
    };

    let mut listeners = Vec::new();
    if let Some(activated) = activated {
        // As the official gateway: the activated sockets replace --web.listen-address.
        for l in activated {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            listeners
                .push(tokio::net::TcpListener::from_std(l).context("using the systemd socket")?);
            tracing::info!(address = %addr, "Listening on");
            if tls_on {
                tracing::info!(http2 = false, address = %addr, "TLS is enabled.");
            } else {
                tracing::info!(http2 = false, address = %addr, "TLS is disabled.");
            }
        }
    }
    for a in flags
        .listen_address
        .iter()
        .filter(|_| !flags.systemd_socket)
    {
        let addr = listen_addr(a)?;
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(address = %addr, "Listening on");
        if tls_on {
            tracing::info!(http2 = false, address = %addr, "TLS is enabled.");
        } else {
            tracing::info!(http2 = false, address = %addr, "TLS is disabled.");
        }
        listeners.push(l);
    }

    // Signals and compaction run beside the server.
    {
        let app = app.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("received SIGINT/SIGTERM; exiting gracefully..."),
                _ = int.recv() => tracing::info!("received SIGINT/SIGTERM; exiting gracefully..."),
            }
            app.request_shutdown();
        });
    }
    {
        let store = store.clone();
        let period = store::store::compaction_period(flags.persistence_interval);
        tokio::spawn(async move {
            // The file is rewritten every interval when something changed, and early when the
            // log outgrows the live state (checked every second).
            let mut due = tokio::time::Instant::now() + period;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = store.clone();
                let periodic = tokio::time::Instant::now() >= due;
                if periodic {
                    due += period;
                }
                let _ = tokio::task::spawn_blocking(move || {
                    if periodic {
                        s.maybe_compact(false)
                    } else {
                        s.compact_if_oversized()
                    }
                })
                .await;
            }
        });
    }

    server::serve(app, listeners).await;
    tracing::info!("HTTP server stopped");
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.close())
        .await
        .context("closing the store")?
        .context("flushing the persistence file")?;
    tracing::info!("stopped");
    // Everything is durable; freeing a large store piece by piece would only delay the exit.
    std::mem::forget(store);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_prefix_rules() {
        assert_eq!(route_prefix("", ""), "");
        assert_eq!(route_prefix("/", ""), "");
        assert_eq!(route_prefix("pgw/", ""), "/pgw");
        assert_eq!(route_prefix("/pgw", "http://x/ext/"), "/pgw");
        assert_eq!(route_prefix("", "http://example.com/ext/"), "/ext");
    }

    #[test]
    fn otlp_flags() {
        let settings = |args: &[&str]| {
            let mut argv = vec!["pushgateway"];
            argv.extend_from_slice(args);
            otlp_settings(&Flags::try_parse_from(argv).unwrap())
        };
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
