//! The store: applies pushes, deletes and wipes under one short lock, checks them against the
//! consistency index, publishes an immutable [`Snapshot`] for readers, and (when persistence is
//! on) hands every mutation to the write-ahead log before the caller acknowledges it.

use crate::accumulate::{self, Accumulate};
use crate::group::{
    is_time_gauge, sanitize_labels, FamilyEntry, Group, PUSH_EXPIRY_TIME, PUSH_FAILURE_TIME,
    PUSH_TIME,
};
use crate::idempotency;
use crate::index::Index;
use crate::key::GroupKey;
use crate::wal::{Op, SyncMode, Ticket, Wal, WalError};
use arc_swap::ArcSwap;
use exposition::pb::{Metric, MetricFamily, MetricType};
use imbl::OrdMap;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a push or delete was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The push carried sample timestamps (recorded as a failed push).
    #[error("pushed metrics must not have timestamps")]
    Timestamps,
    /// The push failed the consistency check (recorded as a failed push).
    #[error("{0}")]
    Inconsistent(String),
    /// The mutation could not be made durable.
    #[error("persisting the change failed: {0}")]
    Persist(#[from] WalError),
    /// Replicated mode: the shared log cannot be reached; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The push would exceed a quota; nothing was changed (not recorded as a failed push).
    #[error("{0}")]
    Quota(QuotaExceeded),
    /// An accumulating push cannot be merged into the stored group (type or bucket layout
    /// differs); recorded as a failed push.
    #[error("{0}")]
    Accumulate(String),
}

/// Which quota a refused push would have exceeded, and by how much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("limit exceeded: the group would hold {have} series, more than the {max} allowed per group (--limits.max-series-per-group)")]
    SeriesPerGroup { have: u64, max: u64 },
    #[error("quota exceeded: the gateway holds {have} groups, the maximum (--limits.max-groups); delete groups or raise the limit")]
    Groups { have: u64 },
    #[error("quota exceeded: the push would bring the gateway to {have} series, more than the {max} allowed (--limits.max-series)")]
    TotalSeries { have: u64, max: u64 },
    #[error("limit exceeded: the group's record is {have} bytes, more than NATS accepts in one message ({max} bytes, max_payload); raise max_payload in the NATS server configuration")]
    RecordSize { have: u64, max: u64 },
}

/// Store-wide quotas, checked atomically with the push (0 disables each).
#[derive(Clone, Copy, Debug, Default)]
pub struct Quotas {
    pub max_series_per_group: u64,
    pub max_groups: u64,
    pub max_total_series: u64,
}

/// Families per name, each with the groups that carry it, in group order.
pub type FamilyMap = OrdMap<Arc<str>, OrdMap<GroupKey, Arc<FamilyEntry>>>;

/// An immutable view of the whole store. Readers (scrape, API, UI) take one with
/// [`Store::snapshot`] and never block writers, nor are blocked by them.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Every group, by key.
    pub groups: OrdMap<GroupKey, Arc<Group>>,
    /// Every non-empty family, by name, then by group.
    pub families: FamilyMap,
    /// True when the store would fail the official consistency check as a whole
    /// (then a scrape answers 500, as the official gateway does).
    pub inconsistent: bool,
    /// How many groups have a TTL.
    pub ttl_groups: usize,
}

/// A push with its families encoded ([`Store::prepare`]), ready to be planned against any
/// version of its group.
pub struct Prepared {
    pub key: GroupKey,
    entries: BTreeMap<Arc<str>, Arc<FamilyEntry>>,
    replace: bool,
    now: f64,
    ts: i64,
    ttl_ms: u64,
    has_timestamps: bool,
    accumulate: Option<Accumulate>,
    /// Accumulating pushes: the pushed metrics of each family (labels sanitized, normalized
    /// by [`accumulate::normalize`]), merged with the stored ones when the push is planned.
    pushed: BTreeMap<Arc<str>, Vec<Metric>>,
    idempotency: Option<idempotency::KeyDigest>,
    /// Summary quantiles this (accumulating) push dropped.
    pub dropped_quantiles: u64,
}

/// What a push does to its group.
pub enum Plan {
    /// The new version of the group.
    Accept(Group),
    /// Refused by the consistency rules: the group with its failure recorded, and why.
    Record(Group, StoreError),
    /// Refused by a quota: nothing changes.
    Refuse(StoreError),
    /// The push's idempotency key was already seen on this group: nothing changes, and the
    /// push is answered as a success again.
    Unchanged,
}

