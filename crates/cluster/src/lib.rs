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

pub mod bucket;
#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests_replicated;

use async_nats::jetstream;
use base64::Engine;
pub use bucket::{Bucket, NatsBucket};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use store::writer::{BoxFuture, Selector, Writer};
use store::{Group, GroupKey, Plan, Push, Store, StoreError};
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

pub struct Cluster {
    store: Arc<Store>,
    /// The bucket (NATS JetStream KV, or in tests the in-memory one).
    kv: Arc<dyn Bucket>,
    bucket: String,
    /// Whether the bucket has been opened and is watched (until then changes get 503).
    open: AtomicBool,
    revs: Mutex<HashMap<GroupKey, Rev>>,
    /// Grouping keys of hashed bucket keys, learnt from their values (for delete markers).
    hashed: Mutex<HashMap<String, GroupKey>>,
    /// Groups being pushed from this replica: pushes to one group take turns instead of
    /// racing each other's compare-and-set (with many concurrent pushes to one group, e.g.
    /// accumulating ones, the losers would otherwise run out of attempts). Only replicas race.
    pushing: store::turn::Turns,
    synced: AtomicBool,
    timeout: Duration,
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

/// Longest bucket key spelled out; longer grouping keys are named by their hash (NATS
/// subjects must stay well below the server's control-line limit).
const MAX_PLAIN_KEY: usize = 512;

/// The bucket key of a group: its canonical bytes, base64url without padding, or for very
/// long grouping keys `=` and the hex SHA-256 of them (base64url never contains `=`).
pub fn kv_key(key: &GroupKey) -> String {
    let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.canonical());
    if plain.len() <= MAX_PLAIN_KEY {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.canonical());
    let mut out = String::with_capacity(65);
    out.push('=');
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The group key of a spelled-out bucket key (`None` for hashed keys and foreign keys).
pub fn group_key(kv_key: &str) -> Option<GroupKey> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(kv_key)
        .ok()?;
    let mut parts = bytes.split(|b| *b == 0xff);
    let mut labels = Vec::new();
    while let Some(name) = parts.next() {
        let value = parts.next()?;
        labels.push((
            String::from_utf8(name.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        ));
    }
    if labels.is_empty() {
        return None;
    }
    Some(GroupKey::new(labels))
}

/// First byte of a bucket value holding a snappy-compressed group record.
const SNAPPY: u8 = b'S';

/// A group record as stored in the bucket: snappy-compressed (records repeat label names and
/// values in both encodings, so this typically shrinks them several times).
pub fn encode_value(record: &[u8]) -> Vec<u8> {
    let mut out = vec![SNAPPY];
    out.extend(
        snap::raw::Encoder::new()
            .compress_vec(record)
            .unwrap_or_else(|_| record.to_vec()),
    );
    out
}

/// The group record of a bucket value.
pub fn decode_value(value: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match value.split_first() {
        Some((&SNAPPY, rest)) => snap::raw::Decoder::new()
            .decompress_vec(rest)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("snappy: {e}")),
        _ => Ok(std::borrow::Cow::Borrowed(value)),
    }
}

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
        tokio::spawn(follow(cluster.clone(), cfg.replicas.max(1)));
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

    /// Applies a version of a key to the mirror unless it already holds a newer one.
    fn apply(&self, key: &GroupKey, group: Option<Group>, revision: u64) {
        let mut revs = self.revs.lock();
        if revs.get(key).is_some_and(|r| r.revision >= revision) {
            return;
        }
        revs.insert(
            key.clone(),
            Rev {
                revision,
                live: group.is_some(),
            },
        );
        match group {
            Some(g) if self.checking.load(Ordering::Acquire) => {
                if let Err(e) = self.store.apply_replicated_checked(key, g) {
                    let why = match e {
                        StoreError::Inconsistent(m) => m,
                        e => e.to_string(),
                    };
                    tracing::info!(group = ?key, revision, err = %why,
                        "replicated change left out: inconsistent with an earlier one");
                    let mut rejected = self.rejected.lock();
                    rejected.insert(revision, why);
                    while rejected.len() > MAX_REJECTED {
                        rejected.pop_first();
                    }
                }
            }
            g => self.store.apply_replicated(key, g),
        }
    }

    /// Records that the watch has applied everything up to `revision`.
    fn mark_applied(&self, revision: u64) {
        self.applied.send_if_modified(|v| {
            let newer = revision > *v;
            if newer {
                *v = revision;
            }
            newer
        });
    }

    /// Waits (until `deadline`) for the watch to apply `revision` to the mirror, and says
    /// whether the mirror took it.
    async fn confirmed(&self, revision: u64, deadline: Instant) -> Result<(), Unconfirmed> {
        self.wanted.fetch_max(revision, Ordering::AcqRel);
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout_at(deadline, rx.wait_for(|v| *v >= revision)).await {
            Ok(Ok(_)) => {}
            _ => return Err(Unconfirmed::TimedOut),
        }
        match self.rejected.lock().remove(&revision) {
            Some(_) => Err(Unconfirmed::Refused),
            None => Ok(()),
        }
    }

    /// Runs one JetStream write (`op` returns `Err((lost compare-and-set, error))`),
    /// retrying transient failures until `deadline`: a stream leader change after a NATS
    /// node died ("no stream found for given subject", no responders, timeouts) or a client
    /// reconnecting to another node. A retried write that had in fact landed shows up as a
    /// lost compare-and-set, and is planned again like any.
    async fn write_retrying<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        mut op: F,
    ) -> Result<T, WriteFailed>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, (bool, String)>>,
    {
        let mut backoff = Duration::from_millis(25);
        loop {
            let now = Instant::now();
            // One attempt may not use up the whole budget: leave time for a retry.
            let attempt = (deadline.saturating_duration_since(now))
                .min((self.timeout / 2).max(Duration::from_millis(500)));
            let err = match tokio::time::timeout(attempt, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err((true, _))) => return Err(WriteFailed::Conflict),
                Ok(Err((false, e))) => e,
                Err(_) => "timed out".to_string(),
            };
            if Instant::now() + backoff >= deadline || !self.wait_connected(deadline).await {
                return Err(WriteFailed::Failed(unavailable(what, err)));
            }
            tracing::debug!(%err, "NATS write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
    }

    fn apply_entry(&self, e: &bucket::Entry) -> Option<GroupKey> {
        match e.live {
            true => match decode_value(&e.value).and_then(|r| self.store.decode_group(&r)) {
                Ok(g) => {
                    let key = g.key.clone();
                    if e.key.starts_with('=') {
                        self.hashed.lock().insert(e.key.clone(), key.clone());
                    }
                    self.apply(&key, Some(g), e.revision);
                    Some(key)
                }
                Err(err) => {
                    tracing::error!(key = %e.key, %err, "skipping undecodable replicated group");
                    None
                }
            },
            false => {
                let key = group_key(&e.key).or_else(|| self.hashed.lock().get(&e.key).cloned())?;
                self.apply(&key, None, e.revision);
                Some(key)
            }
        }
    }

    /// After losing a compare-and-set: reads the key's current revision and waits until the
    /// mirror has applied it (in the bucket's order, via the watch).
    async fn refresh(
        &self,
        kv: &dyn Bucket,
        key: &GroupKey,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        let k = kv_key(key);
        let entry = self
            .write_retrying("read", deadline, || async {
                kv.revision(&k).await.map_err(|e| (false, e))
            })
            .await
            .map_err(|e| match e {
                WriteFailed::Failed(e) => e,
                WriteFailed::Conflict => unavailable("read", "conflict"),
            })?;
        if let Some(revision) = entry {
            if let Err(Unconfirmed::TimedOut) = self.confirmed(revision, deadline).await {
                return Err(unavailable("read", "the mirror did not catch up in time"));
            }
        }
        Ok(())
    }

    /// Publishes a delete marker for a key (with an expected revision: only if unchanged);
    /// returns the marker's revision.
    async fn publish_delete(
        &self,
        key: &GroupKey,
        expect: Option<u64>,
    ) -> Result<bucket::Ack, StoreError> {
        self.kv
            .delete(&kv_key(key), expect)
            .await
            .map_err(|e| unavailable("delete", e))
    }

    /// Deletes keys (pipelined; a failed one is retried on its own until `deadline`), then
    /// waits until the mirror has applied the deletes.
    async fn delete_keys(&self, keys: &[GroupKey], deadline: Instant) -> Result<(), StoreError> {
        self.bucket_by(deadline).await?;
        let mut pending = Vec::with_capacity(keys.len());
        for k in keys {
            pending.push((k, self.publish_delete(k, None).await));
        }
        let mut last = 0;
        for (k, ack) in pending {
            let acked = match ack {
                Ok(ack) => ack.await,
                Err(e) => Err(e.to_string()),
            };
            let seq = match acked {
                Ok(seq) => seq,
                Err(_) => self
                    .write_retrying("delete", deadline, || async {
                        let ack = self
                            .publish_delete(k, None)
                            .await
                            .map_err(|e| (false, e.to_string()))?;
                        ack.await.map_err(|e| (false, e))
                    })
                    .await
                    .map_err(|e| match e {
                        WriteFailed::Failed(e) => e,
                        WriteFailed::Conflict => unavailable("delete", "conflict"),
                    })?,
            };
            last = last.max(seq);
        }
        // A delete cannot be refused: it is done once acknowledged; this only keeps
        // read-your-writes on this replica.
        let _ = self.confirmed(last, deadline).await;
        Ok(())
    }
}

