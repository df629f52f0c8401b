//! The store: applies pushes, deletes and wipes under one short lock, checks them against the
//! consistency index, publishes an immutable [`Snapshot`] for readers, and (when persistence is
//! on) hands every mutation to the write-ahead log before the caller acknowledges it.

use crate::group::{sanitize_labels, FamilyEntry, Group, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::index::Index;
use crate::key::GroupKey;
use crate::wal::{Op, SyncMode, Ticket, Wal, WalError};
use arc_swap::ArcSwap;
use exposition::pb::{MetricFamily, MetricType};
use imbl::OrdMap;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// A push: a group key, the parsed families, and PUT (`replace`) or POST semantics.
pub struct Push {
    pub key: GroupKey,
    pub families: Vec<MetricFamily>,
    pub replace: bool,
    pub time: SystemTime,
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
}

struct State {
    snap: Snapshot,
    index: Index,
}

pub struct Store {
    state: Mutex<State>,
    current: ArcSwap<Snapshot>,
    /// Set when the state changed since `current` was cut.
    dirty: AtomicBool,
    names: RwLock<HashSet<Arc<str>, ahash::RandomState>>,
    checked: bool,
    wal: Option<Wal>,
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
            }),
            current: ArcSwap::from_pointee(Snapshot::default()),
            dirty: AtomicBool::new(false),
            names: RwLock::new(HashSet::default()),
            checked: cfg.checked,
            wal,
        };
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

    /// Applies a push. With the consistency check on, a rejected push is recorded as a failure
    /// of the group (created if missing), as the official gateway does.
    pub async fn push(&self, push: Push) -> Result<(), StoreError> {
        let ts = unix_nanos(push.time);
        let now = unix_seconds(push.time);
        let has_timestamps = push
            .families
            .iter()
            .any(|f| f.metric.iter().any(|m| m.timestamp_ms.is_some()));
        if has_timestamps {
            let t = self.record_failure(&push.key, now, ts);
            Self::durable(t).await?;
            return Err(StoreError::Timestamps);
        }
        // Encode outside the lock: concurrent pushes do this part in parallel.
        let mut entries: BTreeMap<Arc<str>, Arc<FamilyEntry>> = BTreeMap::new();
        for mut mf in push.families {
            let name = mf.name().to_string();
            if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
                continue; // always set by the gateway itself
            }
            for m in mf.metric.iter_mut() {
                sanitize_labels(m, &push.key);
            }
            let name = self.intern(&name);
            let e = FamilyEntry::build(
                name.clone(),
                mf.help.as_deref(),
                mf.metric_type(),
                &mf.metric,
                ts,
            );
            entries.insert(name, Arc::new(e));
        }
        let pt_name = self.intern(PUSH_TIME);
        let pft_name = self.intern(PUSH_FAILURE_TIME);

        let outcome: Result<Option<Ticket>, String> = {
            let mut st = self.state.lock();
            let old = st.snap.groups.get(&push.key).cloned();
            let mut group = match &old {
                Some(g) => (**g).clone(),
                None => Group {
                    key: push.key.clone(),
                    families: BTreeMap::new(),
                    push_time: 0.0,
                    push_failure_time: 0.0,
                },
            };
            if push.replace {
                group
                    .families
                    .retain(|n, _| &**n == PUSH_TIME || &**n == PUSH_FAILURE_TIME);
            }
            for (n, e) in &entries {
                group.families.insert(n.clone(), e.clone());
            }
            group.set_push_time(pt_name.clone(), now, ts);
            if !group.families.contains_key(PUSH_FAILURE_TIME) {
                group.set_push_failure_time(pft_name.clone(), 0.0, ts);
            }
            let verdict = if self.checked {
                let removed: Vec<&FamilyEntry> = match &old {
                    Some(o) => o
                        .families
                        .iter()
                        .filter(|(n, e)| {
                            group.families.get(*n).is_none_or(|ne| !Arc::ptr_eq(ne, e))
                        })
                        .map(|(_, e)| &**e)
                        .collect(),
                    None => Vec::new(),
                };
                let added: Vec<&FamilyEntry> = group
                    .families
                    .iter()
                    .filter(|(n, e)| {
                        old.as_ref()
                            .and_then(|o| o.families.get(*n))
                            .is_none_or(|oe| !Arc::ptr_eq(oe, e))
                    })
                    .map(|(_, e)| &**e)
                    .collect();
                st.index.check(&removed, &added)
            } else {
                Ok(())
            };
            match verdict {
                Ok(()) => {
                    let group = Arc::new(group);
                    Self::insert_group(&mut st, group.clone(), old.as_deref());
                    self.publish(&mut st);
                    Ok(self.log(|| vec![Self::put_op(&group)]))
                }
                Err(msg) => Err(msg),
            }
        };
        match outcome {
            Ok(ticket) => Self::durable(ticket).await,
            Err(msg) => {
                let t = self.record_failure(&push.key, now, ts);
                Self::durable(t).await?;
                Err(StoreError::Inconsistent(msg))
            }
        }
    }

    /// Records a failed change of a group (official `setPushFailedTimestamp`).
    fn record_failure(&self, key: &GroupKey, now: f64, ts: i64) -> Option<Ticket> {
        let pt_name = self.intern(PUSH_TIME);
        let pft_name = self.intern(PUSH_FAILURE_TIME);
        let mut st = self.state.lock();
        let old = st.snap.groups.get(key).cloned();
        let mut group = match &old {
            Some(g) => (**g).clone(),
            None => Group {
                key: key.clone(),
                families: BTreeMap::new(),
                push_time: 0.0,
                push_failure_time: 0.0,
            },
        };
        group.set_push_failure_time(pft_name, now, ts);
        if !group.families.contains_key(PUSH_TIME) {
            group.set_push_time(pt_name, 0.0, ts);
        }
        let group = Arc::new(group);
        Self::insert_group(&mut st, group.clone(), old.as_deref());
        self.publish(&mut st);
        self.log(|| vec![Self::put_op(&group)])
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

/// How often the background task looks at the persistence log.
pub fn compaction_period(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(1))
}