/// A push: a group key, the parsed families, and PUT (`replace`) or POST semantics.
pub struct Push {
    pub key: GroupKey,
    pub families: Vec<MetricFamily>,
    pub replace: bool,
    pub time: SystemTime,
    /// The group's time to live in milliseconds, already resolved from the request, the rules
    /// and the flags (0: never expires). Re-armed by every successful push.
    pub ttl_ms: u64,
    /// `Some`: an accumulating push, added to the stored group instead of replacing its
    /// families (`replace` is then ignored; see [`crate::accumulate`]).
    pub accumulate: Option<Accumulate>,
    /// The push's `Idempotency-Key`: if the group has seen it within its TTL (24 hours
    /// without one), the push changes nothing and succeeds (see [`crate::idempotency`]).
    pub idempotency_key: Option<String>,
}

/// Persistence settings.
#[derive(Clone, Debug)]
pub struct PersistConfig {
    pub path: PathBuf,
    pub sync: SyncMode,
}

/// Store settings.
pub struct StoreConfig {
    /// Run the consistency check on pushes (`--push.disable-consistency-check` turns it off).
    pub checked: bool,
    /// The gateway's own metric families (name and type), which pushed families must match.
    pub own_families: Vec<(String, MetricType)>,
    pub persistence: Option<PersistConfig>,
    pub quotas: Quotas,
}

struct State {
    snap: Snapshot,
    index: Index,
    /// Groups with a TTL, by expiry time (Unix milliseconds).
    expiry: BTreeSet<(i64, GroupKey)>,
    /// Pushed series (metrics) over all groups, for the total-series quota.
    series: u64,
}

pub struct Store {
    state: Mutex<State>,
    current: ArcSwap<Snapshot>,
    /// Set when the state changed since `current` was cut.
    dirty: AtomicBool,
    names: RwLock<HashSet<Arc<str>, ahash::RandomState>>,
    checked: bool,
    wal: Option<Wal>,
    expired: AtomicU64,
    /// Summary quantiles dropped from accumulating pushes.
    dropped_quantiles: AtomicU64,
    quotas: Quotas,
    /// The gateway's own per-group gauges, interned once: push time, failure time, expiry.
    gauge_names: [Arc<str>; 3],
}

fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    unix_nanos(t) as f64 / 1e9
}

impl Store {
    /// Opens the store, restoring every group from the persistence file if one is configured.
    pub fn open(cfg: StoreConfig) -> Result<Store, WalError> {
        let (wal, recovered) = match &cfg.persistence {
            Some(p) => {
                let (wal, rec) = Wal::open(&p.path, p.sync.clone())?;
                (Some(wal), rec.entries)
            }
            None => (None, Vec::new()),
        };
        let store = Store {
            state: Mutex::new(State {
                snap: Snapshot::default(),
                index: Index::new(cfg.own_families),
                expiry: BTreeSet::new(),
                series: 0,
            }),
            current: ArcSwap::from_pointee(Snapshot::default()),
            dirty: AtomicBool::new(false),
            names: RwLock::new(HashSet::default()),
            checked: cfg.checked,
            wal,
            expired: AtomicU64::new(0),
            dropped_quantiles: AtomicU64::new(0),
            quotas: cfg.quotas,
            gauge_names: [PUSH_TIME, PUSH_FAILURE_TIME, PUSH_EXPIRY_TIME].map(Arc::from),
        };
        // The same allocations as every restored or decoded group uses.
        for n in &store.gauge_names {
            store.names.write().insert(n.clone());
        }
        store.restore(recovered);
        Ok(store)
    }

