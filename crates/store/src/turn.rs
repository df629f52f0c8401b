//! Turns: writers of one group wait for each other instead of racing. Accumulating pushes
//! take a turn on their group so that the merge with the stored group, done outside the store
//! lock, is almost never made stale by another push; replicas take one per pushed group so
//! that their compare-and-set writes do not race each other within one process.
//!
//! An entry lives only while some task holds or waits for the group's turn.

use crate::key::GroupKey;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

type Lock = Arc<tokio::sync::Mutex<()>>;

/// The groups whose turn is taken or awaited.
#[derive(Clone, Default)]
pub struct Turns(Arc<Mutex<HashMap<GroupKey, Lock>>>);

/// A held turn; dropping it lets the next writer of the group go.
pub struct Turn {
    turns: Turns,
    key: GroupKey,
    lock: Lock,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits for the turn on `key` (first come, first served).
    pub async fn take(&self, key: &GroupKey) -> Turn {
        let lock = self.0.lock().entry(key.clone()).or_default().clone();
        let guard = Some(lock.clone().lock_owned().await);
        Turn {
            turns: self.clone(),
            key: key.clone(),
            lock,
            guard,
        }
    }

    /// Groups with a taken or awaited turn.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.turns.0.lock();
        // Held only by the map and this turn: nobody waits, forget the group.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_serialize_one_group_and_are_forgotten() {
        let turns = Turns::default();
        let k = GroupKey::new([("job", "a")]);
        let first = turns.take(&k).await;
        let other = turns.take(&GroupKey::new([("job", "b")])).await;
        let t2 = turns.clone();
        let k2 = k.clone();
        let waiter = tokio::spawn(async move {
            let _t = t2.take(&k2).await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "waits for the first turn");
        drop(first);
        waiter.await.unwrap();
        drop(other);
        assert!(turns.is_empty(), "no entry left behind");
    }
}
