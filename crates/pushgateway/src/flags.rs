//! Command-line flags with the official names and defaults, plus Go duration parsing and
//! printing (`5m`, `90s` → `1m30s`) so `/api/v1/status` reports them as the official gateway does.

use clap::{ArgAction, Parser};
use std::time::Duration;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "pushgateway",
    about = "The Pushgateway: a metrics cache for short-lived jobs.",
    disable_version_flag = true
)]
pub struct Flags {
    /// Addresses to listen on for the web interface, API and telemetry (repeatable).
    #[arg(long = "web.listen-address", default_value = ":9091", action = ArgAction::Append)]
    pub listen_address: Vec<String>,

    /// Use systemd socket activation listeners instead of port listeners (Linux only).
    #[arg(long = "web.systemd-socket", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_systemd_socket")]
    pub systemd_socket: bool,

    /// kingpin-style negation of --web.systemd-socket.
    #[arg(long = "no-web.systemd-socket", action = ArgAction::SetTrue, hide = true, overrides_with = "systemd_socket")]
    pub no_systemd_socket: bool,

    /// Path to a web configuration file (exporter-toolkit format: TLS, mTLS, basic auth, headers; plus scoped access). Re-read when it changes.
    #[arg(long = "web.config.file", default_value = "")]
    pub web_config_file: String,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics")]
    pub telemetry_path: String,

    /// The URL under which the Pushgateway is externally reachable.
    #[arg(long = "web.external-url", default_value = "")]
    pub external_url: String,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.
    #[arg(long = "web.route-prefix", default_value = "")]
    pub route_prefix: String,

    /// Enable shutdown via HTTP request.
    #[arg(long = "web.enable-lifecycle", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_lifecycle")]
    pub enable_lifecycle: bool,

    /// kingpin-style negation of --web.enable-lifecycle.
    #[arg(long = "no-web.enable-lifecycle", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_lifecycle")]
    pub no_enable_lifecycle: bool,

    /// Enable API endpoints for admin control actions.
    #[arg(long = "web.enable-admin-api", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_admin_api")]
    pub enable_admin_api: bool,

    /// kingpin-style negation of --web.enable-admin-api.
    #[arg(long = "no-web.enable-admin-api", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_admin_api")]
    pub no_enable_admin_api: bool,

    /// Path to static assets/templates directory (Debian's build). Accepted and ignored: the web UI's assets are built in.
    #[arg(long = "web.local-assets", value_name = "PATH")]
    pub local_assets: Option<String>,

    /// File to persist metrics. If empty, metrics are only kept in memory.
    #[arg(long = "persistence.file", default_value = "")]
    pub persistence_file: String,

    /// The interval at which the persistence log is compacted. Every change is durable before it is acknowledged, whatever this is.
    #[arg(long = "persistence.interval", default_value = "5m", value_parser = parse_go_duration)]
    pub persistence_interval: Duration,

    /// When changes reach stable storage: `always` (fsync before every acknowledgement, shared by concurrent pushes) or `interval` (fsync once a second: faster, but a machine crash can lose the last second of acknowledged pushes).
    #[arg(long = "persistence.sync", default_value = "always", value_parser = ["always", "interval"])]
    pub persistence_sync: String,

    /// Do not check consistency of pushed metrics. DANGEROUS.
    #[arg(long = "push.disable-consistency-check", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_disable_consistency_check")]
    pub disable_consistency_check: bool,

    /// kingpin-style negation of --push.disable-consistency-check.
    #[arg(long = "no-push.disable-consistency-check", action = ArgAction::SetTrue, hide = true, overrides_with = "disable_consistency_check")]
    pub no_disable_consistency_check: bool,

    /// Allow UTF-8 characters in metric and label names.
    #[arg(long = "push.enable-utf8-names", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_utf8_names")]
    pub enable_utf8_names: bool,

    /// kingpin-style negation of --push.enable-utf8-names.
    #[arg(long = "no-push.enable-utf8-names", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_utf8_names")]
    pub no_enable_utf8_names: bool,

