//! The replica's write and follow paths against the in-memory bucket, with deterministic
//! faults: compare-and-set retries, transient failures within the timeout, refusals in the
//! bucket's order, and revisions applied in order only. (The same paths against a real
//! nats-server: tests/e2e/test_cluster.py and the conformance suite against a replica.)

use super::*;
use crate::memory::{Fault, MemoryBucket};
use std::time::Duration;
use std::time::UNIX_EPOCH;
use store::{Plan, Push};

fn config(timeout: Duration) -> ClusterConfig {
    ClusterConfig {
        urls: vec!["memory".into()],
        bucket: "test".into(),
        replicas: 1,
        user: None,
        password: None,
        token: None,
        creds_file: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        require_tls: false,
        timeout,
    }
}

fn mirror() -> Arc<Store> {
    Arc::new(
        Store::open(store::StoreConfig {
            checked: true,
            own_families: Vec::new(),
            persistence: None,
            quotas: Default::default(),
        })
        .unwrap(),
    )
}

/// A replica on `bucket`, caught up.
async fn replica(bucket: &Arc<MemoryBucket>, timeout: Duration) -> Arc<Cluster> {
    let c = Cluster::with_bucket(bucket.clone(), &config(timeout), mirror());
    c.wait_ready(Duration::from_secs(5)).await.unwrap();
    c
}

fn key(job: &str) -> GroupKey {
    GroupKey::new([("job", job)])
}

fn push(job: &str, body: &str, replace: bool) -> Push {
    Push {
        key: key(job),
        families: exposition::text_parse::parse_text(body.as_bytes()).unwrap(),
        replace,
        time: UNIX_EPOCH + Duration::from_secs(1_000),
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    }
}

/// The pushed family names of a group in a replica's mirror (`None`: no such group).
fn families(c: &Cluster, job: &str) -> Option<Vec<String>> {
    let snap = c.store.snapshot();
    let g = snap.groups.get(&key(job))?;
    Some(
        g.families
            .keys()
            .filter(|n| !g.is_gateway_family(n))
            .map(|n| n.to_string())
            .collect(),
    )
}

/// The bucket value of a group as another replica would write it.
fn foreign_value(job: &str, body: &str) -> bytes::Bytes {
    let other = mirror();
    let p = other.prepare(push(job, body, true));
    let Plan::Accept(g) = other.plan(&p).1 else {
        panic!("plan refused")
    };
    encode_value(&g.encode_record()).into()
}

const T: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn push_goes_through_the_bucket_to_every_mirror() {
    let bucket = Arc::new(MemoryBucket::default());
    let (a, b) = (replica(&bucket, T).await, replica(&bucket, T).await);
    a.push(push("j", "x 1\n", true)).await.unwrap();
    assert!(bucket.get(&kv_key(&key("j"))).is_some());
    assert_eq!(families(&a, "j").unwrap(), ["x"], "read-your-writes");
    b.wait_ready(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(families(&b, "j").unwrap(), ["x"]);
    a.delete(&key("j")).await.unwrap();
    assert!(families(&a, "j").is_none());
    assert!(bucket.get(&kv_key(&key("j"))).is_none());
}

/// A POST whose compare-and-set loses to another replica's write of the same group re-reads
/// it and merges into the newer version: the concurrent update is not dropped.
#[tokio::test(start_paused = true)]
async fn lost_compare_and_set_plans_again_against_the_newer_version() {
    let bucket = Arc::new(MemoryBucket::default());
    let a = replica(&bucket, T).await;
    a.push(push("j", "x 1\n", true)).await.unwrap();
    let k = kv_key(&key("j"));
    bucket.inject([Fault::Foreign(k.clone(), foreign_value("j", "y 2\n"))]);
    let before = bucket.attempts.load(Ordering::SeqCst);
    a.push(push("j", "z 3\n", false)).await.unwrap();
    assert_eq!(
        bucket.attempts.load(Ordering::SeqCst) - before,
        2,
        "one lost race, one retry"
    );
    assert_eq!(
        families(&a, "j").unwrap(),
        ["y", "z"],
        "x was replaced by the foreign PUT"
    );
    // The new key's create loses too when another replica created it first.
    bucket.inject([Fault::Foreign(
        kv_key(&key("n")),
        foreign_value("n", "w 1\n"),
    )]);
    a.push(push("n", "v 1\n", false)).await.unwrap();
    assert_eq!(families(&a, "n").unwrap(), ["v", "w"]);
}

/// Transient JetStream failures (a stream leader change) are retried within the timeout.
#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_within_the_timeout() {
    let bucket = Arc::new(MemoryBucket::default());
    let a = replica(&bucket, T).await;
    let no_stream = || Fault::Fail("no stream found for given subject".into());
    bucket.inject([no_stream(), no_stream(), no_stream()]);
    let started = Instant::now();
    a.push(push("j", "x 1\n", true)).await.unwrap();
    assert_eq!(bucket.attempts.load(Ordering::SeqCst), 4);
    // Backoff 25 + 50 + 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(175));
    assert_eq!(families(&a, "j").unwrap(), ["x"]);
    // Deletes too.
    bucket.inject([no_stream(), no_stream()]);
    a.delete(&key("j")).await.unwrap();
    assert!(families(&a, "j").is_none());
}

