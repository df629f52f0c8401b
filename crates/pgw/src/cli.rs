//! The command line (clap derive): `pgw run`, `pgw push`, `pgw delete`, `pgw groups`, the
//! gateway connection options they share, and the help texts.

use crate::client::{ClientOptions, Method};
use crate::duration::parse_duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "Push the outcome and metrics of batch jobs to a Prometheus Pushgateway.";

const LONG_ABOUT: &str = "\
Push the outcome and metrics of batch jobs (cron jobs, CI steps, scripts) to a Prometheus
Pushgateway. pgw speaks the standard Pushgateway HTTP API, so it works with this project's
gateway and with the official one.

The usual way is to wrap the job:

  pgw run --gateway http://pushgateway:9091 --job backup -- /usr/local/bin/backup.sh

which runs the command and then pushes its start time, duration, exit code, success and the
time of its last success (kept across failed runs) in one request. The command's exit code is
returned unchanged, also when the gateway cannot be reached.";

const AFTER_HELP: &str = "\
Every option of the form --gateway can also be set by environment: PGW_GATEWAY, PGW_USERNAME,
PGW_PASSWORD (basic auth password; there is deliberately no --password flag), PGW_CA_FILE,
PGW_CERT_FILE, PGW_KEY_FILE. Documentation: docs/pgw.md.";

const RUN_LONG_ABOUT: &str = "\
Run a command, then push its outcome to the group given by --job and --label.

The command's standard input, output and error are passed through, SIGINT, SIGTERM, SIGHUP and
SIGQUIT sent to pgw are forwarded to it, and pgw exits with the command's exit code (128+N when
it was killed by signal N, 127 when it was not found, 126 when it could not be started). Only
invalid pgw arguments stop the command from running (exit code 2); everything that goes wrong
afterwards, such as an unreachable gateway, is a warning on stderr.

Pushed in one PUT request (which replaces the group):
  pgw_job_start_time_seconds         Unix time when the command started
  pgw_job_duration_seconds           its run time
  pgw_job_exit_code                  its exit code (128+N if killed by signal N)
  pgw_job_signal                     the signal that killed it, 0 if none
  pgw_job_success                    1 if the exit code was 0, else 0
  pgw_job_last_success_time_seconds  Unix time when it last finished successfully

After a failed run, pgw reads the previous last-success time from the gateway
(GET /api/v1/metrics) and pushes it again; if the group has none, the metric is left out. If
that read fails, the outcome is pushed with POST instead, which keeps the gateway's value.

Metrics that the command writes in the text format to the file named by $PGW_METRICS_FILE are
validated and pushed in the same request (invalid files are reported and left out).";

const RUN_AFTER_HELP: &str = "\
Examples:
  # crontab: nightly backup, alert if it has not succeeded for 26 hours
  0 2 * * * pgw run --gateway http://pushgateway:9091 --job backup --label host=db1 --ttl 49h -- /usr/local/bin/backup.sh

  # the job adds its own metrics
  pgw run --gateway http://pushgateway:9091 --job import -- \\
    sh -c 'n=$(./import.sh) && echo \"import_rows_total $n\" > \"$PGW_METRICS_FILE\"'";

const PUSH_LONG_ABOUT: &str = "\
Validate a file in the Prometheus text format locally (with the gateway's parser rules; errors
name the line) and push it, gzip-compressed, to the group given by --job and --label. PUT (the
default) replaces the whole group; POST replaces only the metric families with the same names.
Exits 0 when the gateway accepted the push, 1 otherwise.";

const PUSH_AFTER_HELP: &str = "\
Examples:
  pgw push --gateway http://pushgateway:9091 --job nightly_export --label shard=3 metrics.prom
  echo 'some_metric 3.14' | pgw push --gateway http://pushgateway:9091 --job adhoc -";

const DELETE_LONG_ABOUT: &str = "\
Delete the group given by --job and --label (all its metrics). The gateway also accepts the
deletion of a group that does not exist. Exits 0 when the gateway accepted it, 1 otherwise.";

const GROUPS_LONG_ABOUT: &str = "\
List the gateway's groups (from GET /api/v1/metrics) with the age of their last push and, for
groups pushed by `pgw run`, the outcome of the last run and the age of the last success. The
PUSH FAILED column shows the last push the gateway refused (push_failure_time_seconds).";

/// `pgw`: the top-level parser.
#[derive(Debug, Parser)]
#[command(
    name = "pgw",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command and push its outcome (exit code, duration, last success).
    #[command(long_about = RUN_LONG_ABOUT, after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Validate a text-format metrics file and push it.
    #[command(long_about = PUSH_LONG_ABOUT, after_help = PUSH_AFTER_HELP)]
    Push(PushArgs),
    /// Delete a group from the gateway.
    #[command(long_about = DELETE_LONG_ABOUT)]
    Delete(DeleteArgs),
    /// List the gateway's groups with their age, last success and failures.
    #[command(long_about = GROUPS_LONG_ABOUT)]
    Groups(GroupsArgs),
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn ttl_arg(s: &str) -> Result<String, String> {
    parse_duration(s).map_err(|e| e.to_string())?;
    Ok(s.trim().to_string())
}