impl Cluster {
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

    /// Migration from a single-node store: creates every group that the bucket does not
    /// have yet (existing keys win). Returns `(imported, already present)`.
    pub async fn import(&self, groups: Vec<Arc<Group>>) -> Result<(usize, usize), StoreError> {
        let kv = self.bucket()?;
        let (mut imported, mut present, mut last) = (0, 0, 0);
        for g in groups {
            let value = bytes::Bytes::from(encode_value(&g.encode_record()));
            let k = kv_key(&g.key);
            match tokio::time::timeout(self.timeout, kv.create(&k, value)).await {
                Err(_) => return Err(unavailable("import", "timed out")),
                Ok(Ok(revision)) => {
                    last = revision;
                    imported += 1;
                }
                Ok(Err((true, _))) => present += 1,
                Ok(Err((false, e))) => return Err(unavailable("import", e)),
            }
        }
        let _ = self.confirmed(last, Instant::now() + self.timeout).await;
        Ok((imported, present))
    }
}

/// Follows the bucket into the mirror, forever: (re)creates the bucket if needed, watches
/// it (from the start the first time, from the last revision seen after that), marks the
/// replica ready once it has caught up, and restarts the watch if it ends, fails or stalls.
async fn follow(c: Arc<Cluster>, replicas: usize) {
    let mut backoff = Duration::from_millis(100);
    // The highest revision the watch delivered: a restarted watch resumes after it.
    let mut seen_rev: Option<u64> = None;
    // The same failure is logged once (and again every 5 minutes while it lasts), not on
    // every retry.
    let mut last_err: Option<(String, tokio::time::Instant)> = None;
    loop {
        match follow_once(&c, replicas, &mut seen_rev).await {
            Ok(()) => tracing::warn!("NATS bucket watch ended; restarting it"),
            Err(e) => {
                let text = e.to_string();
                let repeat = matches!(&last_err, Some((t, at)) if *t == text
                    && at.elapsed() < Duration::from_secs(300));
                if !repeat {
                    tracing::warn!(err = %text, "following the NATS bucket failed; retrying");
                    last_err = Some((text, tokio::time::Instant::now()));
                }
            }
        }
        if c.synced.load(Ordering::Acquire) {
            last_err = None;
        }
        if c.synced.swap(false, Ordering::AcqRel) {
            // It was working: retry quickly.
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// The watchdog: after a NATS node dies, a watch served by it can stop delivering without
/// an error; this restarts it. Every tick it compares the watch with the revisions local
/// changes wait for (at once) and, every few ticks, with the bucket's last revision; a watch
/// behind either without progress for the given time is restarted.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(250);
const WATCHDOG_STATUS_EVERY: u32 = 4;
const STALL_LOCAL_WAITER: Duration = Duration::from_secs(1);
const STALL_BUCKET: Duration = Duration::from_secs(3);

async fn follow_once(
    c: &Arc<Cluster>,
    replicas: usize,
    seen_rev: &mut Option<u64>,
) -> Result<(), String> {
    c.kv.open(replicas).await?;
    let last = c.kv.last_revision().await?;
    let resume = *seen_rev;
    // Only what changed since: with history 1, every key changed after `r` has its
    // latest version after `r` in the stream.
    let mut watch = c.kv.watch(resume.map(|r| r + 1)).await?;
    c.open.store(true, Ordering::Release);
    let mut seen: Option<HashSet<GroupKey>> = resume.is_none().then(HashSet::new);
    let mut syncing = true;
    let finish_sync = |seen: &mut Option<HashSet<GroupKey>>| {
        // First sync: groups the bucket no longer has (deleted while this replica was away
        // and since purged, or only in a local persistence file) leave the mirror.
        if let Some(seen) = seen.take() {
            let snap = c.store.snapshot();
            for k in snap.groups.keys() {
                if !seen.contains(k) && c.revs.lock().get(k).is_none_or(|r| r.revision <= last) {
                    c.store.apply_replicated(k, None);
                    c.revs.lock().remove(k);
                }
            }
        }
        c.synced.store(true, Ordering::Release);
        // From now on versions are checked as they arrive, in the bucket's order. (The
        // first replay is not: it holds only each key's latest version, and a local
        // persistence file may still hold groups the bucket no longer has.)
        c.checking.store(true, Ordering::Release);
        tracing::info!(bucket = %c.bucket, revision = last, "caught up with the NATS bucket");
    };
    if last == 0 || resume.is_some_and(|r| r >= last) {
        finish_sync(&mut seen);
        syncing = false;
    }
    let mut tick = tokio::time::interval(WATCHDOG_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    // Since when the watch has been seen behind without delivering anything.
    let mut behind_since: Option<(Instant, Duration)> = None;
    loop {
        tokio::select! {
            entry = watch.next() => {
                let Some(entry) = entry else { return Ok(()) };
                let e = entry?;
                *seen_rev = Some(seen_rev.map_or(e.revision, |r| r.max(e.revision)));
                behind_since = None;
                let key = c.apply_entry(&e);
                c.mark_applied(e.revision);
                if let (Some(s), Some(k)) = (seen.as_mut(), key) {
                    s.insert(k);
                }
                if syncing && (e.delta == 0 || e.revision >= last) {
                    finish_sync(&mut seen);
                    syncing = false;
                }
            }
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                if !c.connected() {
                    continue;
                }
                let seen = seen_rev.unwrap_or(0);
                let wanted = c.wanted.load(Ordering::Acquire);
                let behind = if wanted > seen {
                    Some((wanted, STALL_LOCAL_WAITER))
                } else if ticks.is_multiple_of(WATCHDOG_STATUS_EVERY) {
                    match c.kv.last_revision().await {
                        Ok(last) if last > seen => Some((last, STALL_BUCKET)),
                        Ok(_) => None,
                        Err(_) => continue,
                    }
                } else {
                    continue;
                };
                match (behind, behind_since) {
                    (None, _) => behind_since = None,
                    (Some((_, limit)), None) => behind_since = Some((Instant::now(), limit)),
                    (Some((target, limit)), Some((since, _))) => {
                        if since.elapsed() >= limit {
                            return Err(format!(
                                "watch stalled at revision {seen} while revision {target} exists"
                            ));
                        }
                    }
                }
            }
        }
    }
}

impl Writer for Cluster {
    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.timeout;
            let kv = self.bucket_by(deadline).await?;
            let p = self.store.prepare(push);
            let k = kv_key(&p.key);
            let _turn = self.pushing.take(&p.key).await;
            for _ in 0..MAX_ATTEMPTS {
                let rev = self.revs.lock().get(&p.key).copied();
                let (_, plan) = self.store.plan(&p);
                let (group, result) = match plan {
                    Plan::Accept(g) => (g, Ok(())),
                    Plan::Record(g, e) => (g, Err(e)),
                    Plan::Refuse(e) => return Err(e),
                    // The idempotency key is in the mirror: that push was acknowledged.
                    Plan::Unchanged => return Ok(()),
                };
                let value = bytes::Bytes::from(encode_value(&group.encode_record()));
                let max = self.kv.max_payload();
                if max > 0 && value.len() + 1024 > max {
                    return Err(StoreError::Quota(store::store::QuotaExceeded::RecordSize {
                        have: value.len() as u64,
                        max: max as u64,
                    }));
                }
                let write = || async {
                    match rev {
                        Some(Rev {
                            revision,
                            live: true,
                        }) => kv.update(&k, value.clone(), revision).await,
                        _ => kv.create(&k, value.clone()).await,
                    }
                };
                match self.write_retrying("write", deadline, write).await {
                    // Answered once this replica's mirror has applied it in the bucket's order.
                    Ok(revision) => match self.confirmed(revision, deadline).await {
                        Ok(()) => return result,
                        // A conflicting change from another replica came first in the
                        // bucket: plan again against it (it records the failure; the client
                        // gets the 400).
                        Err(Unconfirmed::Refused) => {}
                        Err(Unconfirmed::TimedOut) => {
                            return Err(unavailable(
                                "write",
                                "written, but not yet applied by this replica's mirror \
                                 within --cluster.timeout",
                            ))
                        }
                    },
                    // Another replica changed the group first: read its version and re-plan.
                    Err(WriteFailed::Conflict) => self.refresh(kv, &p.key, deadline).await?,
                    Err(WriteFailed::Failed(e)) => return Err(e),
                }
            }
            Err(unavailable(
                "write",
                format!("gave up after {MAX_ATTEMPTS} concurrent updates of the group"),
            ))
        })
    }

    fn delete<'a>(&'a self, key: &'a GroupKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.timeout;
            self.delete_keys(std::slice::from_ref(key), deadline).await
        })
    }

    fn wipe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let keys: Vec<GroupKey> = self.store.snapshot().groups.keys().cloned().collect();
            self.delete_keys(&keys, Instant::now() + self.timeout).await
        })
    }

    fn delete_where(
        &self,
        select: Selector,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Vec<Arc<Group>>, StoreError>> {
        Box::pin(async move {
            let picked: Vec<Arc<Group>> = self
                .store
                .snapshot()
                .groups
                .values()
                .filter(|g| select(g))
                .cloned()
                .collect();
            if !dry_run {
                let keys: Vec<GroupKey> = picked.iter().map(|g| g.key.clone()).collect();
                self.delete_keys(&keys, Instant::now() + self.timeout)
                    .await?;
            }
            Ok(picked)
        })
    }

    fn expire_due(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let due = self.store.due(now);
            if due.is_empty() || self.bucket().is_err() {
                return Ok(0);
            }
            let kv = self.bucket()?;
            let mut n = 0;
            for k in due {
                let Some(rev) = self.revs.lock().get(&k).copied().filter(|r| r.live) else {
                    continue;
                };
                // Only if nobody pushed (or expired) it meanwhile: one replica wins.
                let ack = self.publish_delete(&k, Some(rev.revision)).await?;
                let deadline = Instant::now() + self.timeout;
                match tokio::time::timeout(self.timeout, ack).await {
                    Ok(Ok(revision)) => {
                        tracing::info!(group = ?k, "group expired");
                        let _ = self.confirmed(revision, deadline).await;
                        n += 1;
                    }
                    Ok(Err(_)) => self.refresh(kv, &k, deadline).await?,
                    Err(_) => return Err(unavailable("expire", "timed out")),
                }
            }
            self.store.count_expired(n as u64);
            Ok(n)
        })
    }

    fn ready(&self) -> Result<(), String> {
        if !self.connected() {
            return Err(format!("not connected to NATS ({})", self.urls));
        }
        if !self.synced.load(Ordering::Acquire) {
            return Err(format!("catching up with NATS bucket {:?}", self.bucket));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_compressed_and_plain() {
        let rec = [1u8, 10, 3, b'j', b'o', b'b'].repeat(50);
        let v = encode_value(&rec);
        assert!(v.len() < rec.len());
        assert_eq!(&*decode_value(&v).unwrap(), &rec[..]);
        assert_eq!(
            &*decode_value(&rec).unwrap(),
            &rec[..],
            "uncompressed records still read"
        );
        assert!(decode_value(b"S\xff\xff").is_err());
    }

    #[test]
    fn kv_keys_round_trip_and_are_valid_nats_keys() {
        for k in [
            GroupKey::new([("job", "a")]),
            GroupKey::new([("job", "a/b"), ("instance", ""), ("x", "Προμηθεύς")]),
        ] {
            assert!(kv_key(&k).len() <= MAX_PLAIN_KEY);
            let s = kv_key(&k);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(group_key(&s), Some(k));
        }
        let long = GroupKey::new([("job", "j".repeat(8000))]);
        let h = kv_key(&long);
        assert_eq!(h.len(), 65);
        assert!(h.starts_with('='));
        assert_eq!(
            group_key(&h),
            None,
            "hashed keys are resolved from their values"
        );
        assert_eq!(group_key("!!"), None);
        assert_eq!(group_key(""), None);
    }
}
