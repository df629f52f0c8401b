//! `pgw push`, `pgw delete`, `pgw groups` and the help texts against real gateways (ours
//! and, when installed, the official binary), plus TLS, mutual TLS and basic auth against
//! the official binary's `--web.config.file`.

mod common;

use common::*;
use std::process::Command;

#[test]
fn push_validates_locally_with_line_numbers() {
    let gw = Gateway::start(Kind::Ours);
    let out = gw.pgw_stdin(
        &["push", "--job", "p", "-"],
        "# TYPE a gauge\na 1\nb{x=\"1\" 2\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("pgw: standard input: text format parsing error in line 3:"),
        "{err}"
    );
    // Missing final newline, as the gateway's parser sees it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.prom");
    std::fs::write(&file, "a 1\nb 2").unwrap();
    let out = gw.pgw(&["push", "--job", "p", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("m.prom: text format parsing error in line 2"),
        "{}",
        stderr(&out)
    );
    // Timestamps are refused by the gateway: refused locally.
    let out = gw.pgw_stdin(&["push", "--job", "p", "-"], "a{k=\"v\"} 1 1700000000000\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("metric a{k=\"v\"} has a timestamp"),
        "{}",
        stderr(&out)
    );
    // Nothing reached the gateway.
    assert!(gw.scrape().iter().all(|f| f.name() != "a"));
    let out = gw.pgw(&["push", "--job", "p", "/nonexistent/file.prom"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/file.prom"));
}

#[test]
fn push_put_and_post_semantics() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let l = [("job", "batch"), ("shard", "3")];
        let key = ["--job", "batch", "--label", "shard=3"];
        let push = |method: &str, body: &str| {
            let mut args = vec!["push", "--method", method];
            args.extend(key);
            args.push("-");
            let out = gw.pgw_stdin(&args, body);
            assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", stderr(&out));
            assert_eq!(stderr(&out), "");
        };
        push("put", "a 1\nb 2\n");
        push("post", "b 3\n");
        let f = gw.scrape();
        assert_eq!(
            value(&f, "a", &l),
            Some(1.0),
            "{kind:?}: POST keeps other families"
        );
        assert_eq!(value(&f, "b", &l), Some(3.0));
        push("put", "b 4\n");
        let f = gw.scrape();
        assert_eq!(value(&f, "a", &l), None, "{kind:?}: PUT replaces the group");
        assert_eq!(value(&f, "b", &l), Some(4.0));
    }
}

#[test]
fn push_refused_by_the_gateway_is_not_retried() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        let out = gw.pgw_stdin(&["push", "--job", "one", "-"], "# TYPE m gauge\nm 1\n");
        assert_eq!(out.status.code(), Some(0));
        let out = gw.pgw_stdin(&["push", "--job", "two", "-"], "# TYPE m counter\nm 1\n");
        assert_eq!(out.status.code(), Some(1), "{kind:?}");
        let err = stderr(&out);
        assert!(err.contains("the gateway answered 400"), "{kind:?}: {err}");
        assert!(!err.contains("retry"), "{err}");
    }
}

#[test]
fn grouping_key_warnings_for_overridden_labels() {
    let gw = Gateway::start(Kind::Ours);
    let out = gw.pgw_stdin(
        &["push", "--job", "j", "-l", "instance=a", "-"],
        "x{instance=\"b\"} 1\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("label instance=\"b\" of metric x will be replaced"),
        "{}",
        stderr(&out)
    );
    assert_eq!(value(&gw.scrape(), "x", &[("instance", "a")]), Some(1.0));
}

