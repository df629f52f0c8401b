//! The writer thread and group commit: the state appends share with it ([`Shared`], [`State`]),
//! the batch loop that writes everything queued since its previous round with one `write` and
//! one `fdatasync`, failure handling, and finishing a compaction.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::format::{encode_frames, Op};
use super::fs::sync_dir;
use super::ticket::{Completer, Signal};
use super::{SyncMode, WalError};

/// Batch buffers larger than this are released after use.
const KEEP_BUF: usize = 16 << 20;

/// What an append (or a compaction) hands to the writer thread, in log order.
pub(super) enum Item {
    /// The ops of one append, with the append's sequence number.
    Ops(u64, Vec<Op>),
    /// Everything before this was captured by the compaction snapshot.
    CompactMark,
}

/// What appenders and the writer thread exchange, under [`Shared::state`].
pub(super) struct State {
    /// Appended, not yet taken by the writer.
    pub(super) pending: Vec<Item>,
    /// Signal completed when `pending` is durable.
    pub(super) signal: Arc<Signal>,
    /// A compaction was started and the writer has not finished it yet.
    pub(super) compacting: bool,
    /// Result of the snapshot thread, for the writer to pick up.
    pub(super) snapshot: Option<Result<(File, u64), WalError>>,
    /// The snapshot thread of the last compaction, joined before the next one starts and
    /// when the log closes.
    pub(super) compactor: Option<JoinHandle<()>>,
    /// [`Wal::close`](super::Wal::close) was called (or the writer exited): appends fail, the
    /// writer drains what is pending and exits.
    pub(super) shutdown: bool,
    /// Test hook: the writer exits without writing anything more (simulated crash).
    pub(super) abandon: bool,
    /// Sequence number of the next append.
    pub(super) next_seq: u64,
    /// [`SyncMode::Always`]: a write failed; every append fails until [`Wal::resume`].
    pub(super) failed: Option<WalError>,
}

/// The state shared by the [`Wal`](super::Wal) handle, the writer thread and the compaction
/// thread.
pub(super) struct Shared {
    /// The log file (for errors, the compaction's rename and the lock).
    pub(super) path: PathBuf,
    /// Its directory, fsynced after a rename so the rename is durable.
    pub(super) dir: PathBuf,
    /// `PATH.tmp`, where a compaction writes the new log before renaming it over `path`.
    pub(super) tmp: PathBuf,
    /// When an append counts as acknowledged.
    pub(super) mode: SyncMode,
    /// Pending appends and the compaction hand-over; held briefly, never across I/O.
    pub(super) state: Mutex<State>,
    /// Wakes the writer thread: something was appended, a snapshot is ready, or the log closes.
    pub(super) work: Condvar,
    /// Bytes in the current log file ([`WalStats::log_bytes`](super::WalStats)).
    pub(super) log_bytes: AtomicU64,
    /// Size of the last compaction's output ([`WalStats::compacted_bytes`](super::WalStats)).
    pub(super) compacted_bytes: AtomicU64,
    /// Group-commit fsyncs so far (the tests check that concurrent appends share them).
    pub(super) fsyncs: AtomicU64,
    /// Highest sequence number whose append is durable (Always mode).
    pub(super) durable_seq: AtomicU64,
    /// Test hook: artificial fsync latency in microseconds.
    #[cfg(test)]
    pub(super) sync_delay_us: AtomicU64,
    /// Fault injection: number of upcoming batch writes that write half their bytes and fail.
    pub(super) fail_writes: AtomicU64,
}

impl Shared {
    /// The state of a log just opened: `size` bytes in the file, `compacted` the size a
    /// compaction of the recovered state would have.
    pub(super) fn new(
        path: PathBuf,
        dir: PathBuf,
        tmp: PathBuf,
        mode: SyncMode,
        size: u64,
        compacted: u64,
    ) -> Shared {
        Shared {
            path,
            dir,
            tmp,
            mode,
            state: Mutex::new(State {
                pending: Vec::new(),
                signal: Signal::new(),
                compacting: false,
                snapshot: None,
                compactor: None,
                shutdown: false,
                abandon: false,
                next_seq: 1,
                failed: None,
            }),
            work: Condvar::new(),
            log_bytes: AtomicU64::new(size),
            compacted_bytes: AtomicU64::new(compacted),
            fsyncs: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            #[cfg(test)]
            sync_delay_us: AtomicU64::new(0),
            fail_writes: AtomicU64::new(0),
        }
    }
}