    fn restore(&self, mut entries: Vec<(Vec<u8>, Vec<u8>)>) {
        if entries.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Persistence keys are the canonical key bytes, so this is group order: inserting in
        // it always extends the right edge of the trees.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Worker threads decode chunks (rebuilding the series identities and push-time
        // gauges) while this thread inserts finished chunks, in order, into the maps.
        const CHUNK: usize = 2048;
        let chunks: Vec<&[(Vec<u8>, Vec<u8>)]> = entries.chunks(CHUNK).collect();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut st = self.state.lock();
        st.index.reserve(entries.len() * 16);
        let mut n = 0;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Vec<Group>)>();
            for _ in 0..workers {
                let tx = tx.clone();
                let (chunks, next) = (&chunks, &next);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(part) = chunks.get(i) else { break };
                    let mut out = Vec::with_capacity(part.len());
                    for (key, value) in part.iter() {
                        match Group::decode_record(value, &mut |n| self.intern(n)) {
                            Ok(g) => out.push(g),
                            Err(e) => tracing::error!(
                                key = %String::from_utf8_lossy(key).replace('\u{fffd}', "/"),
                                err = %e,
                                "skipping undecodable group record"
                            ),
                        }
                    }
                    if tx.send((i, out)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut waiting = BTreeMap::new();
            let mut want = 0;
            for (i, groups) in rx {
                waiting.insert(i, groups);
                while let Some(groups) = waiting.remove(&want) {
                    for g in groups {
                        n += 1;
                        Self::insert_group(&mut st, Arc::new(g), None);
                    }
                    want += 1;
                }
            }
        });
        self.publish(&mut st);
        tracing::info!(
            groups = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restored persisted groups"
        );
    }

    /// Interns a family name, so that every group shares one allocation per name.
    fn intern(&self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.read().get(name) {
            return n.clone();
        }
        let mut w = self.names.write();
        if let Some(n) = w.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        w.insert(n.clone());
        n
    }

    /// The current snapshot: every change acknowledged before this call is in it.
    ///
    /// Snapshots are cut lazily: a mutation only marks the store dirty, and the next reader
    /// clones the persistent maps (O(1)) under the lock. Between two reads, pushes therefore
    /// mutate uniquely owned tree nodes in place instead of copying paths.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        if !self.dirty.load(Ordering::Acquire) {
            return self.current.load_full();
        }
        let mut st = self.state.lock();
        if self.dirty.load(Ordering::Acquire) {
            st.snap.inconsistent = st.index.has_problem();
            st.snap.ttl_groups = st.expiry.len();
            self.current.store(Arc::new(st.snap.clone()));
            self.dirty.store(false, Ordering::Release);
        }
        self.current.load_full()
    }

    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// Marks the state changed; the next [`Store::snapshot`] cuts a new snapshot.
    /// Called with the state lock held.
    fn publish(&self, _st: &mut State) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Replaces the entries of a group in the snapshot maps and the index.
    /// `old` is the previous version of the group, if any.
    fn insert_group(st: &mut State, new: Arc<Group>, old: Option<&Group>) {
        if let Some(old) = old.filter(|o| o.ttl_ms != 0) {
            st.expiry.remove(&(expiry_ms(old), old.key.clone()));
        }
        if new.ttl_ms != 0 {
            st.expiry.insert((expiry_ms(&new), new.key.clone()));
        }
        st.series = st.series + new.pushed_series() - old.map_or(0, |o| o.pushed_series());
        if let Some(old) = old {
            for (name, e) in &old.families {
                if new.families.get(name).is_some_and(|n| Arc::ptr_eq(n, e)) {
                    continue;
                }
                st.index.remove(e);
                // A non-empty replacement overwrites the link below; only unlink otherwise.
                let replaced = new.families.get(name).is_some_and(|n| n.metric_count > 0);
                if e.metric_count > 0 && !replaced {
                    Self::unlink_family(&mut st.snap.families, name, &old.key);
                }
            }
        }
        for (name, e) in &new.families {
            if old
                .and_then(|o| o.families.get(name))
                .is_some_and(|o| Arc::ptr_eq(o, e))
            {
                continue;
            }
            st.index.add(e);
            if e.metric_count > 0 {
                match st.snap.families.get_mut(name) {
                    Some(inner) => {
                        inner.insert(new.key.clone(), e.clone());
                    }
                    None => {
                        st.snap
                            .families
                            .insert(name.clone(), imbl::OrdMap::unit(new.key.clone(), e.clone()));
                    }
                }
            }
        }
        st.snap.groups.insert(new.key.clone(), new);
    }

    fn unlink_family(families: &mut FamilyMap, name: &Arc<str>, key: &GroupKey) {
        if let Some(inner) = families.get_mut(name) {
            inner.remove(key);
            if inner.is_empty() {
                families.remove(name);
            }
        }
    }

    fn remove_group(st: &mut State, key: &GroupKey) -> bool {
        let Some(old) = st.snap.groups.remove(key) else {
            return false;
        };
        if old.ttl_ms != 0 {
            st.expiry.remove(&(expiry_ms(&old), old.key.clone()));
        }
        st.series -= old.pushed_series();
        for (name, e) in &old.families {
            st.index.remove(e);
            if e.metric_count > 0 {
                Self::unlink_family(&mut st.snap.families, name, key);
            }
        }
        true
    }

    fn log(&self, ops: impl FnOnce() -> Vec<Op>) -> Option<Ticket> {
        self.wal.as_ref().map(|w| w.append(ops()))
    }

    fn put_op(g: &Group) -> Op {
        Op::Put {
            key: g.key.canonical().to_vec(),
            value: g.encode_record(),
        }
    }

    async fn durable(ticket: Option<Ticket>) -> Result<(), StoreError> {
        match ticket {
            Some(t) => t.wait().await.map_err(StoreError::Persist),
            None => Ok(()),
        }
    }

    /// Encodes a push's families (outside any lock: concurrent pushes do this in parallel).
    pub fn prepare(&self, push: Push) -> Prepared {
        let ts = unix_nanos(push.time);
        let now = unix_seconds(push.time);
        let has_timestamps = push
            .families
            .iter()
            .any(|f| f.metric.iter().any(|m| m.timestamp_ms.is_some()));
        let mut entries: BTreeMap<Arc<str>, Arc<FamilyEntry>> = BTreeMap::new();
        let mut pushed = BTreeMap::new();
        let mut dropped_quantiles = 0;
        if !has_timestamps {
            for mut mf in push.families {
                let name = mf.name().to_string();
                if is_time_gauge(&name) || (push.ttl_ms != 0 && name == PUSH_EXPIRY_TIME) {
                    continue; // always set by the gateway itself
                }
                for m in mf.metric.iter_mut() {
                    sanitize_labels(m, &push.key);
                }
                if push.accumulate.is_some() {
                    dropped_quantiles +=
                        accumulate::normalize(mf.metric_type(), &mut mf.metric, ts);
                }
                let name = self.intern(&name);
                let e = FamilyEntry::build(
                    name.clone(),
                    mf.help.as_deref(),
                    mf.metric_type(),
                    &mf.metric,
                    ts,
                );
                entries.insert(name.clone(), Arc::new(e));
                if push.accumulate.is_some() {
                    pushed.insert(name, std::mem::take(&mut mf.metric));
                }
            }
        }
        if dropped_quantiles > 0 {
            self.dropped_quantiles
                .fetch_add(dropped_quantiles, Ordering::Relaxed);
        }
        Prepared {
            key: push.key,
            entries,
            replace: push.replace,
            now,
            ts,
            ttl_ms: push.ttl_ms,
            has_timestamps,
            accumulate: push.accumulate,
            pushed,
            idempotency: push.idempotency_key.as_deref().map(idempotency::digest),
            dropped_quantiles,
        }
    }

    /// Summary quantiles dropped from accumulating pushes since start-up
    /// (`pushgateway_accumulate_dropped_quantiles_total`).
    pub fn dropped_quantiles_total(&self) -> u64 {
        self.dropped_quantiles.load(Ordering::Relaxed)
    }

    /// Applies a push. With the consistency check on, a rejected push is recorded as a failure
    /// of the group (created if missing), as the official gateway does.
    pub async fn push(&self, push: Push) -> Result<(), StoreError> {
        let p = self.prepare(push);
        let (ticket, result) = {
            let mut st = self.state.lock();
            let old = st.snap.groups.get(&p.key).cloned();
            match self.plan_locked(&st, &p, old.as_deref()) {
                Plan::Accept(group) => {
                    let group = Arc::new(group);
                    Self::insert_group(&mut st, group.clone(), old.as_deref());
                    self.publish(&mut st);
                    (self.log(|| vec![Self::put_op(&group)]), Ok(()))
                }
                Plan::Record(group, err) => {
                    let group = Arc::new(group);
                    Self::insert_group(&mut st, group.clone(), old.as_deref());
                    self.publish(&mut st);
                    (self.log(|| vec![Self::put_op(&group)]), Err(err))
                }
                Plan::Refuse(err) => return Err(err),
                // Answered only once the push that recorded the key is durable too.
                Plan::Unchanged => (self.log(Vec::new), Ok(())),
            }
        };
        Self::durable(ticket).await?;
        result
    }

    /// What a prepared push would do to the current version of its group (replicated mode:
    /// the caller writes the outcome to the shared log, then applies it).
    pub fn plan(&self, p: &Prepared) -> (Option<Arc<Group>>, Plan) {
        let st = self.state.lock();
        let old = st.snap.groups.get(&p.key).cloned();
        let plan = self.plan_locked(&st, p, old.as_deref());
        (old, plan)
    }

    /// Builds the new version of the group and checks it (quotas, consistency).
    fn plan_locked(&self, st: &State, p: &Prepared, old: Option<&Group>) -> Plan {
        let [pt_name, pft_name, exp_name] = &self.gauge_names;
        let failure = |err: StoreError| {
            let mut group = match old {
                Some(g) => g.clone(),
                None => {
                    let mut g = Group::new(p.key.clone());
                    g.set_ttl(exp_name.clone(), p.ttl_ms, p.now, p.ts);
                    g
                }
            };
            group.set_push_failure_time(pft_name.clone(), p.now, p.ts);
            if !group.families.contains_key(PUSH_TIME) {
                group.set_push_time(pt_name.clone(), 0.0, p.ts);
            }
            Plan::Record(group, err)
        };
        if p.has_timestamps {
            return failure(StoreError::Timestamps);
        }
        let now_ms = p.ts.div_euclid(1_000_000);
        let key_since_ms = now_ms.saturating_sub(if p.ttl_ms != 0 {
            p.ttl_ms as i64
        } else {
            idempotency::DEFAULT_WINDOW_MS as i64
        });
        if let (Some(d), Some(o)) = (&p.idempotency, old) {
            if o.seen_keys.contains(d, key_since_ms) {
                return Plan::Unchanged;
            }
        }
        let mut group = match old {
            Some(g) => g.clone(),
            None => Group::new(p.key.clone()),
        };
        if p.replace && p.accumulate.is_none() {
            let owned_expiry = group.ttl_ms != 0;
            group
                .families
                .retain(|n, _| is_time_gauge(n) || (owned_expiry && &**n == PUSH_EXPIRY_TIME));
        }
        if p.ttl_ms == 0 {
            // Drops the gateway's expiry gauge before a pushed family of that name lands.
            group.set_ttl(exp_name.clone(), 0, p.now, p.ts);
        }
        for (n, e) in &p.entries {
            let stored = group
                .families
                .get(n)
                .filter(|o| o.metric_count > 0 && !group.is_gateway_family(n));
            match (p.accumulate, stored) {
                (Some(acc), Some(o)) => match Self::merge_entry(p, acc, o, e) {
                    Ok(merged) => {
                        group.families.insert(n.clone(), Arc::new(merged));
                    }
                    Err(msg) => return failure(StoreError::Accumulate(msg)),
                },
                _ => {
                    group.families.insert(n.clone(), e.clone());
                }
            }
        }
        if let Some(d) = p.idempotency {
            group.seen_keys.record(d, now_ms, key_since_ms);
        }
        group.set_push_time(pt_name.clone(), p.now, p.ts);
        if p.ttl_ms != 0 {
            group.set_ttl(exp_name.clone(), p.ttl_ms, p.now, p.ts);
        }
        if !group.families.contains_key(PUSH_FAILURE_TIME) {
            group.set_push_failure_time(pft_name.clone(), 0.0, p.ts);
        }
        if let Some(q) = self.quota_check(st, &group, old) {
            return Plan::Refuse(StoreError::Quota(q));
        }
        if self.checked {
            let removed: Vec<&FamilyEntry> = match old {
                Some(o) => o
                    .families
                    .iter()
                    .filter(|(n, e)| group.families.get(*n).is_none_or(|ne| !Arc::ptr_eq(ne, e)))
                    .map(|(_, e)| &**e)
                    .collect(),
                None => Vec::new(),
            };
            let added: Vec<&FamilyEntry> = group
                .families
                .iter()
                .filter(|(n, e)| {
                    old.and_then(|o| o.families.get(*n))
                        .is_none_or(|oe| !Arc::ptr_eq(oe, e))
                })
                .map(|(_, e)| &**e)
                .collect();
            if let Err(msg) = st.index.check(&removed, &added) {
                return failure(StoreError::Inconsistent(msg));
            }
        }
        Plan::Accept(group)
    }

    /// An accumulating push's family `new` merged into the stored family `old`.
    fn merge_entry(
        p: &Prepared,
        acc: Accumulate,
        old: &FamilyEntry,
        new: &FamilyEntry,
    ) -> Result<FamilyEntry, String> {
        if old.mtype != new.mtype {
            return Err(format!(
                "cannot accumulate {:?}: pushed as {}, stored as {} (replace the group with a PUT on the normal route to change a type)",
                &*new.name,
                new.mtype.as_str_name(),
                old.mtype.as_str_name()
            ));
        }
        let pushed = p.pushed.get(&new.name).map_or(&[][..], |v| &v[..]);
        let merged = accumulate::merge_family(
            &new.name,
            new.mtype,
            old.metrics(),
            old.timestamp_ns,
            pushed,
            acc.gauges,
        )?;
        Ok(FamilyEntry::build(
            new.name.clone(),
            new.help.as_deref(),
            new.mtype,
            &merged,
            p.ts,
        ))
    }

    /// Replicated mode: sets a group to the version read from the shared log (`None`: it
    /// was deleted). No check: the log is the source of truth. With a persistence file the
    /// change is also logged locally, without waiting for it (a warm cache for restarts).
    pub fn apply_replicated(&self, key: &GroupKey, group: Option<Group>) {
        let mut st = self.state.lock();
        let op = match group {
            Some(g) => {
                let old = st.snap.groups.get(key).cloned();
                let g = Arc::new(g);
                Self::insert_group(&mut st, g.clone(), old.as_deref());
                Self::put_op(&g)
            }
            None => {
                if !Self::remove_group(&mut st, key) {
                    return;
                }
                Op::Delete {
                    key: key.canonical().to_vec(),
                }
            }
        };
        self.publish(&mut st);
        drop(self.log(|| vec![op]));
    }

    /// Decodes a persisted group record (replicated mode reads them from the shared log).
    pub fn decode_group(&self, record: &[u8]) -> Result<Group, String> {
        Group::decode_record(record, &mut |n| self.intern(n))
    }

    /// Keys of the groups whose TTL has run out at `now`, with their expiry times.
    pub fn due(&self, now: SystemTime) -> Vec<GroupKey> {
        let now_ms = unix_nanos(now).div_euclid(1_000_000);
        let st = self.state.lock();
        st.expiry
            .iter()
            .take_while(|(t, _)| *t <= now_ms)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Counts groups expired by a replica of a replicated gateway.
    pub fn count_expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
    }

    /// The quota a push would exceed, if any (called under the lock, before the change).
    fn quota_check(&self, st: &State, new: &Group, old: Option<&Group>) -> Option<QuotaExceeded> {
        let q = &self.quotas;
        let series = new.pushed_series();
        if q.max_series_per_group != 0 && series > q.max_series_per_group {
            return Some(QuotaExceeded::SeriesPerGroup {
                have: series,
                max: q.max_series_per_group,
            });
        }
        if q.max_groups != 0 && old.is_none() && st.snap.groups.len() as u64 >= q.max_groups {
            return Some(QuotaExceeded::Groups {
                have: st.snap.groups.len() as u64,
            });
        }
        let total = st.series + series - old.map_or(0, |o| o.pushed_series());
        if q.max_total_series != 0
            && total > q.max_total_series
            && series > old.map_or(0, |o| o.pushed_series())
        {
            return Some(QuotaExceeded::TotalSeries {
                have: total,
                max: q.max_total_series,
            });
        }
        None
    }

    /// Deletes a group (a no-op if it does not exist).
    pub async fn delete(&self, key: &GroupKey) -> Result<(), StoreError> {
        let ticket = {
            let mut st = self.state.lock();
            if Self::remove_group(&mut st, key) {
                self.publish(&mut st);
                self.log(|| {
                    vec![Op::Delete {
                        key: key.canonical().to_vec(),
                    }]
                })
            } else {
                None
            }
        };
        Self::durable(ticket).await
    }

    /// Deletes every group whose expiry time has passed at `now`, durably; returns how many.
    pub async fn expire_due(&self, now: SystemTime) -> Result<usize, StoreError> {
        let now_ms = unix_nanos(now).div_euclid(1_000_000);
        let (n, ticket) = {
            let mut st = self.state.lock();
            // The set is ordered by expiry time: this walks only the due entries.
            let due: Vec<GroupKey> = st
                .expiry
                .iter()
                .take_while(|(t, _)| *t <= now_ms)
                .map(|(_, k)| k.clone())
                .collect();
            for k in &due {
                Self::remove_group(&mut st, k);
                tracing::info!(group = ?k, "group expired");
            }
            if due.is_empty() {
                return Ok(0);
            }
            self.publish(&mut st);
            let ticket = self.log(|| {
                due.iter()
                    .map(|k| Op::Delete {
                        key: k.canonical().to_vec(),
                    })
                    .collect()
            });
            (due.len(), ticket)
        };
        Self::durable(ticket).await?;
        self.expired.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// How many groups have expired since start-up.
    pub fn expired_total(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Deletes, durably and in one batch, every group `select` picks (only lists them when
    /// `dry_run`). Returns the selected groups as they were.
    pub async fn delete_where(
        &self,
        select: impl Fn(&Group) -> bool,
        dry_run: bool,
    ) -> Result<Vec<Arc<Group>>, StoreError> {
        let (picked, ticket) = {
            let mut st = self.state.lock();
            let picked: Vec<Arc<Group>> = st
                .snap
                .groups
                .values()
                .filter(|g| select(g))
                .cloned()
                .collect();
            if dry_run || picked.is_empty() {
                return Ok(picked);
            }
            for g in &picked {
                Self::remove_group(&mut st, &g.key);
            }
            self.publish(&mut st);
            let ticket = self.log(|| {
                picked
                    .iter()
                    .map(|g| Op::Delete {
                        key: g.key.canonical().to_vec(),
                    })
                    .collect()
            });
            (picked, ticket)
        };
        Self::durable(ticket).await?;
        Ok(picked)
    }

    /// Deletes every group.
    pub async fn wipe(&self) -> Result<(), StoreError> {
        let ticket = {
            let mut st = self.state.lock();
            let keys: Vec<GroupKey> = st.snap.groups.keys().cloned().collect();
            for k in &keys {
                Self::remove_group(&mut st, k);
            }
            self.publish(&mut st);
            self.log(|| vec![Op::Clear])
        };
        Self::durable(ticket).await
    }

    /// Rewrites the persistence file from the current state if anything was logged since the
    /// last rewrite. Called every `--persistence.interval`, so the file is rewritten at that
    /// cadence as the official gateway's is; it never widens the loss window (every mutation
    /// is already durable in the log before it is acknowledged).
    pub fn maybe_compact(&self, force: bool) {
        let Some(wal) = &self.wal else { return };
        let stats = wal.stats();
        if !force && stats.log_bytes <= stats.compacted_bytes {
            return;
        }
        let st = self.state.lock();
        let groups = st.snap.groups.clone();
        let iter = groups
            .into_iter()
            .map(|(k, g)| (k.canonical().to_vec(), g.encode_record()));
        wal.compact(Box::new(iter));
    }

    /// Rewrites the persistence file early when the log has grown to more than twice the
    /// live state plus 64 MiB, so that a long `--persistence.interval` under heavy pushing
    /// cannot let it grow without bound. Cheap to call often.
    pub fn compact_if_oversized(&self) {
        let Some(wal) = &self.wal else { return };
        let stats = wal.stats();
        if stats.log_bytes > stats.compacted_bytes.saturating_mul(2) + (64 << 20) {
            self.maybe_compact(true);
        }
    }

    /// Flushes the log and stops its writer.
    pub fn close(&self) -> Result<(), WalError> {
        match &self.wal {
            Some(w) => w.close(),
            None => Ok(()),
        }
    }

    /// Explains why the store is inconsistent (slow: scans the snapshot; only called when
    /// [`Snapshot::inconsistent`] is set).
    pub fn describe_inconsistency(&self, snap: &Snapshot) -> String {
        let mut ix = Index::new(self.state.lock().index.own_families());
        for g in snap.groups.values() {
            let entries: Vec<&FamilyEntry> = g.families.values().map(|e| &**e).collect();
            if let Err(e) = ix.check(&[], &entries) {
                return e;
            }
            for e in entries {
                ix.add(e);
            }
        }
        "the stored metrics are inconsistent".to_string()
    }
}

/// The expiry index key of a group with a TTL.
fn expiry_ms(g: &Group) -> i64 {
    (g.expires_at * 1000.0).ceil() as i64
}

/// How often the background task looks at the persistence log.
pub fn compaction_period(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::PUSH_EXPIRY_TIME;

    fn store(persist: Option<PathBuf>) -> Store {
        Store::open(StoreConfig {
            checked: true,
            own_families: Vec::new(),
            persistence: persist.map(|path| PersistConfig {
                path,
                sync: SyncMode::Always,
            }),
            quotas: Default::default(),
        })
        .unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn push(key: &GroupKey, time: SystemTime, ttl_ms: u64, body: &str) -> Push {
        Push {
            key: key.clone(),
            families: exposition::text_parse::parse_text(body.as_bytes()).unwrap(),
            replace: true,
            time,
            ttl_ms,
            accumulate: None,
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn group_expires_after_ttl_and_push_rearms_it() {
        let s = store(None);
        let k = GroupKey::new([("job", "a")]);
        let other = GroupKey::new([("job", "b")]);
        s.push(push(&k, at(1000), 60_000, "x 1\n")).await.unwrap();
        s.push(push(&other, at(1000), 0, "y 1\n")).await.unwrap();
        let snap = s.snapshot();
        let g = &snap.groups[&k];
        assert_eq!((g.ttl_ms, g.expires_at), (60_000, 1060.0));
        assert_eq!(snap.ttl_groups, 1);
        assert_eq!(
            g.families[PUSH_EXPIRY_TIME].text(),
            b"push_expiry_time_seconds{instance=\"\",job=\"a\"} 1060\n"
        );
        assert!(!snap.groups[&other].families.contains_key(PUSH_EXPIRY_TIME));
        assert_eq!(s.expire_due(at(1059)).await.unwrap(), 0);
        // A push re-arms the expiry.
        s.push(push(&k, at(1050), 60_000, "x 2\n")).await.unwrap();
        assert_eq!(s.expire_due(at(1100)).await.unwrap(), 0);
        assert_eq!(s.expire_due(at(1110)).await.unwrap(), 1);
        let snap = s.snapshot();
        assert!(!snap.groups.contains_key(&k));
        assert!(snap.groups.contains_key(&other), "groups without TTL stay");
        assert!(!snap.families.contains_key(PUSH_EXPIRY_TIME));
        assert_eq!(s.expired_total(), 1);
        assert_eq!(snap.ttl_groups, 0);
    }

    #[tokio::test]
    async fn failed_push_does_not_rearm_but_zero_ttl_push_clears() {
        let s = store(None);
        let k = GroupKey::new([("job", "a")]);
        s.push(push(&k, at(1000), 60_000, "x 1\n")).await.unwrap();
        // Refused (timestamps): recorded as a failure, expiry unchanged.
        assert!(s.push(push(&k, at(1030), 60_000, "x 1 5\n")).await.is_err());
        assert_eq!(s.snapshot().groups[&k].expires_at, 1060.0);
        // A successful push without a TTL makes the group permanent again.
        s.push(push(&k, at(1040), 0, "x 1\n")).await.unwrap();
        let g = s.snapshot().groups[&k].clone();
        assert_eq!((g.ttl_ms, g.expires_at), (0, 0.0));
        assert!(!g.families.contains_key(PUSH_EXPIRY_TIME));
        assert_eq!(s.expire_due(at(99_999)).await.unwrap(), 0);
        // A group created by a failed push expires too.
        let f = GroupKey::new([("job", "f")]);
        assert!(s.push(push(&f, at(2000), 10_000, "x 1 5\n")).await.is_err());
        assert_eq!(s.expire_due(at(2010)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn pushed_expiry_family_is_overridden_only_when_ttl_is_set() {
        let s = store(None);
        let k = GroupKey::new([("job", "a")]);
        let body = "# TYPE push_expiry_time_seconds gauge\npush_expiry_time_seconds 7\n";
        s.push(push(&k, at(1000), 0, body)).await.unwrap();
        let g = s.snapshot().groups[&k].clone();
        assert!(g.families[PUSH_EXPIRY_TIME].text().ends_with(b"} 7\n"));
        s.push(push(&k, at(1000), 5_000, body)).await.unwrap();
        let g = s.snapshot().groups[&k].clone();
        assert!(g.families[PUSH_EXPIRY_TIME].text().ends_with(b"} 1005\n"));
    }

    #[tokio::test]
    async fn ttl_and_expiry_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let k = GroupKey::new([("job", "a")]);
        {
            let s = store(Some(path.clone()));
            s.push(push(&k, at(1000), 60_000, "x 1\n")).await.unwrap();
            s.close().unwrap();
        }
        let s = store(Some(path.clone()));
        let g = s.snapshot().groups[&k].clone();
        assert_eq!((g.ttl_ms, g.expires_at), (60_000, 1060.0));
        assert_eq!(s.expire_due(at(1059)).await.unwrap(), 0);
        assert_eq!(s.expire_due(at(1061)).await.unwrap(), 1);
        s.close().unwrap();
        // The expiry itself is durable.
        let s = store(Some(path));
        assert!(s.snapshot().groups.is_empty());
        s.close().unwrap();
    }

    #[tokio::test]
    async fn delete_where_with_dry_run() {
        let s = store(None);
        for (j, t) in [("a", 1000), ("b", 2000), ("c", 3000)] {
            let k = GroupKey::new([("job", j)]);
            s.push(push(&k, at(t), 0, "x 1\n")).await.unwrap();
        }
        let old = |g: &Group| g.last_pushed() < 2500.0;
        let listed = s.delete_where(old, true).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(s.snapshot().groups.len(), 3, "dry run deletes nothing");
        let gone = s.delete_where(old, false).await.unwrap();
        assert_eq!(gone.len(), 2);
        let snap = s.snapshot();
        assert_eq!(snap.groups.len(), 1);
        assert_eq!(snap.families["x"].len(), 1);
    }
}
