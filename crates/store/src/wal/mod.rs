//! Crash-safe, group-committing key/value write-ahead log.
//!
//! Every mutation of the store is appended to a single log file. In
//! [`SyncMode::Always`] (the default) a [`Ticket`] only completes once the
//! mutation — and every mutation appended before it — has been written *and*
//! `fsync`ed, so the HTTP layer can acknowledge a push only when it is on
//! stable storage. A single writer thread drains everything queued since its
//! previous round, writes it with one `write` and makes it durable with one
//! `fdatasync`: concurrent pushes share fsyncs (group commit).
//!
//! # File format (version 1)
//!
//! All integers are little-endian. CRCs are CRC-32 (IEEE, as computed by
//! `crc32fast`).
//!
//! ```text
//! file    := header frame*
//! header  := magic[8] = "\x89PGWWAL\n"  version:u32 = 1  crc32(magic ++ version):u32
//! frame   := len:u32  crc32(payload):u32  crc32(len ++ payload-crc):u32  payload[len]
//! payload := op+                              (len >= 1)
//! op      := 0x01 klen:u32 vlen:u32 key[klen] value[vlen]   -- put
//!          | 0x02 klen:u32 key[klen]                        -- delete
//!          | 0x03                                           -- clear (wipe)
//!          | 0x04 klen:u32 vlen:u32 key[klen] value[vlen]   -- append to the key's value
//! ```
//!
//! An append concatenates its bytes to the key's current value (or sets it if there is
//! none): the store logs a change to part of a group as the bytes that, appended to the
//! group's protobuf record, merge into it (protobuf's last-field-wins and repeated-field
//! concatenation), so a POST costs the size of the push, not of the group.
//!
//! One [`Wal::append`] call becomes one frame, so a multi-op mutation is
//! replayed entirely or not at all. The frame header carries its own CRC so a
//! damaged length field is detected as damage (instead of being mistaken for
//! a torn tail) and so the reader can re-synchronise on the next intact frame
//! in O(file size). A future format bumps the version; a file with a *newer*
//! version than this build understands is refused (open fails) and left
//! untouched.
//!
//! # Recovery
//!
//! * Missing file (and missing parent directories): created.
//! * Empty file, or a file holding only a prefix of the header (crash while
//!   creating): initialised.
//! * Torn tail — no intact frame after the first bad byte (crash during an
//!   append): truncated to the end of the last intact frame, with a warning.
//! * Anything else — bad header, bad CRC or malformed frame followed by intact
//!   frames, foreign file: every intact frame is replayed (damaged regions are
//!   skipped), the file is renamed to `PATH.corrupt-<unix-ts>`, an error is
//!   logged, and a clean compacted file is written in its place. The damaged
//!   file is never deleted or overwritten.
//! * I/O errors while reading fail [`Wal::open`] (they are not corruption).
//!
//! # Compaction
//!
//! [`Wal::compact`] writes a snapshot to `PATH.tmp` on a separate thread while
//! appends continue to be written (and acknowledged) to the current log and
//! are also buffered. When the snapshot is on disk the writer appends the
//! buffered ops to it, fsyncs it, renames it over `PATH` and fsyncs the
//!
//! # Layout
//!
//! `format` is the bytes on disk (pure), `recovery` reads them back at open and decides what
//! to do with the file, `writer` is the thread that appends and compacts, `ticket` is the
//! completion handle an append returns, `fs` the filesystem helpers.

mod format;
// unsafe: SIGXFSZ ignored, so a file-size limit fails a write instead of killing the process.
#[allow(unsafe_code)]
mod fs;
pub mod record;
mod recovery;
#[cfg(test)]
mod tests;
mod ticket;
mod writer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use format::Op;
use format::MAX_PAYLOAD;
pub use ticket::Ticket;
use ticket::{Signal, TicketState};
use writer::{Item, Shared};

/// When an appended op counts as acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// fsync before acknowledging (default). Nothing acknowledged is lost,
    /// even on a machine crash or power loss.
    #[default]
    Always,
    /// Acknowledge immediately; ops are written to the file (the OS page
    /// cache) right away, so they survive a crash of this process, and
    /// fsynced every `interval`. A machine crash or power loss can lose up to
    /// `interval` worth of acknowledged mutations.
    Interval(Duration),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// An I/O operation on the log (or its directory) failed.
    #[error("persistence file {path}: {action} failed: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The file was written by a newer version of the format. It is left
    /// untouched.
    #[error(
        "persistence file {path}: format version {found} is newer than the newest supported \
         version {supported}; refusing to use or modify it"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A single op is too large for the format (more than 4 GiB).
    #[error("persistence file {path}: a record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// Another process holds the persistence file (see [`crate::lock`]).
    #[error(
        "persistence file {path} is in use by {holder} (it holds the lock on {lock_path}); \
         two gateways must not share one persistence file"
    )]
    Locked {
        path: PathBuf,
        lock_path: PathBuf,
        holder: String,
    },
    /// The log was closed (or its writer thread died) before the op was durable.
    #[error("persistence file {path}: the write-ahead log is closed")]
    Closed { path: PathBuf },
}

