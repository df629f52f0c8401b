//! The key-value bucket the cluster writes to and follows: the [`Bucket`] trait (just the
//! operations the cluster uses) and its NATS JetStream implementation, [`NatsBucket`]. Tests
//! use the in-memory one (`memory.rs`), with deterministic faults.

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, as the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A watch: the bucket's entries in revision order; ends (or fails) when the watch does.
pub type Watch = Pin<Box<dyn futures_util::Stream<Item = Result<Entry, String>> + Send>>;
/// A write that did not succeed: whether it lost a compare-and-set (the key changed
/// meanwhile), and the error's text.
pub type WriteError = (bool, String);
/// The acknowledgement of a published delete marker: its revision.
pub type Ack = BoxFuture<'static, Result<u64, String>>;

/// One version of a key, as a watch delivers it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    /// The group record (empty for a delete marker).
    pub value: bytes::Bytes,
    pub revision: u64,
    /// How many entries the watch has still to deliver of those that existed when it
    /// started (0: caught up).
    pub delta: u64,
    /// A value (`true`) or a delete marker.
    pub live: bool,
}

/// The operations the cluster uses on the bucket. Every key has one version (history 1).
pub trait Bucket: Send + Sync + 'static {
    /// Whether the connection to the bucket's server is up.
    fn connected(&self) -> bool;
    /// The largest message the server accepts (0: unknown).
    fn max_payload(&self) -> usize;
    /// Opens the bucket, creating it (with `replicas` copies) if it does not exist. The other
    /// operations need a successful `open` first.
    fn open(&self, replicas: usize) -> BoxFuture<'_, Result<(), String>>;
    /// Writes a key that has no value (never written, or deleted): its new revision.
    fn create<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
    ) -> BoxFuture<'a, Result<u64, WriteError>>;
    /// Writes a key whose latest revision is `revision` (compare-and-set).
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, WriteError>>;
    /// The latest revision of a key (a value or a delete marker), if any.
    fn revision<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, String>>;
    /// The bucket's last revision (0: empty).
    fn last_revision(&self) -> BoxFuture<'_, Result<u64, String>>;
    /// Watches every key: the latest version of each first (`from` = `None`), or every
    /// version from revision `from` on; then the changes as they come.
    fn watch(&self, from: Option<u64>) -> BoxFuture<'_, Result<Watch, String>>;
    /// Publishes a delete marker for a key (only if its latest revision is `expect`, when
    /// given); the returned acknowledgement is awaited separately, so deletes pipeline.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Option<u64>,
    ) -> BoxFuture<'a, Result<Ack, String>>;
}

const KV_OPERATION: &str = "KV-Operation";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// The bucket in NATS JetStream's key-value store.
pub struct NatsBucket {
    client: async_nats::Client,
    js: jetstream::Context,
    name: String,
    /// The bucket's handle, once opened (replaced by every `open`).
    kv: Mutex<Option<kv::Store>>,
}

impl NatsBucket {
    pub fn new(client: async_nats::Client, js: jetstream::Context, name: String) -> NatsBucket {
        NatsBucket {
            client,
            js,
            name,
            kv: Mutex::new(None),
        }
    }

    fn kv(&self) -> Result<kv::Store, String> {
        self.kv
            .lock()
            .clone()
            .ok_or_else(|| format!("NATS bucket {:?} not open", self.name))
    }
}

impl Bucket for NatsBucket {
    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    fn open(&self, replicas: usize) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let kv = match self.js.get_key_value(&self.name).await {
                Ok(kv) => kv,
                Err(_) => self
                    .js
                    .create_key_value(kv::Config {
                        bucket: self.name.clone(),
                        description: "Pushgateway groups (one key per group)".into(),
                        history: 1,
                        num_replicas: replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("creating bucket {:?}: {e}", self.name))?,
            };
            *self.kv.lock() = Some(kv);
            Ok(())
        })
    }

    fn create<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
    ) -> BoxFuture<'a, Result<u64, WriteError>> {
        Box::pin(async move {
            let kv = self.kv().map_err(|e| (false, e))?;
            kv.create(key, value).await.map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            })
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: bytes::Bytes,
        revision: u64,
    ) -> BoxFuture<'a, Result<u64, WriteError>> {
        Box::pin(async move {
            let kv = self.kv().map_err(|e| (false, e))?;
            kv.update(key, value, revision).await.map_err(|e| {
                (
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                )
            })
        })
    }

    fn revision<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, String>> {
        Box::pin(async move {
            let kv = self.kv()?;
            kv.entry(key)
                .await
                .map(|e| e.map(|e| e.revision))
                .map_err(|e| e.to_string())
        })
    }

    fn last_revision(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let kv = self.kv()?;
            let status = tokio::time::timeout(std::time::Duration::from_secs(5), kv.status())
                .await
                .map_err(|_| "bucket status: timed out".to_string())?
                .map_err(|e| format!("bucket status: {e}"))?;
            Ok(status.info.state.last_sequence)
        })
    }

    fn watch(&self, from: Option<u64>) -> BoxFuture<'_, Result<Watch, String>> {
        Box::pin(async move {
            let kv = self.kv()?;
            let watch = match from {
                Some(r) => kv.watch_all_from_revision(r).await,
                None => kv.watch_with_history(">").await,
            }
            .map_err(|e| format!("watching bucket: {e}"))?;
            let entries = watch.map(|e| {
                e.map(|e| Entry {
                    live: e.operation == kv::Operation::Put,
                    key: e.key,
                    value: e.value,
                    revision: e.revision,
                    delta: e.delta,
                })
                .map_err(|e| format!("watch: {e}"))
            });
            Ok(Box::pin(entries) as Watch)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Option<u64>,
    ) -> BoxFuture<'a, Result<Ack, String>> {
        Box::pin(async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(KV_OPERATION, "DEL");
            if let Some(rev) = expect {
                headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, rev.to_string().as_str());
            }
            let subject = format!("$KV.{}.{}", self.name, key);
            let ack = self
                .js
                .publish_with_headers(subject, headers, bytes::Bytes::new())
                .await
                .map_err(|e| e.to_string())?;
            Ok(
                Box::pin(async move { ack.await.map(|a| a.sequence).map_err(|e| e.to_string()) })
                    as Ack,
            )
        })
    }
}