/// Starts the writer thread on `file` (positioned at its end, `size` bytes long).
pub(super) fn spawn(
    shared: Arc<Shared>,
    file: File,
    size: u64,
) -> io::Result<JoinHandle<Result<(), WalError>>> {
    let writer = Writer {
        shared,
        file,
        good_len: size,
        buf: Vec::new(),
        carry: Vec::new(),
        needs_repair: false,
        tail: None,
        poisoned: false,
        dir_dirty: false,
        dirty: false,
        last_sync: Instant::now(),
    };
    thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || writer.run())
}

/// One round of the writer's work, taken from [`State`] under its lock.
struct Batch {
    /// The appends (and a compaction mark) since the previous round.
    items: Vec<Item>,
    /// Completed with the round's result: the tickets of these appends wait for it.
    signal: Arc<Signal>,
    /// The finished compaction snapshot, if one was handed over.
    snapshot: Option<Result<(File, u64), WalError>>,
    /// The log is closing and this is the last round.
    exit: bool,
    /// The write failure that stopped the log ([`State::failed`]).
    failed: Option<WalError>,
}

/// The writer thread's own state: only it touches the file between open and close.
struct Writer {
    /// What it shares with the handle and the compaction thread.
    shared: Arc<Shared>,
    /// The log file, positioned at `good_len` unless `needs_repair`.
    file: File,
    /// Length of the file up to the end of the last successful write.
    good_len: u64,
    /// Frames of the current batch.
    buf: Vec<u8>,
    /// Frames whose write failed; retried before the next batch.
    carry: Vec<u8>,
    /// A write failed: the file must be truncated to `good_len` before the next write.
    needs_repair: bool,
    /// During a compaction: frames appended after the snapshot was taken.
    tail: Option<Vec<u8>>,
    /// A write failed during the running compaction: its snapshot may hold undone changes.
    poisoned: bool,
    /// A rename has not been made durable yet (directory fsync failed).
    dir_dirty: bool,
    /// Interval mode: data written but not fsynced.
    dirty: bool,
    /// Interval mode: when the last periodic fsync ran.
    last_sync: Instant,
}

/// Runs when the writer thread ends, normally or by panic: later appends fail
/// instead of waiting for a writer that is gone.
struct WriterExit(Arc<Shared>);

impl Drop for WriterExit {
    fn drop(&mut self) {
        let signal = {
            let mut st = self.0.state.lock();
            st.shutdown = true;
            st.pending.clear();
            st.signal.clone()
        };
        signal.complete(Err(WalError::Closed {
            path: self.0.path.clone(),
        }));
    }
}

impl Writer {
    /// The writer thread: one round per batch of work (appends, a finished snapshot, the
    /// interval fsync, or closing) until the log closes.
    fn run(mut self) -> Result<(), WalError> {
        let _exit = WriterExit(self.shared.clone());
        let interval = match self.shared.mode {
            SyncMode::Always => None,
            SyncMode::Interval(d) => Some(d),
        };
        loop {
            let Some(batch) = self.next_batch(interval) else {
                return Ok(());
            };
            let completer = Completer {
                signal: Some(batch.signal),
                path: self.shared.path.clone(),
            };
            let failed = batch.failed;
            let max_seq = self.encode(batch.items, failed.is_some());

            let mut result = Ok(());
            let mut switched = false;
            if let Some(snapshot) = batch.snapshot {
                (switched, result) = self.take_snapshot(snapshot);
            }
            if !switched {
                result = self.write_batch();
            }
            if let Some(e) = failed {
                result = Err(e);
            } else if let (Ok(()), Some(seq)) = (&result, max_seq) {
                self.shared.durable_seq.store(seq, Ordering::Release);
            }
            if let Some(d) = interval {
                // Also restarts the interval when a retry of a failed write is
                // due, so a persistently failing disk is retried once per
                // interval rather than in a busy loop.
                if batch.exit || self.last_sync.elapsed() >= d {
                    self.sync_interval();
                }
            }
            completer.complete(result.clone());
            if batch.exit {
                return result;
            }
            // Do not pin the memory of one huge batch forever.
            if self.buf.capacity() > KEEP_BUF {
                self.buf = Vec::new();
            }
            if self.carry.is_empty() && self.carry.capacity() > KEEP_BUF {
                self.carry = Vec::new();
            }
        }
    }

