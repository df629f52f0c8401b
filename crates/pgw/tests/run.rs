//! `pgw run` against real gateways (ours and, when installed, the official binary): outcome
//! metrics, exit codes, signals, the metrics file, last success across failures, retries
//! against a gateway that starts late, and an unreachable gateway.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUCCESS: &str = "pgw_job_success";
const EXIT_CODE: &str = "pgw_job_exit_code";
const SIGNAL: &str = "pgw_job_signal";
const LAST_SUCCESS: &str = "pgw_job_last_success_time_seconds";
const START: &str = "pgw_job_start_time_seconds";
const DURATION: &str = "pgw_job_duration_seconds";

#[test]
fn success_pushes_the_outcome_and_passes_output_through() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let before = unix_now();
        let out = gw.pgw_stdin(
            &[
                "run",
                "--job",
                "ok",
                "--label",
                "host=a",
                "--",
                "sh",
                "-c",
                "cat; echo to-stderr >&2",
            ],
            "hello from stdin\n",
        );
        let after = unix_now();
        assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hello from stdin\n");
        assert_eq!(
            stderr(&out),
            "to-stderr\n",
            "{kind:?}: nothing else on stderr"
        );
        let f = gw.scrape();
        let l = [("job", "ok"), ("host", "a")];
        assert_eq!(value(&f, SUCCESS, &l), Some(1.0), "{kind:?}");
        assert_eq!(value(&f, EXIT_CODE, &l), Some(0.0));
        assert_eq!(value(&f, SIGNAL, &l), Some(0.0));
        let start = value(&f, START, &l).unwrap();
        let duration = value(&f, DURATION, &l).unwrap();
        let last = value(&f, LAST_SUCCESS, &l).unwrap();
        assert!(
            start >= before - 1.0 && start <= after,
            "{start} {before} {after}"
        );
        assert!((0.0..after - before + 1.0).contains(&duration));
        assert!(
            (last - (start + duration)).abs() < 1e-3,
            "last success = end of the run"
        );
    }
}

#[test]
fn failure_keeps_exit_code_and_previous_last_success() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let l = [("job", "nightly")];
        // Never succeeded yet: the last-success gauge is left out.
        let out = gw.pgw(&["run", "--job", "nightly", "--", "sh", "-c", "exit 4"]);
        assert_eq!(out.status.code(), Some(4), "{kind:?}: {}", stderr(&out));
        let f = gw.scrape();
        assert_eq!(value(&f, SUCCESS, &l), Some(0.0));
        assert_eq!(value(&f, LAST_SUCCESS, &l), None, "{kind:?}");

        let out = gw.pgw(&["run", "--job", "nightly", "--", "true"]);
        assert_eq!(out.status.code(), Some(0));
        let first = value(&gw.scrape(), LAST_SUCCESS, &l).expect("set by a success");

        let out = gw.pgw(&["run", "--job", "nightly", "--", "sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(3), "{kind:?}: {}", stderr(&out));
        let f = gw.scrape();
        assert_eq!(value(&f, SUCCESS, &l), Some(0.0));
        assert_eq!(value(&f, EXIT_CODE, &l), Some(3.0));
        assert_eq!(value(&f, LAST_SUCCESS, &l), Some(first), "{kind:?}: kept");
        // Twice in a row.
        let out = gw.pgw(&["run", "--job", "nightly", "--", "false"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(value(&gw.scrape(), LAST_SUCCESS, &l), Some(first));
    }
}

#[test]
fn last_success_is_kept_for_base64_grouping_keys() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let key = ["--job", "a/b", "-l", "path=/var/tmp", "-l", "plain=x y"];
        let run = |cmd: &str| {
            let mut args = vec!["run"];
            args.extend(key);
            args.extend(["--", "sh", "-c", cmd]);
            gw.pgw(&args)
        };
        assert_eq!(run("exit 0").status.code(), Some(0));
        let l = [("job", "a/b"), ("path", "/var/tmp"), ("plain", "x y")];
        let first = value(&gw.scrape(), LAST_SUCCESS, &l).expect("pushed under the decoded key");
        let out = run("exit 9");
        assert_eq!(out.status.code(), Some(9));
        let f = gw.scrape();
        assert_eq!(value(&f, EXIT_CODE, &l), Some(9.0), "{kind:?}");
        assert_eq!(value(&f, LAST_SUCCESS, &l), Some(first), "{kind:?}");
    }
}

