//! Running the wrapped command: standard streams inherited, SIGINT/SIGTERM/SIGHUP/SIGQUIT
//! forwarded to it while it runs, and its end turned into an [`Outcome`] (exit code, or
//! 128+N for a command killed by signal N, as shells report it).

use crate::metrics::Outcome;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::origin::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The signals pgw passes on to the command.
pub const FORWARDED_SIGNALS: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Exit code when the command cannot be found (as in shells).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code when the command exists but cannot be started (as in shells).
pub const EXIT_CANNOT_RUN: i32 = 126;

/// A command that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {command:?}: {source}")]
pub struct SpawnError {
    pub command: String,
    #[source]
    pub source: io::Error,
}

/// The exit code and killing signal of a finished process: `(code, None)` for a normal
/// exit, `(128+N, Some(N))` for a process killed by signal N.
pub fn exit_code_of(status: ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (1, None),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs `argv` with extra environment variables and returns its outcome. A command that
/// cannot be started yields exit code 127 (not found) or 126 (other errors) and the error.
///
/// While the command runs, the forwarded signals do not stop pgw: each one sent to pgw by
/// another process (`kill`, a container runtime, cron) is passed on to the command. Signals
/// from the terminal (Ctrl-C) are not passed on, because the terminal already sends them to
/// the command too (it is in pgw's process group). Once the command has ended, these
/// signals terminate pgw (with 128+N), so that an impatient user can stop the push.
pub fn run_command(
    argv: &[OsString],
    env: &[(String, OsString)],
) -> io::Result<(Outcome, Option<SpawnError>)> {
    let child_done = Arc::new(AtomicBool::new(false));
    for sig in FORWARDED_SIGNALS {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, child_done.clone())?;
    }
    let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED_SIGNALS)?;
    let handle = signals.handle();

    let start_time = unix_now();
    let started = Instant::now();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(source) => {
            handle.close();
            child_done.store(true, Ordering::SeqCst);
            let exit_code = if source.kind() == io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            };
            let outcome = Outcome {
                start_time,
                duration: started.elapsed().as_secs_f64(),
                exit_code,
                signal: None,
            };
            let command = argv[0].to_string_lossy().into_owned();
            return Ok((outcome, Some(SpawnError { command, source })));
        }
    };
    let pid = child.id() as libc::pid_t;
    let forwarder = std::thread::spawn(move || {
        for origin in signals.forever() {
            if !matches!(origin.cause, Cause::Kernel) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, origin.signal);
                }
            }
        }
    });
    let status = child.wait();
    let duration = started.elapsed().as_secs_f64();
    child_done.store(true, Ordering::SeqCst);
    handle.close();
    let _ = forwarder.join();
    let (exit_code, signal) = exit_code_of(status?);
    Ok((
        Outcome {
            start_time,
            duration,
            exit_code,
            signal,
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn exit_codes_are_passed_through() {
        let (o, e) = run_command(&sh("exit 3"), &[]).unwrap();
        assert!(e.is_none());
        assert_eq!((o.exit_code, o.signal), (3, None));
        assert!(!o.success());
        let (o, _) = run_command(&sh("true"), &[]).unwrap();
        assert!(o.success());
        assert!(o.duration >= 0.0 && o.start_time > 1.6e9);
    }

    #[test]
    fn killed_by_signal_is_128_plus_n() {
        let (o, _) = run_command(&sh("kill -TERM $$"), &[]).unwrap();
        assert_eq!((o.exit_code, o.signal), (143, Some(15)));
        let (o, _) = run_command(&sh("kill -KILL $$"), &[]).unwrap();
        assert_eq!((o.exit_code, o.signal), (137, Some(9)));
    }

    #[test]
    fn missing_command_is_127() {
        let (o, e) = run_command(&["/nonexistent/pgw-test".into()], &[]).unwrap();
        assert_eq!(o.exit_code, EXIT_NOT_FOUND);
        assert!(e.unwrap().to_string().contains("/nonexistent/pgw-test"));
    }

    #[test]
    fn environment_is_passed() {
        let env = [("PGW_TEST_VAR".to_string(), OsString::from("7"))];
        let (o, _) = run_command(&sh("exit $PGW_TEST_VAR"), &env).unwrap();
        assert_eq!(o.exit_code, 7);
    }
}
