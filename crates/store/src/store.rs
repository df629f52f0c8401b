//! The store: applies pushes, deletes and wipes under one short lock, checks them against the
//! consistency index, publishes an immutable [`Snapshot`] for readers, and (when persistence is
//! on) hands every mutation to the write-ahead log before the caller acknowledges it.

use crate::accumulate::{self, Accumulate};
use crate::group::{
    is_time_gauge, sanitize_labels, sanitize_labels_placeholders, FamilyEntry, Group,
    PUSH_EXPIRY_TIME, PUSH_FAILURE_TIME, PUSH_TIME, PUSH_TIME_HELP,
};
use crate::idempotency;
use crate::index::Index;
use crate::key::GroupKey;
use crate::wal::{Op, Recovered, SyncMode, Ticket, Wal, WalError};
use arc_swap::ArcSwap;
use exposition::pb::{Metric, MetricFamily, MetricType};
use imbl::OrdMap;
use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
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
    /// The mutation could not be made durable; it was undone (nothing changed).
    #[error("persisting the change failed, so it was not applied: {0}")]
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
    /// The group whose labels the entries store once ([`crate::shared`]).
    shared: Option<GroupKey>,
    /// The series identities of the entries in `entries` and of `push_time`, computed
    /// outside the store lock (kept only while the push is applied, not in the stored
    /// entries).
    series: Vec<(Arc<FamilyEntry>, Vec<u64>)>,
    /// The group's `push_time_seconds` gauge for a successful push (built outside the lock;
    /// `None` for a push refused before it is planned).
    push_time: Option<Arc<FamilyEntry>>,
}

/// The series identities ([`FamilyEntry::series`]) of the entries one push touches: each
/// computed once, for the consistency check and the index update both. Entries are told
/// apart by address; the `Arc`s kept here keep those addresses from being reused.
#[derive(Default)]
struct SeriesIds<'p> {
    /// Computed by [`Store::prepare`].
    prepared: &'p [(Arc<FamilyEntry>, Vec<u64>)],
    /// Computed under the lock (old entries, the gateway's gauges, merged entries).
    more: Vec<(Arc<FamilyEntry>, Vec<u64>)>,
}

impl<'p> SeriesIds<'p> {
    fn new(prepared: &'p [(Arc<FamilyEntry>, Vec<u64>)]) -> Self {
        SeriesIds {
            prepared,
            more: Vec::new(),
        }
    }

    /// The identities of `e`: its own, or those of a known entry with the same series
    /// ([`FamilyEntry::same_series`]: the old version of a family pushed again).
    fn find(&self, e: &FamilyEntry) -> Option<&[u64]> {
        let known = || self.prepared.iter().chain(self.more.iter());
        known()
            .find(|(k, _)| std::ptr::eq(&**k, e))
            .or_else(|| known().find(|(k, _)| k.same_series(e)))
            .map(|(_, ids)| &ids[..])
    }

    /// Computes the identities of `e` unless known.
    fn ensure(&mut self, e: &Arc<FamilyEntry>) {
        if self.find(e).is_none() {
            self.more.push((e.clone(), e.series()));
        }
    }

    /// The identities of `e`, computed now if not known.
    fn get<'a>(&'a self, e: &FamilyEntry) -> Cow<'a, [u64]> {
        match self.find(e) {
            Some(ids) => Cow::Borrowed(ids),
            None => Cow::Owned(e.series()),
        }
    }
}

/// A group decoded by a restore worker, with the series identities of its entries computed
/// there too (the thread that inserts the groups into the maps and the index is the one that
/// bounds a restore's time).
struct DecodedGroup {
    group: Arc<Group>,
    series: Vec<(Arc<FamilyEntry>, Vec<u64>)>,
}

impl DecodedGroup {
    fn new(group: Group) -> DecodedGroup {
        let series = group
            .families
            .values()
            .filter(|e| e.metric_count > 0)
            .map(|e| (e.clone(), e.series()))
            .collect();
        DecodedGroup {
            group: Arc::new(group),
            series,
        }
    }
}

