//! The bench harness every `cargo bench` target of the workspace uses
//! (`crates/*/benches/*.rs`): a tiny timing harness, deterministic, realistic text-format
//! bodies, and [`fill`] (a store holding pgwbench's preload groups).
//!
//! Harness conventions (criterion-like, without criterion):
//!
//! * `cargo bench` passes `--bench`: full run. Without it (`cargo test --benches`), every bench
//!   runs once at a tiny size, as a smoke test.
//! * The first free argument is a substring filter on bench names:
//!   `cargo bench -p store --bench push -- push/replace`.
//! * `PGW_BENCH_SIZES=10000,100000` overrides the series counts (default 10k, 100k, 1M).
//! * `PGW_BENCH_SECS=2` is the time budget per bench (default 2 s, at least 3 samples).
//! * The global allocator is mimalloc, as in the `pushgateway` binary: every bench target
//!   says `testkit::bench_allocator!();` once.
//!
//! Each result line gives the median sample, min and max, the number of samples, and the
//! throughputs computed from the median.

/// Makes mimalloc the global allocator of a bench target. The `pushgateway` binary runs on
/// mimalloc; so do the benches, or allocation-heavy code would be measured on glibc malloc,
/// which behaves very differently (up to 2x at 1M series). A macro, so that tests linking
/// the kit keep the default allocator.
#[macro_export]
macro_rules! bench_allocator {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::bench::MiMalloc = $crate::bench::MiMalloc;
    };
}

pub use mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How many of something one sample processes, for a throughput column.
#[derive(Clone, Copy)]
pub enum Per {
    /// Bytes (reported as MB/s, 1 MB = 10^6 bytes).
    Bytes(u64),
    /// Series (reported as series/s).
    Series(u64),
    /// Operations (reported as ops/s and as time per op).
    Ops(u64, &'static str),
}

/// The median and the fastest sample of one bench.
#[derive(Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub min: Duration,
}

pub struct Bench {
    smoke: bool,
    filter: Option<String>,
    budget: Duration,
}