impl WalError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        WalError::Io {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// What was on disk at open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The latest value of every live key, in no particular order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// True if the file was damaged (not merely a torn tail) and was moved aside.
    pub damaged: bool,
}

/// Sizes the caller can use to decide when to compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes in the current log file.
    pub log_bytes: u64,
    /// Size of the file written by the last compaction. Right after open this
    /// is the size a compaction of the recovered state would have.
    pub compacted_bytes: u64,
}

/// A crash-safe, group-committing key/value log. `Send + Sync`; share it via `Arc`.
pub struct Wal {
    /// The state shared with the writer and compaction threads.
    shared: Arc<Shared>,
    /// The writer thread, joined (and taken) by [`Wal::close`]; `None` once closed.
    writer: Mutex<Option<JoinHandle<Result<(), WalError>>>>,
    /// The exclusive lock on the file, released when the log is closed.
    lock: Mutex<Option<crate::lock::FileLock>>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("path", &self.shared.path)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if needed) the log at `path` and recovers its contents.
    ///
    /// Fails if the path or its directory cannot be created, read or written,
    /// or if the file has a newer format version. A damaged file does not
    /// fail: see the module documentation.
    pub fn open(path: &Path, mode: SyncMode) -> Result<(Wal, Recovered), WalError> {
        let started = Instant::now();
        let path = path.to_path_buf();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                WalError::io(
                    "opening",
                    &path,
                    io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
                )
            })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!("{name}.tmp"));
        fs::ensure_dir(&dir)?;
        let lock = fs::lock(&path)?;
        fs::ignore_sigxfsz();
        fs::clear_tmp(&path, &tmp)?;

        let files = recovery::Files {
            path: &path,
            dir: &dir,
            tmp: &tmp,
            name: &name,
        };
        let (file, map, size, damaged) = recovery::recover(&files)?;

        let compacted_estimate = recovery::compacted_size(&map);
        let entries: Vec<(Vec<u8>, Vec<u8>)> = map.into_iter().collect();
        tracing::info!(
            path = %path.display(),
            keys = entries.len(),
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded persistence file"
        );

        let shared = Arc::new(Shared::new(
            path.clone(),
            dir,
            tmp,
            mode,
            size,
            compacted_estimate,
        ));
        let handle = writer::spawn(shared.clone(), file, size)
            .map_err(|e| WalError::io("starting writer thread for", &path, e))?;
        Ok((
            Wal {
                shared,
                writer: Mutex::new(Some(handle)),
                lock: Mutex::new(Some(lock)),
            },
            Recovered { entries, damaged },
        ))
    }

    /// Enqueues `ops` (in order, after everything appended before). Never
    /// blocks on I/O. The ticket completes when these ops and all earlier ones
    /// are durable ([`SyncMode::Always`]) or immediately ([`SyncMode::Interval`]).
    /// An empty `ops` yields a ticket that completes when everything appended
    /// before is durable.
    pub fn append(&self, ops: Vec<Op>) -> Ticket {
        self.append_seq(ops).1
    }

    /// [`Wal::append`], also returning the append's sequence number (increasing by one per
    /// call, failed calls included): the append is durable once [`Wal::durable_seq`] reaches it.
    pub fn append_seq(&self, ops: Vec<Op>) -> (u64, Ticket) {
        let always = self.shared.mode == SyncMode::Always;
        let mut st = self.shared.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        if let Some(size) = ops.iter().map(Op::encoded_len).find(|&l| l > MAX_PAYLOAD) {
            let e = WalError::TooLarge {
                path: self.shared.path.clone(),
                size,
                max: MAX_PAYLOAD,
            };
            if always && st.failed.is_none() {
                // Stops the log like a failed write, so that the caller undoes it.
                st.failed = Some(e.clone());
            }
            return (seq, Ticket::ready(Err(e)));
        }
        if st.shutdown {
            return (
                seq,
                Ticket::ready(Err(WalError::Closed {
                    path: self.shared.path.clone(),
                })),
            );
        }
        if let Some(e) = &st.failed {
            return (seq, Ticket::ready(Err(e.clone())));
        }
        if ops.is_empty() && !always {
            return (seq, Ticket::ready(Ok(())));
        }
        st.pending.push(Item::Ops(seq, ops));
        let ticket = if always {
            Ticket(TicketState::Pending(st.signal.clone()))
        } else {
            Ticket::ready(Ok(()))
        };
        drop(st);
        self.shared.work.notify_one();
        (seq, ticket)
    }

    /// The highest sequence number ([`Wal::append_seq`]) that is durable. In
    /// [`SyncMode::Always`], once a write has failed ([`Wal::failed`]) every later append
    /// fails too, so everything above this number is known not to be in the file.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The write failure that stopped the log ([`SyncMode::Always`] only): every append
    /// fails with it until [`Wal::resume`]. A failed write is never retried: its bytes are
    /// truncated away before the next write.
    pub fn failed(&self) -> Option<WalError> {
        self.shared.state.lock().failed.clone()
    }

    /// Accepts appends again after a failure (the caller has undone every change above
    /// [`Wal::durable_seq`]). Appends still queued fail.
    pub fn resume(&self) {
        let mut st = self.shared.state.lock();
        let Some(e) = st.failed.take() else { return };
        let queued = st.pending.iter().any(|i| matches!(i, Item::Ops(..)));
        if queued {
            st.pending.retain(|i| !matches!(i, Item::Ops(..)));
            let signal = std::mem::replace(&mut st.signal, Signal::new());
            signal.complete(Err(e));
        }
    }

    /// Whether appends count as acknowledged only once fsynced ([`SyncMode::Always`]).
    pub fn is_synchronous(&self) -> bool {
        self.shared.mode == SyncMode::Always
    }

    /// Fault injection (tests, fuzzing): the next `n` batch writes write half their bytes
    /// and fail, as a full disk would make them.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u64) {
        self.shared.fail_writes.store(n, Ordering::Relaxed);
    }

    /// Starts a compaction from `live`, the full live state as of this call
    /// (see the module documentation). Returns false (and drops `live`) if a
    /// compaction is already running or the log is closed.
    pub fn compact(&self, live: Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + Send>) -> bool {
        let previous = {
            let mut st = self.shared.state.lock();
            if st.shutdown || st.compacting {
                return false;
            }
            st.compacting = true;
            st.pending.push(Item::CompactMark);
            st.compactor.take()
        };
        // A previous compaction thread has handed over its result already.
        if let Some(h) = previous {
            let _ = h.join();
        }
        let shared = self.shared.clone();
        let spawned = thread::Builder::new()
            .name("wal-compact".into())
            .spawn(move || {
                // The iterator is the caller's code: a panic in it must still
                // hand a result to the writer, or close() would wait forever.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    fs::write_snapshot(&shared.tmp, live)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("snapshot iterator panicked")));
                let result = written.map_err(|e| {
                    let _ = std::fs::remove_file(&shared.tmp);
                    WalError::io("writing compacted file", &shared.tmp, e)
                });
                shared.state.lock().snapshot = Some(result);
                shared.work.notify_one();
            });
        let mut st = self.shared.state.lock();
        match spawned {
            Ok(h) => {
                st.compactor = Some(h);
                true
            }
            Err(e) => {
                // Let the writer unwind the compaction state.
                st.snapshot = Some(Err(WalError::io(
                    "starting compaction thread for",
                    &self.shared.path,
                    e,
                )));
                drop(st);
                self.shared.work.notify_one();
                false
            }
        }
    }

    /// Current log size and the size of the last compaction's output.
    pub fn stats(&self) -> WalStats {
        WalStats {
            log_bytes: self.shared.log_bytes.load(Ordering::Relaxed),
            compacted_bytes: self.shared.compacted_bytes.load(Ordering::Relaxed),
        }
    }

    /// Number of group-commit fsyncs of the log so far.
    #[cfg(test)]
    pub(crate) fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Writes and fsyncs everything pending, waits for a running compaction to
    /// finish, and stops the writer thread. Later appends fail with
    /// [`WalError::Closed`]. Calling it again returns `Ok(())`.
    pub fn close(&self) -> Result<(), WalError> {
        self.stop(false)
    }

    fn stop(&self, abandon: bool) -> Result<(), WalError> {
        let mut writer = self.writer.lock();
        {
            let mut st = self.shared.state.lock();
            st.shutdown = true;
            st.abandon |= abandon;
        }
        self.shared.work.notify_all();
        let result = match writer.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(WalError::Closed {
                    path: self.shared.path.clone(),
                })
            }),
            None => Ok(()),
        };
        let compactor = self.shared.state.lock().compactor.take();
        if let Some(h) = compactor {
            let _ = h.join();
        }
        self.lock.lock().take();
        result
    }

    /// Whether a compaction is running.
    pub fn is_compacting(&self) -> bool {
        self.shared.state.lock().compacting
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if self.writer.get_mut().is_some() {
            if let Err(e) = self.close() {
                tracing::error!(error = %e, "closing write-ahead log failed");
            }
        }
    }
}

#[cfg(test)]
impl Wal {
    /// Simulates a process crash: the writer stops without writing anything
    /// still queued and without a final fsync.
    fn crash(self) {
        let _ = self.stop(true);
    }
}