    /// Parse pushes with `Content-Type: application/openmetrics-text` as OpenMetrics 1.0 (else they are parsed as text 0.0.4, as the official gateway does).
    #[arg(long = "push.enable-openmetrics", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_openmetrics_push")]
    pub enable_openmetrics_push: bool,

    /// kingpin-style negation of --push.enable-openmetrics.
    #[arg(long = "no-push.enable-openmetrics", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_openmetrics_push")]
    pub no_enable_openmetrics_push: bool,

    /// Serve OpenMetrics 1.0 (with exemplars and `_created` samples) to scrapers that prefer it. Off by default: Prometheus asks for OpenMetrics first and would otherwise ingest other series than from the official gateway.
    #[arg(long = "web.enable-openmetrics", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_openmetrics_scrape")]
    pub enable_openmetrics_scrape: bool,

    /// kingpin-style negation of --web.enable-openmetrics.
    #[arg(long = "no-web.enable-openmetrics", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_openmetrics_scrape")]
    pub no_enable_openmetrics_scrape: bool,

    /// Default time to live of a group: a group not pushed for this long is deleted. 0 = never. A push may ask for its own TTL with the `Pushgateway-TTL` header or a `?ttl=` query parameter.
    #[arg(long = "push.default-ttl", default_value = "0", value_parser = store::ttl::parse_duration)]
    pub default_ttl: Duration,

    /// Upper bound for the TTL a push may ask for; a push asking for 0 (never) gets this. 0 = no bound.
    #[arg(long = "push.max-ttl", default_value = "0", value_parser = store::ttl::parse_duration)]
    pub max_ttl: Duration,

    /// YAML file of push rules (also `--push.rules`): a list of `- match: '{job=~"backup-.*"}'` entries with `ttl: 25h` (the first TTL rule matching a group's grouping key gives its TTL when the push asks for none), `accumulate: true` (plain POSTs to matching groups add to them) and `gauges: sum|max|min|last` (what accumulating pushes do to gauges).
    #[arg(long = "push.ttl-rules", alias = "push.rules", default_value = "")]
    pub ttl_rules: String,

    /// Groups not pushed for longer than this are marked stale in the web UI. 0 = never.
    #[arg(long = "web.stale-warning-age", default_value = "24h", value_parser = store::ttl::parse_duration)]
    pub stale_warning_age: Duration,

    /// Largest request body accepted, also after decompression (413 above it). Bytes, or with a unit: 64KiB, 256MiB, 1GiB, 10MB. 0 = no limit.
    #[arg(long = "limits.max-body-size", default_value = "256MiB", value_parser = parse_bytes)]
    pub max_body_size: u64,

    /// Most labels one pushed series may have (400 above it). 0 = no limit.
    #[arg(long = "limits.max-labels-per-series", default_value_t = 128)]
    pub max_labels_per_series: usize,

    /// Longest label value, in bytes, in a push or its grouping key (400 above it). 0 = no limit.
    #[arg(long = "limits.max-label-value-length", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_label_value_length: u64,

    /// Most series in one push (413 above it). 0 = no limit.
    #[arg(long = "limits.max-series-per-push", default_value_t = 2_000_000)]
    pub max_series_per_push: usize,

    /// Most series one group may hold after a push (413 above it). 0 = no limit.
    #[arg(long = "limits.max-series-per-group", default_value_t = 2_000_000)]
    pub max_series_per_group: u64,

    /// Most groups the gateway holds: a push creating one more is refused with 403; existing groups can still be pushed. 0 = no limit.
    #[arg(long = "limits.max-groups", default_value_t = 5_000_000)]
    pub max_groups: u64,

    /// Most series the gateway holds in all: a push that would grow past it is refused with 403. 0 = no limit.
    #[arg(long = "limits.max-series", default_value_t = 100_000_000)]
    pub max_series: u64,

    /// Pushes (PUT, POST, DELETE) per second per client: the authenticated user (--web.config.file), else the remote address. Faster clients get 429 with Retry-After. 0 = no limit.
    #[arg(long = "limits.push-rate", default_value_t = 0.0)]
    pub push_rate: f64,

