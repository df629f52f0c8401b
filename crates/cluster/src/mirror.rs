//! The mirror: the watch that follows the bucket into the local store in revision order
//! (checking new versions once caught up), the watchdog that restarts a stalled watch, and
//! the wait of a local change for the mirror to apply its revision.

use crate::{bucket, decode_value, group_key, Cluster, Rev, Unconfirmed, MAX_REJECTED};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use store::{Group, GroupKey, StoreError};
use tokio::time::Instant;

impl Cluster {
    /// Applies a version of a key to the mirror unless it already holds a newer one.
    pub(crate) fn apply(&self, key: &GroupKey, group: Option<Group>, revision: u64) {
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
    pub(crate) fn mark_applied(&self, revision: u64) {
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
    pub(crate) async fn confirmed(
        &self,
        revision: u64,
        deadline: Instant,
    ) -> Result<(), Unconfirmed> {
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

    pub(crate) fn apply_entry(&self, e: &bucket::Entry) -> Option<GroupKey> {
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
}

/// Follows the bucket into the mirror, forever: (re)creates the bucket if needed, watches
/// it (from the start the first time, from the last revision seen after that), marks the
/// replica ready once it has caught up, and restarts the watch if it ends, fails or stalls.
pub(crate) async fn follow(c: Arc<Cluster>, replicas: usize) {
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
