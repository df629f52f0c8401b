//! The persistence file format guard: `testdata/persistence-v1.wal` is a log written by the
//! store of log format version 1 ([`store::wal`]) and group record version 1
//! ([`store::wal::record::RECORD_VERSION`]), and this build must keep restoring exactly what
//! `testdata/persistence-v1.expected` lists.
//!
//! Every other persistence test writes the file it reads, so a format change that stays
//! self-consistent passes them all; this one fails. The fixture holds every op kind (a clear,
//! puts, appends from partial POSTs, a delete) and every kind of group content the record
//! stores: counters, gauges, untyped, classic and native histograms (integer and float),
//! summaries, HELP texts, a long grouping value shared by all series, a failed push (`push_failure_time_seconds`), a TTL, and an accumulating group with an
//! idempotency key.
//!
//! **Never edit or regenerate these files.** Changing the format requires a new format (or
//! record) version, a new fixture `persistence-v<N>.wal` written by the generator below, a
//! test for it beside this one, and this test left as it is (old files must still be read,
//! or be refused as the module documentation of `store::wal` says).

use exposition::pb::{
    Bucket, BucketSpan, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
    Quantile, Summary,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use store::wal::SyncMode;
use store::{Accumulate, GaugeMode, GroupKey, PersistConfig, Push, Store, StoreConfig};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn open(path: &Path) -> Store {
    Store::open(StoreConfig {
        checked: true,
        own_families: Vec::new(),
        persistence: Some(PersistConfig {
            path: path.to_path_buf(),
            sync: SyncMode::Always,
        }),
        quotas: Default::default(),
    })
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything a restored store holds, group by group, in a stable text form: the group's
/// times and TTL, its idempotency keys, and per family its header, its text exposition and
/// its protobuf encoding (which carries what the text cannot, e.g. native buckets).
fn dump(store: &Store) -> String {
    let snap = store.snapshot();
    let mut out = String::new();
    for (key, g) in &snap.groups {
        let labels: Vec<String> = key
            .labels()
            .iter()
            .map(|(n, v)| format!("{n}={v:?}"))
            .collect();
        writeln!(out, "group {{{}}}", labels.join(",")).unwrap();
        writeln!(
            out,
            "  push_time={} push_failure_time={} ttl_ms={} expires_at={} seen_keys={}",
            g.push_time,
            g.push_failure_time,
            g.ttl_ms,
            g.expires_at,
            hex(&g.seen_keys.encode())
        )
        .unwrap();
        for f in g.families.values() {
            writeln!(
                out,
                "  family {} type={:?} help={:?} timestamp_ns={} metrics={} invalid={:?}",
                f.name, f.mtype, f.help, f.timestamp_ns, f.metric_count, f.invalid
            )
            .unwrap();
            for line in String::from_utf8_lossy(&f.text()).lines() {
                writeln!(out, "    {line}").unwrap();
            }
            writeln!(out, "    proto {}", hex(&f.proto_metrics())).unwrap();
        }
    }
    out
}

#[test]
fn persistence_v1_fixture_restores_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persistence");
    let original = std::fs::read(testdata("persistence-v1.wal")).unwrap();
    std::fs::write(&path, &original).unwrap();
    let store = open(&path);
    let got = dump(&store);
    store.close().unwrap();
    let want = std::fs::read_to_string(testdata("persistence-v1.expected")).unwrap();
    assert_eq!(got, want, "restored contents differ from the fixture's");
    assert!(!store.snapshot().inconsistent);
    // An intact file is read in place, not rewritten.
    assert!(
        std::fs::read(&path).unwrap() == original,
        "the intact fixture was rewritten at open"
    );
}

// ---------------------------------------------------------------------------------------------
// The generator (run only to create a NEW fixture version; see the module documentation)
// ---------------------------------------------------------------------------------------------

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn text(key: &GroupKey, secs: u64, replace: bool, body: &str) -> Push {
    Push {
        key: key.clone(),
        families: exposition::text_parse::parse_text(body.as_bytes()).unwrap(),
        replace,
        time: at(secs),
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    }
}

fn lp(name: &str, value: &str) -> LabelPair {
    LabelPair::new(name, value)
}

fn family(name: &str, help: &str, mtype: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(help.into()),
        r#type: Some(mtype as i32),
        metric,
        unit: None,
    }
}