impl Bench {
    pub fn from_args() -> Bench {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let smoke = !args.iter().any(|a| a == "--bench");
        let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
        let secs = std::env::var("PGW_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(2.0);
        let b = Bench {
            smoke,
            filter,
            budget: Duration::from_secs_f64(if smoke { 0.0 } else { secs }),
        };
        if b.smoke {
            println!("(smoke mode: run with `cargo bench` for real numbers)");
        }
        b
    }

    pub fn smoke(&self) -> bool {
        self.smoke
    }

    /// Series counts to run at: `PGW_BENCH_SIZES`, else 10k/100k/1M (1k in smoke mode).
    pub fn sizes(&self) -> Vec<usize> {
        if self.smoke {
            return vec![1_000];
        }
        match std::env::var("PGW_BENCH_SIZES") {
            Ok(s) => s
                .split(',')
                .filter_map(|p| p.trim().replace('_', "").parse().ok())
                .collect(),
            Err(_) => vec![10_000, 100_000, 1_000_000],
        }
    }

    /// Whether a bench passes the filter.
    pub fn wants(&self, name: &str) -> bool {
        match &self.filter {
            Some(f) => name.contains(f.as_str()),
            None => true,
        }
    }

    /// Whether any of these benches passes the filter (to skip an expensive set-up).
    pub fn wants_any<S: AsRef<str>>(&self, names: &[S]) -> bool {
        names.iter().any(|n| self.wants(n.as_ref()))
    }

    /// Times `f` repeatedly (one warm-up call, then at least 3 samples or until the time budget
    /// is spent, at most 200) and prints one result line. `f` returns what one call processed.
    pub fn run<F: FnMut() -> Vec<Per>>(&self, name: &str, mut f: F) -> Option<Stats> {
        if !self.wants(name) {
            return None;
        }
        let per = f(); // warm-up (also the only call in smoke mode)
        if self.smoke {
            println!("{name:<40} ok");
            return None;
        }
        let mut samples = Vec::new();
        let started = Instant::now();
        while samples.len() < 3 || (started.elapsed() < self.budget && samples.len() < 200) {
            let t = Instant::now();
            std::hint::black_box(f());
            samples.push(t.elapsed());
        }
        Some(self.report(name, &mut samples, &per))
    }

    /// Like [`Bench::run`] for a measurement that times itself: `f` returns the measured
    /// duration (so set-up inside `f` is excluded) and what it processed.
    pub fn run_timed<F: FnMut() -> (Duration, Vec<Per>)>(
        &self,
        name: &str,
        min_samples: usize,
        mut f: F,
    ) -> Option<Stats> {
        if !self.wants(name) {
            return None;
        }
        let (_, per) = f();
        if self.smoke {
            println!("{name:<40} ok");
            return None;
        }
        let mut samples = Vec::new();
        let started = Instant::now();
        while samples.len() < min_samples.max(1)
            || (started.elapsed() < self.budget && samples.len() < 200)
        {
            samples.push(f().0);
        }
        Some(self.report(name, &mut samples, &per))
    }

    fn report(&self, name: &str, samples: &mut [Duration], per: &[Per]) -> Stats {
        samples.sort();
        let med = samples[samples.len() / 2];
        let secs = med.as_secs_f64().max(1e-12);
        let mut line = format!(
            "{name:<40} {:>11} (min {}, max {}, n={})",
            fmt_dur(med),
            fmt_dur(samples[0]),
            fmt_dur(samples[samples.len() - 1]),
            samples.len()
        );
        for p in per {
            match *p {
                Per::Bytes(b) => {
                    let _ = write!(line, "  {:.1} MB/s", b as f64 / secs / 1e6);
                }
                Per::Series(s) => {
                    let _ = write!(line, "  {} series/s", fmt_count(s as f64 / secs));
                }
                Per::Ops(n, what) => {
                    let _ = write!(
                        line,
                        "  {} {what}/s  {}/{what}",
                        fmt_count(n as f64 / secs),
                        fmt_dur(med / n.max(1) as u32)
                    );
                }
            }
        }
        println!("{line}");
        Stats {
            median: med,
            min: samples[0],
        }
    }
}

pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

pub fn fmt_count(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

/// Short label for a size: 10k, 100k, 1M.
pub fn size_name(n: usize) -> String {
    let (m, k) = (n % 1_000_000, n % 1_000);
    if n >= 1_000_000 && m == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && k == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

const LES: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
];

/// A scrape-like text body of exactly `series` series (sample lines): about 30% in a counter
/// family with job/instance/method/code labels, 20% in a gauge family with job/instance/kind,
/// and the rest in a histogram family with job/instance/stage/shard labels and 11 buckets
/// (13 series per label set), plus a few labelled gauges. Values are deterministic and in
/// canonical form (the text writer reproduces the body byte for byte).
pub fn scrape_body(series: usize) -> String {
    let mut out = String::with_capacity(series * 90);
    let n_counter = series * 3 / 10;
    let n_gauge = series / 5;
    let n_hist_sets = (series - n_counter - n_gauge) / 13;
    let n_plain = series - n_counter - n_gauge - n_hist_sets * 13;

    out.push_str("# HELP http_requests_total Total HTTP requests by method and code.\n");
    out.push_str("# TYPE http_requests_total counter\n");
    const METHODS: [&str; 4] = ["GET", "PUT", "POST", "DELETE"];
    const CODES: [&str; 5] = ["200", "202", "400", "404", "500"];
    for i in 0..n_counter {
        let _ = writeln!(
            out,
            "http_requests_total{{job=\"api-{}\",instance=\"10.0.{}.{}:9100\",method=\"{}\",code=\"{}\"}} {}",
            i % 7,
            (i / 20) / 256,
            (i / 20) % 256,
            METHODS[i % 4],
            CODES[(i / 4) % 5],
            (i as u64).wrapping_mul(7919) % 1_000_000
        );
    }
    out.push_str("# HELP node_memory_bytes Memory by kind.\n");
    out.push_str("# TYPE node_memory_bytes gauge\n");
    const KINDS: [&str; 5] = ["free", "cached", "buffers", "used", "slab"];
    for i in 0..n_gauge {
        let _ = writeln!(
            out,
            "node_memory_bytes{{job=\"node\",instance=\"10.1.{}.{}:9100\",kind=\"{}\"}} {}",
            (i / 5) / 256,
            (i / 5) % 256,
            KINDS[i % 5],
            (i % 100_000) as f64 * 4.25 + 0.5
        );
    }
    out.push_str(
        "# HELP batch_item_duration_seconds Time to process one item, by stage and shard.\n",
    );
    out.push_str("# TYPE batch_item_duration_seconds histogram\n");
    for k in 0..n_hist_sets {
        let lbl = format!(
            "job=\"batch\",instance=\"worker-{}\",stage=\"stage{:02}\",shard=\"{:02}\"",
            k / 384,
            (k / 32) % 12,
            k % 32
        );
        let mut c = 0u64;
        for (i, le) in LES.iter().enumerate() {
            c += ((k + i) % 7) as u64;
            let _ = writeln!(
                out,
                "batch_item_duration_seconds_bucket{{{lbl},le=\"{le}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "batch_item_duration_seconds_sum{{{lbl}}} {}",
            c as f64 * 0.125
        );
        let _ = writeln!(out, "batch_item_duration_seconds_count{{{lbl}}} {c}");
    }
    out.push_str("# TYPE batch_workers gauge\n");
    for i in 0..n_plain {
        let _ = writeln!(out, "batch_workers{{pool=\"p{i}\"}} 32");
    }
    out
}

/// The body pgwbench's `mode=small` pushes (10 series): a sequence gauge, 3+3 labelled
/// gauges and counters, a timestamp gauge, `up` and an error counter.
pub fn small_push_body(g: usize, seq: u64) -> String {
    let mut t = String::with_capacity(1024);
    t.push_str("# HELP pgwb_push_seq Sequence number of this push (pgwbench).\n");
    t.push_str("# TYPE pgwb_push_seq gauge\n");
    let _ = writeln!(t, "pgwb_push_seq {seq}");
    t.push_str("# HELP pgwb_job_duration_seconds Duration of the job phases.\n");
    t.push_str("# TYPE pgwb_job_duration_seconds gauge\n");
    for (i, p) in ["extract", "transform", "load"].iter().enumerate() {
        let _ = writeln!(
            t,
            "pgwb_job_duration_seconds{{phase=\"{p}\"}} {}",
            (g % 97) as f64 + (i + 1) as f64 * 0.25
        );
    }
    t.push_str("# HELP pgwb_job_records_total Records processed per phase.\n");
    t.push_str("# TYPE pgwb_job_records_total counter\n");
    for (i, p) in ["extract", "transform", "load"].iter().enumerate() {
        let _ = writeln!(
            t,
            "pgwb_job_records_total{{phase=\"{p}\"}} {}",
            g * 3 + i + 1
        );
    }
    t.push_str("# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n");
    t.push_str("# TYPE pgwb_job_last_success_timestamp_seconds gauge\n");
    let _ = writeln!(
        t,
        "pgwb_job_last_success_timestamp_seconds {}",
        1_700_000_000 + g
    );
    t.push_str("# TYPE pgwb_job_up gauge\npgwb_job_up 1\n");
    t.push_str("# TYPE pgwb_job_errors_total counter\npgwb_job_errors_total 0\n");
    t
}

/// pgwbench's `mode=large` body for group `g` (see ../shared/bench/pgw.lua `large_body`).
pub fn large_push_body(g: usize, seq: u64) -> String {
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

/// The body pgwbench's `mode=preload` pushes (20 series): 5 gauges, 5 counters, a histogram
/// with 6 buckets (8 series), a timestamp gauge and `up`.
pub fn preload_push_body(g: usize) -> String {
    let mut t = String::with_capacity(2048);
    t.push_str("# HELP pgwb_job_duration_seconds Duration of the job phases.\n");
    t.push_str("# TYPE pgwb_job_duration_seconds gauge\n");
    for i in 0..5 {
        let _ = writeln!(
            t,
            "pgwb_job_duration_seconds{{phase=\"p{i}\"}} {}",
            (g % 89) as f64 + i as f64 * 0.5
        );
    }
    t.push_str("# HELP pgwb_job_records_total Records processed per phase.\n");
    t.push_str("# TYPE pgwb_job_records_total counter\n");
    for i in 0..5 {
        let _ = writeln!(t, "pgwb_job_records_total{{phase=\"p{i}\"}} {}", g * 5 + i);
    }
    t.push_str("# HELP pgwb_job_item_seconds Time per processed item.\n");
    t.push_str("# TYPE pgwb_job_item_seconds histogram\n");
    for (i, le) in ["0.01", "0.1", "1", "10", "100", "+Inf"].iter().enumerate() {
        let _ = writeln!(
            t,
            "pgwb_job_item_seconds_bucket{{le=\"{le}\"}} {}",
            (i + 1) * 10
        );
    }
    let _ = writeln!(t, "pgwb_job_item_seconds_sum {}", g as f64 + 0.5);
    t.push_str("pgwb_job_item_seconds_count 60\n");
    t.push_str("# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n");
    t.push_str("# TYPE pgwb_job_last_success_timestamp_seconds gauge\n");
    let _ = writeln!(
        t,
        "pgwb_job_last_success_timestamp_seconds {}",
        1_700_000_000 + g
    );
    t.push_str("# TYPE pgwb_job_up gauge\npgwb_job_up 1\n");
    t
}

/// Fills `store` with `groups` groups of pgwbench's 20-series preload body
/// ([`preload_push_body`]), keys `job=pgwb_pre_<g/10>,instance=i<g%10>`.
pub fn fill(store: &store::Store, groups: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for g in 0..groups {
            let families = exposition::text_parse::parse_text(preload_push_body(g).as_bytes())
                .expect("parses");
            store
                .push(store::Push {
                    key: store::GroupKey::new([
                        ("job", format!("pgwb_pre_{}", g / 10)),
                        ("instance", format!("i{}", g % 10)),
                    ]),
                    families,
                    replace: true,
                    time: std::time::SystemTime::now(),
                    ttl_ms: 0,
                    accumulate: None,
                    idempotency_key: None,
                })
                .await
                .expect("push accepted");
        }
    });
}
