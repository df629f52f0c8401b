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
//!   it), and is applied to the local mirror at once (read-your-writes on this replica).
//! * **reads** from an in-memory mirror (the ordinary [`store::Store`]), fed by a KV watch
//!   from the start of the bucket. Entries carry revisions; the mirror applies a key's
//!   versions in revision order, so every replica converges to the same state.
//! * is **ready** only while connected and caught up with the bucket. Without NATS, changes
//!   fail at once with 503 and scrapes keep serving the last mirror.
//!
//! Conflicting pushes accepted by two replicas at the same moment (each consistent with its
//! own mirror, inconsistent together) both land; every replica then holds the same
//! inconsistent state and scrapes answer 500 everywhere, as an unchecked official gateway
//! would, until one group is fixed or deleted. The outcome is the same on all replicas.

use async_nats::jetstream::{self, kv};
use base64::Engine;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use store::writer::{BoxFuture, Selector, Writer};
use store::{Group, GroupKey, Plan, Push, Store, StoreError};

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
    client: async_nats::Client,
    js: jetstream::Context,
    bucket: String,
    kv: Mutex<Option<kv::Store>>,
    revs: Mutex<HashMap<GroupKey, Rev>>,
    /// Grouping keys of hashed bucket keys, learnt from their values (for delete markers).
    hashed: Mutex<HashMap<String, GroupKey>>,
    synced: AtomicBool,
    timeout: Duration,
    urls: String,
}

