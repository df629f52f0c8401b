//! `cargo bench -p store --bench push`: the cost of one checked `Store::push` (no persistence)
//! of a small group (10 series, pgwbench's `mode=small` body) into a store already holding
//! 10k / 100k / 1M series (groups of 20 series, pgwbench's `mode=preload` body).
//!
//! A checked push must cost O(size of the push): the time per push has to stay flat as the
//! store grows. The last lines print the largest/smallest ratio per variant.
//!
//! * `push/replace`: PUT over 1,000 existing small groups, cycling (the everyday load).
//! * `push/new`: PUT of 1,000 groups that do not exist yet (deleted again, untimed, after
//!   each sample so the store keeps its size).
//! * `push/replace+snapshot`: as `push/replace`, with a `Store::snapshot()` after every push,
//!   as if a scrape or API call came in between every two pushes (the worst case for the
//!   lazily cut, path-copying snapshots).
//! * `push/accumulate`: as `push/replace`, but accumulating (`Push::accumulate`): each push
//!   is merged into the stored group (decode, add, encode again).

use exposition::text_parse::parse_text;
use exposition::MetricFamily;
use std::time::{Instant, SystemTime};
use store::{GroupKey, Push, Store};
use testkit::bench::{fmt_dur, size_name, small_push_body, Bench, Per, Stats};

testkit::bench_allocator!();

const BATCH: usize = 1_000;

fn small_key(prefix: &str, g: usize) -> GroupKey {
    GroupKey::new([
        ("job", format!("{prefix}_{}", g / 10)),
        ("instance", format!("i{}", g % 10)),
    ])
}

fn push_of(key: GroupKey, families: &[MetricFamily]) -> Push {
    Push {
        key,
        families: families.to_vec(),
        replace: true,
        time: SystemTime::now(),
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    }
}

/// A checked, in-memory store holding `series` series in groups of 20.
/// (Keys `job=pgwb_pre_<g/10>,instance=i<g%10>`, as `small_key("pgwb_pre", g)`.)
fn filled_store(series: usize) -> Store {
    let store = testkit::store::StoreBuilder::new().build();
    let started = Instant::now();
    let groups = series / 20;
    testkit::bench::fill(&store, groups);
    let snap = store.snapshot();
    assert_eq!(snap.groups.len(), groups);
    println!(
        "# store with {} series ({groups} groups) filled in {}",
        size_name(series),
        fmt_dur(started.elapsed())
    );
    store
}

fn main() {
    let b = Bench::from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    // The 1,000 small bodies, parsed once; every push clones its families (untimed).
    let small: Vec<Vec<MetricFamily>> = (0..BATCH)
        .map(|g| parse_text(small_push_body(g, g as u64).as_bytes()).expect("parses"))
        .collect();
    let variants = [
        "push/replace",
        "push/new",
        "push/replace+snapshot",
        "push/accumulate",
    ];
    let mut results: Vec<(&str, usize, Stats)> = Vec::new();

    for n in b.sizes() {
        let sz = size_name(n);
        let names: Vec<String> = variants.iter().map(|v| format!("{v}/{sz}")).collect();
        if !b.wants_any(&names) {
            continue;
        }
        let store = filled_store(n);
        let per = vec![
            Per::Ops(BATCH as u64, "push"),
            Per::Series(BATCH as u64 * 10),
        ];

        // The small groups exist from the warm-up call on, as in pgwbench's push_small.
        let r = b.run_timed(&names[0], 5, || {
            let pushes: Vec<Push> = (0..BATCH)
                .map(|g| push_of(small_key("pgwb_small", g), &small[g]))
                .collect();
            let t = Instant::now();
            rt.block_on(async {
                for p in pushes {
                    store.push(p).await.expect("push accepted");
                }
            });
            (t.elapsed(), per.clone())
        });
        if let Some(d) = r {
            results.push((variants[0], n, d));
        }

        let r = b.run_timed(&names[1], 5, || {
            let keys: Vec<GroupKey> = (0..BATCH).map(|g| small_key("pgwb_new", g)).collect();
            let pushes: Vec<Push> = keys
                .iter()
                .enumerate()
                .map(|(g, k)| push_of(k.clone(), &small[g]))
                .collect();
            let t = Instant::now();
            rt.block_on(async {
                for p in pushes {
                    store.push(p).await.expect("push accepted");
                }
            });
            let elapsed = t.elapsed();
            rt.block_on(async {
                for k in &keys {
                    store.delete(k).await.expect("delete");
                }
            });
            (elapsed, per.clone())
        });
        if let Some(d) = r {
            results.push((variants[1], n, d));
        }

        let r = b.run_timed(&names[2], 5, || {
            let pushes: Vec<Push> = (0..BATCH)
                .map(|g| push_of(small_key("pgwb_small", g), &small[g]))
                .collect();
            let t = Instant::now();
            rt.block_on(async {
                for p in pushes {
                    store.push(p).await.expect("push accepted");
                    std::hint::black_box(store.snapshot());
                }
            });
            (t.elapsed(), per.clone())
        });
        if let Some(d) = r {
            results.push((variants[2], n, d));
        }
        let r = b.run_timed(&names[3], 5, || {
            let pushes: Vec<Push> = (0..BATCH)
                .map(|g| Push {
                    accumulate: Some(Default::default()),
                    ..push_of(small_key("pgwb_small", g), &small[g])
                })
                .collect();
            let t = Instant::now();
            rt.block_on(async {
                for p in pushes {
                    store.push(p).await.expect("push accepted");
                }
            });
            (t.elapsed(), per.clone())
        });
        if let Some(d) = r {
            results.push((variants[3], n, d));
        }
        assert_eq!(store.snapshot().groups.len(), n / 20 + BATCH);
    }

    // Flatness: cost per push at the largest size over the cost at the smallest, for the
    // median and for the fastest sample (less sensitive to a noisy machine).
    for v in variants {
        let mine: Vec<&(&str, usize, Stats)> =
            results.iter().filter(|(name, _, _)| *name == v).collect();
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            if first.1 != last.1 {
                println!(
                    "{v}: {} -> {}: time per push x{:.2} (median), x{:.2} (min) for x{} series",
                    size_name(first.1),
                    size_name(last.1),
                    last.2.median.as_secs_f64() / first.2.median.as_secs_f64(),
                    last.2.min.as_secs_f64() / first.2.min.as_secs_f64(),
                    last.1 / first.1
                );
            }
        }
    }
}
