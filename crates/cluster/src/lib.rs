//! Replicated gateways on NATS JetStream's key-value store.
//!
//! Every group is one key of a KV bucket (`base64url(canonical grouping key)`), its value the
//! same versioned record the persistence log stores. A replica:
//!
//! * **writes** through the bucket: a push plans the new version of its group against the
//!   local mirror (quotas and the consistency check included), then writes it with
//!   compare-and-set on the key's revision (`create` for a new key, `update` with the expected
//!   revision otherwise). A lost race re-reads the key and plans again, so a POST's merge never
//!   drops a concurrent update. DELETE, wipe and bulk deletes publish KV delete markers;
//!   expiry deletes with the expected revision, so exactly one replica expires a group. Every
//!   change is answered only after JetStream acknowledged it (with an R3 bucket: a quorum has
//!   it) and the local mirror has applied it in the bucket's order (read-your-writes on this
//!   replica). Transient JetStream failures (a stream leader change after a NATS node died, a
//!   client reconnecting to another node) are retried within `--cluster.timeout`.
//! * **reads** from an in-memory mirror (the ordinary [`store::Store`]), fed by a KV watch
//!   from the start of the bucket. Entries carry revisions; the mirror applies them in
//!   revision order, so every replica converges to the same state.
//! * is **ready** only while connected and caught up with the bucket. Without NATS, changes
//!   fail at once with 503 and scrapes keep serving the last mirror.
//!
//! Conflicting pushes at the same moment on two replicas (each consistent with its own
//! mirror, inconsistent together, e.g. one metric name as a counter in group A and as a gauge
//! in group B): both are written, but once caught up every mirror applies a new group version
//! only if it is consistent with the versions before it in the bucket's order. All replicas
//! see the same order, so all take the same decision: the first wins, the later one is left
//! out everywhere. Its writer, waiting for its own revision, sees the refusal, plans the push
//! again against the winner (which records `push_failure_time_seconds`, as a refused push
//! does) and answers 400. Scrapes stay consistent on every replica.
//!
//! Files: `bucket.rs` (the [`Bucket`] trait and its NATS implementation), `keys.rs` (bucket
//! keys and values), `writes.rs` (changes through the bucket), `mirror.rs` (the watch into
//! the local store), `memory.rs` and `tests_replicated.rs` (the in-memory bucket with faults,
//! and the tests that use it).

#![forbid(unsafe_code)]

pub mod bucket;
mod keys;
#[cfg(test)]
mod memory;
mod mirror;
#[cfg(test)]
mod tests_replicated;
mod writes;

use async_nats::jetstream;
pub use bucket::{Bucket, NatsBucket};
pub use keys::{decode_value, encode_value, group_key, kv_key};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::writer::Writer;
use store::{GroupKey, Store, StoreError};
use tokio::time::Instant;

/// How to reach NATS and which bucket to use.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `nats://host:4222` URLs (any of them; the client fails over).
    pub urls: Vec<String>,
    pub bucket: String,
    /// Replicas of the bucket's stream (3 for a quorum on a 3-node NATS cluster).
    pub replicas: usize,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub creds_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub require_tls: bool,
    /// Bound on one write (JetStream acknowledgement included).
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid cluster settings: {0}")]
    Config(String),
    #[error("connecting to NATS: {0}")]
    Connect(String),
}

/// What the mirror knows of a key: the revision it holds, and whether that is a value or a
/// delete marker.
#[derive(Clone, Copy)]
struct Rev {
    revision: u64,
    live: bool,
}

/// A replica: writes go to the bucket, reads come from the mirror the watch keeps.
pub struct Cluster {
    /// The mirror: the ordinary store, changed only by the watch (plans are made against it).
    store: Arc<Store>,
    /// The bucket (NATS JetStream KV, or in tests the in-memory one).
    kv: Arc<dyn Bucket>,
    /// The bucket's name, for messages.
    bucket: String,
    /// Whether the bucket has been opened and is watched (until then changes get 503).
    open: AtomicBool,
    /// The revision of every key the mirror holds: the compare-and-set's expected revision,
    /// and what keeps an older version arriving late from being applied.
    revs: Mutex<HashMap<GroupKey, Rev>>,
    /// Grouping keys of hashed bucket keys, learnt from their values (for delete markers).
    hashed: Mutex<HashMap<String, GroupKey>>,
    /// Groups being pushed from this replica: pushes to one group take turns instead of
    /// racing each other's compare-and-set (with many concurrent pushes to one group, e.g.
    /// accumulating ones, the losers would otherwise run out of attempts). Only replicas race.
    pushing: store::turn::Turns,
    /// Caught up with the bucket since the watch (re)started: the readiness answer.
    synced: AtomicBool,
    /// `--cluster.timeout`: the longest a change waits for the bucket and the mirror.
    timeout: Duration,
    /// The NATS URLs, for messages.
    urls: String,
    /// The highest revision the watch has applied to the mirror.
    applied: tokio::sync::watch::Sender<u64>,
    /// Revisions the mirror refused (inconsistent with earlier ones), with the reason, until
    /// their writer picks them up.
    rejected: Mutex<BTreeMap<u64, String>>,
    /// Whether new versions are checked as they are applied (from the first catch-up on).
    checking: AtomicBool,
    /// The highest revision a local change waits for the watch to apply.
    wanted: AtomicU64,
}

