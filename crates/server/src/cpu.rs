//! Keeps long CPU work off the async runtime's worker threads, so that one huge or hostile
//! push (a compression bomb, a 100,000-label series, hundreds of MB of text) cannot stop other
//! requests, `/-/healthy` included, from being answered.
//!
//! Small bodies are decoded, parsed and checked inline (a thread hop costs more than they
//! do). Big or compressed ones go to tokio's blocking pool, at most one per CPU at a time: the
//! others wait for a turn without holding a worker thread. A very big push is also stored
//! (encoded) from a thread that has handed its worker role to another one.

use crate::error::HttpError;
use crate::limits::Reason;
use crate::App;
use bytes::Bytes;
use exposition::MetricFamily;
use hyper::http::request::Parts;
use std::sync::{Arc, OnceLock};
use store::{GroupKey, Push, StoreError};
use tokio::sync::Semaphore;

/// Bodies up to this size (uncompressed on the wire) are handled inline.
const INLINE_MAX: usize = 64 << 10;
/// Pushes from bodies above this size are stored off the worker threads too.
const BIG_PUSH: usize = 1 << 20;

/// A refusal: the rejection reason to count (if it is a limit) and the answer.
pub type Refusal = (Option<Reason>, HttpError);

fn pool() -> &'static Arc<Semaphore> {
    static POOL: OnceLock<Arc<Semaphore>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(n))
    })
}

/// Decodes, parses and checks a push body (inline or on the bounded pool, by size).
pub async fn run(
    app: &Arc<App>,
    size: usize,
    parts: &Parts,
    body: Bytes,
    key: GroupKey,
) -> Result<(GroupKey, Vec<MetricFamily>), Refusal> {
    let encoding = parts
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let format = crate::push::BodyFormat::of(
        parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        app.cfg.formats,
    );
    let limits = app.cfg.limits.clone();
    let compressed = matches!(encoding.as_deref(), Some("gzip" | "snappy"));
    let work = move || {
        let families = crate::push::parse_body(&limits, encoding.as_deref(), format, body, &key)?;
        Ok((key, families))
    };
    if size <= INLINE_MAX && !compressed {
        return work();
    }
    let _permit = pool()
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| (None, HttpError::Internal("CPU pool closed".into())))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        (
            None,
            HttpError::Internal(format!("parsing the body failed: {e}")),
        )
    })?
}

/// Hands a push to the writer; a very big one from a thread that gave up its worker role
/// (its families are encoded before it is stored).
pub async fn push(app: &Arc<App>, size: usize, push: Push) -> Result<(), StoreError> {
    // (The runtime is only looked up for a big push.)
    let multi_thread = || {
        tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    };
    if size > BIG_PUSH && multi_thread() {
        let handle = tokio::runtime::Handle::current();
        return tokio::task::block_in_place(|| handle.block_on(app.writer.push(push)));
    }
    app.writer.push(push).await
}