    /// Pushes a client may make at once before --limits.push-rate slows it down. 0 = one second's worth of --limits.push-rate (rounded up). Only used with --limits.push-rate.
    #[arg(long = "limits.push-burst", default_value_t = 0.0)]
    pub push_burst: f64,

    /// Time a client has to send a request's headers (also closes keep-alive connections idle this long). 0 = no limit.
    #[arg(long = "web.read-header-timeout", default_value = "2m", value_parser = store::ttl::parse_duration)]
    pub read_header_timeout: Duration,

    /// Time a client has to send a request's body (408 after it). 0 = no limit.
    #[arg(long = "web.read-timeout", default_value = "2m", value_parser = store::ttl::parse_duration)]
    pub read_timeout: Duration,

    /// Most connections served at once; more wait in the listen backlog. 0 = no limit.
    #[arg(long = "web.max-connections", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Replicated mode: NATS server URL(s) (repeatable or comma-separated), e.g. nats://10.0.0.1:4222. Every replica pointed at the same bucket accepts pushes and serves the complete state; the bucket replaces --persistence.file.
    #[arg(long = "cluster.nats-url", action = ArgAction::Append)]
    pub cluster_nats_url: Vec<String>,

    /// JetStream key-value bucket holding the groups (created if missing).
    #[arg(long = "cluster.bucket", default_value = "pushgateway")]
    pub cluster_bucket: String,

    /// Replicas of the bucket when this gateway creates it (3 on a 3-node NATS cluster: every change is acknowledged by a quorum).
    #[arg(long = "cluster.replicas", default_value_t = 1)]
    pub cluster_replicas: usize,

    /// User name for NATS (with --cluster.nats-password-file).
    #[arg(long = "cluster.nats-user", default_value = "")]
    pub cluster_nats_user: String,

    /// File holding the NATS password.
    #[arg(long = "cluster.nats-password-file", default_value = "")]
    pub cluster_nats_password_file: String,

    /// NATS credentials file (JWT + nkey).
    #[arg(long = "cluster.nats-creds", default_value = "")]
    pub cluster_nats_creds: String,

    /// CA certificate to verify NATS servers with (turns TLS on).
    #[arg(long = "cluster.tls-ca", default_value = "")]
    pub cluster_tls_ca: String,

    /// Client certificate for NATS (with --cluster.tls-key).
    #[arg(long = "cluster.tls-cert", default_value = "")]
    pub cluster_tls_cert: String,

    /// Client key for NATS.
    #[arg(long = "cluster.tls-key", default_value = "")]
    pub cluster_tls_key: String,

    /// Migration: at start-up, copy the groups of this single-node --persistence.file into the bucket (groups the bucket already has are kept), then run as a replica.
    #[arg(long = "cluster.import-file", default_value = "")]
    pub cluster_import_file: String,

    /// Longest a change waits for NATS before it fails with 503 (transient failures, such as a stream leader change after a NATS node died, are retried within it).
    #[arg(long = "cluster.timeout", default_value = "10s", value_parser = store::ttl::parse_duration)]
    pub cluster_timeout: Duration,

    /// Accept OTLP/HTTP metrics (protobuf or JSON) on POST <route-prefix>/api/v1/otlp/v1/metrics, as Prometheus' flag of this name does: one group per resource (job from service.namespace/service.name, instance from service.instance.id), cumulative points replace, delta points accumulate.
    #[arg(long = "web.enable-otlp-receiver", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_enable_otlp_receiver")]
    pub enable_otlp_receiver: bool,

    /// kingpin-style negation of --web.enable-otlp-receiver.
    #[arg(long = "no-web.enable-otlp-receiver", action = ArgAction::SetTrue, hide = true, overrides_with = "enable_otlp_receiver")]
    pub no_enable_otlp_receiver: bool,