/// Why a change was not confirmed by the local mirror.
enum Unconfirmed {
    /// The mirror refused the version (a conflicting earlier version from another replica).
    Refused,
    /// The watch did not get there in time.
    TimedOut,
}

/// The outcome of a JetStream write that did not succeed.
enum WriteFailed {
    /// Compare-and-set lost: the key changed meanwhile.
    Conflict,
    Failed(StoreError),
}

const MAX_ATTEMPTS: usize = 32;
/// Refused revisions remembered for their writers.
const MAX_REJECTED: usize = 10_000;
/// How long a change waits for a client that lost its NATS server to reconnect to another
/// one before it fails (a dead server is usually replaced in milliseconds).
const RECONNECT_GRACE: Duration = Duration::from_millis(750);

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("replication via NATS failed ({what}): {e}"))
}

impl Cluster {
    /// Connects (in the background if NATS is not reachable yet) and starts following the
    /// bucket into `store`. The gateway serves reads at once and is ready once caught up.
    pub async fn start(
        cfg: ClusterConfig,
        store: Arc<Store>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        if cfg.urls.is_empty() {
            return Err(ClusterError::Config("no NATS URL given".into()));
        }
        if cfg.bucket.is_empty()
            || !cfg
                .bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClusterError::Config(format!(
                "bucket name {:?} must be letters, digits, '-' and '_'",
                cfg.bucket
            )));
        }
        let mut opts = async_nats::ConnectOptions::new()
            .name("pushgateway")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .request_timeout(Some(cfg.timeout));
        if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &cfg.token {
            opts = opts.token(t.clone());
        }
        if let Some(c) = &cfg.creds_file {
            opts = opts
                .credentials_file(c)
                .await
                .map_err(|e| ClusterError::Config(format!("credentials file {c:?}: {e}")))?;
        }
        if let Some(ca) = &cfg.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => opts = opts.add_client_certificate(c.clone(), k.clone()),
            (None, None) => {}
            _ => {
                return Err(ClusterError::Config(
                    "a client certificate needs both --cluster.tls-cert and --cluster.tls-key"
                        .into(),
                ))
            }
        }
        if cfg.require_tls {
            opts = opts.require_tls(true);
        }
        let addrs: Vec<async_nats::ServerAddr> = cfg
            .urls
            .iter()
            .map(|u| {
                u.parse()
                    .map_err(|e| ClusterError::Config(format!("NATS URL {u:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(cfg.timeout);
        let kv = Arc::new(NatsBucket::new(client, js, cfg.bucket.clone()));
        Ok(Cluster::with_bucket(kv, &cfg, store))
    }

    /// A replica writing to and following `kv` (`cfg` gives the bucket's name, its
    /// replicas, the URLs for messages and the timeout); starts following at once.
    pub fn with_bucket(
        kv: Arc<dyn Bucket>,
        cfg: &ClusterConfig,
        store: Arc<Store>,
    ) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            store,
            kv,
            bucket: cfg.bucket.clone(),
            open: AtomicBool::new(false),
            revs: Mutex::new(HashMap::new()),
            hashed: Mutex::new(HashMap::new()),
            pushing: Default::default(),
            synced: AtomicBool::new(false),
            timeout: cfg.timeout,
            urls: cfg.urls.join(","),
            applied: tokio::sync::watch::channel(0).0,
            rejected: Mutex::new(BTreeMap::new()),
            checking: AtomicBool::new(false),
            wanted: AtomicU64::new(0),
        });
        tokio::spawn(mirror::follow(cluster.clone(), cfg.replicas.max(1)));
        cluster
    }

    fn connected(&self) -> bool {
        self.kv.connected()
    }

    /// Whether the client is connected, after waiting (until `deadline`, at most
    /// [`RECONNECT_GRACE`]) for it to reconnect if it is not.
    async fn wait_connected(&self, deadline: Instant) -> bool {
        let until = deadline.min(Instant::now() + RECONNECT_GRACE);
        while !self.connected() {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The bucket, once connected (waiting briefly for a reconnect) and set up; otherwise
    /// the 503 reason.
    async fn bucket_by(&self, deadline: Instant) -> Result<&dyn Bucket, StoreError> {
        self.wait_connected(deadline).await;
        self.bucket()
    }

    /// The bucket, if connected and set up; otherwise the 503 reason.
    fn bucket(&self) -> Result<&dyn Bucket, StoreError> {
        if !self.connected() {
            return Err(StoreError::Unavailable(format!(
                "not connected to NATS ({}); the change was not made",
                self.urls
            )));
        }
        if !self.open.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!(
                "NATS bucket {:?} not available yet",
                self.bucket
            )));
        }
        Ok(&*self.kv)
    }

    /// Waits (at most `limit`) until this replica is connected and caught up.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.ready() {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}
