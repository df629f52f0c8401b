//! `cargo bench -p server --bench push`: the server's CPU cost of one push, socket aside:
//! `App::handle` with an in-memory body (routing, grouping key, body collection, text
//! parsing, limits, `Store::push` with the consistency check, telemetry, the response), on
//! one thread, in memory.
//!
//! * `push/small`: PUT of pgwbench's `mode=small` body (10 series) to 1,000 groups, cycling
//!   (the everyday load; the groups exist after the warm-up, so each push replaces one).
//! * `push/large`: POST of pgwbench's `mode=large` body (5,000 series: 384 histograms of 11
//!   buckets, a few counters and gauges) to 8 groups, cycling.
//!
//! Each sample is one batch ([`push_batch`]); instruction counts without timing noise:
//! `valgrind --tool=callgrind --toggle-collect='*push_batch*' target/release/deps/push-*`
//! (smoke mode, one batch per variant) and divide by the batch's pushes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use server::{App, Config};
use std::sync::Arc;
use testkit::bench::{large_push_body, small_push_body, Bench, Per};

testkit::bench_allocator!();

/// One prepared request: method, path and body.
struct Req {
    method: Method,
    path: String,
    body: Bytes,
}

/// One timed sample: every request of the batch (the function instruction counts select).
#[inline(never)]
fn push_batch(rt: &tokio::runtime::Runtime, app: &Arc<App>, reqs: &[Req]) {
    send_all(rt, app, reqs);
}

/// Sends every request through `App::handle` and checks the answers.
#[inline(never)]
fn send_all(rt: &tokio::runtime::Runtime, app: &Arc<App>, reqs: &[Req]) {
    let remote = "127.0.0.1:9".parse().expect("address");
    rt.block_on(async {
        for r in reqs {
            let req = Request::builder()
                .method(r.method.clone())
                .uri(&r.path)
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(r.body.clone()))
                .expect("request");
            let resp = app.handle(req, remote, None).await;
            assert_eq!(resp.status(), 200, "{} {}", r.method, r.path);
        }
    });
}

fn main() {
    let b = Bench::from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let app = App::new(
        Config {
            build: testkit::server::build_info("bench"),
            ..testkit::server::config()
        },
        Arc::new(testkit::server::store_builder().build()),
    );

    let small: Vec<Req> = (0..1000)
        .map(|g| Req {
            method: Method::PUT,
            path: format!("/metrics/job/pgwb_small_{}/instance/i{}", g / 10, g % 10),
            body: Bytes::from(small_push_body(g, g as u64)),
        })
        .collect();
    // The groups exist before the first sample: every timed push replaces one.
    send_all(&rt, &app, &small);
    b.run("push/small", || {
        push_batch(&rt, &app, &small);
        vec![
            Per::Ops(small.len() as u64, "push"),
            Per::Series(10 * small.len() as u64),
        ]
    });

    let large: Vec<Req> = (0..8)
        .map(|g| Req {
            method: Method::POST,
            path: format!("/metrics/job/pgwb_large/instance/b{g}"),
            body: Bytes::from(large_push_body(g, g as u64)),
        })
        .collect();
    send_all(&rt, &app, &large);
    b.run("push/large", || {
        push_batch(&rt, &app, &large);
        vec![
            Per::Ops(large.len() as u64, "push"),
            Per::Series(5000 * large.len() as u64),
        ]
    });
}
