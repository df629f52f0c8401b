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
use std::fmt::Write as _;
use std::sync::Arc;
use testkit::bench::{small_push_body, Bench, Per};

testkit::bench_allocator!();

/// pgwbench's `mode=large` body for group `g` (see ../shared/bench/pgw.lua `large_body`).
fn large_push_body(g: usize, seq: u64) -> String {
    let mut t = String::with_capacity(400_000);
    t.push_str("# HELP pgwb_push_seq Sequence number of this push (pgwbench).\n");
    t.push_str("# TYPE pgwb_push_seq gauge\n");
    let _ = writeln!(t, "pgwb_push_seq {seq}");
    t.push_str(
        "# HELP pgwb_batch_item_duration_seconds Time to process one item, by stage and shard.\n",
    );
    t.push_str("# TYPE pgwb_batch_item_duration_seconds histogram\n");
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ];
    for stage in 0..12 {
        for shard in 0..32 {
            let lbl = format!("stage=\"stage{stage:02}\",shard=\"{shard:02}\"");
            let mut c = 0;
            for (i, le) in les.iter().enumerate() {
                c += (stage + shard + i + 1 + g) % 7;
                let _ = writeln!(
                    t,
                    "pgwb_batch_item_duration_seconds_bucket{{{lbl},le=\"{le}\"}} {c}"
                );
            }
            let _ = writeln!(
                t,
                "pgwb_batch_item_duration_seconds_sum{{{lbl}}} {}",
                c as f64 * 0.125
            );
            let _ = writeln!(t, "pgwb_batch_item_duration_seconds_count{{{lbl}}} {c}");
        }
    }
    t.push_str("# TYPE pgwb_batch_items_total counter\n");
    for i in 0..4 {
        let _ = writeln!(
            t,
            "pgwb_batch_items_total{{result=\"r{i}\"}} {}",
            g * 1000 + i
        );
    }
    t.push_str("# TYPE pgwb_batch_last_success_timestamp_seconds gauge\n");
    let _ = writeln!(
        t,
        "pgwb_batch_last_success_timestamp_seconds {}",
        1_700_000_000 + g
    );
    t.push_str("# TYPE pgwb_batch_up gauge\npgwb_batch_up 1\n");
    t.push_str("# TYPE pgwb_batch_workers gauge\npgwb_batch_workers 32\n");
    t
}

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
