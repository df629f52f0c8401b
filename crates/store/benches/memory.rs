//! `cargo bench -p store --bench memory`: the bytes a stored series costs. Fills an in-memory,
//! checked store with G groups of pgwbench's 20-series preload body (`testkit::bench::fill`,
//! keys `job=pgwb_pre_<g/10>,instance=i<g%10>`), takes a snapshot as a scrape would, and
//! reports per series: the bytes live on the heap (as requested from the allocator), the
//! number of live allocations, and the growth of the process' RSS (what `bench/scale.py`
//! measures over HTTP, without the server).
//!
//! `PGW_BENCH_GROUPS=10000,50000` picks the group counts (default 50,000 = 1M series);
//! without `--bench` (`cargo test --benches`) it runs once with 1,000 groups.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// mimalloc (as in the binary), counting the bytes and allocations that are live.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to mimalloc's `GlobalAlloc` with the caller's arguments
// unchanged; the counters are plain atomics.
#[allow(unsafe_code)]
mod counting {
    use super::*;
    // SAFETY: see the module comment: forwarded to mimalloc unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: forwarded unchanged (see the module comment).
            unsafe { testkit::bench::MiMalloc.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: forwarded unchanged (see the module comment).
            unsafe { testkit::bench::MiMalloc.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: forwarded unchanged (see the module comment).
            unsafe { testkit::bench::MiMalloc.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            // SAFETY: forwarded unchanged (see the module comment).
            unsafe { testkit::bench::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_bytes() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of this thread in nanoseconds (`/proc/thread-self/schedstat`): unlike wall
/// time, not inflated when other processes hold the cores.
fn cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// What a scrape does: prefetch the entry 8 ahead, and the encodings of the one 4 ahead.
fn prefetch_ahead(all: &[std::sync::Arc<store::FamilyEntry>], i: usize) {
    if let Some(e) = all.get(i + 8) {
        store::FamilyEntry::prefetch_arc(e);
    }
    if let Some(e) = all.get(i + 4) {
        e.prefetch();
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let groups: Vec<usize> = match std::env::var("PGW_BENCH_GROUPS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) if bench => vec![50_000],
        Err(_) => vec![1_000],
    };
    for g in groups {
        let (b0, a0, r0) = (
            LIVE_BYTES.load(Ordering::Relaxed),
            LIVE_ALLOCS.load(Ordering::Relaxed),
            rss_bytes(),
        );
        let t = Instant::now();
        let store = testkit::store::StoreBuilder::new().build();
        testkit::bench::fill(&store, g);
        let snap = store.snapshot();
        assert_eq!(snap.groups.len(), g);
        let series = (g * 20) as f64;
        let bytes = (LIVE_BYTES.load(Ordering::Relaxed) - b0) as f64;
        let allocs = (LIVE_ALLOCS.load(Ordering::Relaxed) - a0) as f64;
        let rss = (rss_bytes() - r0) as f64;
        println!(
            "memory/{g}-groups ({} series, filled in {:.1} s): heap {:.1} B/series, \
             {:.2} allocations/series ({:.1} B each), RSS +{:.1} B/series",
            g * 20,
            t.elapsed().as_secs_f64(),
            bytes / series,
            allocs / series,
            bytes / allocs.max(1.0),
            rss / series,
        );
        let (mut entries, mut encoded) = (0usize, 0usize);
        for grp in snap.groups.values() {
            for e in grp.families.values() {
                entries += 1;
                encoded += e.stored_bytes();
            }
        }
        println!(
            "  {:.2} entries/group of {} B (FamilyEntry, + 16 B Arc header); \
             stored encodings {:.1} B/series",
            entries as f64 / g as f64,
            std::mem::size_of::<store::FamilyEntry>(),
            encoded as f64 / series,
        );
        // What a scrape pays to write the stored entries back (labels spliced in), in the
        // scrape's order (by family, then group), against copying the same number of bytes.
        let all: Vec<_> = snap
            .families
            .values()
            .flat_map(|groups| groups.values().cloned())
            .collect();
        let mut out = Vec::with_capacity(256 << 20);
        let mut best = [f64::MAX; 3];
        for _ in 0..5 {
            out.clear();
            let t = cpu_ns();
            for (i, e) in all.iter().enumerate() {
                prefetch_ahead(&all, i);
                e.write_text(&mut out);
            }
            best[0] = best[0].min(cpu_ns() - t);
            let text_bytes = out.len();
            out.clear();
            let t = cpu_ns();
            for (i, e) in all.iter().enumerate() {
                prefetch_ahead(&all, i);
                e.write_proto_metrics(&mut out);
            }
            best[1] = best[1].min(cpu_ns() - t);
            let proto_bytes = out.len();
            let flat = vec![1u8; text_bytes + proto_bytes];
            out.clear();
            let t = cpu_ns();
            for c in flat.chunks(64) {
                out.extend_from_slice(c);
            }
            best[2] = best[2].min(cpu_ns() - t);
        }
        println!(
            "  write back (CPU time, best of 5): text {:.1} ns/series, protobuf {:.1} ns/series; \
             copying as many bytes in 64-byte pieces {:.1} ns/series",
            best[0] / series,
            best[1] / series,
            best[2] / series,
        );
        drop(snap);
        drop(store);
    }
}