/// An accumulating push's families merged with one version of its group (`old`), outside
/// the store lock.
struct Premerged {
    old: Arc<Group>,
    entries: BTreeMap<Arc<str>, Result<Arc<FamilyEntry>, String>>,
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

/// Everything a mutation changes, behind [`Store::state`]: one short lock per mutation.
struct State {
    /// The live maps: changed in place by mutations, cloned (O(1), persistent maps) into
    /// [`Store::current`] when a reader finds the store dirty.
    snap: Snapshot,
    /// The consistency index over `snap`: makes a checked push O(size of the push) and tells
    /// in O(1) whether the whole store is consistent.
    index: Index,
    /// Groups with a TTL, by expiry time (Unix milliseconds).
    expiry: BTreeSet<(i64, GroupKey)>,
    /// Pushed series (metrics) over all groups, for the total-series quota.
    series: u64,
}

/// The metric store: every group, the consistency index and the persistence log. `Send +
/// Sync`; share it via `Arc`. Mutations take `state` briefly; scrapes read `current` without
/// taking any lock.
pub struct Store {
    /// The mutable state. Held only while a change is applied, never across I/O: a durable
    /// mutation logs its ops under the lock and waits for the log's ticket after releasing it.
    state: Mutex<State>,
    /// The last published snapshot, read lock-free by scrapes and API calls.
    current: ArcSwap<Snapshot>,
    /// Set when the state changed since `current` was cut.
    dirty: AtomicBool,
    /// Family names interned once, so the families of every group share one allocation per
    /// name (restoring and decoding replicated groups use it too).
    names: RwLock<crate::intern::Interner>,
    /// Whether pushes are checked for consistency (`--push.disable-consistency-check` turns
    /// it off).
    checked: bool,
    /// The persistence log (`--persistence.file`); `None` keeps everything in memory only.
    wal: Option<Wal>,
    /// Groups removed by TTL expiry so far (exposed as a metric).
    expired: AtomicU64,
    /// Summary quantiles dropped from accumulating pushes.
    dropped_quantiles: AtomicU64,
    /// Accumulating pushes to one group take turns (see [`Store::push`]).
    turns: crate::turn::Turns,
    /// Limits on groups and series (`--push.max-*`), checked before a push is applied.
    quotas: Quotas,
    /// The gateway's own per-group gauges, interned once: push time, failure time, expiry.
    gauge_names: [Arc<str>; 3],
    /// How to undo the logged changes that are not durable yet (synchronous log only), in
    /// log order. Locked after `state` when both are held.
    undo: Mutex<std::collections::VecDeque<Undo>>,
    /// `--push.enable-utf8-names`: label names of pushed metrics may be any UTF-8 (else they
    /// must be legacy names, as in 1.5.1 and the text format without the flag).
    utf8_label_names: AtomicBool,
}

/// The version of a group before a logged change (`None`: the group did not exist).
struct Undo {
    /// The log sequence number of the change ([`Wal::append_seq`]): undone if the log's
    /// durable sequence number stops below it.
    seq: u64,
    /// The group the change touched.
    key: GroupKey,
    /// The group as it was before the change.
    old: Option<Arc<Group>>,
}

/// Calls `f(name, old's entry, new's entry)` for every family name of `old` or `new` (only
/// those in `changed`, if given), in name order, except where both hold the same entry.
/// A walk of the two sorted maps side by side: no lookups, and no name compared by content
/// when both versions hold the same interned name.
fn for_each_changed<'g>(
    old: Option<&'g Group>,
    new: &'g Group,
    changed: Option<&[Arc<str>]>,
    mut f: impl FnMut(&'g Arc<str>, Option<&'g Arc<FamilyEntry>>, Option<&'g Arc<FamilyEntry>>),
) {
    let mut emit = |name, o: Option<&'g Arc<FamilyEntry>>, n: Option<&'g Arc<FamilyEntry>>| {
        if !o.zip(n).is_some_and(|(o, n)| Arc::ptr_eq(o, n)) {
            f(name, o, n)
        }
    };
    if let Some(changed) = changed {
        for name in changed {
            let o = old.and_then(|g| g.families.get_key_value(name));
            let n = new.families.get_key_value(name);
            if let Some((name, _)) = o.or(n) {
                emit(name, o.map(|(_, e)| e), n.map(|(_, e)| e));
            }
        }
        return;
    }
    let mut a = old.into_iter().flat_map(|g| g.families.iter()).peekable();
    let mut b = new.families.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((na, _)), Some((nb, _))) if Arc::ptr_eq(na, nb) => std::cmp::Ordering::Equal,
            (Some((na, _)), Some((nb, _))) => na.cmp(nb),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (name, o) = a.next().expect("peeked");
                emit(name, Some(o), None);
            }
            std::cmp::Ordering::Greater => {
                let (name, n) = b.next().expect("peeked");
                emit(name, None, Some(n));
            }
            std::cmp::Ordering::Equal => {
                let (name, o) = a.next().expect("peeked");
                let (_, n) = b.next().expect("peeked");
                emit(name, Some(o), Some(n));
            }
        }
    }
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
                (Some(wal), rec)
            }
            None => (None, Recovered::default()),
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
            names: RwLock::new(Default::default()),
            checked: cfg.checked,
            wal,
            expired: AtomicU64::new(0),
            dropped_quantiles: AtomicU64::new(0),
            turns: Default::default(),
            quotas: cfg.quotas,
            gauge_names: [PUSH_TIME, PUSH_FAILURE_TIME, PUSH_EXPIRY_TIME].map(Arc::from),
            undo: Mutex::new(Default::default()),
            utf8_label_names: AtomicBool::new(false),
        };
        // The same allocations as every restored or decoded group uses.
        for n in &store.gauge_names {
            store.names.write().intern(n);
        }
        store.restore(recovered);
        Ok(store)
    }

    /// Allows UTF-8 label names in pushed metrics (`--push.enable-utf8-names`); without it a
    /// label name that is not a legacy name makes the push inconsistent (400, recorded as a
    /// failed push), as in 1.5.1. Family names may be UTF-8 either way.
    pub fn allow_utf8_label_names(&self, on: bool) {
        self.utf8_label_names.store(on, Ordering::Relaxed);
    }

    fn restore(&self, mut recovered: Recovered) {
        if recovered.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Persistence keys are the canonical key bytes, so this is group order: inserting in
        // it always extends the right edge of the trees.
        recovered.sort();
        // Worker threads decode chunks straight from the file's bytes (rebuilding the series
        // identities and push-time gauges) while this thread inserts finished chunks, in
        // order, into the maps, and hands them on to one more thread that adds them to the
        // consistency index (the two halves are independent: see `insert_group_changed`).
        const CHUNK: usize = 2048;
        let total = recovered.len();
        let chunks = total.div_ceil(CHUNK);
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut st = self.state.lock();
        st.index.reserve(total * 16);
        // Owned by the index thread until the restore is done (nothing else can see the state:
        // the lock is held).
        let mut index = std::mem::take(&mut st.index);
        let mut n = 0;
        std::thread::scope(|s| {
            let (to_index, for_index) = std::sync::mpsc::sync_channel::<Vec<DecodedGroup>>(4);
            let index = &mut index;
            s.spawn(move || {
                for groups in for_index {
                    for g in &groups {
                        Self::index_group(index, &g.group, None, None, &SeriesIds::new(&g.series));
                    }
                }
            });
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Vec<DecodedGroup>)>();
            for _ in 0..workers {
                let tx = tx.clone();
                let (recovered, next) = (&recovered, &next);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        break;
                    }
                    let part = i * CHUNK..((i + 1) * CHUNK).min(total);
                    let mut out = Vec::with_capacity(part.len());
                    for j in part {
                        match Group::decode_record_bytes(recovered.value(j), &mut |n| {
                            self.intern(n)
                        }) {
                            Ok(g) => out.push(DecodedGroup::new(g)),
                            Err(e) => tracing::error!(
                                key = %String::from_utf8_lossy(recovered.key(j))
                                    .replace('\u{fffd}', "/"),
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
                    for g in &groups {
                        n += 1;
                        Self::link_group(&mut st, g.group.clone(), None, None);
                    }
                    // Only fails if the index thread panicked (the scope then panics too).
                    let _ = to_index.send(groups);
                    want += 1;
                }
            }
            drop(to_index);
        });
        st.index = index;
        // The file's bytes go now, not with the caller's frame.
        drop(recovered);
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
            return n;
        }
        self.names.write().intern(name)
    }

    /// How many distinct family names are interned.
    #[cfg(test)]
    pub(crate) fn interned_name_count(&self) -> usize {
        self.names.read().len()
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
        Self::insert_group_changed(st, new, old, None, &SeriesIds::default())
    }

    /// [`Store::insert_group`] where only the families named in `changed` (if given) can
    /// differ between `old` and `new`: a POST then costs its own size, not the group's.
    fn insert_group_changed(
        st: &mut State,
        new: Arc<Group>,
        old: Option<&Group>,
        changed: Option<&[Arc<str>]>,
        ids: &SeriesIds<'_>,
    ) {
        Self::index_group(&mut st.index, &new, old, changed, ids);
        Self::link_group(st, new, old, changed);
    }

    /// The index half of [`Store::insert_group_changed`] (independent of the other half, so a
    /// restore runs the two on two threads).
    fn index_group(
        index: &mut Index,
        new: &Group,
        old: Option<&Group>,
        changed: Option<&[Arc<str>]>,
        ids: &SeriesIds<'_>,
    ) {
        // A family replaced by one with the same type and series (pushed again with new
        // values, or a push-time gauge) leaves the index as it was, but for its validity.
        let same = |o: &FamilyEntry, n: &FamilyEntry| o.mtype == n.mtype && n.same_series(o);
        // Every removal before the additions.
        for_each_changed(old, new, changed, |_, o, n| match (o, n) {
            (Some(o), Some(n)) if same(o, n) => index.replace_same(o, n),
            (Some(o), _) => index.remove_series(o, &ids.get(o)),
            (None, _) => {}
        });
        for_each_changed(old, new, changed, |_, o, n| match (o, n) {
            (Some(o), Some(n)) if same(o, n) => {}
            (_, Some(n)) => index.add_series(n, &ids.get(n)),
            (_, None) => {}
        });
    }

    /// The snapshot-map half of [`Store::insert_group_changed`]: expiry, series count,
    /// families by name, and the group itself.
    fn link_group(
        st: &mut State,
        new: Arc<Group>,
        old: Option<&Group>,
        changed: Option<&[Arc<str>]>,
    ) {
        if let Some(old) = old.filter(|o| o.ttl_ms != 0) {
            st.expiry.remove(&(expiry_ms(old), old.key.clone()));
        }
        if new.ttl_ms != 0 {
            st.expiry.insert((expiry_ms(&new), new.key.clone()));
        }
        st.series = st.series + new.pushed_series() - old.map_or(0, |o| o.pushed_series());
        let families = &mut st.snap.families;
        for_each_changed(old, &new, changed, |name, o, n| {
            // A non-empty replacement overwrites the link; only unlink otherwise.
            let replaced = n.is_some_and(|n| n.metric_count > 0);
            if let (Some(old), Some(o)) = (old, o) {
                if o.metric_count > 0 && !replaced {
                    Self::unlink_family(families, name, &old.key);
                }
            }
            if let Some(e) = n.filter(|_| replaced) {
                match families.get_mut(name) {
                    Some(inner) => {
                        inner.insert(new.key.clone(), e.clone());
                    }
                    None => {
                        families
                            .insert(name.clone(), imbl::OrdMap::unit(new.key.clone(), e.clone()));
                    }
                }
            }
        });
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

    /// Logs a change already made to the state (called under the state lock), remembering
    /// the previous versions of the groups it touched so that it can be undone if the log
    /// fails to make it durable.
    fn log_undoable(
        &self,
        undo: impl IntoIterator<Item = (GroupKey, Option<Arc<Group>>)>,
        ops: impl FnOnce() -> Vec<Op>,
    ) -> Option<Ticket> {
        let wal = self.wal.as_ref()?;
        let (seq, ticket) = wal.append_seq(ops());
        if wal.is_synchronous() {
            let mut u = self.undo.lock();
            u.extend(undo.into_iter().map(|(key, old)| Undo { seq, key, old }));
        }
        Some(ticket)
    }

    /// After a failed write: undoes every change the log did not make durable, newest
    /// first, and lets the log accept changes again. Called under the state lock (before
    /// every change, and by a caller whose change failed), so no change is ever planned
    /// on top of one that is not in the file.
    fn roll_back_locked(&self, st: &mut State) {
        let Some(wal) = &self.wal else { return };
        if wal.failed().is_none() {
            return;
        }
        let durable = wal.durable_seq();
        let mut undo = self.undo.lock();
        let mut n = 0;
        while undo.back().is_some_and(|u| u.seq > durable) {
            let u = undo.pop_back().expect("checked");
            let current = st.snap.groups.get(&u.key).cloned();
            match u.old {
                Some(old) => Self::insert_group(st, old, current.as_deref()),
                None => {
                    Self::remove_group(st, &u.key);
                }
            }
            n += 1;
        }
        drop(undo);
        self.publish(st);
        wal.resume();
        tracing::warn!(
            undone = n,
            "undid the changes whose write to the persistence file failed"
        );
    }

    fn put_op(g: &Group) -> Op {
        Op::Put {
            key: g.key.canonical().to_vec(),
            value: g.encode_record(),
        }
    }

    async fn durable(&self, ticket: Option<Ticket>) -> Result<(), StoreError> {
        let Some(t) = ticket else { return Ok(()) };
        let result = t.wait().await;
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                let durable = wal.durable_seq();
                let mut undo = self.undo.lock();
                while undo.front().is_some_and(|u| u.seq <= durable) {
                    undo.pop_front();
                }
                Ok(())
            }
            Err(e) => {
                // Undone before the caller answers, so the refusal really changes nothing.
                self.roll_back_locked(&mut self.state.lock());
                Err(StoreError::Persist(e))
            }
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
        let mut series = Vec::new();
        let mut dropped_quantiles = 0;
        // The stored group's key (its labels are stored once) and push-time gauge.
        let (shared, template) = if has_timestamps {
            (None, None)
        } else {
            let (key, template) = self.stored_key(&push.key);
            (Some(key), template)
        };
        if !has_timestamps {
            for mut mf in push.families {
                let name = mf.name().to_string();
                if is_time_gauge(&name) || (push.ttl_ms != 0 && name == PUSH_EXPIRY_TIME) {
                    continue; // always set by the gateway itself
                }
                // An accumulating push's metrics keep the real grouping values: they are
                // merged with stored metrics, which decode with the real values.
                for m in mf.metric.iter_mut() {
                    if push.accumulate.is_some() {
                        sanitize_labels(m, &push.key);
                    } else {
                        sanitize_labels_placeholders(m, &push.key);
                    }
                }
                if push.accumulate.is_some() {
                    dropped_quantiles +=
                        accumulate::normalize(mf.metric_type(), &mut mf.metric, ts);
                }
                let name = self.intern(&name);
                // An accumulating family is encoded when it is planned (merged with the
                // stored one, or alone); here only its header is kept.
                let encode = if push.accumulate.is_some() {
                    &[][..]
                } else {
                    &mf.metric[..]
                };
                let (mut e, ids) = FamilyEntry::build_shared_series(
                    name.clone(),
                    mf.help.as_deref(),
                    mf.metric_type(),
                    encode,
                    ts,
                    shared.as_ref(),
                );
                if e.invalid.is_none() && !self.utf8_label_names.load(Ordering::Relaxed) {
                    e.invalid = mf
                        .metric
                        .iter()
                        .find_map(|m| crate::check::legacy_label_names(&name, m).err())
                        .into();
                }
                let e = Arc::new(e);
                if e.metric_count > 0 {
                    series.push((e.clone(), ids));
                }
                entries.insert(name.clone(), e);
                if push.accumulate.is_some() {
                    pushed.insert(name, std::mem::take(&mut mf.metric));
                }
            }
        }
        if dropped_quantiles > 0 {
            self.dropped_quantiles
                .fetch_add(dropped_quantiles, Ordering::Relaxed);
        }
        let push_time = shared.as_ref().map(|key| {
            let e = Group::time_gauge_from(
                template.as_deref(),
                key,
                self.gauge_names[0].clone(),
                PUSH_TIME_HELP,
                now,
                ts,
            );
            series.push((e.clone(), e.series()));
            e
        });
        Prepared {
            key: push.key,
            entries,
            // An accumulating PUT adds to the group like a POST.
            replace: push.replace && push.accumulate.is_none(),
            now,
            ts,
            ttl_ms: push.ttl_ms,
            has_timestamps,
            accumulate: push.accumulate,
            pushed,
            idempotency: push.idempotency_key.as_deref().map(idempotency::digest),
            dropped_quantiles,
            shared,
            series,
            push_time,
        }
    }

    /// Summary quantiles dropped from accumulating pushes since start-up
    /// (`pushgateway_accumulate_dropped_quantiles_total`).
    pub fn dropped_quantiles_total(&self) -> u64 {
        self.dropped_quantiles.load(Ordering::Relaxed)
    }

    /// The key whose pre-encoded labels the entries of a push to `key` store once
    /// ([`crate::shared`]): the stored group's, if there is one (so that a group's entries
    /// share one, computed once), else `key`; and the stored `push_time_seconds`
    /// gauge, which the push's own is made from ([`Group::time_gauge_from`]).
    fn stored_key(&self, key: &GroupKey) -> (GroupKey, Option<Arc<FamilyEntry>>) {
        // The live version (the published snapshot lags behind until a reader comes): held
        // for one lookup.
        let stored = self.state.lock().snap.groups.get(key).cloned();
        match stored {
            Some(g) => (g.key.clone(), g.families.get(PUSH_TIME).cloned()),
            None => (key.clone(), None),
        }
    }

    /// Applies a push. With the consistency check on, a rejected push is recorded as a failure
    /// of the group (created if missing), as the official gateway does.
    ///
    /// An accumulating push takes its group's turn (accumulating pushes to one group take
    /// turns), merges with the stored group outside the store lock, and under the lock uses
    /// that merge if the group did not change meanwhile (else merges again there).
    pub async fn push(&self, push: Push) -> Result<(), StoreError> {
        let p = self.prepare(push);
        let _turn = match p.accumulate {
            Some(_) => Some(self.turns.take(&p.key).await),
            None => None,
        };
        let pre = self.premerge(&p);
        let (ticket, result) = 'planned: {
            let mut st = self.state.lock();
            self.roll_back_locked(&mut st);
            let old = st.snap.groups.get(&p.key).cloned();
            let mut ids = SeriesIds::new(&p.series);
            let planned = self.plan_locked(&st, &p, old.as_ref(), pre.as_ref(), &mut ids);
            let (group, result) = match planned {
                Plan::Accept(group) => (group, Ok(())),
                Plan::Record(group, err) => (group, Err(err)),
                Plan::Refuse(err) => return Err(err),
                // Answered only once the push that recorded the key is durable too; nothing
                // new is logged.
                Plan::Unchanged => break 'planned (self.log(Vec::new), Ok(())),
            };
            let group = Arc::new(group);
            let changed = self.changed_names(&p, old.as_deref());
            Self::insert_group_changed(
                &mut st,
                group.clone(),
                old.as_deref(),
                changed.as_deref(),
                &ids,
            );
            self.publish(&mut st);
            // A POST (or a recorded failure) to an existing group logs only what changed.
            let delta = old.is_some() && (!p.replace || result.is_err());
            let none = BTreeMap::new();
            let changed = if result.is_ok() { &p.entries } else { &none };
            let ticket = self.log_undoable([(p.key.clone(), old)], || {
                vec![if delta {
                    Op::Append {
                        key: group.key.canonical().to_vec(),
                        value: group.encode_delta(changed.keys()),
                    }
                } else {
                    Self::put_op(&group)
                }]
            });
            (ticket, result)
        };
        // Keeps the file within its bound however the pushes are shaped (cheap to check).
        self.compact_if_oversized();
        self.durable(ticket).await?;
        result
    }

    /// What a prepared push would do to the current version of its group (replicated mode:
    /// the caller writes the outcome to the shared log, then applies it).
    pub fn plan(&self, p: &Prepared) -> (Option<Arc<Group>>, Plan) {
        let pre = self.premerge(p);
        let st = self.state.lock();
        let old = st.snap.groups.get(&p.key).cloned();
        let plan = self.plan_locked(
            &st,
            p,
            old.as_ref(),
            pre.as_ref(),
            &mut SeriesIds::new(&p.series),
        );
        (old, plan)
    }

    /// The only families an accepted POST can change in an existing group (the pushed ones
    /// and the gateway's gauges), sorted and unique; `None` when any may change (PUT, new
    /// group).
    fn changed_names(&self, p: &Prepared, old: Option<&Group>) -> Option<Vec<Arc<str>>> {
        if p.replace || old.is_none() {
            return None;
        }
        let mut ns: Vec<Arc<str>> = p
            .entries
            .keys()
            .chain(self.gauge_names.iter())
            .cloned()
            .collect();
        ns.sort_unstable();
        ns.dedup();
        Some(ns)
    }

    /// An accumulating push merged with the current version of its group, outside the store
    /// lock (the merge costs O(size of the touched families)); `None` for other pushes and
    /// new groups.
    fn premerge(&self, p: &Prepared) -> Option<Premerged> {
        let acc = p.accumulate?;
        let old = self.state.lock().snap.groups.get(&p.key).cloned()?;
        if p.idempotency
            .as_ref()
            .is_some_and(|d| old.seen_keys.contains(d, 0))
        {
            return None; // answered from the key, nothing to merge
        }
        let entries = p
            .entries
            .iter()
            .filter_map(|(n, e)| {
                let o = old
                    .families
                    .get(n)
                    .filter(|o| o.metric_count > 0 && !old.is_gateway_family(n))?;
                Some((n.clone(), Self::merge_entry(p, acc, o, e).map(Arc::new)))
            })
            .collect();
        Some(Premerged { old, entries })
    }

    /// Builds the new version of the group and checks it (quotas, consistency). `pre`: the
    /// push already merged with some version of the group; used if that is still `old`.
    fn plan_locked(
        &self,
        st: &State,
        p: &Prepared,
        old_arc: Option<&Arc<Group>>,
        pre: Option<&Premerged>,
        ids: &mut SeriesIds<'_>,
    ) -> Plan {
        let old = old_arc.map(|g| &**g);
        let pre = pre.filter(|pre| old_arc.is_some_and(|o| Arc::ptr_eq(o, &pre.old)));
        let [pt_name, pft_name, exp_name] = &self.gauge_names;
        if p.has_timestamps {
            return self.failure_plan(st, p, old, StoreError::Timestamps);
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
        if let Err(e) = Self::apply_entries(p, pre, &mut group) {
            return self.failure_plan(st, p, old, e);
        }
        if let Some(d) = p.idempotency {
            group.seen_keys.record(d, now_ms, key_since_ms);
        }
        match &p.push_time {
            Some(e) => group.put_push_time(p.now, e.clone()),
            None => group.set_push_time(pt_name.clone(), p.now, p.ts),
        }
        if p.ttl_ms != 0 {
            group.set_ttl(exp_name.clone(), p.ttl_ms, p.now, p.ts);
        }
        if !group.families.contains_key(PUSH_FAILURE_TIME) {
            group.set_push_failure_time(pft_name.clone(), 0.0, p.ts);
        }
        // The identities of the gauges just set (one series each), so that the index finds
        // them the same as the old ones (checked or not).
        for n in [pt_name, pft_name, exp_name] {
            if let Some(e) = group.families.get(n) {
                if !old
                    .and_then(|o| o.families.get(n))
                    .is_some_and(|o| Arc::ptr_eq(o, e))
                {
                    ids.ensure(e);
                }
            }
        }
        if let Some(q) = self.quota_check(st, &group, old) {
            return Plan::Refuse(StoreError::Quota(q));
        }
        if self.checked {
            if let Err(msg) = self.check_consistency(st, p, old, &group, ids) {
                return self.failure_plan(st, p, old, StoreError::Inconsistent(msg.to_string()));
            }
        }
        Plan::Accept(group)
    }

    /// The plan of a refused push: the group (existing, or new if it fits in the quota) with
    /// its failure recorded, or a refusal without any change.
    fn failure_plan(&self, st: &State, p: &Prepared, old: Option<&Group>, err: StoreError) -> Plan {
        let [pt_name, pft_name, exp_name] = &self.gauge_names;
        let mut group = match old {
            Some(g) => g.clone(),
            // A refused push records its failure only in a group that exists or fits
            // in the quota (else timestamped pushes could create groups without limit).
            None if self.quotas.max_groups != 0
                && st.snap.groups.len() as u64 >= self.quotas.max_groups =>
            {
                return Plan::Refuse(err);
            }
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
        // A new group holding only the failure record must itself be consistent: its
        // push-time series could repeat another group's (`{job="a",instance=""}` is the same
        // series as `{job="a"}`), and recording it would make every scrape fail.
        if old.is_none() {
            let added: Vec<&FamilyEntry> = group.families.values().map(|e| &**e).collect();
            if st.index.check(&[], &added).is_err() {
                return Plan::Refuse(err);
            }
        }
        Plan::Record(group, err)
    }

    /// Puts the pushed families into `group`: as they are, or (accumulating pushes) merged
    /// into the stored ones, reusing merges done before the lock (`pre`).
    fn apply_entries(
        p: &Prepared,
        pre: Option<&Premerged>,
        group: &mut Group,
    ) -> Result<(), StoreError> {
        for (n, e) in &p.entries {
            let stored = group
                .families
                .get(n)
                .filter(|o| o.metric_count > 0 && !group.is_gateway_family(n));
            match (p.accumulate, stored) {
                (Some(acc), Some(o)) => {
                    let merged = match pre.and_then(|pre| pre.entries.get(n)) {
                        Some(done) => done.clone(),
                        None => Self::merge_entry(p, acc, o, e).map(Arc::new),
                    };
                    let merged = merged.map_err(StoreError::Accumulate)?;
                    group.families.insert(n.clone(), merged);
                }
                (Some(_), None) => {
                    let pushed = p.pushed.get(n).map_or(&[][..], |v| &v[..]);
                    accumulate::validate(n, e.mtype, pushed).map_err(StoreError::Accumulate)?;
                    let built = Self::build_accumulated(p, e, e.help.as_deref(), pushed.to_vec());
                    group.families.insert(n.clone(), Arc::new(built));
                }
                (None, _) => {
                    group.families.insert(n.clone(), e.clone());
                }
            }
        }
        Ok(())
    }

    /// Checks `group`, the new version of `old`, against the index: only the families the
    /// push changed (or every family of both versions when that is not known).
    fn check_consistency(
        &self,
        st: &State,
        p: &Prepared,
        old: Option<&Group>,
        group: &Group,
        ids: &mut SeriesIds<'_>,
    ) -> Result<(), crate::index::Inconsistency> {
        let changed = self.changed_names(p, old);
        let (mut removed, mut added): (Vec<&Arc<FamilyEntry>>, Vec<&Arc<FamilyEntry>>) =
            Default::default();
        for_each_changed(old, group, changed.as_deref(), |_, o, n| {
            removed.extend(o);
            added.extend(n);
        });
        // The pushed entries first: an old entry with the same series as one of them then
        // takes its identities ([`SeriesIds::find`]) instead of computing its own.
        for e in added.iter().chain(removed.iter()) {
            ids.ensure(e);
        }
        let ids = &*ids;
        let (removed, removed_ids): (Vec<&FamilyEntry>, Vec<&[u64]>) = removed
            .iter()
            .map(|e| (&***e, ids.find(e).unwrap_or_default()))
            .unzip();
        let (added, added_ids): (Vec<&FamilyEntry>, Vec<&[u64]>) = added
            .iter()
            .map(|e| (&***e, ids.find(e).unwrap_or_default()))
            .unzip();
        st.index
            .check_series(&removed, &removed_ids, &added, &added_ids)
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
        accumulate::validate(&new.name, new.mtype, pushed)?;
        let merged = accumulate::merge_family(
            &new.name,
            new.mtype,
            old.metrics(),
            old.timestamp_ns,
            pushed,
            acc.gauges,
        )?;
        Ok(Self::build_accumulated(
            p,
            new,
            new.help.as_deref().or(old.help.as_deref()),
            merged,
        ))
    }

    /// Builds an accumulating push's entry for family `new` from metrics holding the real
    /// grouping values (merged, or pushed alone), storing the group's long grouping values
    /// once ([`FamilyEntry::build_shared`]), as other pushes do.
    fn build_accumulated(
        p: &Prepared,
        new: &FamilyEntry,
        help: Option<&str>,
        metrics: Vec<Metric>,
    ) -> FamilyEntry {
        FamilyEntry::build_shared(
            new.name.clone(),
            help,
            new.mtype,
            &metrics,
            p.ts,
            p.shared.as_ref(),
        )
    }

    /// Replicated mode: sets a group to the version read from the shared log (`None`: it
    /// was deleted). No check: the log is the source of truth. With a persistence file the
    /// change is also logged locally, without waiting for it (a warm cache for restarts).
    pub fn apply_replicated(&self, key: &GroupKey, group: Option<Group>) {
        let mut st = self.state.lock();
        // No undo here (the shared log is the truth); only lets the local log resume.
        self.roll_back_locked(&mut st);
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

    /// Replicated mode, once caught up: [`Store::apply_replicated`] for a new version of a
    /// group, but only if it keeps the mirror consistent (with the check on). Replicas apply
    /// the shared log's records in the same (revision) order, so all of them take the same
    /// decision; a refused version leaves the mirror unchanged and says why. A version that
    /// records a refused push (its failure time is newer than its push time) adds nothing
    /// pushed to the version before it and is applied as is, as [`Store::push`] does.
    pub fn apply_replicated_checked(&self, key: &GroupKey, group: Group) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        let old = st.snap.groups.get(key).cloned();
        let records_failure = group.push_failure_time > group.push_time;
        if self.checked && !records_failure {
            let removed: Vec<&FamilyEntry> = old
                .iter()
                .flat_map(|o| o.families.values().map(|e| &**e))
                .collect();
            let added: Vec<&FamilyEntry> = group.families.values().map(|e| &**e).collect();
            st.index
                .check(&removed, &added)
                .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        }
        let g = Arc::new(group);
        Self::insert_group(&mut st, g.clone(), old.as_deref());
        let op = Self::put_op(&g);
        self.publish(&mut st);
        drop(self.log(|| vec![op]));
        Ok(())
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
            self.roll_back_locked(&mut st);
            let old = st.snap.groups.get(key).cloned();
            if Self::remove_group(&mut st, key) {
                self.publish(&mut st);
                self.log_undoable([(key.clone(), old)], || {
                    vec![Op::Delete {
                        key: key.canonical().to_vec(),
                    }]
                })
            } else {
                None
            }
        };
        self.durable(ticket).await
    }

    /// Deletes every group whose expiry time has passed at `now`, durably; returns how many.
    pub async fn expire_due(&self, now: SystemTime) -> Result<usize, StoreError> {
        let now_ms = unix_nanos(now).div_euclid(1_000_000);
        let (n, ticket) = {
            let mut st = self.state.lock();
            self.roll_back_locked(&mut st);
            // The set is ordered by expiry time: this walks only the due entries.
            let due: Vec<GroupKey> = st
                .expiry
                .iter()
                .take_while(|(t, _)| *t <= now_ms)
                .map(|(_, k)| k.clone())
                .collect();
            let mut undo = Vec::with_capacity(due.len());
            for k in &due {
                undo.push((k.clone(), st.snap.groups.get(k).cloned()));
                Self::remove_group(&mut st, k);
                tracing::info!(group = ?k, "group expired");
            }
            if due.is_empty() {
                return Ok(0);
            }
            self.publish(&mut st);
            let ticket = self.log_undoable(undo, || {
                due.iter()
                    .map(|k| Op::Delete {
                        key: k.canonical().to_vec(),
                    })
                    .collect()
            });
            (due.len(), ticket)
        };
        self.durable(ticket).await?;
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
            self.roll_back_locked(&mut st);
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
            let undo = picked.iter().map(|g| (g.key.clone(), Some(g.clone())));
            let ticket = self.log_undoable(undo, || {
                picked
                    .iter()
                    .map(|g| Op::Delete {
                        key: g.key.canonical().to_vec(),
                    })
                    .collect()
            });
            (picked, ticket)
        };
        self.durable(ticket).await?;
        Ok(picked)
    }

    /// Deletes every group.
    pub async fn wipe(&self) -> Result<(), StoreError> {
        let ticket = {
            let mut st = self.state.lock();
            self.roll_back_locked(&mut st);
            let old: Vec<Arc<Group>> = st.snap.groups.values().cloned().collect();
            for g in &old {
                Self::remove_group(&mut st, &g.key);
            }
            self.publish(&mut st);
            let undo = old.into_iter().map(|g| (g.key.clone(), Some(g)));
            self.log_undoable(undo, || vec![Op::Clear])
        };
        self.durable(ticket).await
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
        let mut st = self.state.lock();
        // The snapshot must not hold changes whose write failed.
        self.roll_back_locked(&mut st);
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
        if stats.log_bytes > stats.compacted_bytes.saturating_mul(2) + (64 << 20)
            && !wal.is_compacting()
        {
            self.maybe_compact(true);
        }
    }

    /// Fault injection (tests, fuzzing): the next `n` writes to the persistence file fail as
    /// on a full disk.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u64) {
        if let Some(w) = &self.wal {
            w.inject_write_failures(n);
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
                return e.to_string();
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

    /// A store persisted to `path` (fsync always), checked or not.
    fn persisted(path: &std::path::Path, checked: bool) -> Store {
        Store::open(StoreConfig {
            checked,
            own_families: Vec::new(),
            persistence: Some(PersistConfig {
                path: path.to_path_buf(),
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
    async fn utf8_label_names_only_when_allowed_family_names_always() {
        let s = store(None);
        let k = GroupKey::new([("job", "a")]);
        let utf8 = |body: &str| Push {
            key: k.clone(),
            families: exposition::text_parse::parse_text_names(body.as_bytes(), true).unwrap(),
            replace: true,
            time: at(1000),
            ttl_ms: 0,
            accumulate: None,
            idempotency_key: None,
        };
        let e = s.push(utf8("x{\"a.b\"=\"1\"} 1\n")).await.unwrap_err();
        assert!(e.to_string().contains("invalid name: a.b"), "{e}");
        s.push(utf8("{\"my.metric\"} 1\n")).await.unwrap();
        s.allow_utf8_label_names(true);
        s.push(utf8("x{\"a.b\"=\"1\"} 1\n")).await.unwrap();
        let snap = s.snapshot();
        assert!(snap.groups[&k].families["x"].needs_escaping);
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
            &*g.families[PUSH_EXPIRY_TIME].text(),
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

    /// A restore builds the consistency index on its own thread, from identities computed by
    /// the decode workers: after a restart of more groups than one decode chunk, the index
    /// still knows every series, type and invalid entry it knew before.
    #[tokio::test]
    async fn restored_index_refuses_what_the_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let groups = 2100; // more than one restore chunk (2048)
        let key = |g: usize| GroupKey::new([("job", format!("j{g}"))]);
        let unchecked = |path: &PathBuf| persisted(path, false);
        // `{job="j7",instance=""}` is another group, but its series are `{job="j7"}`'s.
        let twin = GroupKey::new([("job", "j7"), ("instance", "")]);
        let dup = "# TYPE c counter\nc{n=\"7\"} 1\n";
        {
            let s = store(Some(path.clone()));
            for g in 0..groups {
                let body = format!("# TYPE c counter\nc{{n=\"{g}\"}} 1\n");
                s.push(push(&key(g), at(1000), 0, &body)).await.unwrap();
            }
            assert!(!s.snapshot().inconsistent);
            refused(&s, &twin, dup, &key(groups)).await;
            s.close().unwrap();
        }
        async fn refused(s: &Store, twin: &GroupKey, dup: &str, other: &GroupKey) {
            let e = s.push(push(twin, at(1001), 0, dup)).await;
            assert!(matches!(e, Err(StoreError::Inconsistent(_))), "{e:?}");
            let e = s
                .push(push(other, at(1001), 0, "# TYPE c gauge\nc 1\n"))
                .await;
            assert!(matches!(e, Err(StoreError::Inconsistent(_))), "{e:?}");
        }
        let s = store(Some(path.clone()));
        // The refused gauge push was recorded (as a failed push of a new group).
        assert_eq!(s.snapshot().groups.len(), groups + 1);
        assert!(!s.snapshot().inconsistent);
        refused(&s, &twin, dup, &key(groups)).await;
        // Replacing a group's own series is fine (its old identities leave the index).
        s.push(push(
            &key(7),
            at(1002),
            0,
            "# TYPE c counter\nc{n=\"7\"} 2\n",
        ))
        .await
        .unwrap();
        s.close().unwrap();
        drop(s);
        // A store that is inconsistent as a whole (unchecked pushes) is restored as such.
        let s = unchecked(&path);
        s.push(push(&twin, at(1003), 0, dup)).await.unwrap();
        assert!(s.snapshot().inconsistent);
        s.close().unwrap();
        drop(s);
        let s = unchecked(&path);
        assert!(s.snapshot().inconsistent);
        s.close().unwrap();
    }

    /// The index kept up to date push by push (where a family pushed again with the same
    /// series leaves it untouched) equals one built from scratch over the same groups.
    fn assert_index_exact(s: &Store, step: &str) {
        let st = s.state.lock();
        let mut fresh = Index::new(st.index.own_families());
        for g in st.snap.groups.values() {
            for e in g.families.values() {
                fresh.add(e);
            }
        }
        assert_eq!(st.index.dump(), fresh.dump(), "after {step}");
        assert_eq!(st.index.has_problem(), fresh.has_problem(), "after {step}");
    }

    /// Pushes that repeat a family's series skip the index update (the series digests
    /// match): the index stays exact through repeats, changed series, POSTs, duplicates the
    /// unchecked store takes, deletes and a restart (restored entries have no digest until
    /// their identities are computed again), and the checked store still refuses what it must.
    #[tokio::test]
    async fn index_stays_exact_when_families_are_pushed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let open = |checked: bool| persisted(&path, checked);
        let a = GroupKey::new([("job", "a")]);
        // `{job="a",instance=""}` is another group, but its series are `{job="a"}`'s.
        let twin = GroupKey::new([("job", "a"), ("instance", "")]);
        let b = GroupKey::new([("job", "b")]);
        let body = |n: &str, v: u32| {
            format!("# TYPE c counter\nc{{n=\"{n}\"}} {v}\n# TYPE g gauge\ng {v}\n")
        };
        let post = |key: &GroupKey, t: u64, body: &str| Push {
            replace: false,
            ..push(key, at(t), 0, body)
        };
        let s = open(true);
        s.push(push(&a, at(1), 0, &body("1", 1))).await.unwrap();
        s.push(push(&b, at(1), 0, &body("x", 1))).await.unwrap();
        assert_index_exact(&s, "first pushes");
        for t in 2..5 {
            s.push(push(&a, at(t), 0, &body("1", t as u32)))
                .await
                .unwrap();
            assert_index_exact(&s, "the same series again");
        }
        // The twin's push-time gauge alone is group a's.
        let e = s.push(push(&twin, at(5), 0, &body("1", 1))).await;
        assert!(matches!(e, Err(StoreError::Inconsistent(_))), "{e:?}");
        let e = s.push(push(&b, at(5), 0, "# TYPE c gauge\nc 1\n")).await;
        assert!(matches!(e, Err(StoreError::Inconsistent(_))), "{e:?}");
        assert_index_exact(&s, "refused pushes");
        s.push(post(&a, 6, "# TYPE h gauge\nh 1\n")).await.unwrap();
        s.push(post(&a, 7, "# TYPE h gauge\nh 2\n")).await.unwrap();
        assert_index_exact(&s, "POSTs");
        s.push(push(&a, at(8), 0, &body("2", 1))).await.unwrap();
        assert_index_exact(&s, "changed series");
        s.close().unwrap();
        drop(s);

        let s = open(true);
        assert_index_exact(&s, "restart");
        s.push(push(&a, at(10), 0, &body("2", 5))).await.unwrap();
        assert_index_exact(&s, "the same series again after the restart");
        s.push(push(&b, at(11), 0, &body("2", 1))).await.unwrap();
        let e = s.push(push(&b, at(12), 0, "# TYPE g counter\ng 1\n")).await;
        assert!(matches!(e, Err(StoreError::Inconsistent(_))), "{e:?}");
        assert_index_exact(&s, "a refused push after the restart");
        s.delete(&b).await.unwrap();
        assert_index_exact(&s, "a delete");
        s.close().unwrap();
        drop(s);

        // Unchecked: duplicates are taken, and pushing them again keeps them counted once.
        let s = open(false);
        s.push(push(&twin, at(13), 0, &body("2", 1))).await.unwrap();
        assert!(s.snapshot().inconsistent);
        for t in 14..16 {
            s.push(push(&twin, at(t), 0, &body("2", t as u32)))
                .await
                .unwrap();
            assert_index_exact(&s, "a duplicate pushed again");
            assert!(s.snapshot().inconsistent);
        }
        s.delete(&twin).await.unwrap();
        assert_index_exact(&s, "the duplicate deleted");
        assert!(!s.snapshot().inconsistent);
        s.close().unwrap();
    }

    fn counter_value(s: &Store, k: &GroupKey, name: &str) -> f64 {
        let g = s.snapshot().groups[k].clone();
        g.families[name].metrics()[0]
            .counter
            .as_ref()
            .unwrap()
            .value()
    }

    #[tokio::test]
    async fn accumulating_push_replanned_against_a_newer_version_merges_with_it() {
        let s = store(None);
        let k = GroupKey::new([("job", "a")]);
        let acc = |body: &str, key: Option<&str>| Push {
            accumulate: Some(Accumulate::default()),
            idempotency_key: key.map(Into::into),
            replace: false,
            ..push(&k, at(1000), 0, body)
        };
        let p = s.prepare(acc("# TYPE c_total counter\nc_total 1\n", Some("k1")));
        let Plan::Accept(first) = s.plan(&p).1 else {
            panic!("accepted")
        };
        assert_eq!(
            first.families["c_total"].metrics()[0]
                .counter
                .as_ref()
                .unwrap()
                .value(),
            1.0
        );
        // Another push lands first (as another replica's write would): planning again
        // merges with the newer version instead of overwriting it.
        s.push(acc("# TYPE c_total counter\nc_total 5\n", None))
            .await
            .unwrap();
        let Plan::Accept(second) = s.plan(&p).1 else {
            panic!("accepted")
        };
        assert_eq!(
            second.families["c_total"].metrics()[0]
                .counter
                .as_ref()
                .unwrap()
                .value(),
            6.0
        );
        s.apply_replicated(&k, Some(second));
        assert_eq!(counter_value(&s, &k, "c_total"), 6.0);
        // The key is in the applied version: the same push again changes nothing.
        assert!(matches!(s.plan(&p).1, Plan::Unchanged));
        s.push(acc("# TYPE c_total counter\nc_total 1\n", Some("k1")))
            .await
            .unwrap();
        assert_eq!(counter_value(&s, &k, "c_total"), 6.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_accumulating_pushes_to_one_group_add_up_exactly() {
        let s = Arc::new(store(None));
        let k = GroupKey::new([("job", "hot")]);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (s, k) = (s.clone(), k.clone());
                tokio::spawn(async move {
                    for i in 0..100 {
                        // Replacing pushes of another family interleave: the merge made
                        // outside the lock is then stale and done again under it.
                        let body = if i % 10 == 0 {
                            format!("# TYPE g gauge\ng {t}\n")
                        } else {
                            "# TYPE c_total counter\nc_total 0.25\n".to_string()
                        };
                        let p = Push {
                            accumulate: (i % 10 != 0).then(Accumulate::default),
                            replace: false,
                            ..push(&k, at(1000), 0, &body)
                        };
                        s.push(p).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(counter_value(&s, &k, "c_total"), 8.0 * 90.0 * 0.25);
        assert!(s.turns.is_empty());
    }

    fn wal(s: &Store) -> &Wal {
        s.wal.as_ref().unwrap()
    }

    /// Issue 15 item 5: a change whose write fails is refused and undone (push, POST,
    /// delete, wipe), later changes are not planned on top of it, the failed bytes never
    /// reach the file, and the store takes writes again once the disk does.
    #[tokio::test]
    async fn failed_write_is_undone_and_never_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let a = GroupKey::new([("job", "a")]);
        let b = GroupKey::new([("job", "b")]);
        let text = |s: &Store| {
            let snap = s.snapshot();
            let mut out = Vec::new();
            for (k, g) in &snap.groups {
                for (n, e) in &g.families {
                    if !is_time_gauge(n) {
                        out.push(format!("{k:?} {}", String::from_utf8_lossy(&e.text())));
                    }
                }
            }
            out
        };
        let s = store(Some(path.clone()));
        s.push(push(&a, at(1000), 0, "x 1\n")).await.unwrap();
        let before = text(&s);
        let pushes_before = s.snapshot().groups[&a].push_time;

        wal(&s).inject_write_failures(1);
        let err = s.push(push(&a, at(1001), 0, "x 2\n")).await.unwrap_err();
        assert!(matches!(err, StoreError::Persist(_)), "{err}");
        assert_eq!(text(&s), before, "a refused PUT changes nothing");
        assert_eq!(s.snapshot().groups[&a].push_time, pushes_before);

        wal(&s).inject_write_failures(1);
        let mut post = push(&b, at(1002), 0, "y 1\n");
        post.replace = false;
        assert!(s.push(post).await.is_err());
        assert!(
            !s.snapshot().groups.contains_key(&b),
            "a refused new group is not created"
        );

        wal(&s).inject_write_failures(1);
        assert!(s.delete(&a).await.is_err());
        assert_eq!(text(&s), before, "a refused DELETE deletes nothing");

        wal(&s).inject_write_failures(1);
        assert!(s.wipe().await.is_err());
        assert_eq!(text(&s), before, "a refused wipe deletes nothing");

        // The disk works again: the next change succeeds, without any retried bytes.
        s.push(push(&b, at(1003), 0, "y 3\n")).await.unwrap();
        let after = text(&s);
        assert_eq!(after.len(), 2);
        assert!(s.undo.lock().is_empty(), "durable changes need no undo");
        s.close().unwrap();
        let s = store(Some(path));
        assert_eq!(
            text(&s),
            after,
            "the file holds exactly what was acknowledged"
        );
        s.close().unwrap();
    }

    /// Issue 15 item 7: a POST to a large group logs the pushed families (and the group's
    /// header), not the whole group, and a restart rebuilds exactly the same group.
    #[tokio::test]
    async fn post_to_a_large_group_logs_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let k = GroupKey::new([("job", "big")]);
        let s = store(Some(path.clone()));
        let mut body = String::from("# TYPE big gauge\n");
        for i in 0..20_000 {
            body.push_str(&format!("big{{i=\"{i}\"}} {i}\n"));
        }
        s.push(push(&k, at(1000), 60_000, &body)).await.unwrap();
        let before = wal(&s).stats().log_bytes;
        for i in 0..50 {
            let mut p = push(
                &k,
                at(1001 + i),
                if i % 2 == 0 { 0 } else { 90_000 },
                "small 7\n",
            );
            p.replace = false;
            s.push(p).await.unwrap();
        }
        let mut p = push(&k, at(2000), 0, "small 8 5\n");
        p.replace = false;
        assert!(s.push(p).await.is_err(), "recorded failure");
        let per_post = (wal(&s).stats().log_bytes - before) / 51;
        assert!(per_post < 400, "{per_post} bytes logged per POST");
        let dump = |s: &Store| {
            let g = s.snapshot().groups[&k].clone();
            let fams: Vec<(String, Vec<u8>, i64)> = g
                .families
                .iter()
                .map(|(n, e)| (n.to_string(), e.text().to_vec(), e.timestamp_ns))
                .collect();
            (
                fams,
                g.push_time,
                g.push_failure_time,
                g.ttl_ms,
                g.expires_at,
            )
        };
        let live = dump(&s);
        assert_eq!(live.3, 90_000);
        s.close().unwrap();
        let s = store(Some(path));
        assert_eq!(dump(&s), live);
        s.close().unwrap();
    }

    /// Issue 15 item 8: family names and HELP texts are freed after their last group goes.
    #[tokio::test]
    async fn push_delete_cycles_of_unique_names_and_help_texts_leave_nothing_interned() {
        let s = store(None);
        let k = GroupKey::new([("job", "cycle")]);
        for c in 0..300 {
            let mut body = String::new();
            for f in 0..20 {
                body.push_str(&format!("# HELP n{c}_{f} help {c} {f}\nn{c}_{f} 1\n"));
            }
            s.push(push(&k, at(1000), 0, &body)).await.unwrap();
            s.delete(&k).await.unwrap();
        }
        assert!(
            s.interned_name_count() <= 2048,
            "{}",
            s.interned_name_count()
        );
        assert!(
            crate::group::interned_help_count() <= 4096,
            "{}",
            crate::group::interned_help_count()
        );
    }

    /// Merge of issue 15 and 16: an accumulating POST to an existing group is logged as a
    /// delta holding the merged families and the idempotency keys, and its entries store a
    /// long grouping value once.
    #[tokio::test]
    async fn accumulating_posts_with_shared_labels_and_keys_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let long = "v".repeat(crate::shared::SHARE_MIN + 10);
        let k = GroupKey::new([("job", "a"), ("long", long.as_str())]);
        let acc = |body: &str, key: Option<&str>| Push {
            accumulate: Some(Accumulate::default()),
            idempotency_key: key.map(Into::into),
            replace: false,
            ..push(&k, at(1000), 0, body)
        };
        {
            let s = store(Some(path.clone()));
            for (v, key) in [("1", "k1"), ("2", "k2"), ("2", "k2"), ("4", "k3")] {
                s.push(acc(
                    &format!("# TYPE c_total counter\nc_total {v}\n"),
                    Some(key),
                ))
                .await
                .unwrap();
            }
            assert_eq!(counter_value(&s, &k, "c_total"), 7.0);
            let g = s.snapshot().groups[&k].clone();
            assert!(g.families["c_total"].is_spliced());
            let text = String::from_utf8(g.families["c_total"].text().to_vec()).unwrap();
            assert!(text.contains(&long), "{text}");
            s.close().unwrap();
        }
        let s = store(Some(path));
        assert_eq!(counter_value(&s, &k, "c_total"), 7.0);
        s.push(acc("# TYPE c_total counter\nc_total 4\n", Some("k3")))
            .await
            .unwrap();
        assert_eq!(counter_value(&s, &k, "c_total"), 7.0, "k3 remembered");
        s.push(acc("# TYPE c_total counter\nc_total 1\n", None))
            .await
            .unwrap();
        assert_eq!(counter_value(&s, &k, "c_total"), 8.0);
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