    /// How OTLP metric and label names are translated, as Prometheus' otlp.translation_strategy: UnderscoreEscapingWithSuffixes (Prometheus 3's default), UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes, NoTranslation (the last two keep UTF-8 names).
    #[arg(
        long = "otlp.translation-strategy",
        default_value = "UnderscoreEscapingWithSuffixes"
    )]
    pub otlp_translation_strategy: String,

    /// OTLP resource attributes that become labels, as Prometheus' otlp.promote_resource_attributes (repeatable or comma-separated); here they join job and instance in the grouping key.
    #[arg(long = "otlp.promote-resource-attributes", action = ArgAction::Append)]
    pub otlp_promote_resource_attributes: Vec<String>,

    /// Keep service.name, service.namespace and service.instance.id as labels of target_info too (Prometheus' otlp.keep_identifying_resource_attributes).
    #[arg(long = "otlp.keep-identifying-resource-attributes", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_otlp_keep_identifying_resource_attributes")]
    pub otlp_keep_identifying_resource_attributes: bool,

    /// kingpin-style negation of --otlp.keep-identifying-resource-attributes.
    #[arg(long = "no-otlp.keep-identifying-resource-attributes", action = ArgAction::SetTrue, hide = true, overrides_with = "otlp_keep_identifying_resource_attributes")]
    pub no_otlp_keep_identifying_resource_attributes: bool,

    /// Add otel_scope_name, otel_scope_version, otel_scope_schema_url and otel_scope_<attribute> labels to every OTLP series (Prometheus' otlp.promote_scope_metadata).
    #[arg(long = "otlp.promote-scope-metadata", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_otlp_promote_scope_metadata")]
    pub otlp_promote_scope_metadata: bool,

    /// kingpin-style negation of --otlp.promote-scope-metadata.
    #[arg(long = "no-otlp.promote-scope-metadata", action = ArgAction::SetTrue, hide = true, overrides_with = "otlp_promote_scope_metadata")]
    pub no_otlp_promote_scope_metadata: bool,

    /// Only log messages with the given severity or above. One of: [debug, info, warn, error]
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages. One of: [logfmt, json]
    #[arg(long = "log.format", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,

    /// Show application version.
    #[arg(long = "version", action = ArgAction::SetTrue)]
    pub version: bool,

    /// Generate long help (the same as --help: there are no subcommands).
    #[arg(long = "help-long", action = ArgAction::Help)]
    pub help_long: Option<bool>,

    /// Generate a man page.
    #[arg(long = "help-man", action = ArgAction::SetTrue)]
    pub help_man: bool,
}

/// Parses a Go duration (`300ms`, `1.5h`, `1h30m`, `90s`).
pub use store::ttl::parse_go_duration;

/// Parses a byte size: `1048576`, `64KiB`, `256MiB`, `1GiB`, `10MB`, `1.5GB`; units in any
/// case (`10mb`, `10mib`), `K`/`M`/`G`/`T` alone being the binary ones as in kingpin.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: want bytes or e.g. 64KiB, 256MiB, 1GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "invalid size {s:?}: want bytes or a number with a unit (64KiB, 256MiB, 1GiB, 10MB)"
            ))
        }
    };
    Ok((n * mult) as u64)
}

/// Formats a duration as Go's `time.Duration.String()` (`5m0s`, `1m30s`, `500ms`, `0s`).
pub use gocompat::duration::format_go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        // Duration.String() is tested in gocompat::duration.
        assert_eq!(
            format_go_duration(parse_go_duration("1.5h").unwrap()),
            "1h30m0s"
        );
        assert!(parse_go_duration("5").is_err());
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1.5GB"), Ok(1_500_000_000));
        assert!(parse_bytes("12 parsecs").is_err());
        for (spelling, bytes) in [
            ("10MB", 10_000_000),
            ("10mb", 10_000_000),
            ("10Mb", 10_000_000),
            ("10MiB", 10 << 20),
            ("10mib", 10 << 20),
            ("10M", 10 << 20),
            ("1kB", 1000),
            ("2GiB", 2 << 30),
            ("5B", 5),
        ] {
            assert_eq!(parse_bytes(spelling), Ok(bytes), "{spelling}");
        }
        assert!(parse_go_duration("abc").is_err());
    }
}
