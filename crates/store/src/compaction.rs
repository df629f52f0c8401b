//! The compaction timer: the task that keeps `--persistence.file` compact while the gateway
//! runs. The log is rewritten every `--persistence.interval` when something changed, and early
//! when it outgrows its bound (2 × live state + 64 MiB, checked every second). The rewrite runs
//! on tokio's blocking pool, never on a runtime worker.

use crate::store::{compaction_period, Store};
use std::sync::Arc;
use std::time::Duration;

/// Starts the compaction timer for `store` on the current tokio runtime; it runs until the
/// runtime stops (a store without a persistence file makes every tick a no-op).
pub fn spawn(store: Arc<Store>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let period = compaction_period(interval);
    tokio::spawn(async move {
        let mut due = tokio::time::Instant::now() + period;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = store.clone();
            let periodic = tokio::time::Instant::now() >= due;
            if periodic {
                due += period;
            }
            let _ = tokio::task::spawn_blocking(move || {
                if periodic {
                    s.maybe_compact(false)
                } else {
                    s.compact_if_oversized()
                }
            })
            .await;
        }
    })
}