/// A native histogram (integer counts) and a float histogram with classic buckets too.
fn native_families() -> Vec<MetricFamily> {
    let native = Histogram {
        sample_count: Some(7),
        sample_sum: Some(12.5),
        schema: Some(1),
        zero_threshold: Some(1e-128),
        zero_count: Some(1),
        positive_span: vec![BucketSpan {
            offset: Some(0),
            length: Some(3),
        }],
        positive_delta: vec![2, 1, -2],
        negative_span: vec![BucketSpan {
            offset: Some(-1),
            length: Some(1),
        }],
        negative_delta: vec![1],
        ..Default::default()
    };
    let float = Histogram {
        sample_count_float: Some(4.5),
        sample_sum: Some(9.25),
        schema: Some(0),
        zero_threshold: Some(0.001),
        zero_count_float: Some(0.5),
        positive_span: vec![BucketSpan {
            offset: Some(1),
            length: Some(2),
        }],
        positive_count: vec![1.5, 2.5],
        bucket: vec![
            Bucket {
                cumulative_count_float: Some(2.0),
                upper_bound: Some(1.0),
                ..Default::default()
            },
            Bucket {
                cumulative_count_float: Some(4.5),
                upper_bound: Some(f64::INFINITY),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let metric = |h: Histogram| Metric {
        label: vec![lp("path", "/api")],
        histogram: Some(Box::new(h)),
        ..Default::default()
    };
    vec![
        family(
            "rpc_native_seconds",
            "Native histogram.",
            MetricType::Histogram,
            vec![metric(native)],
        ),
        family(
            "rpc_float_seconds",
            "Float histogram.",
            MetricType::Histogram,
            vec![metric(float)],
        ),
        family(
            "proto_counter_total",
            "A counter pushed as protobuf.",
            MetricType::Counter,
            vec![Metric {
                counter: Some(Box::new(Counter {
                    value: Some(3.0),
                    ..Default::default()
                })),
                ..Default::default()
            }],
        ),
        family(
            "proto_summary",
            "A summary pushed as protobuf.",
            MetricType::Summary,
            vec![Metric {
                summary: Some(Box::new(Summary {
                    sample_count: Some(2),
                    sample_sum: Some(3.0),
                    quantile: vec![Quantile {
                        quantile: Some(0.5),
                        value: Some(1.0),
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            }],
        ),
        family(
            "proto_gauge",
            "",
            MetricType::Gauge,
            vec![Metric {
                gauge: Some(Gauge { value: Some(-1.5) }),
                ..Default::default()
            }],
        ),
    ]
}

async fn write_fixture(path: &Path) {
    let store = open(path);
    // A group that the wipe below removes: the log starts with put, then clear.
    let gone = GroupKey::new([("job", "wiped")]);
    store
        .push(text(&gone, 1_700_000_000, true, "wiped 1\n"))
        .await
        .unwrap();
    store.wipe().await.unwrap();

    // At least `store::shared::SHARE_MIN` bytes: stored once per group, not in every series.
    let long = format!("batch-runner-{}", "0123456789".repeat(6));
    let shared = GroupKey::new([("job", "batch"), ("instance", long.as_str())]);
    let body = "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n\
                jobs_total{kind=\"a\"} 10\njobs_total{kind=\"b\"} 2.5\n\
                # HELP queue_depth Items queued.\n# TYPE queue_depth gauge\nqueue_depth 7\n\
                # TYPE latency_seconds histogram\n\
                latency_seconds_bucket{le=\"0.1\"} 1\nlatency_seconds_bucket{le=\"1\"} 3\n\
                latency_seconds_bucket{le=\"+Inf\"} 4\nlatency_seconds_sum 2.2\n\
                latency_seconds_count 4\n\
                # HELP rpc_duration A summary.\n# TYPE rpc_duration summary\n\
                rpc_duration{quantile=\"0.5\"} 0.2\nrpc_duration{quantile=\"0.9\"} 0.8\n\
                rpc_duration_sum 5\nrpc_duration_count 10\n\
                untyped_thing{a=\"1\"} NaN\n";
    store
        .push(text(&shared, 1_700_000_100, true, body))
        .await
        .unwrap();
    // A partial POST: logged as an append to the group's record.
    store
        .push(text(
            &shared,
            1_700_000_200,
            false,
            "# TYPE queue_depth gauge\nqueue_depth 9\n",
        ))
        .await
        .unwrap();
    let native = GroupKey::new([("job", "native")]);
    store
        .push(Push {
            key: native.clone(),
            families: native_families(),
            replace: true,
            time: at(1_700_000_400),
            ttl_ms: 0,
            accumulate: None,
            idempotency_key: None,
        })
        .await
        .unwrap();

    let ttl = GroupKey::new([("job", "ttl")]);
    let mut p = text(
        &ttl,
        4_000_000_000,
        true,
        "# TYPE heartbeat gauge\nheartbeat 1\n",
    );
    p.ttl_ms = 3_600_000;
    store.push(p).await.unwrap();

    // A failed push (a type other than the TTL group's) records push_failure_time_seconds.
    let failed = text(
        &shared,
        1_700_000_450,
        false,
        "# TYPE heartbeat counter\nheartbeat 1\n",
    );
    assert!(store.push(failed).await.is_err());

    let acc = GroupKey::new([("job", "acc")]);
    for (secs, body) in [
        (1_700_000_500, "hits_total 2\nlevel 5\n"),
        (1_700_000_600, "hits_total 3\nlevel 1\n"),
    ] {
        let mut p = text(
            &acc,
            secs,
            false,
            &format!("# TYPE hits_total counter\n# TYPE level gauge\n{body}"),
        );
        p.accumulate = Some(Accumulate {
            gauges: GaugeMode::Sum,
        });
        p.idempotency_key = Some(format!("retry-{secs}"));
        store.push(p).await.unwrap();
    }

    let deleted = GroupKey::new([("job", "deleted")]);
    store
        .push(text(&deleted, 1_700_000_700, true, "deleted 1\n"))
        .await
        .unwrap();
    store.delete(&deleted).await.unwrap();
    store.close().unwrap();
}

/// Writes a fixture of today's format to `target/persistence-new.wal` and
/// `target/persistence-new.expected` (`cargo test -p store --test persistence_format --
/// --ignored`). Only for a NEW format version: rename them to `testdata/persistence-v<N>.*`
/// and add a test for them; never overwrite an existing fixture.
#[tokio::test]
#[ignore = "generator: writes a new fixture, run by hand for a new format version"]
async fn generate_fixture() {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let path = target.join("persistence-new.wal");
    let _ = std::fs::remove_file(&path);
    write_fixture(&path).await;
    let _ = std::fs::remove_file(target.join("persistence-new.wal.lock"));
    let store = open(&path);
    let expected = dump(&store);
    store.close().unwrap();
    std::fs::write(target.join("persistence-new.expected"), expected).unwrap();
    let _ = std::fs::remove_file(target.join("persistence-new.wal.lock"));
    eprintln!("wrote {}", path.display());
}
