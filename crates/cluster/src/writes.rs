//! Changes through the bucket: pushes planned against the mirror and written with
//! compare-and-set (re-planned after a lost race), deletes as pipelined delete markers, expiry
//! with the expected revision, the import of a single-node file; transient JetStream failures
//! retried within `--cluster.timeout`.

use crate::bucket::{self, Bucket};
use crate::{
    encode_value, kv_key, unavailable, Cluster, Rev, Unconfirmed, WriteFailed, MAX_ATTEMPTS,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use store::writer::{BoxFuture, Selector, Writer};
use store::{Group, GroupKey, Plan, Push, StoreError};
use tokio::time::Instant;

impl Cluster {
    /// Runs one JetStream write (`op` returns `Err((lost compare-and-set, error))`),
    /// retrying transient failures until `deadline`: a stream leader change after a NATS
    /// node died ("no stream found for given subject", no responders, timeouts) or a client
    /// reconnecting to another node. A retried write that had in fact landed shows up as a
    /// lost compare-and-set, and is planned again like any.
    pub(crate) async fn write_retrying<T, F, Fut>(
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

    /// After losing a compare-and-set: reads the key's current revision and waits until the
    /// mirror has applied it (in the bucket's order, via the watch).
    pub(crate) async fn refresh(
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
    pub(crate) async fn publish_delete(
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
    pub(crate) async fn delete_keys(
        &self,
        keys: &[GroupKey],
        deadline: Instant,
    ) -> Result<(), StoreError> {
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
                    return Err(StoreError::Quota(store::QuotaExceeded::RecordSize {
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
