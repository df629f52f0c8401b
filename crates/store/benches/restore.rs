//! `cargo bench -p store --bench restore`: how long `Store::open` takes to restore a
//! persistence file holding 10k / 100k groups of 20 series (pgwbench's `mode=preload` body),
//! i.e. the start-up time of a gateway with that much state. The file is written first by
//! pushing through a persistent store (checked, `SyncMode::Interval` so that writing it does not
//! take one fsync per push), which is then closed. The timed part is `Store::open` with
//! `SyncMode::Always` until it returns with every group in place.
//!
//! `PGW_BENCH_GROUPS=10000,100000` overrides the group counts; the file lives in a temporary
//! directory (`TMPDIR`).

use std::path::Path;
use std::time::{Duration, Instant};
use store::{Store, StoreConfig, SyncMode};
use testkit::bench::{fmt_dur, size_name, Bench, Per};

testkit::bench_allocator!();

fn config(path: &Path, sync: SyncMode) -> StoreConfig {
    testkit::store::StoreBuilder::new()
        .persist_with(path, sync)
        .config()
}

fn write_file(path: &Path, groups: usize) {
    let started = Instant::now();
    let store =
        Store::open(config(path, SyncMode::Interval(Duration::from_secs(1)))).expect("store opens");
    testkit::bench::fill(&store, groups);
    store.close().expect("close flushes the log");
    drop(store);
    println!(
        "# wrote {} groups x 20 series ({:.1} MB) in {}",
        size_name(groups),
        std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / 1e6,
        fmt_dur(started.elapsed())
    );
}

fn main() {
    let b = Bench::from_args();
    let groups: Vec<usize> = if b.smoke() {
        vec![200]
    } else {
        match std::env::var("PGW_BENCH_GROUPS") {
            Ok(s) => s
                .split(',')
                .filter_map(|p| p.trim().replace('_', "").parse().ok())
                .collect(),
            Err(_) => vec![10_000, 100_000],
        }
    };
    for g in groups {
        let name = format!("restore/{}-groups", size_name(g));
        if !b.wants(&name) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("pgw.data");
        write_file(&path, g);
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        b.run_timed(&name, 3, || {
            let t = Instant::now();
            let store = Store::open(config(&path, SyncMode::Always)).expect("store reopens");
            let elapsed = t.elapsed();
            assert_eq!(store.snapshot().groups.len(), g, "every group restored");
            store.close().expect("close");
            drop(store);
            (
                elapsed,
                vec![
                    Per::Bytes(bytes),
                    Per::Ops(g as u64, "group"),
                    Per::Series(g as u64 * 20),
                ],
            )
        });
    }
}