fn label_arg(s: &str) -> Result<String, String> {
    crate::grouping::parse_label_arg(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// How to reach the gateway: shared by every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Gateway connection")]
pub struct GatewayArgs {
    /// Base URL of the Pushgateway, e.g. http://pushgateway:9091 (a path prefix is kept).
    #[arg(long, short = 'g', env = "PGW_GATEWAY", value_name = "URL")]
    pub gateway: String,
    /// Timeout of each HTTP request (connect, send, receive), in Go duration syntax.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = duration_arg)]
    pub timeout: Duration,
    /// Retries after a connection error or a 5xx answer (never after a 4xx answer), with
    /// exponential backoff: 0.5s, 1s, 2s, ... (at most 8s, ±20% jitter).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// No retry is started after this much time since the first attempt.
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = duration_arg)]
    pub retry_max_time: Duration,
    /// Basic auth user name (the password comes from $PGW_PASSWORD or --password-file).
    #[arg(long, env = "PGW_USERNAME", value_name = "USER")]
    pub username: Option<String>,
    /// File whose first line is the basic auth password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) to trust for https (instead of the built-in
    /// Mozilla roots).
    #[arg(long, env = "PGW_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM file with a client certificate (chain) for mutual TLS; needs --key-file.
    #[arg(
        long,
        env = "PGW_CERT_FILE",
        value_name = "FILE",
        requires = "key_file"
    )]
    pub cert_file: Option<PathBuf>,
    /// PEM file with the private key of --cert-file.
    #[arg(
        long,
        env = "PGW_KEY_FILE",
        value_name = "FILE",
        requires = "cert_file"
    )]
    pub key_file: Option<PathBuf>,
    /// Do not print a note on stderr before each retry (warnings are still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Password resolution failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the password file {path}: {source}")]
pub struct PasswordFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl GatewayArgs {
    /// The client options, with the password read from --password-file or $PGW_PASSWORD.
    pub fn client_options(&self) -> Result<ClientOptions, PasswordFileError> {
        let password = match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| PasswordFileError {
                    path: path.clone(),
                    source,
                })?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
            None => std::env::var("PGW_PASSWORD").ok(),
        };
        Ok(ClientOptions {
            gateway: self.gateway.clone(),
            timeout: self.timeout,
            retries: self.retries,
            retry_max_time: self.retry_max_time,
            username: self.username.clone(),
            password,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            quiet: self.quiet,
        })
    }
}

/// The group a command works on.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Group")]
pub struct KeyArgs {
    /// Job name (the `job` label of the group).
    #[arg(long, short = 'j', value_name = "NAME")]
    pub job: String,
    /// Further grouping label, NAME=VALUE (repeatable). Values with `/` and empty values are
    /// sent base64-encoded, like the official client libraries do.
    #[arg(long = "label", short = 'l', value_name = "NAME=VALUE", value_parser = label_arg)]
    pub labels: Vec<String>,
}

/// `pgw run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Ask the gateway to delete the group this long after the push (sent as the
    /// `Pushgateway-TTL` header, Go duration syntax; the official gateway ignores it).
    #[arg(long, value_name = "DURATION", value_parser = ttl_arg)]
    pub ttl: Option<String>,
    /// The file the command may write metrics to, passed as $PGW_METRICS_FILE. It is emptied
    /// before the command starts. Default: a new temporary file, removed afterwards.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// The command to run and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `pgw push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// put replaces the whole group; post replaces only the metric families it contains.
    #[arg(long, value_enum, default_value = "put")]
    pub method: Method,
    /// Ask the gateway to delete the group this long after the push (`Pushgateway-TTL`).
    #[arg(long, value_name = "DURATION", value_parser = ttl_arg)]
    pub ttl: Option<String>,
    /// Add the pushed values to the group's (counters, histograms, summaries' count and sum)
    /// instead of replacing them: pushes to `<gateway>/accumulate/metrics/...` with an
    /// `Idempotency-Key`, and retries with the same key, so a retry never counts twice.
    #[arg(long)]
    pub accumulate: bool,
    /// The `Idempotency-Key` of an accumulating push (default: a fresh unique key). Give the
    /// same key to a re-run that must not count again.
    #[arg(long, value_name = "KEY", requires = "accumulate")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Text-format metrics file, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

/// `pgw delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Output formats of `pgw groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `pgw groups`.
#[derive(Debug, Clone, Args)]
pub struct GroupsArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    /// Only the groups of this job.
    #[arg(long, short = 'j', value_name = "NAME")]
    pub job: Option<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "pgw",
            "run",
            "--gateway",
            "http://x:9091",
            "--job",
            "j",
            "-l",
            "a=b",
            "--ttl",
            "25h",
            "--",
            "sh",
            "-c",
            "exit 1",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            r.command,
            vec![OsString::from("sh"), "-c".into(), "exit 1".into()]
        );
        assert_eq!(r.key.labels, vec!["a=b".to_string()]);
        assert_eq!(r.ttl.as_deref(), Some("25h"));
        assert_eq!(r.gateway.retries, 3);
        assert_eq!(r.gateway.timeout, Duration::from_secs(10));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            vec!["pgw", "run", "--gateway", "http://x", "--job", "j"],
            vec!["pgw", "run", "--gateway", "http://x", "--job", "j", "true"],
            vec![
                "pgw",
                "run",
                "--gateway",
                "http://x",
                "--job",
                "j",
                "--ttl",
                "1d",
                "--",
                "true",
            ],
            vec![
                "pgw",
                "run",
                "--gateway",
                "http://x",
                "--job",
                "j",
                "-l",
                "ab",
                "--",
                "true",
            ],
            vec![
                "pgw",
                "push",
                "--gateway",
                "http://x",
                "--job",
                "j",
                "--method",
                "patch",
                "-",
            ],
            vec![
                "pgw",
                "push",
                "--gateway",
                "http://x",
                "--job",
                "j",
                "--cert-file",
                "c",
                "-",
            ],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
        }
    }
}