#[test]
fn signal_killed_command_is_128_plus_signal() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let out = gw.pgw(&["run", "--job", "killed", "--", "sh", "-c", "kill -TERM $$"]);
        assert_eq!(out.status.code(), Some(143), "{kind:?}: {}", stderr(&out));
        let f = gw.scrape();
        let l = [("job", "killed")];
        assert_eq!(value(&f, EXIT_CODE, &l), Some(143.0));
        assert_eq!(value(&f, SIGNAL, &l), Some(15.0));
        assert_eq!(value(&f, SUCCESS, &l), Some(0.0));
    }
}

#[test]
#[allow(unsafe_code)] // kill(2), SAFETY comment at the call
fn signals_sent_to_pgw_are_forwarded() {
    let gw = Gateway::start(Kind::Ours);
    let mut child = Command::new(pgw_bin())
        .args(["run", "--gateway", &gw.url, "--job", "fwd", "--"])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "pgw did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(42), "the command's own exit code");
    assert_eq!(
        value(&gw.scrape(), EXIT_CODE, &[("job", "fwd")]),
        Some(42.0)
    );
}

#[test]
fn metrics_file_is_merged_and_replaced_by_the_next_run() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let script = r#"cat > "$PGW_METRICS_FILE" <<'X'
# HELP rows_total Rows imported.
# TYPE rows_total counter
rows_total{table="a"} 5
rows_total{table="b"} 7
# TYPE batch_latency_seconds histogram
batch_latency_seconds_bucket{le="1"} 2
batch_latency_seconds_bucket{le="+Inf"} 3
batch_latency_seconds_sum 4.5
batch_latency_seconds_count 3
X"#;
        let out = gw.pgw(&["run", "--job", "import", "--", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "");
        let f = gw.scrape();
        let l = [("job", "import")];
        assert_eq!(
            value(&f, "rows_total", &[("job", "import"), ("table", "b")]),
            Some(7.0)
        );
        let h = f
            .iter()
            .find(|f| f.name() == "batch_latency_seconds")
            .expect("histogram");
        assert_eq!(
            h.metric[0].histogram.as_ref().unwrap().sample_count,
            Some(3)
        );
        assert_eq!(
            value(&f, SUCCESS, &l),
            Some(1.0),
            "{kind:?}: pushed in the same request"
        );

        // The next run writes other metrics: PUT replaces the group, the old ones are gone.
        let out = gw.pgw(&[
            "run",
            "--job",
            "import",
            "--",
            "sh",
            "-c",
            "echo 'other_metric 1' > \"$PGW_METRICS_FILE\"; exit 2",
        ]);
        assert_eq!(out.status.code(), Some(2));
        let f = gw.scrape();
        assert!(f.iter().all(|f| f.name() != "rows_total"), "{kind:?}");
        assert_eq!(value(&f, "other_metric", &l), Some(1.0));
        assert!(
            value(&f, LAST_SUCCESS, &l).is_some(),
            "kept with the file metrics"
        );
    }
}

#[test]
fn explicit_metrics_file_is_emptied_first_and_own_names_are_ignored() {
    let gw = Gateway::start(Kind::Ours);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.prom");
    std::fs::write(&path, "stale_metric 1\n").unwrap();
    let p = path.to_str().unwrap();
    let out = gw.pgw(&[
        "run", "--job", "own", "--metrics-file", p, "--", "sh", "-c",
        "test -s \"$PGW_METRICS_FILE\" && exit 5; printf 'pgw_job_success 1\\nmine 2\\n' > \"$PGW_METRICS_FILE\"; exit 1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ignoring pgw_job_success"),
        "{}",
        stderr(&out)
    );
    let f = gw.scrape();
    let l = [("job", "own")];
    assert_eq!(value(&f, SUCCESS, &l), Some(0.0), "pgw's own value wins");
    assert_eq!(value(&f, "mine", &l), Some(2.0));
    assert!(value(&f, "stale_metric", &l).is_none());
    assert!(path.exists(), "an explicit file is kept");
}

