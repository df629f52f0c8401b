//! What each subcommand does: `run` (run the command, then push its outcome, never changing
//! its exit code), `push`, `delete` and `groups`, and which failures are warnings and which
//! are errors.

use crate::cli::{DeleteArgs, GroupsArgs, KeyArgs, Output, PasswordFileError, PushArgs, RunArgs};
use crate::client::{Client, ClientError, Method};
use crate::grouping::{GroupingError, GroupingKey};
use crate::groups::{find_group, parse_groups, render_json, render_table, ApiFormatError};
use crate::metrics::{self, Outcome, ValidationError};
use crate::runner;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that names the metrics file for the wrapped command.
pub const METRICS_FILE_ENV: &str = "PGW_METRICS_FILE";
/// Exit code of `push`, `delete` and `groups` when they fail.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for invalid arguments (as clap uses).
pub const EXIT_USAGE: i32 = 2;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Grouping(#[from] GroupingError),
    #[error(transparent)]
    Password(#[from] PasswordFileError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Api(#[from] ApiFormatError),
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: ValidationError,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("running the command: {0}")]
    Run(#[source] io::Error),
    #[error("writing the output: {0}")]
    Output(#[source] io::Error),
}

impl AppError {
    /// 2 for invalid arguments, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Grouping(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("pgw: warning: {msg}");
}

fn key_of(args: &KeyArgs) -> Result<GroupingKey, GroupingError> {
    GroupingKey::new(&args.job, &args.labels)
}

/// `pgw run`: returns the command's exit code. Errors only for invalid arguments (before
/// the command runs) and when the command cannot be waited for.
pub fn run(args: RunArgs) -> Result<i32, AppError> {
    let key = key_of(&args.key)?;
    // From here on, nothing stops the command from running.
    let client = args
        .gateway
        .client_options()
        .map_err(AppError::from)
        .and_then(|o| Client::new(o).map_err(AppError::from));
    let client = match client {
        Ok(c) => Some(c),
        Err(e) => {
            warn(format_args!("{e}; the outcome will not be pushed"));
            None
        }
    };
    let metrics_file = prepare_metrics_file(args.metrics_file.as_deref());
    let mut env: Vec<(String, OsString)> = Vec::new();
    if let Some((path, _)) = &metrics_file {
        env.push((METRICS_FILE_ENV.to_string(), path.clone().into_os_string()));
    }

    let (outcome, spawn_error) = runner::run_command(&args.command, &env).map_err(AppError::Run)?;
    if let Some(e) = spawn_error {
        eprintln!("pgw: {e}");
    }

    let extra = match &metrics_file {
        Some((path, _)) => read_metrics_file(path, &key),
        None => None,
    };
    drop(metrics_file); // removes pgw's temporary file
    if let Some(client) = client {
        if let Err(e) = push_outcome(&client, &key, &outcome, extra, args.ttl.as_deref()) {
            warn(format_args!(
                "could not push the outcome of job {:?}: {e}",
                key.job
            ));
        }
    }
    Ok(outcome.exit_code)
}

/// The file for `$PGW_METRICS_FILE`, emptied: the given one, or a new temporary file
/// (removed when the returned guard is dropped). `None` (with a warning) if impossible.
fn prepare_metrics_file(path: Option<&Path>) -> Option<(PathBuf, Option<tempfile::TempPath>)> {
    match path {
        Some(p) => match std::fs::File::create(p) {
            Ok(_) => Some((p.to_path_buf(), None)),
            Err(e) => {
                warn(format_args!(
                    "cannot create the metrics file {}: {e}; ${METRICS_FILE_ENV} is not set",
                    p.display()
                ));
                None
            }
        },
        None => match tempfile::Builder::new()
            .prefix("pgw-metrics-")
            .suffix(".prom")
            .tempfile()
        {
            Ok(f) => {
                let tmp = f.into_temp_path();
                Some((tmp.to_path_buf(), Some(tmp)))
            }
            Err(e) => {
                warn(format_args!(
                    "cannot create a temporary metrics file: {e}; ${METRICS_FILE_ENV} is not set"
                ));
                None
            }
        },
    }
}

/// The command's metrics as text, validated; `None` when there are none or they are
/// invalid (then with a warning: the outcome is still pushed).
fn read_metrics_file(path: &Path, key: &GroupingKey) -> Option<String> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn(format_args!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let families = match metrics::validate(&body) {
        Ok(f) => f,
        Err(ValidationError::Empty) => return None,
        Err(e) => {
            warn(format_args!(
                "ignoring the metrics file {}: {e}",
                path.display()
            ));
            return None;
        }
    };
    let (families, dropped) = metrics::split_own_names(families);
    for name in dropped {
        warn(format_args!(
            "ignoring {name} from the metrics file: pgw sets that metric itself"
        ));
    }
    for c in metrics::grouping_conflicts(&families, key) {
        warn(c);
    }
    if families.is_empty() {
        return None;
    }
    match metrics::encode(&families) {
        Ok(text) => Some(text),
        Err(e) => {
            warn(format_args!(
                "ignoring the metrics file {}: {e}",
                path.display()
            ));
            None
        }
    }
}

/// Pushes an outcome (and the command's own metrics) in one request.
///
/// After a success: PUT with the last-success time set to the end of this run. After a
/// failure: the previous last-success time is read from the gateway and PUT again (left
/// out when the group has none); if it cannot be read, POST without it, which keeps
/// whatever the gateway has. If the gateway refuses (400) a push that includes the
/// command's metrics, the outcome is pushed alone.
pub fn push_outcome(
    client: &Client,
    key: &GroupingKey,
    outcome: &Outcome,
    extra: Option<String>,
    ttl: Option<&str>,
) -> Result<(), ClientError> {
    let (method, last_success) = if outcome.success() {
        (Method::Put, Some(outcome.end_time()))
    } else {
        match previous_last_success(client, key) {
            Ok(v) => (Method::Put, v),
            Err(e) => {
                warn(format_args!(
                    "cannot read the previous last-success time ({e}); pushing with POST to keep the gateway's value"
                ));
                (Method::Post, None)
            }
        }
    };
    let own = metrics::encode(&metrics::outcome_families(outcome, last_success))
        .expect("gauges always encode");
    let Some(extra) = extra else {
        return client.push(key, method, own.as_bytes(), ttl);
    };
    let body = format!("{own}{extra}");
    match client.push(key, method, body.as_bytes(), ttl) {
        Err(e) if e.status() == Some(400) => {
            warn(format_args!(
                "the gateway refused the command's metrics ({e}); pushing the outcome alone"
            ));
            client.push(key, method, own.as_bytes(), ttl)
        }
        r => r,
    }
}

/// The group's current `pgw_job_last_success_time_seconds` on the gateway, `None` if the
/// group or the metric does not exist.
fn previous_last_success(client: &Client, key: &GroupingKey) -> Result<Option<f64>, String> {
    let v = client.api_metrics().map_err(|e| e.to_string())?;
    let groups = parse_groups(&v).map_err(|e| e.to_string())?;
    Ok(find_group(&groups, key).and_then(|g| g.last_success_time_seconds))
}

/// `pgw push`.
pub fn push(args: PushArgs) -> Result<i32, AppError> {
    let key = key_of(&args.key)?;
    let client = Client::new(args.gateway.client_options()?)?;
    let (name, body) = if args.file.as_os_str() == "-" {
        let mut body = Vec::new();
        io::stdin()
            .read_to_end(&mut body)
            .map_err(|source| AppError::Read {
                path: "standard input".into(),
                source,
            })?;
        ("standard input".to_string(), body)
    } else {
        let name = args.file.display().to_string();
        let body = std::fs::read(&args.file).map_err(|source| AppError::Read {
            path: name.clone(),
            source,
        })?;
        (name, body)
    };
    let families =
        metrics::validate(&body).map_err(|source| AppError::Invalid { path: name, source })?;
    for c in metrics::grouping_conflicts(&families, &key) {
        warn(c);
    }
    if args.accumulate {
        let idem = args
            .idempotency_key
            .clone()
            .unwrap_or_else(crate::client::new_idempotency_key);
        client.push_accumulate(&key, args.method, &body, args.ttl.as_deref(), &idem)?;
    } else {
        client.push(&key, args.method, &body, args.ttl.as_deref())?;
    }
    Ok(0)
}

/// `pgw delete`.
pub fn delete(args: DeleteArgs) -> Result<i32, AppError> {
    let key = key_of(&args.key)?;
    let client = Client::new(args.gateway.client_options()?)?;
    client.delete(&key)?;
    Ok(0)
}

/// `pgw groups`.
pub fn groups(args: GroupsArgs) -> Result<i32, AppError> {
    let client = Client::new(args.gateway.client_options()?)?;
    let v = client.api_metrics()?;
    let mut groups = parse_groups(&v)?;
    if let Some(job) = &args.job {
        groups.retain(|g| g.labels.get("job") == Some(job));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let text = match args.output {
        Output::Table => render_table(&groups, now),
        Output::Json => render_json(&groups, now),
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(AppError::Output)?;
    Ok(0)
}