const KV_OPERATION: &str = "KV-Operation";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
const MAX_ATTEMPTS: usize = 32;

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
        let cluster = Arc::new(Cluster {
            store,
            client,
            js,
            bucket: cfg.bucket.clone(),
            kv: Mutex::new(None),
            revs: Mutex::new(HashMap::new()),
            hashed: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(false),
            timeout: cfg.timeout,
            urls: cfg.urls.join(","),
        });
        tokio::spawn(follow(cluster.clone(), cfg.replicas.max(1)));
        Ok(cluster)
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The bucket, if connected and set up; otherwise the 503 reason.
    fn bucket(&self) -> Result<kv::Store, StoreError> {
        if !self.connected() {
            return Err(StoreError::Unavailable(format!(
                "not connected to NATS ({}); the change was not made",
                self.urls
            )));
        }
        self.kv.lock().clone().ok_or_else(|| {
            StoreError::Unavailable(format!("NATS bucket {:?} not available yet", self.bucket))
        })
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
        self.store.apply_replicated(key, group);
    }

    fn apply_entry(&self, e: &kv::Entry) -> Option<GroupKey> {
        match e.operation {
            kv::Operation::Put => {
                match decode_value(&e.value).and_then(|r| self.store.decode_group(&r)) {
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
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                let key = group_key(&e.key).or_else(|| self.hashed.lock().get(&e.key).cloned())?;
                self.apply(&key, None, e.revision);
                Some(key)
            }
        }
    }

    /// Re-reads one key from the bucket into the mirror (after losing a compare-and-set).
    async fn refresh(&self, kv: &kv::Store, key: &GroupKey) -> Result<(), StoreError> {
        let entry = tokio::time::timeout(self.timeout, kv.entry(kv_key(key)))
            .await
            .map_err(|_| unavailable("read", "timed out"))?
            .map_err(|e| unavailable("read", e))?;
        if let Some(e) = entry {
            self.apply_entry(&e);
        }
        Ok(())
    }

    /// Publishes a delete marker for a key (with an expected revision: only if unchanged);
    /// returns the marker's revision.
    async fn publish_delete(
        &self,
        key: &GroupKey,
        expect: Option<u64>,
    ) -> Result<jetstream::context::PublishAckFuture, StoreError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(KV_OPERATION, "DEL");
        if let Some(rev) = expect {
            headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, rev.to_string().as_str());
        }
        let subject = format!("$KV.{}.{}", self.bucket, kv_key(key));
        self.js
            .publish_with_headers(subject, headers, bytes::Bytes::new())
            .await
            .map_err(|e| unavailable("delete", e))
    }

    /// Deletes keys (pipelined), applying each acknowledged delete to the mirror.
    async fn delete_keys(&self, keys: &[GroupKey]) -> Result<(), StoreError> {
        self.bucket()?;
        let mut pending = Vec::with_capacity(keys.len());
        for k in keys {
            pending.push((k, self.publish_delete(k, None).await?));
        }
        for (k, ack) in pending {
            let ack = ack.await.map_err(|e| unavailable("delete", e))?;
            self.apply(k, None, ack.sequence);
        }
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
        let (mut imported, mut present) = (0, 0);
        for g in groups {
            let value = bytes::Bytes::from(encode_value(&g.encode_record()));
            match tokio::time::timeout(self.timeout, kv.create(kv_key(&g.key), value)).await {
                Err(_) => return Err(unavailable("import", "timed out")),
                Ok(Ok(revision)) => {
                    self.apply(&g.key, Some((*g).clone()), revision);
                    imported += 1;
                }
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => present += 1,
                Ok(Err(e)) => return Err(unavailable("import", e)),
            }
        }
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
    loop {
        match follow_once(&c, replicas, &mut seen_rev).await {
            Ok(()) => tracing::warn!("NATS bucket watch ended; restarting it"),
            Err(e) => tracing::warn!(err = %e, "following the NATS bucket failed; retrying"),
        }
        if c.synced.swap(false, Ordering::AcqRel) {
            // It was working: retry quickly.
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How often the watch is checked against the bucket's last revision, and how many checks
/// without progress (while the bucket is ahead) count as a stalled watch. After a NATS node
/// dies, a watch served by it can stop delivering without an error; this restarts it.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(1);
const WATCHDOG_STALLS: u32 = 3;

async fn follow_once(
    c: &Arc<Cluster>,
    replicas: usize,
    seen_rev: &mut Option<u64>,
) -> Result<(), String> {
    let kv = match c.js.get_key_value(&c.bucket).await {
        Ok(kv) => kv,
        Err(_) => {
            c.js.create_key_value(kv::Config {
                bucket: c.bucket.clone(),
                description: "Pushgateway groups (one key per group)".into(),
                history: 1,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating bucket {:?}: {e}", c.bucket))?
        }
    };
    let last = last_revision(&kv).await?;
    let resume = *seen_rev;
    let mut watch = match resume {
        // Only what changed since: with history 1, every key changed after `r` has its
        // latest version after `r` in the stream.
        Some(r) => kv.watch_all_from_revision(r + 1).await,
        None => kv.watch_with_history(">").await,
    }
    .map_err(|e| format!("watching bucket: {e}"))?;
    *c.kv.lock() = Some(kv.clone());
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
        tracing::info!(bucket = %c.bucket, revision = last, "caught up with the NATS bucket");
    };
    if last == 0 || resume.is_some_and(|r| r >= last) {
        finish_sync(&mut seen);
        syncing = false;
    }
    let mut tick = tokio::time::interval(WATCHDOG_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress_at_tick = *seen_rev;
    let mut stalls = 0;
    loop {
        tokio::select! {
            entry = watch.next() => {
                let Some(entry) = entry else { return Ok(()) };
                let e = entry.map_err(|e| format!("watch: {e}"))?;
                *seen_rev = Some(seen_rev.map_or(e.revision, |r| r.max(e.revision)));
                let key = c.apply_entry(&e);
                if let (Some(s), Some(k)) = (seen.as_mut(), key) {
                    s.insert(k);
                }
                if syncing && (e.delta == 0 || e.revision >= last) {
                    finish_sync(&mut seen);
                    syncing = false;
                }
            }
            _ = tick.tick() => {
                if !c.connected() {
                    continue;
                }
                let Ok(bucket_last) = last_revision(&kv).await else { continue };
                let behind = seen_rev.unwrap_or(0) < bucket_last;
                if behind && progress_at_tick == *seen_rev {
                    stalls += 1;
                    if stalls >= WATCHDOG_STALLS {
                        return Err(format!(
                            "watch stalled at revision {} while the bucket is at {bucket_last}",
                            seen_rev.unwrap_or(0)
                        ));
                    }
                } else {
                    stalls = 0;
                }
                progress_at_tick = *seen_rev;
            }
        }
    }
}

async fn last_revision(kv: &kv::Store) -> Result<u64, String> {
    let status = tokio::time::timeout(Duration::from_secs(5), kv.status())
        .await
        .map_err(|_| "bucket status: timed out".to_string())?
        .map_err(|e| format!("bucket status: {e}"))?;
    Ok(status.info.state.last_sequence)
}

impl Writer for Cluster {
    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let kv = self.bucket()?;
            let p = self.store.prepare(push);
            let k = kv_key(&p.key);
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
                let max = self.client.server_info().max_payload;
                if max > 0 && value.len() + 1024 > max {
                    return Err(StoreError::Quota(store::store::QuotaExceeded::RecordSize {
                        have: value.len() as u64,
                        max: max as u64,
                    }));
                }
                let write = async {
                    match rev {
                        Some(Rev {
                            revision,
                            live: true,
                        }) => kv.update(&k, value, revision).await.map_err(|e| {
                            (
                                e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                                e.to_string(),
                            )
                        }),
                        _ => kv.create(&k, value).await.map_err(|e| {
                            (
                                e.kind() == kv::CreateErrorKind::AlreadyExists,
                                e.to_string(),
                            )
                        }),
                    }
                };
                match tokio::time::timeout(self.timeout, write).await {
                    Err(_) => return Err(unavailable("write", "timed out")),
                    Ok(Ok(revision)) => {
                        self.apply(&p.key, Some(group), revision);
                        return result;
                    }
                    // Another replica changed the group first: read its version and re-plan.
                    Ok(Err((true, _))) => self.refresh(&kv, &p.key).await?,
                    Ok(Err((false, e))) => return Err(unavailable("write", e)),
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
            tokio::time::timeout(self.timeout, self.delete_keys(std::slice::from_ref(key)))
                .await
                .map_err(|_| unavailable("delete", "timed out"))?
        })
    }

    fn wipe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let keys: Vec<GroupKey> = self.store.snapshot().groups.keys().cloned().collect();
            self.delete_keys(&keys).await
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
                self.delete_keys(&keys).await?;
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
                match tokio::time::timeout(self.timeout, ack).await {
                    Ok(Ok(ack)) => {
                        tracing::info!(group = ?k, "group expired");
                        self.apply(&k, None, ack.sequence);
                        n += 1;
                    }
                    Ok(Err(_)) => self.refresh(&kv, &k).await?,
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