#[test]
fn invalid_metrics_file_is_reported_and_the_outcome_still_pushed() {
    let gw = Gateway::start(Kind::Ours);
    let out = gw.pgw(&[
        "run",
        "--job",
        "bad",
        "--",
        "sh",
        "-c",
        "printf 'good 1\\nbad{ 2\\n' > \"$PGW_METRICS_FILE\"; exit 6",
    ]);
    assert_eq!(out.status.code(), Some(6));
    let err = stderr(&out);
    assert!(err.contains("text format parsing error in line 2"), "{err}");
    let f = gw.scrape();
    assert_eq!(value(&f, EXIT_CODE, &[("job", "bad")]), Some(6.0));
    assert!(value(&f, "good", &[("job", "bad")]).is_none());
}

#[test]
fn metrics_refused_by_the_gateway_fall_back_to_the_outcome_alone() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        // `shared` is a gauge in another group; a counter of that name is inconsistent.
        let out = gw.pgw_stdin(
            &["push", "--job", "other", "-"],
            "# TYPE shared gauge\nshared 1\n",
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = gw.pgw(&[
            "run",
            "--job",
            "clash",
            "--",
            "sh",
            "-c",
            "printf '# TYPE shared counter\\nshared 1\\n' > \"$PGW_METRICS_FILE\"",
        ]);
        assert_eq!(out.status.code(), Some(0));
        let err = stderr(&out);
        assert!(
            err.contains("refused the command's metrics"),
            "{kind:?}: {err}"
        );
        assert!(!err.contains("retry"), "4xx is never retried: {err}");
        assert_eq!(
            value(&gw.scrape(), SUCCESS, &[("job", "clash")]),
            Some(1.0),
            "{kind:?}"
        );
    }
}

#[test]
fn command_not_found_is_127_and_pushed() {
    let gw = Gateway::start(Kind::Ours);
    let out = gw.pgw(&["run", "--job", "nf", "--", "/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("cannot run \"/nonexistent/command\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        value(&gw.scrape(), EXIT_CODE, &[("job", "nf")]),
        Some(127.0)
    );
}

#[test]
fn retries_until_a_late_gateway_is_up() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(pgw_bin())
        .args([
            "run",
            "--gateway",
            &url,
            "--job",
            "late",
            "--retries",
            "6",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Collect stderr lines; start the gateway once the first attempt has failed.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr_pipe).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a retry note on stderr");
    assert!(first.contains("retry 1/6"), "{first}");
    let gw = Gateway::start_with(Kind::Ours, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "pgw did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(value(&gw.scrape(), SUCCESS, &[("job", "late")]), Some(1.0));
}

#[test]
fn unreachable_gateway_warns_and_keeps_the_exit_code() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for (cmd, code) in [("exit 0", 0), ("exit 7", 7)] {
        let started = Instant::now();
        let mut c = Command::new(pgw_bin());
        c.args([
            "run",
            "--gateway",
            &url,
            "--job",
            "x",
            "--retries",
            "1",
            "--timeout",
            "2s",
        ])
        .args(["--", "sh", "-c", cmd]);
        let out = run_output(c, None);
        assert_eq!(out.status.code(), Some(code));
        let err = stderr(&out);
        assert!(
            err.contains("pgw: warning: could not push the outcome of job \"x\""),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    // An invalid URL is also only a warning: the command runs.
    let mut c = Command::new(pgw_bin());
    c.args([
        "run",
        "--gateway",
        "not-a-url",
        "--job",
        "x",
        "--",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    let out = run_output(c, None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "ran\n");
    assert!(
        stderr(&out).contains("invalid gateway URL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_arguments_do_not_run_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for bad in [
        vec!["--job", "j", "-l", "bad-name=1"],
        vec!["--job", "j", "-l", "job=x"],
        vec!["--job", "j", "--ttl", "3 days"],
        vec!["--job", ""],
    ] {
        let mut c = Command::new(pgw_bin());
        c.args(["run", "--gateway", "http://127.0.0.1:9"])
            .args(&bad)
            .args(["--", "sh", "-c", &touch]);
        let out = run_output(c, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(!marker.exists(), "{bad:?}");
    }
}

#[test]
fn ttl_header_is_accepted() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let out = gw.pgw(&["run", "--job", "ttl", "--ttl", "25h", "--", "true"]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stderr(&out), "", "{kind:?}");
        assert_eq!(value(&gw.scrape(), SUCCESS, &[("job", "ttl")]), Some(1.0));
    }
}
