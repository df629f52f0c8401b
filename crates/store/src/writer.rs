//! Where changes go: [`Writer`] is what the HTTP side calls to push, delete, wipe and expire.
//! A single gateway writes to its own [`Store`] (and its log); a replica of a replicated
//! gateway writes to the shared log first and lets its store follow (the `cluster` crate).
//! Reads always go to the local [`Store`]'s snapshots.

use crate::group::Group;
use crate::key::GroupKey;
use crate::store::{Push, Store, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Picks groups for a bulk delete.
pub type Selector = Box<dyn Fn(&Group) -> bool + Send + Sync>;

/// The write side of the gateway. Every method returns once the change is durable (and, when
/// replicated, acknowledged by the shared log).
pub trait Writer: Send + Sync {
    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), StoreError>>;
    fn delete<'a>(&'a self, key: &'a GroupKey) -> BoxFuture<'a, Result<(), StoreError>>;
    fn wipe(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deletes (or with `dry_run` only lists) the groups `select` picks.
    fn delete_where(
        &self,
        select: Selector,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Vec<Arc<Group>>, StoreError>>;
    /// Deletes the groups whose TTL has run out; returns how many this process deleted.
    fn expire_due(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// `Err(reason)` while this process cannot serve (replicated mode: not connected to the
    /// shared log, or still catching up with it).
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Writer for Store {
    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::push(self, push))
    }
    fn delete<'a>(&'a self, key: &'a GroupKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::delete(self, key))
    }
    fn wipe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Store::wipe(self))
    }
    fn delete_where(
        &self,
        select: Selector,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Vec<Arc<Group>>, StoreError>> {
        Box::pin(async move { Store::delete_where(self, |g| select(g), dry_run).await })
    }
    fn expire_due(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(Store::expire_due(self, now))
    }
}