    /// Waits for work and takes it: everything appended since the previous round, with the
    /// signal its tickets wait for. `None`: the log was abandoned (simulated crash).
    fn next_batch(&mut self, interval: Option<Duration>) -> Option<Batch> {
        let mut st = self.shared.state.lock();
        loop {
            if st.abandon {
                return None;
            }
            if !st.pending.is_empty() || st.snapshot.is_some() {
                break;
            }
            if st.shutdown && !st.compacting {
                break;
            }
            match interval {
                Some(d) if self.dirty || !self.carry.is_empty() => {
                    let due = self.last_sync + d;
                    if Instant::now() >= due {
                        break;
                    }
                    self.shared.work.wait_until(&mut st, due);
                }
                _ => self.shared.work.wait(&mut st),
            }
        }
        let items = std::mem::take(&mut st.pending);
        let signal = std::mem::replace(&mut st.signal, Signal::new());
        let snapshot = st.snapshot.take();
        let exit = st.shutdown && !st.compacting && items.is_empty() && snapshot.is_none();
        Some(Batch {
            items,
            signal,
            snapshot,
            exit,
            failed: st.failed.clone(),
        })
    }

    /// Encodes the batch's appends into `buf` (none after a failed write) and keeps the part
    /// after a compaction mark as the tail for the new file. Returns the highest sequence
    /// number encoded.
    fn encode(&mut self, items: Vec<Item>, failed: bool) -> Option<u64> {
        self.buf.clear();
        let mut mark = None;
        let mut max_seq = None;
        for item in &items {
            match item {
                // After a failed write nothing is written until the log is resumed:
                // these appends were made on top of the failed ones.
                Item::Ops(_, _) if failed => {}
                Item::Ops(seq, ops) => {
                    encode_frames(&mut self.buf, ops);
                    max_seq = Some(*seq);
                }
                Item::CompactMark => mark = Some(self.buf.len()),
            }
        }
        drop(items);
        if let Some(m) = mark {
            self.tail = Some(self.buf[m..].to_vec());
        } else if let Some(tail) = &mut self.tail {
            tail.extend_from_slice(&self.buf);
        }
        if failed && self.tail.is_some() {
            self.poisoned = true;
        }
        max_seq
    }

    /// Takes the finished compaction snapshot: switches the log to it
    /// ([`Writer::finish_compaction`]), or drops it if a write failed while it ran.
    fn take_snapshot(
        &mut self,
        snapshot: Result<(File, u64), WalError>,
    ) -> (bool, Result<(), WalError>) {
        let mut outcome = (false, Ok(()));
        if std::mem::take(&mut self.poisoned) {
            // The snapshot holds changes whose writes failed (and were undone).
            self.tail = None;
            if let Ok((file, _)) = snapshot {
                drop(file);
                let _ = fs::remove_file(&self.shared.tmp);
            }
            tracing::warn!("compaction abandoned: a write failed while it ran; retried later");
        } else {
            outcome = self.finish_compaction(snapshot);
        }
        self.shared.state.lock().compacting = false;
        outcome
    }

