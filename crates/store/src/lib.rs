//! The metric store: groups, the consistency index, snapshots and persistence. No HTTP.
//!
//! * [`key::GroupKey`]: the label set naming a group.
//! * [`group`]: a group's families, each encoded once at push time ([`group::FamilyEntry`]).
//! * `index`: the incremental consistency index that makes a checked push O(push).
//! * [`store::Store`]: applies mutations under one short lock and publishes an immutable
//!   [`store::Snapshot`] (persistent maps, O(1) to clone) that scrapes read without locking.
//! * [`wal`]: the crash-safe, group-committing log behind `--persistence.file`, and the
//!   persisted group record ([`wal::record`]): everything on disk.
//! * [`writer::Writer`]: where changes go (the local store, or a replicated log).
//! * [`matcher`], [`ttl`]: label selectors on grouping keys; the TTL policy.
//! * [`accumulate`], [`idempotency`]: accumulating pushes (merged into the stored group) and
//!   the idempotency keys that make their retries safe.

pub mod accumulate;
pub mod check;
pub mod compaction;
pub mod group;
pub mod idempotency;
pub(crate) mod index;
pub(crate) mod intern;
pub mod key;
// unsafe: flock(2) on the lock file's descriptor (SAFETY comment at the call).
#[allow(unsafe_code)]
pub mod lock;
pub mod matcher;
pub mod official;
pub mod shared;
pub mod store;
pub mod ttl;
pub mod turn;
pub mod wal;
pub mod writer;

pub use accumulate::{Accumulate, GaugeMode};
pub use group::{FamilyEntry, Group};
pub use key::GroupKey;
pub use store::{
    compaction_period, PersistConfig, Plan, Prepared, Push, QuotaExceeded, Quotas, Snapshot, Store,
    StoreConfig, StoreError,
};
pub use wal::{SyncMode, WalError};
pub use writer::Writer;
