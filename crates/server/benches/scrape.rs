//! `cargo bench -p server --bench scrape`: `GET /metrics` on a store holding 10k / 100k / 1M
//! series (groups of 20 series, pgwbench's `mode=preload` body), through the real handler
//! (`scrape::handle`: snapshot, own telemetry, merge, render, optional gzip), in text, text
//! with gzip and delimited protobuf, plus `GET /api/v1/metrics` (`api::metrics`, the JSON the
//! web UI reads). No socket is involved: this is the server's CPU cost per scrape.
//!
//! The series counts reported are the sample lines of the text scrape: the pushed series plus
//! `push_time_seconds`/`push_failure_time_seconds` per group plus the gateway's own metrics.

use hyper::body::Body as _;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING};
use server::{App, Config};
use std::sync::Arc;
use std::time::Instant;
use testkit::bench::{fmt_dur, size_name, Bench, Per};

testkit::bench_allocator!();

fn app_with(series: usize) -> Arc<App> {
    let store = testkit::server::store_builder().build();
    let started = Instant::now();
    let groups = series / 20;
    testkit::bench::fill(&store, groups);
    println!(
        "# store with {} series ({groups} groups) filled in {}",
        size_name(series),
        fmt_dur(started.elapsed())
    );
    let cfg = Config {
        build: testkit::server::build_info("bench"),
        ..testkit::server::config()
    };
    App::new(cfg, Arc::new(store))
}

/// Reads the whole body (a streamed body renders as it is read) and returns its length.
fn body_len(resp: server::http::Resp) -> u64 {
    let mut body = resp.into_body();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut n = 0;
    while let std::task::Poll::Ready(Some(f)) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        if let Ok(d) = f.expect("in-memory body").into_data() {
            n += d.len() as u64;
        }
    }
    n
}

/// This thread's CPU time: what a render costs however busy the machine is (the wall time
/// of a run on a shared machine includes the waits for a core).
// unsafe: clock_gettime(CLOCK_THREAD_CPUTIME_ID) (SAFETY comment at the call).
#[allow(unsafe_code)]
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Prints the median thread CPU time of `runs` calls of `f` (not in smoke mode).
fn cpu_median(b: &Bench, name: &str, runs: usize, mut f: impl FnMut()) {
    if b.smoke() || !b.wants(name) {
        return;
    }
    let mut t: Vec<std::time::Duration> = (0..runs)
        .map(|_| {
            let start = thread_cpu();
            f();
            thread_cpu() - start
        })
        .collect();
    t.sort();
    println!(
        "{name:<40} cpu {} (min {}, n={runs})",
        fmt_dur(t[runs / 2]),
        fmt_dur(t[0])
    );
}

fn main() {
    let b = Bench::from_args();
    let pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    for n in b.sizes() {
        let sz = size_name(n);
        let names: Vec<String> = ["text", "text+gzip", "protobuf", "api-json"]
            .iter()
            .map(|v| format!("scrape/{v}/{sz}"))
            .collect();
        if !b.wants_any(&names) {
            continue;
        }
        let app = app_with(n);

        let plain = HeaderMap::new();
        let mut gz = HeaderMap::new();
        gz.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let mut proto = HeaderMap::new();
        proto.insert(ACCEPT, HeaderValue::from_static(pb));

        let first = server::scrape::handle(&app, &plain);
        assert_eq!(first.status(), 200);
        let text_len = body_len(first);
        let first = server::scrape::handle(&app, &plain);
        let series = {
            use http_body_util::BodyExt as _;
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio runtime");
            let bytes = rt
                .block_on(first.into_body().collect())
                .expect("in-memory body")
                .to_bytes();
            bytes
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty() && l[0] != b'#')
                .count() as u64
        };
        println!(
            "# {series} series; bodies: text {:.1} MB, gzip {:.1} MB, protobuf {:.1} MB, \
             api json {:.1} MB",
            text_len as f64 / 1e6,
            body_len(server::scrape::handle(&app, &gz)) as f64 / 1e6,
            body_len(server::scrape::handle(&app, &proto)) as f64 / 1e6,
            body_len(server::api::metrics(&app)) as f64 / 1e6,
        );

        b.run(&names[0], || {
            let r = server::scrape::handle(&app, &plain);
            vec![Per::Bytes(body_len(r)), Per::Series(series)]
        });

        b.run(&names[1], || {
            let r = server::scrape::handle(&app, &gz);
            std::hint::black_box(body_len(r));
            // Throughput in uncompressed bytes: what the gzip step consumes.
            vec![Per::Bytes(text_len), Per::Series(series)]
        });

        b.run(&names[2], || {
            let r = server::scrape::handle(&app, &proto);
            vec![Per::Bytes(body_len(r)), Per::Series(series)]
        });

        b.run(&names[3], || {
            let r = server::api::metrics(&app);
            vec![Per::Bytes(body_len(r)), Per::Series(series)]
        });

        // CPU time per render, comparable across runs on a busy machine (API / text).
        cpu_median(&b, &names[0], 9, || {
            std::hint::black_box(body_len(server::scrape::handle(&app, &plain)));
        });
        cpu_median(&b, &names[3], 9, || {
            std::hint::black_box(body_len(server::api::metrics(&app)));
        });
    }
}