    /// Writes `carry` + `buf` at `good_len` and (in Always mode) fsyncs.
    fn write_batch(&mut self) -> Result<(), WalError> {
        if !self.carry.is_empty() {
            self.carry.extend_from_slice(&self.buf);
            std::mem::swap(&mut self.carry, &mut self.buf);
            self.carry.clear();
        }
        if self.buf.is_empty() && !self.dir_dirty {
            return Ok(());
        }
        match self.write_buf() {
            Ok(()) => {
                self.good_len += self.buf.len() as u64;
                self.shared
                    .log_bytes
                    .store(self.good_len, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.needs_repair = true;
                let err = WalError::io("appending to", &self.shared.path, e);
                if self.shared.mode == SyncMode::Always {
                    // Never retried: the callers are told it failed, undo their changes
                    // and resume the log; the half-written bytes are truncated away first.
                    self.buf.clear();
                    if self.tail.is_some() {
                        self.poisoned = true;
                    }
                    self.shared.state.lock().failed = Some(err.clone());
                    tracing::error!(
                        error = %err,
                        "write to persistence file failed; the affected changes are refused \
                         and undone"
                    );
                } else {
                    // Interval mode acknowledged these already: keep them for the next try.
                    std::mem::swap(&mut self.carry, &mut self.buf);
                    tracing::error!(
                        error = %err,
                        pending_bytes = self.carry.len(),
                        "write to persistence file failed; the write is retried with the next \
                         batch"
                    );
                }
                Err(err)
            }
        }
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if self.needs_repair {
            self.file.set_len(self.good_len)?;
            self.file.seek(SeekFrom::Start(self.good_len))?;
            self.needs_repair = false;
        }
        if !self.buf.is_empty() {
            if self.shared.fail_writes.load(Ordering::Relaxed) > 0 {
                self.shared.fail_writes.fetch_sub(1, Ordering::Relaxed);
                let _ = self.file.write_all(&self.buf[..self.buf.len() / 2]);
                self.needs_repair = true;
                return Err(io::Error::other("injected write failure"));
            }
            if let Err(e) = self.file.write_all(&self.buf) {
                self.needs_repair = true;
                return Err(e);
            }
            match self.shared.mode {
                SyncMode::Always => {
                    if let Err(e) = self.sync() {
                        self.needs_repair = true;
                        return Err(e);
                    }
                }
                SyncMode::Interval(_) => self.dirty = true,
            }
        }
        if self.dir_dirty {
            sync_dir(&self.shared.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        #[cfg(test)]
        {
            let us = self.shared.sync_delay_us.load(Ordering::Relaxed);
            if us > 0 {
                thread::sleep(Duration::from_micros(us));
            }
        }
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }

    fn sync_interval(&mut self) {
        self.last_sync = Instant::now();
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Err(e) = self.sync() {
            // The kernel may already have dropped the unsynced pages; retrying
            // the fsync would not tell us. This mode is documented as lossy.
            tracing::error!(
                path = %self.shared.path.display(),
                error = %e,
                "periodic fsync of persistence file failed; recent mutations may be lost on a \
                 machine crash"
            );
        }
    }

    /// Appends the buffered tail to the snapshot file and renames it over the
    /// log. Returns whether the log was switched, and the durability result
    /// for the current batch (whose frames are in the tail) if it was.
    fn finish_compaction(
        &mut self,
        snapshot: Result<(File, u64), WalError>,
    ) -> (bool, Result<(), WalError>) {
        let tail = self.tail.take().unwrap_or_default();
        let (mut file, snap_len) = match snapshot {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "compaction failed; keeping the current log");
                return (false, Ok(()));
            }
        };
        let shared = self.shared.clone();
        let prepared = file
            .write_all(&tail)
            .and_then(|_| file.sync_data())
            .and_then(|_| fs::rename(&shared.tmp, &shared.path));
        if let Err(e) = prepared {
            let _ = fs::remove_file(&shared.tmp);
            tracing::error!(
                path = %shared.path.display(),
                error = %e,
                "compaction failed while finishing the new file; keeping the current log"
            );
            return (false, Ok(()));
        }
        // The rename happened: the new file is the log now.
        let before = self.good_len;
        self.file = file;
        self.good_len = snap_len + tail.len() as u64;
        self.carry.clear();
        self.needs_repair = false;
        self.dirty = false;
        shared.log_bytes.store(self.good_len, Ordering::Relaxed);
        shared
            .compacted_bytes
            .store(self.good_len, Ordering::Relaxed);
        match sync_dir(&shared.dir) {
            Ok(()) => {
                tracing::info!(
                    path = %shared.path.display(),
                    before_bytes = before,
                    after_bytes = self.good_len,
                    "compacted persistence file"
                );
                (true, Ok(()))
            }
            Err(e) => {
                self.dir_dirty = true;
                let err = WalError::io("syncing directory", &shared.dir, e);
                tracing::error!(error = %err, "compacted file is in place but its rename is not durable yet");
                (true, Err(err))
            }
        }
    }
}
