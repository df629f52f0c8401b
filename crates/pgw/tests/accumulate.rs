//! `pgw push --accumulate`: pushes to the `/accumulate` route with an `Idempotency-Key`, and
//! a retry after a lost answer (a proxy that forwards the first push, then drops the
//! connection before answering) sends the same key, so the push counts once.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Reads one HTTP/1.1 message (head and a `Content-Length` body) from `s`.
fn read_message(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// A proxy to `target` that forwards every request, but drops the first `lose` answers.
/// Returns its port and the number of requests it forwarded.
fn lossy_proxy(target: u16, lose: usize) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(20) {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(req) = read_message(&mut c) else {
                continue;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = up.set_read_timeout(Some(Duration::from_secs(10)));
            if up.write_all(&req).is_err() {
                continue;
            }
            let Ok(resp) = read_message(&mut up) else {
                continue;
            };
            if n >= lose {
                let _ = c.write_all(&resp);
            }
            // Either way the client's connection closes here (the lost answer: no bytes).
        }
    });
    (port, seen)
}

fn counter_value(gw: &Gateway, job: &str) -> Option<f64> {
    value(&gw.scrape(), "runs_total", &[("job", job)])
}

#[test]
fn accumulate_adds_and_a_retry_after_a_lost_answer_counts_once() {
    let gw = Gateway::start(Kind::Ours);
    let body = "# TYPE runs_total counter\nruns_total 2\n";
    for _ in 0..2 {
        let out = gw.pgw_stdin(&["push", "--accumulate", "--job", "acc", "-"], body);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(counter_value(&gw, "acc"), Some(4.0), "two runs add up");

    let (port, seen) = lossy_proxy(gw.port, 1);
    let out = pgw_with_gateway(
        &format!("http://127.0.0.1:{port}"),
        &[
            "push",
            "--accumulate",
            "--job",
            "acc",
            "--retries",
            "3",
            "-",
        ],
        Some(body),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("retry 1/3"), "{}", stderr(&out));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the gateway got the push twice"
    );
    assert_eq!(
        counter_value(&gw, "acc"),
        Some(6.0),
        "the retry carried the same key and was not added again"
    );

    // An explicit key makes a whole re-run idempotent.
    for _ in 0..2 {
        let out = gw.pgw_stdin(
            &[
                "push",
                "--accumulate",
                "--idempotency-key",
                "nightly-2026-12-04",
                "--job",
                "acc",
                "-",
            ],
            body,
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(counter_value(&gw, "acc"), Some(8.0));
    // Without --accumulate a push replaces, as before.
    let out = gw.pgw_stdin(&["push", "--job", "acc", "-"], body);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(counter_value(&gw, "acc"), Some(2.0));
}
