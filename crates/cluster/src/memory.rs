//! An in-memory [`Bucket`] for tests: history 1, revisions, compare-and-set and watches as in
//! JetStream's KV, plus deterministic faults (failed attempts, a foreign write landing just
//! before the next one, entries delivered out of order, a dropped connection).

use crate::bucket::{Ack, BoxFuture, Bucket, Entry, Watch, WriteError};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// A fault the next write (create, update or delete) runs into.
pub enum Fault {
    /// The attempt fails with this text (a transient JetStream error), and writes nothing.
    Fail(String),
    /// Another replica writes this key and value first; then the write goes ahead (and loses
    /// its compare-and-set if it is on the same key).
    Foreign(String, bytes::Bytes),
}

#[derive(Default)]
struct State {
    /// The latest version of every key, by revision (history 1: older ones are gone).
    log: BTreeMap<u64, Entry>,
    /// Key → its latest revision.
    latest: HashMap<String, u64>,
    last: u64,
    watchers: Vec<mpsc::UnboundedSender<Result<Entry, String>>>,
}

impl State {
    fn append(&mut self, key: &str, value: bytes::Bytes, live: bool) -> u64 {
        self.last += 1;
        let revision = self.last;
        if let Some(old) = self.latest.insert(key.to_string(), revision) {
            self.log.remove(&old);
        }
        let e = Entry {
            key: key.to_string(),
            value,
            revision,
            delta: 0,
            live,
        };
        self.log.insert(revision, e.clone());
        self.watchers.retain(|w| w.send(Ok(e.clone())).is_ok());
        revision
    }

    fn live(&self, key: &str) -> Option<u64> {
        let rev = *self.latest.get(key)?;
        self.log[&rev].live.then_some(rev)
    }
}

pub struct MemoryBucket {
    state: Mutex<State>,
    faults: Mutex<VecDeque<Fault>>,
    connected: AtomicBool,
    /// Writes attempted (faulty ones included).
    pub attempts: AtomicUsize,
}

impl Default for MemoryBucket {
    fn default() -> Self {
        MemoryBucket {
            state: Mutex::default(),
            faults: Mutex::default(),
            connected: AtomicBool::new(true),
            attempts: AtomicUsize::new(0),
        }
    }
}

impl MemoryBucket {
    /// Queues faults for the next writes, one per write.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().extend(faults);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
    }

    /// Delivers an entry to every watch as it is (for entries out of revision order),
    /// without storing it.
    pub fn deliver(&self, e: Entry) {
        self.state
            .lock()
            .watchers
            .retain(|w| w.send(Ok(e.clone())).is_ok());
    }

    /// The stored value of a key (`None`: never written or deleted).
    pub fn get(&self, key: &str) -> Option<bytes::Bytes> {
        let st = self.state.lock();
        st.live(key).map(|r| st.log[&r].value.clone())
    }

    pub fn last(&self) -> u64 {
        self.state.lock().last
    }

    /// Applies the next queued fault: `Err` for a failed attempt.
    fn fault(&self) -> Result<(), String> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match self.faults.lock().pop_front() {
            None => Ok(()),
            Some(Fault::Fail(text)) => Err(text),
            Some(Fault::Foreign(key, value)) => {
                self.state.lock().append(&key, value, true);
                Ok(())
            }
        }
    }
}

impl Bucket for MemoryBucket {
    fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    fn max_payload(&self) -> usize {
        1 << 20
    }

    fn open(&self, _replicas: usize) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn create<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
    ) -> BoxFuture<'a, Result<u64, WriteError>> {
        Box::pin(async move {
            self.fault().map_err(|e| (false, e))?;
            let mut st = self.state.lock();
            if st.live(key).is_some() {
                return Err((true, "key exists".to_string()));
            }
            Ok(st.append(key, value, true))
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, WriteError>> {
        Box::pin(async move {
            self.fault().map_err(|e| (false, e))?;
            let mut st = self.state.lock();
            if st.latest.get(key) != Some(&revision) {
                return Err((true, "wrong last sequence".to_string()));
            }
            Ok(st.append(key, value, true))
        })
    }

    fn revision<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, String>> {
        Box::pin(async move { Ok(self.state.lock().latest.get(key).copied()) })
    }

    fn last_revision(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move { Ok(self.state.lock().last) })
    }

    fn watch(&self, from: Option<u64>) -> BoxFuture<'_, Result<Watch, String>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut st = self.state.lock();
            let replay: Vec<Entry> = st
                .log
                .range(from.unwrap_or(0)..)
                .map(|(_, e)| e.clone())
                .collect();
            let n = replay.len() as u64;
            for (i, mut e) in replay.into_iter().enumerate() {
                e.delta = n - 1 - i as u64;
                let _ = tx.send(Ok(e));
            }
            st.watchers.push(tx);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            Ok(Box::pin(stream) as Watch)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Option<u64>,
    ) -> BoxFuture<'a, Result<Ack, String>> {
        Box::pin(async move {
            let result = self.fault().and_then(|()| {
                let mut st = self.state.lock();
                if expect.is_some_and(|r| st.latest.get(key) != Some(&r)) {
                    return Err("wrong last sequence".to_string());
                }
                Ok(st.append(key, bytes::Bytes::new(), false))
            });
            Ok(Box::pin(async move { result }) as Ack)
        })
    }
}