#[test]
fn delete_removes_the_group() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        for job in ["keep", "gone"] {
            let out = gw.pgw_stdin(&["push", "--job", job, "-l", "dir=/tmp", "-"], "m 1\n");
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        }
        let out = gw.pgw(&["delete", "--job", "gone", "-l", "dir=/tmp"]);
        assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", stderr(&out));
        let f = gw.scrape();
        assert_eq!(value(&f, "m", &[("job", "keep")]), Some(1.0));
        assert_eq!(value(&f, "m", &[("job", "gone")]), None, "{kind:?}");
        // Deleting a group that does not exist is fine too.
        let out = gw.pgw(&["delete", "--job", "never"]);
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn groups_table_and_json() {
    for kind in kinds() {
        let gw = Gateway::start(kind);
        assert_eq!(
            gw.pgw(&["run", "--job", "backup", "-l", "host=db1", "--", "true"])
                .status
                .code(),
            Some(0)
        );
        assert_eq!(
            gw.pgw(&["run", "--job", "report", "--", "sh", "-c", "exit 2"])
                .status
                .code(),
            Some(2)
        );
        assert_eq!(
            gw.pgw_stdin(&["push", "--job", "plain", "-"], "m 1\n")
                .status
                .code(),
            Some(0)
        );

        let out = gw.pgw(&["groups"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let table = stdout(&out);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{kind:?}: {table}");
        assert!(lines[0].starts_with("JOB"), "{table}");
        assert!(
            lines[1].starts_with("backup")
                && lines[1].contains("host=db1")
                && lines[1].contains(" ok "),
            "{table}"
        );
        assert!(
            lines[2].starts_with("plain") && lines[2].contains(" - "),
            "{table}"
        );
        assert!(
            lines[3].starts_with("report")
                && lines[3].contains("failed (exit 2)")
                && lines[3].contains("never"),
            "{table}"
        );

        let out = gw.pgw(&["groups", "--output", "json", "--job", "backup"]);
        assert_eq!(out.status.code(), Some(0));
        let j: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        let arr = j.as_array().unwrap();
        assert_eq!(arr.len(), 1, "{j}");
        assert_eq!(arr[0]["labels"]["job"], "backup");
        assert_eq!(arr[0]["labels"]["host"], "db1");
        assert_eq!(arr[0]["success"], true);
        assert_eq!(arr[0]["exit_code"], 0);
        assert!(arr[0]["last_success_time_seconds"].as_f64().unwrap() > 1.6e9);
        assert!(arr[0]["age_seconds"].as_f64().unwrap() < 600.0);
    }
}

#[test]
fn groups_against_an_unreachable_gateway_fails() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = pgw_with_gateway(&url, &["groups", "--retries", "0"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("pgw: GET http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_is_complete() {
    let help = |args: &[&str]| {
        let out = Command::new(pgw_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        stdout(&out)
    };
    let top = help(&["--help"]);
    for word in [
        "run",
        "push",
        "delete",
        "groups",
        "PGW_GATEWAY",
        "PGW_PASSWORD",
        "docs/pgw.md",
    ] {
        assert!(top.contains(word), "pgw --help lacks {word}");
    }
    let run = help(&["run", "--help"]);
    for word in [
        "--job",
        "--label",
        "--ttl",
        "--metrics-file",
        "--gateway",
        "--timeout",
        "--retries",
        "--retry-max-time",
        "--username",
        "--password-file",
        "--ca-file",
        "--cert-file",
        "--key-file",
        "PGW_METRICS_FILE",
        "pgw_job_start_time_seconds",
        "pgw_job_duration_seconds",
        "pgw_job_exit_code",
        "pgw_job_signal",
        "pgw_job_success",
        "pgw_job_last_success_time_seconds",
        "128+N",
        "crontab",
        "-- <COMMAND>...",
    ] {
        assert!(run.contains(word), "pgw run --help lacks {word}");
    }
    let push = help(&["push", "--help"]);
    for word in [
        "--method",
        "put",
        "post",
        "FILE|-",
        "line",
        "gzip",
        "--accumulate",
        "--idempotency-key",
    ] {
        assert!(push.contains(word), "pgw push --help lacks {word}");
    }
    assert!(help(&["delete", "--help"]).contains("--job"));
    let groups = help(&["groups", "--help"]);
    for word in ["--output", "json", "table", "/api/v1/metrics"] {
        assert!(groups.contains(word), "pgw groups --help lacks {word}");
    }
    assert!(help(&["--version"]).starts_with("pgw "));
}

/// CA, server and client certificates made with the openssl CLI.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn make() -> Option<Certs> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let script = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=pgw-test-ca
for who in server client; do
  openssl req $ec -keyout $who.key -out $who.csr -subj /CN=$who
done
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
for who in server client; do
  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $who.crt -days 2 -extfile $who.ext
done
"#;
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(d)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Certs { dir }),
            Ok(o) => {
                eprintln!("note: openssl failed, skipping TLS test: {}", stderr(&o));
                None
            }
            Err(e) => {
                eprintln!("note: no openssl ({e}), skipping TLS test");
                None
            }
        }
    }
}

/// bcrypt of "pgw-secret" (cost 4), for the official gateway's basic_auth_users.
const BCRYPT_PGW_SECRET: &str = "$2b$04$Tw/7CF2CqO0PzFqavbnuPeZyb5wesGgC1sQUcq6lg0yYqnBpzUpEe";

#[test]
fn tls_client_certificate_and_basic_auth_against_the_official_gateway() {
    if official_missing() {
        return;
    }
    let Some(certs) = Certs::make() else { return };
    let config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  pgw: {BCRYPT_PGW_SECRET}\n",
        certs.path("server.crt"),
        certs.path("server.key"),
        certs.path("ca.crt"),
    );
    let config_path = certs.path("web.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let gw = Gateway::start_with(
        Kind::Official,
        port,
        &[&format!("--web.config.file={config_path}")],
    );
    let url = format!("https://127.0.0.1:{}", gw.port);
    let (ca, cert, key) = (
        certs.path("ca.crt"),
        certs.path("client.crt"),
        certs.path("client.key"),
    );
    let pgw = |args: &[&str], password: Option<&str>| {
        let mut c = Command::new(pgw_bin());
        c.arg(args[0])
            .args(["--gateway", &url, "--retries", "0", "--timeout", "5s"]);
        if let Some(p) = password {
            // run_output clears PGW_PASSWORD; the file is the other way.
            let pf = certs.path("password");
            std::fs::write(&pf, format!("{p}\n")).unwrap();
            c.args(["--password-file", &pf]);
        }
        c.args(&args[1..]);
        run_output(c, None)
    };
    let tls = [
        "--ca-file",
        ca.as_str(),
        "--cert-file",
        cert.as_str(),
        "--key-file",
        key.as_str(),
    ];
    let auth = ["--username", "pgw"];

    // Everything right: run, groups.
    let mut args = vec!["run", "--job", "secure"];
    args.extend(tls);
    args.extend(auth);
    args.extend(["--", "true"]);
    let out = pgw(&args, Some("pgw-secret"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "", "pushed over mTLS with basic auth");
    let mut args = vec!["groups", "-o", "json"];
    args.extend(tls);
    args.extend(auth);
    let out = pgw(&args, Some("pgw-secret"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j[0]["labels"]["job"], "secure");
    assert_eq!(j[0]["success"], true);

    // Wrong password: 401, not retried, and a run still keeps its exit code.
    let mut args = vec!["run", "--job", "secure"];
    args.extend(tls);
    args.extend(auth);
    args.extend(["--", "sh", "-c", "exit 5"]);
    let out = pgw(&args, Some("wrong"));
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    // No client certificate: the TLS handshake fails.
    let mut args = vec!["delete", "--job", "secure", "--ca-file", ca.as_str()];
    args.extend(auth);
    let out = pgw(&args, Some("pgw-secret"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("alert"), "{}", stderr(&out));

    // Without the CA file the server certificate is not trusted.
    let mut args = vec![
        "delete",
        "--job",
        "secure",
        "--cert-file",
        cert.as_str(),
        "--key-file",
        key.as_str(),
    ];
    args.extend(auth);
    let out = pgw(&args, Some("pgw-secret"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
}