/// Failures that outlast `--cluster.timeout` answer 503 with the reason, changing nothing.
#[tokio::test(start_paused = true)]
async fn failures_past_the_timeout_are_unavailable() {
    let bucket = Arc::new(MemoryBucket::default());
    let timeout = Duration::from_secs(2);
    let a = replica(&bucket, timeout).await;
    bucket.inject((0..1000).map(|_| Fault::Fail("no stream found for given subject".into())));
    let started = Instant::now();
    let err = a.push(push("j", "x 1\n", true)).await.unwrap_err();
    assert!(started.elapsed() <= timeout, "{:?}", started.elapsed());
    match err {
        StoreError::Unavailable(m) => assert!(m.contains("no stream found"), "{m}"),
        e => panic!("{e:?}"),
    }
    assert_eq!(bucket.last(), 0);
    assert!(families(&a, "j").is_none());
    // Not connected: refused after the reconnect grace, without an attempt.
    let b = Arc::new(MemoryBucket::default());
    let c = replica(&b, timeout).await;
    b.set_connected(false);
    let err = c.push(push("j", "x 1\n", true)).await.unwrap_err();
    assert!(err.to_string().contains("not connected"), "{err}");
    assert_eq!(b.attempts.load(Ordering::SeqCst), 0);
    assert!(c.ready().is_err());
}

/// Two replicas' pushes, each consistent with its own mirror, inconsistent together: the
/// first in the bucket's order wins everywhere; the later one is planned again against it,
/// records the failure, and its writer gets the consistency error (400).
#[tokio::test(start_paused = true)]
async fn the_first_of_conflicting_versions_in_the_bucket_wins() {
    let bucket = Arc::new(MemoryBucket::default());
    let (a, b) = (replica(&bucket, T).await, replica(&bucket, T).await);
    bucket.inject([Fault::Foreign(
        kv_key(&key("a")),
        foreign_value("a", "# TYPE x counter\nx 1\n"),
    )]);
    let err = b
        .push(push("b", "# TYPE x gauge\nx 2\n", true))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent(_)), "{err:?}");
    for c in [&a, &b] {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(families(c, "a").unwrap(), ["x"]);
        let snap = c.store.snapshot();
        let g = snap.groups.get(&key("b")).expect("the failure is recorded");
        assert!(!g.last_push_successful());
        assert!(!g.families.keys().any(|n| &**n == "x"));
    }
}

/// The mirror applies a key's versions in revision order only: an older version or delete
/// marker arriving late changes nothing.
#[tokio::test(start_paused = true)]
async fn older_revisions_arriving_late_are_ignored() {
    let bucket = Arc::new(MemoryBucket::default());
    let a = replica(&bucket, T).await;
    let k = kv_key(&key("j"));
    a.push(push("j", "x 1\n", true)).await.unwrap();
    let (old_value, old_rev) = (bucket.get(&k).unwrap(), bucket.last());
    a.push(push("j", "y 1\n", true)).await.unwrap();
    for live in [true, false] {
        bucket.deliver(bucket::Entry {
            key: k.clone(),
            value: if live {
                old_value.clone()
            } else {
                Default::default()
            },
            revision: old_rev,
            delta: 0,
            live,
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(families(&a, "j").unwrap(), ["y"]);
    }
    // A newer one is applied.
    bucket.deliver(bucket::Entry {
        key: k,
        value: Default::default(),
        revision: bucket.last() + 1,
        delta: 0,
        live: false,
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(families(&a, "j").is_none());
}

/// Expiry deletes with the expected revision: a group pushed again meanwhile is kept.
#[tokio::test(start_paused = true)]
async fn expiry_only_deletes_the_version_it_saw() {
    let bucket = Arc::new(MemoryBucket::default());
    let a = replica(&bucket, T).await;
    let mut p = push("j", "x 1\n", true);
    p.ttl_ms = 1_000;
    a.push(p).await.unwrap();
    let later = UNIX_EPOCH + Duration::from_secs(2_000);
    bucket.inject([Fault::Foreign(
        kv_key(&key("j")),
        foreign_value("j", "y 1\n"),
    )]);
    assert_eq!(
        a.expire_due(later).await.unwrap(),
        0,
        "pushed again meanwhile"
    );
    assert_eq!(families(&a, "j").unwrap(), ["y"]);
    assert!(bucket.get(&kv_key(&key("j"))).is_some());
}
