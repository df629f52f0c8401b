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
//! directory.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

const MAGIC: [u8; 8] = *b"\x89PGWWAL\n";
const VERSION: u32 = 1;
const FILE_HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 12;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CLEAR: u8 = 3;
const TAG_APPEND: u8 = 4;
/// Largest payload a single frame can hold (the length field is a u32).
const MAX_PAYLOAD: u64 = u32::MAX as u64;
/// Read buffer used when loading the log at open.
const READ_BUF: usize = 4 << 20;
/// Write buffer used when writing a snapshot.
const WRITE_BUF: usize = 1 << 20;
/// Batch buffers larger than this are released after use.
const KEEP_BUF: usize = 16 << 20;

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

/// One mutation. Keys and values are opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    Clear,
    /// Appends `value` to the key's value (sets it if the key has none).
    Append {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

impl Op {
    fn encoded_len(&self) -> u64 {
        match self {
            Op::Put { key, value } | Op::Append { key, value } => {
                9 + key.len() as u64 + value.len() as u64
            }
            Op::Delete { key } => 5 + key.len() as u64,
            Op::Clear => 1,
        }
    }
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

// ---------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------

/// Completion of one group-commit batch, shared by all tickets of the batch.
struct Signal {
    state: Mutex<SignalState>,
    cond: Condvar,
}

#[derive(Default)]
struct SignalState {
    result: Option<Result<(), WalError>>,
    wakers: Vec<Waker>,
}

impl Signal {
    fn new() -> Arc<Self> {
        Arc::new(Signal {
            state: Mutex::new(SignalState::default()),
            cond: Condvar::new(),
        })
    }

    fn complete(&self, result: Result<(), WalError>) {
        let wakers = {
            let mut st = self.state.lock();
            if st.result.is_some() {
                return;
            }
            st.result = Some(result);
            std::mem::take(&mut st.wakers)
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    fn wait_blocking(&self) -> Result<(), WalError> {
        let mut st = self.state.lock();
        loop {
            if let Some(r) = &st.result {
                return r.clone();
            }
            self.cond.wait(&mut st);
        }
    }
}

/// Completes a batch signal; if dropped uncompleted (writer thread died), the
/// batch fails with [`WalError::Closed`] instead of hanging forever.
struct Completer {
    signal: Option<Arc<Signal>>,
    path: PathBuf,
}

impl Completer {
    fn complete(mut self, result: Result<(), WalError>) {
        if let Some(s) = self.signal.take() {
            s.complete(result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(s) = self.signal.take() {
            s.complete(Err(WalError::Closed {
                path: self.path.clone(),
            }));
        }
    }
}

/// Completes when the ops of one [`Wal::append`] call are durable (or, in
/// [`SyncMode::Interval`], immediately).
#[must_use = "a mutation is only durable once its ticket has completed"]
pub struct Ticket(TicketState);

enum TicketState {
    Ready(Result<(), WalError>),
    Pending(Arc<Signal>),
}

impl Ticket {
    fn ready(result: Result<(), WalError>) -> Self {
        Ticket(TicketState::Ready(result))
    }

    /// Wait asynchronously. Never blocks the executor thread.
    pub async fn wait(self) -> Result<(), WalError> {
        match self.0 {
            TicketState::Ready(r) => r,
            TicketState::Pending(signal) => WaitFuture { signal, slot: None }.await,
        }
    }

    /// Wait by blocking the current thread (usable inside and outside a runtime,
    /// but blocks an executor thread if used in async code).
    pub fn wait_blocking(self) -> Result<(), WalError> {
        match self.0 {
            TicketState::Ready(r) => r,
            TicketState::Pending(signal) => signal.wait_blocking(),
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            TicketState::Ready(r) => f.debug_tuple("Ticket::Ready").field(r).finish(),
            TicketState::Pending(_) => f.write_str("Ticket::Pending"),
        }
    }
}

struct WaitFuture {
    signal: Arc<Signal>,
    /// Index of our waker in the signal's waker list once registered.
    slot: Option<usize>,
}

impl Future for WaitFuture {
    type Output = Result<(), WalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut st = this.signal.state.lock();
        if let Some(r) = &st.result {
            return Poll::Ready(r.clone());
        }
        match this.slot {
            Some(i) => {
                if !st.wakers[i].will_wake(cx.waker()) {
                    st.wakers[i] = cx.waker().clone();
                }
            }
            None => {
                this.slot = Some(st.wakers.len());
                st.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn frame_header(payload_len: u32, payload_crc: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..4].copy_from_slice(&payload_len.to_le_bytes());
    h[4..8].copy_from_slice(&payload_crc.to_le_bytes());
    let hcrc = crc32fast::hash(&h[..8]);
    h[8..12].copy_from_slice(&hcrc.to_le_bytes());
    h
}

fn encode_op(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Put { key, value } | Op::Append { key, value } => {
            buf.push(if matches!(op, Op::Put { .. }) {
                TAG_PUT
            } else {
                TAG_APPEND
            });
            buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
        }
        Op::Delete { key } => {
            buf.push(TAG_DELETE);
            buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buf.extend_from_slice(key);
        }
        Op::Clear => buf.push(TAG_CLEAR),
    }
}

/// Appends the frames for one append call to `buf`. Normally that is one
/// frame; ops whose total exceeds the frame limit are split over several
/// frames. Every single op must fit in a frame (checked by `append`).
fn encode_frames(buf: &mut Vec<u8>, ops: &[Op]) {
    let mut i = 0;
    while i < ops.len() {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        let mut plen = 0u64;
        while i < ops.len() {
            let l = ops[i].encoded_len();
            if plen > 0 && plen + l > MAX_PAYLOAD {
                break;
            }
            encode_op(buf, &ops[i]);
            plen += l;
            i += 1;
        }
        let payload = &buf[start + FRAME_HEADER_LEN..];
        let h = frame_header(payload.len() as u32, crc32fast::hash(payload));
        buf[start..start + FRAME_HEADER_LEN].copy_from_slice(&h);
    }
}

/// Writes a complete log file (header + one put frame per entry) to `tmp`,
/// fsyncs it and returns the open handle (positioned at the end) and its size.
fn write_snapshot<I, K, V>(tmp: &Path, entries: I) -> io::Result<(File, u64)>
where
    I: Iterator<Item = (K, V)>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    let mut w = BufWriter::with_capacity(WRITE_BUF, file);
    w.write_all(&file_header())?;
    let mut size = FILE_HEADER_LEN as u64;
    for (k, v) in entries {
        let (k, v) = (k.as_ref(), v.as_ref());
        let plen = 9 + k.len() as u64 + v.len() as u64;
        if plen > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("entry of {plen} bytes exceeds the frame limit"),
            ));
        }
        let mut op_head = [0u8; 9];
        op_head[0] = TAG_PUT;
        op_head[1..5].copy_from_slice(&(k.len() as u32).to_le_bytes());
        op_head[5..9].copy_from_slice(&(v.len() as u32).to_le_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&op_head);
        hasher.update(k);
        hasher.update(v);
        w.write_all(&frame_header(plen as u32, hasher.finalize()))?;
        w.write_all(&op_head)?;
        w.write_all(k)?;
        w.write_all(v)?;
        size += FRAME_HEADER_LEN as u64 + plen;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((file, size))
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

enum OpRef<'a> {
    Put(&'a [u8], &'a [u8]),
    Append(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    Clear,
}

/// Iterates over the ops of a payload; yields `None` (once) for a malformed op.
struct OpIter<'a> {
    buf: &'a [u8],
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Option<OpRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.buf;
        let (&tag, rest) = buf.split_first()?;
        let parsed = match tag {
            TAG_PUT | TAG_APPEND if rest.len() >= 8 => {
                let klen = read_u32(&rest[0..4]) as usize;
                let vlen = read_u32(&rest[4..8]) as usize;
                let body = &rest[8..];
                (klen <= body.len() && vlen <= body.len() - klen).then(|| {
                    let (k, after) = body.split_at(klen);
                    let (v, after) = after.split_at(vlen);
                    let op = if tag == TAG_PUT {
                        OpRef::Put(k, v)
                    } else {
                        OpRef::Append(k, v)
                    };
                    (op, after)
                })
            }
            TAG_DELETE if rest.len() >= 4 => {
                let klen = read_u32(&rest[0..4]) as usize;
                let body = &rest[4..];
                (klen <= body.len()).then(|| {
                    let (k, after) = body.split_at(klen);
                    (OpRef::Delete(k), after)
                })
            }
            TAG_CLEAR => Some((OpRef::Clear, rest)),
            _ => None,
        };
        match parsed {
            Some((op, after)) => {
                self.buf = after;
                Some(Some(op))
            }
            None => {
                self.buf = &[];
                Some(None)
            }
        }
    }
}

fn payload_valid(payload: &[u8]) -> bool {
    !payload.is_empty() && OpIter { buf: payload }.all(|op| op.is_some())
}

/// Returns (payload length, payload crc) if the frame header is intact.
fn parse_frame_header(h: &[u8]) -> Option<(usize, u32)> {
    let plen = read_u32(&h[0..4]);
    let pcrc = read_u32(&h[4..8]);
    let hcrc = read_u32(&h[8..12]);
    (plen != 0 && crc32fast::hash(&h[..8]) == hcrc).then_some((plen as usize, pcrc))
}

/// If a complete, intact frame starts at `buf[0]`, returns its payload and
/// total length.
fn frame_at(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.len() < FRAME_HEADER_LEN {
        return None;
    }
    let (plen, pcrc) = parse_frame_header(&buf[..FRAME_HEADER_LEN])?;
    if plen > buf.len() - FRAME_HEADER_LEN {
        return None;
    }
    let payload = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + plen];
    (crc32fast::hash(payload) == pcrc && payload_valid(payload))
        .then_some((payload, FRAME_HEADER_LEN + plen))
}

/// Offset of the next intact frame at or after `from`.
fn find_next_frame(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + FRAME_HEADER_LEN <= buf.len() {
        // Cheap filter before computing any CRC.
        let plen = read_u32(&buf[i..i + 4]) as usize;
        if plen != 0 && plen <= buf.len() - i - FRAME_HEADER_LEN && frame_at(&buf[i..]).is_some() {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Keys come from our own file, so a fast non-DoS-resistant hash is fine for replay.
type Map = HashMap<Vec<u8>, Vec<u8>, ahash::RandomState>;

fn apply(map: &mut Map, payload: &[u8]) {
    for op in (OpIter { buf: payload }).flatten() {
        match op {
            OpRef::Put(k, v) => {
                if let Some(slot) = map.get_mut(k) {
                    slot.clear();
                    slot.extend_from_slice(v);
                } else {
                    map.insert(k.to_vec(), v.to_vec());
                }
            }
            OpRef::Append(k, v) => match map.get_mut(k) {
                Some(slot) => slot.extend_from_slice(v),
                None => {
                    map.insert(k.to_vec(), v.to_vec());
                }
            },
            OpRef::Delete(k) => {
                map.remove(k);
            }
            OpRef::Clear => map.clear(),
        }
    }
}

enum Outcome {
    /// Every byte after the header is an intact frame.
    Clean,
    /// Empty file or only a prefix of the header: (re)initialise.
    Uninitialized,
    /// Intact frames up to `valid_len`, then bytes containing no intact frame.
    TornTail {
        valid_len: u64,
    },
    /// Damage followed by intact data, or a bad header.
    Damaged {
        reason: String,
    },
    UnsupportedVersion {
        found: u32,
    },
}

struct Loaded {
    map: Map,
    frames: u64,
    file_len: u64,
    outcome: Outcome,
}

/// Sequential reader handing out slices of a large buffer, so frames are
/// checked and decoded in place (one copy from the kernel, one into the
/// recovered values, one `read` per `READ_BUF` bytes).
struct ChunkReader<'f> {
    file: &'f File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<'f> ChunkReader<'f> {
    fn new(file: &'f File, capacity: usize) -> Self {
        ChunkReader {
            file,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// Returns the next `n` bytes without consuming them. The caller
    /// guarantees that the file holds at least `n` more bytes.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            while self.end < n {
                match self.file.read(&mut self.buf[self.end..]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.start + n])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }
}

/// Reads the whole log. The common (intact) case streams through a large
/// buffer; from the first bad byte on, the rest of the file is read into
/// memory and scanned for intact frames.
fn load(mut file: &File) -> io::Result<Loaded> {
    let file_len = file.metadata()?.len();
    let mut map = Map::default();
    let mut frames = 0u64;

    let expected = file_header();
    if file_len < FILE_HEADER_LEN as u64 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let outcome = if expected.starts_with(&bytes) {
            Outcome::Uninitialized
        } else {
            Outcome::Damaged {
                reason: format!(
                    "{} bytes that are not a persistence file header",
                    bytes.len()
                ),
            }
        };
        return Ok(Loaded {
            map,
            frames,
            file_len,
            outcome,
        });
    }

    let cap = READ_BUF.min(file_len as usize);
    let mut r = ChunkReader::new(file, cap);
    let mut header = [0u8; FILE_HEADER_LEN];
    header.copy_from_slice(r.peek(FILE_HEADER_LEN)?);
    r.consume(FILE_HEADER_LEN);
    let mut header_damage = None;
    if header != expected {
        let version = read_u32(&header[8..12]);
        let crc_ok = crc32fast::hash(&header[..12]) == read_u32(&header[12..16]);
        if header[..8] != MAGIC {
            header_damage = Some("not a persistence file (bad magic number)".to_string());
        } else if !crc_ok {
            header_damage = Some("corrupt file header".to_string());
        } else if version > VERSION {
            return Ok(Loaded {
                map,
                frames,
                file_len,
                outcome: Outcome::UnsupportedVersion { found: version },
            });
        } else {
            header_damage = Some(format!("invalid format version {version}"));
        }
    }

    let mut off = FILE_HEADER_LEN as u64;
    let bad_at = if header_damage.is_some() {
        Some(off)
    } else {
        loop {
            let remaining = file_len - off;
            if remaining == 0 {
                break None;
            }
            if remaining < FRAME_HEADER_LEN as u64 {
                break Some(off);
            }
            let Some((plen, pcrc)) = parse_frame_header(r.peek(FRAME_HEADER_LEN)?) else {
                break Some(off);
            };
            if plen as u64 > remaining - FRAME_HEADER_LEN as u64 {
                break Some(off);
            }
            let frame = r.peek(FRAME_HEADER_LEN + plen)?;
            let payload = &frame[FRAME_HEADER_LEN..];
            if crc32fast::hash(payload) != pcrc || !payload_valid(payload) {
                break Some(off);
            }
            apply(&mut map, payload);
            r.consume(FRAME_HEADER_LEN + plen);
            frames += 1;
            off += (FRAME_HEADER_LEN + plen) as u64;
        }
    };

    let Some(bad_at) = bad_at else {
        return Ok(Loaded {
            map,
            frames,
            file_len,
            outcome: Outcome::Clean,
        });
    };

    // Slow path: scan the rest of the file in memory.
    drop(r);
    file.seek(SeekFrom::Start(bad_at))?;
    let mut rest = Vec::with_capacity((file_len - bad_at) as usize);
    file.read_to_end(&mut rest)?;
    let mut pos = 0usize;
    let mut valid_end = 0usize;
    let mut regions = 0usize;
    let mut skipped = 0usize;
    let mut first_damage = None;
    while pos < rest.len() {
        if let Some((payload, n)) = frame_at(&rest[pos..]) {
            apply(&mut map, payload);
            frames += 1;
            pos += n;
            valid_end = pos;
            continue;
        }
        match find_next_frame(&rest, pos + 1) {
            Some(next) => {
                first_damage.get_or_insert(bad_at + pos as u64);
                regions += 1;
                skipped += next - pos;
                pos = next;
            }
            None => break,
        }
    }
    let torn = rest.len() - pos;
    let outcome = if let Some(reason) = header_damage {
        Outcome::Damaged { reason }
    } else if let Some(at) = first_damage {
        Outcome::Damaged {
            reason: format!(
                "damaged data at byte offset {at}: {skipped} bytes in {regions} region(s) \
                 skipped, {torn} bytes of torn tail dropped"
            ),
        }
    } else {
        Outcome::TornTail {
            valid_len: bad_at + valid_end as u64,
        }
    };
    Ok(Loaded {
        map,
        frames,
        file_len,
        outcome,
    })
}

// ---------------------------------------------------------------------------
// File system helpers
// ---------------------------------------------------------------------------

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` and any missing ancestors, making the new entries durable.
fn ensure_dir(dir: &Path) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    fs::create_dir_all(dir).map_err(|e| WalError::io("creating directory", dir, e))?;
    for d in missing.iter().rev() {
        let parent = match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent).map_err(|e| WalError::io("syncing directory", parent, e))?;
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Preserves a damaged file as `NAME.corrupt-<unix-ts>[-N]` next to it (a
/// hard link, or a copy where links are not supported). `path` itself is left
/// in place so that it is only ever replaced atomically by a rename.
fn preserve_damaged(path: &Path, dir: &Path, name: &str) -> Result<PathBuf, WalError> {
    let base = format!("{name}.corrupt-{}", unix_now());
    let mut target = dir.join(&base);
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    if fs::hard_link(path, &target).is_err() {
        let copied = fs::copy(path, &target)
            .and_then(|_| File::open(&target))
            .and_then(|f| f.sync_all());
        if let Err(e) = copied {
            let _ = fs::remove_file(&target);
            return Err(WalError::io("moving damaged file aside", path, e));
        }
    }
    sync_dir(dir).map_err(|e| WalError::io("syncing directory", dir, e))?;
    Ok(target)
}

// ---------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------

enum Item {
    /// The ops of one append, with the append's sequence number.
    Ops(u64, Vec<Op>),
    /// Everything before this was captured by the compaction snapshot.
    CompactMark,
}

struct State {
    /// Appended, not yet taken by the writer.
    pending: Vec<Item>,
    /// Signal completed when `pending` is durable.
    signal: Arc<Signal>,
    /// A compaction was started and the writer has not finished it yet.
    compacting: bool,
    /// Result of the snapshot thread, for the writer to pick up.
    snapshot: Option<Result<(File, u64), WalError>>,
    compactor: Option<JoinHandle<()>>,
    shutdown: bool,
    /// Test hook: the writer exits without writing anything more (simulated crash).
    abandon: bool,
    /// Sequence number of the next append.
    next_seq: u64,
    /// [`SyncMode::Always`]: a write failed; every append fails until [`Wal::resume`].
    failed: Option<WalError>,
}

struct Shared {
    path: PathBuf,
    dir: PathBuf,
    tmp: PathBuf,
    mode: SyncMode,
    state: Mutex<State>,
    work: Condvar,
    log_bytes: AtomicU64,
    compacted_bytes: AtomicU64,
    fsyncs: AtomicU64,
    /// Highest sequence number whose append is durable (Always mode).
    durable_seq: AtomicU64,
    /// Test hook: artificial fsync latency in microseconds.
    #[cfg(test)]
    sync_delay_us: AtomicU64,
    /// Fault injection: number of upcoming batch writes that write half their bytes and fail.
    fail_writes: AtomicU64,
}

/// A crash-safe, group-committing key/value log. `Send + Sync`; share it via `Arc`.
pub struct Wal {
    shared: Arc<Shared>,
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
        ensure_dir(&dir)?;
        let lock = crate::lock::lock(&path).map_err(|e| match e {
            crate::lock::LockError::Held { lock_path, holder } => WalError::Locked {
                path: path.clone(),
                lock_path,
                holder,
            },
            crate::lock::LockError::Io(e) => WalError::io("locking", &path, e),
        })?;
        // A file-size limit (`ulimit -f`) must fail a write (EFBIG, handled like a full
        // disk), not kill the process.
        #[cfg(unix)]
        // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }

        // A leftover from a compaction interrupted by a crash; never referenced.
        // Recreating it also checks that the directory is writable, which
        // compaction needs.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| WalError::io("creating a file in the directory of", &path, e))?;
        fs::remove_file(&tmp).map_err(|e| WalError::io("removing", &tmp, e))?;

        let existing = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(WalError::io("opening", &path, e)),
        };

        // A new file is written to `tmp` and fsynced, then renamed over
        // `path`: `path` never holds a partial file.
        let prepare = |entries: &Map| -> Result<(File, u64), WalError> {
            write_snapshot(&tmp, entries.iter()).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                WalError::io("writing", &tmp, e)
            })
        };
        let install = || -> Result<(), WalError> {
            fs::rename(&tmp, &path).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                WalError::io("renaming new file to", &path, e)
            })?;
            sync_dir(&dir).map_err(|e| WalError::io("syncing directory", &dir, e))
        };
        let fresh = |entries: &Map| -> Result<(File, u64), WalError> {
            let created = prepare(entries)?;
            install()?;
            Ok(created)
        };

        let mut damaged = false;
        let (file, map, size) = match existing {
            None => {
                let map = Map::default();
                let (file, size) = fresh(&map)?;
                tracing::info!(path = %path.display(), "created new persistence file");
                (file, map, size)
            }
            Some(mut file) => {
                let loaded = load(&file).map_err(|e| WalError::io("reading", &path, e))?;
                let Loaded {
                    map,
                    frames,
                    file_len,
                    outcome,
                } = loaded;
                match outcome {
                    Outcome::Clean => {
                        file.seek(SeekFrom::End(0))
                            .map_err(|e| WalError::io("seeking in", &path, e))?;
                        (file, map, file_len)
                    }
                    Outcome::Uninitialized => {
                        if file_len > 0 {
                            tracing::warn!(
                                path = %path.display(),
                                bytes = file_len,
                                "persistence file holds only a partial header (interrupted \
                                 creation); initialising it"
                            );
                        }
                        drop(file);
                        let (file, size) = fresh(&map)?;
                        (file, map, size)
                    }
                    Outcome::TornTail { valid_len } => {
                        tracing::warn!(
                            path = %path.display(),
                            records = frames,
                            dropped_bytes = file_len - valid_len,
                            "persistence file ends with an incomplete record (torn write, \
                             typically from a crash); truncating it"
                        );
                        file.set_len(valid_len)
                            .and_then(|_| file.sync_all())
                            .and_then(|_| file.seek(SeekFrom::Start(valid_len)))
                            .map_err(|e| WalError::io("truncating torn tail of", &path, e))?;
                        (file, map, valid_len)
                    }
                    Outcome::Damaged { reason } => {
                        drop(file);
                        // Order matters: if anything fails, `path` still holds
                        // the damaged file and the next start tries again.
                        let (file, size) = prepare(&map)?;
                        let aside = preserve_damaged(&path, &dir, &name).inspect_err(|_| {
                            let _ = fs::remove_file(&tmp);
                        })?;
                        install()?;
                        tracing::error!(
                            path = %path.display(),
                            moved_to = %aside.display(),
                            recovered_records = frames,
                            recovered_keys = map.len(),
                            %reason,
                            "persistence file is damaged: recovered every intact record, moved \
                             the damaged file aside and wrote a clean file from what was \
                             recovered; inspect the moved file for anything missing"
                        );
                        damaged = true;
                        (file, map, size)
                    }
                    Outcome::UnsupportedVersion { found } => {
                        return Err(WalError::UnsupportedVersion {
                            path,
                            found,
                            supported: VERSION,
                        });
                    }
                }
            }
        };

        let compacted_estimate = FILE_HEADER_LEN as u64
            + map
                .iter()
                .map(|(k, v)| (FRAME_HEADER_LEN + 9 + k.len() + v.len()) as u64)
                .sum::<u64>();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = map.into_iter().collect();
        tracing::info!(
            path = %path.display(),
            keys = entries.len(),
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded persistence file"
        );

        let shared = Arc::new(Shared {
            path: path.clone(),
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
            compacted_bytes: AtomicU64::new(compacted_estimate),
            fsyncs: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            #[cfg(test)]
            sync_delay_us: AtomicU64::new(0),
            fail_writes: AtomicU64::new(0),
        });
        let writer = Writer {
            shared: shared.clone(),
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
        let handle = thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run())
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
                    write_snapshot(&shared.tmp, live)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("snapshot iterator panicked")));
                let result = written.map_err(|e| {
                    let _ = fs::remove_file(&shared.tmp);
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

    /// Number of group-commit fsyncs of the log so far (for tests and metrics).
    pub fn fsync_count(&self) -> u64 {
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

struct Writer {
    shared: Arc<Shared>,
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
    fn run(mut self) -> Result<(), WalError> {
        let _exit = WriterExit(self.shared.clone());
        let interval = match self.shared.mode {
            SyncMode::Always => None,
            SyncMode::Interval(d) => Some(d),
        };
        loop {
            let (items, signal, snapshot, exit, failed) = {
                let mut st = self.shared.state.lock();
                loop {
                    if st.abandon {
                        return Ok(());
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
                (items, signal, snapshot, exit, st.failed.clone())
            };
            let completer = Completer {
                signal: Some(signal),
                path: self.shared.path.clone(),
            };

            self.buf.clear();
            let mut mark = None;
            let mut max_seq = None;
            for item in &items {
                match item {
                    // After a failed write nothing is written until the log is resumed:
                    // these appends were made on top of the failed ones.
                    Item::Ops(_, _) if failed.is_some() => {}
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
            if failed.is_some() && self.tail.is_some() {
                self.poisoned = true;
            }

            let mut result = Ok(());
            let mut switched = false;
            if let Some(snapshot) = snapshot {
                if std::mem::take(&mut self.poisoned) {
                    // The snapshot holds changes whose writes failed (and were undone).
                    self.tail = None;
                    if let Ok((file, _)) = snapshot {
                        drop(file);
                        let _ = fs::remove_file(&self.shared.tmp);
                    }
                    tracing::warn!(
                        "compaction abandoned: a write failed while it ran; retried later"
                    );
                } else {
                    (switched, result) = self.finish_compaction(snapshot);
                }
                self.shared.state.lock().compacting = false;
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
                if exit || self.last_sync.elapsed() >= d {
                    self.sync_interval();
                }
            }
            completer.complete(result.clone());
            if exit {
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

#[cfg(test)]
impl Wal {
    /// Simulates a process crash: the writer stops without writing anything
    /// still queued and without a final fsync.
    fn crash(self) {
        let _ = self.stop(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }
    }

    fn del(k: &str) -> Op {
        Op::Delete {
            key: k.as_bytes().to_vec(),
        }
    }

    fn sorted(r: &Recovered) -> BTreeMap<Vec<u8>, Vec<u8>> {
        r.entries.iter().cloned().collect()
    }

    fn model(pairs: &[(&str, &str)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        v.sort();
        v
    }

    /// Byte offsets of the frames in a log file.
    fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut offs = Vec::new();
        let mut pos = FILE_HEADER_LEN;
        while pos < bytes.len() {
            let (_, n) = frame_at(&bytes[pos..]).expect("intact frame");
            offs.push(pos);
            pos += n;
        }
        offs
    }

    fn write_records(path: &Path, n: usize) {
        let (wal, _) = Wal::open(path, SyncMode::Always).unwrap();
        for i in 0..n {
            wal.append(vec![put(&format!("k{i}"), &format!("value-{i}"))])
                .wait_blocking()
                .unwrap();
        }
        wal.close().unwrap();
    }

    #[test]
    fn append_concatenates_to_the_value_and_survives_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let app = |k: &str, v: &str| Op::Append {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        };
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        wal.append(vec![put("a", "1"), app("a", "2"), app("b", "x")])
            .wait_blocking()
            .unwrap();
        wal.append(vec![app("a", "3"), del("b")])
            .wait_blocking()
            .unwrap();
        wal.close().unwrap();
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(sorted(&rec), model(&[("a", "123")]));
        wal.append(vec![app("a", "4")]).wait_blocking().unwrap();
        assert!(wal.compact(Box::new(
            vec![(b"a".to_vec(), b"1234".to_vec())].into_iter()
        )));
        wal.append(vec![app("a", "5")]).wait_blocking().unwrap();
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(sorted(&rec), model(&[("a", "12345")]));
    }

    #[test]
    fn round_trip_put_delete_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.entries.is_empty());
        assert!(!rec.damaged);
        wal.append(vec![put("a", "1"), put("b", "2")])
            .wait_blocking()
            .unwrap();
        wal.append(vec![put("c", "3")]).wait_blocking().unwrap();
        wal.append(vec![del("b"), put("a", "1b")])
            .wait_blocking()
            .unwrap();
        wal.append(vec![]).wait_blocking().unwrap();
        wal.close().unwrap();

        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(sorted(&rec), model(&[("a", "1b"), ("c", "3")]));
        wal.append(vec![Op::Clear, put("z", "26")])
            .wait_blocking()
            .unwrap();
        wal.close().unwrap();

        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(sorted(&rec), model(&[("z", "26")]));
        wal.append(vec![Op::Clear]).wait_blocking().unwrap();
        drop(wal); // Drop closes.
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.entries.is_empty());
        assert!(corrupt_files(dir.path()).is_empty());
    }

    #[test]
    fn binary_and_empty_keys_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        wal.append(vec![
            Op::Put {
                key: vec![],
                value: vec![],
            },
            Op::Put {
                key: vec![0, 0xff, 1],
                value: big.clone(),
            },
        ])
        .wait_blocking()
        .unwrap();
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        let m = sorted(&rec);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&vec![]], Vec::<u8>::new());
        assert_eq!(m[&vec![0, 0xff, 1]], big);
    }

    #[test]
    fn group_commit_shares_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        // Make fsync slow enough that appends pile up behind it, as on a real disk.
        wal.shared.sync_delay_us.store(2000, Ordering::Relaxed);
        let wal = Arc::new(wal);
        let threads = 16;
        let per_thread = 40;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let wal = wal.clone();
                thread::spawn(move || {
                    for i in 0..per_thread {
                        wal.append(vec![put(&format!("t{t}-{i}"), "v")])
                            .wait_blocking()
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let appends = (threads * per_thread) as u64;
        let fsyncs = wal.fsync_count();
        assert!(
            fsyncs * 2 < appends,
            "expected shared fsyncs: {fsyncs} fsyncs for {appends} appends"
        );
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), appends as usize);
    }

    #[test]
    fn async_wait_from_many_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        let wal = Arc::new(wal);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for t in 0..50 {
                let wal = wal.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..10 {
                        wal.append(vec![put(&format!("{t}/{i}"), "x")])
                            .wait()
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert!(wal.fsync_count() <= 500);
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), 500);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_records(&path, 5);
        let good = fs::read(&path).unwrap();

        // A frame cut in the middle of its payload.
        let mut torn = Vec::new();
        encode_frames(&mut torn, &[put("k5", "a value that never fully made it")]);
        let mut bytes = good.clone();
        bytes.extend_from_slice(&torn[..torn.len() - 7]);
        fs::write(&path, &bytes).unwrap();
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(rec.entries.len(), 5);
        assert_eq!(fs::read(&path).unwrap(), good, "tail truncated");
        assert!(corrupt_files(dir.path()).is_empty());
        // Appends continue after the truncation point.
        wal.append(vec![put("k5", "v")]).wait_blocking().unwrap();
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(rec.entries.len(), 6);

        // A partial frame header, and zero-filled blocks (delayed allocation after a crash).
        for tail in [&torn[..5], &[0u8; 4096][..]] {
            let mut bytes = fs::read(&path).unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(tail);
            fs::write(&path, &bytes).unwrap();
            let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
            assert!(!rec.damaged);
            assert_eq!(rec.entries.len(), 6);
            wal.close().unwrap();
            assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
        }
        assert!(corrupt_files(dir.path()).is_empty());
    }

    #[test]
    fn torn_multi_op_append_is_dropped_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        wal.append(vec![Op::Clear, put("b", "2"), put("c", "3")])
            .wait_blocking()
            .unwrap();
        wal.close().unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(sorted(&rec), model(&[("a", "1")]));
    }

    #[test]
    fn flipped_byte_in_middle_moves_file_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_records(&path, 10);
        let original = fs::read(&path).unwrap();
        let offs = frame_offsets(&original);
        assert_eq!(offs.len(), 10);

        // Flip a byte in the payload of record 4 and in the length of record 7.
        let mut bytes = original.clone();
        bytes[offs[4] + FRAME_HEADER_LEN + 3] ^= 0x40;
        bytes[offs[7] + 2] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.damaged);
        let m = sorted(&rec);
        for i in [0, 1, 2, 3, 5, 6, 8, 9] {
            assert_eq!(
                m.get(format!("k{i}").as_bytes()),
                Some(&format!("value-{i}").into_bytes()),
                "record {i}"
            );
        }
        assert_eq!(m.len(), 8);
        let aside = corrupt_files(dir.path());
        assert_eq!(aside.len(), 1);
        assert_eq!(
            fs::read(&aside[0]).unwrap(),
            bytes,
            "damaged file kept as is"
        );
        wal.append(vec![put("new", "1")]).wait_blocking().unwrap();
        wal.close().unwrap();

        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged, "the rewritten file is valid");
        assert_eq!(rec.entries.len(), 9);
        assert_eq!(corrupt_files(dir.path()).len(), 1);
    }

    #[test]
    fn damaged_last_record_header_followed_by_nothing_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_records(&path, 3);
        let mut bytes = fs::read(&path).unwrap();
        let offs = frame_offsets(&bytes);
        bytes[offs[2]] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(rec.entries.len(), 2);
    }

    #[test]
    fn garbage_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut garbage = b"this is not a write-ahead log at all\n".to_vec();
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            garbage.push((x >> 16) as u8);
        }
        fs::write(&path, &garbage).unwrap();
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.damaged);
        assert!(rec.entries.is_empty());
        let aside = corrupt_files(dir.path());
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(&aside[0]).unwrap(), garbage);
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(sorted(&rec), model(&[("a", "1")]));

        // A short foreign file too.
        let other = dir.path().join("short");
        fs::write(&other, b"{}\n").unwrap();
        let (_, rec) = Wal::open(&other, SyncMode::Always).unwrap();
        assert!(rec.damaged);
        assert_eq!(corrupt_files(dir.path()).len(), 2);
    }

    #[test]
    fn damaged_header_recovers_intact_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_records(&path, 4);
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.damaged);
        assert_eq!(rec.entries.len(), 4);
    }

    #[test]
    fn empty_or_partial_header_file_is_initialised() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 5, FILE_HEADER_LEN - 1] {
            let path = dir.path().join(format!("wal{len}"));
            fs::write(&path, &file_header()[..len]).unwrap();
            let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
            assert!(!rec.damaged);
            assert!(rec.entries.is_empty());
            wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
            wal.close().unwrap();
            let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
            assert_eq!(rec.entries.len(), 1);
        }
        assert!(corrupt_files(dir.path()).is_empty());
    }

    #[test]
    fn newer_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let mut h = file_header();
        h[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&h[..12]);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        let mut bytes = h.to_vec();
        bytes.extend_from_slice(b"future stuff");
        fs::write(&path, &bytes).unwrap();
        let err = Wal::open(&path, SyncMode::Always).unwrap_err();
        assert!(
            matches!(err, WalError::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert!(corrupt_files(dir.path()).is_empty());
    }

    #[test]
    fn missing_parent_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c/state.wal");
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(rec.entries.is_empty());
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        wal.close().unwrap();
        assert!(path.is_file());
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), 1);
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        // The "directory" is a regular file (works even when running as root).
        let err = Wal::open(&file.join("wal"), SyncMode::Always).unwrap_err();
        assert!(matches!(err, WalError::Io { .. }), "{err}");
        assert!(err.to_string().contains("plain-file"), "{err}");
        // The path is a directory.
        let err = Wal::open(dir.path(), SyncMode::Always).unwrap_err();
        assert!(matches!(err, WalError::Io { .. }), "{err}");
    }

    #[test]
    fn stale_compaction_temp_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        write_records(&path, 3);
        fs::write(dir.path().join("wal.tmp"), b"half-written snapshot").unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), 3);
        assert!(!dir.path().join("wal.tmp").exists());
    }

    #[test]
    fn append_after_close_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(&dir.path().join("wal"), SyncMode::Always).unwrap();
        wal.close().unwrap();
        wal.close().unwrap();
        let err = wal.append(vec![put("a", "1")]).wait_blocking().unwrap_err();
        assert!(matches!(err, WalError::Closed { .. }));
        assert!(!wal.compact(Box::new(std::iter::empty())));
    }

    #[test]
    fn compaction_while_appending_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        let wal = Arc::new(wal);
        // The caller's state: mutated and appended under one lock.
        let state = Arc::new(Mutex::new(BTreeMap::<Vec<u8>, Vec<u8>>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

        let writers: Vec<_> = (0..4u32)
            .map(|t| {
                let (wal, state, stop) = (wal.clone(), state.clone(), stop.clone());
                thread::spawn(move || {
                    let mut x = t + 1;
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) || n < 300 {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let key = format!("key{}", (x >> 8) % 64).into_bytes();
                        let ticket = {
                            let mut st = state.lock();
                            let op = match (x >> 20) % 50 {
                                0 => {
                                    st.clear();
                                    Op::Clear
                                }
                                1..=12 => {
                                    st.remove(&key);
                                    Op::Delete { key }
                                }
                                _ => {
                                    let value = format!("{t}-{n}-{}", "x".repeat(200)).into_bytes();
                                    st.insert(key.clone(), value.clone());
                                    Op::Put { key, value }
                                }
                            };
                            wal.append(vec![op])
                        };
                        ticket.wait_blocking().unwrap();
                        n += 1;
                    }
                })
            })
            .collect();

        let mut compactions = 0;
        let mut refused = 0;
        for _ in 0..10 {
            thread::sleep(Duration::from_millis(20));
            let st = state.lock();
            let snapshot: Vec<_> = st.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            // A slow snapshot iterator so appends overlap the rewrite.
            let slow = snapshot.into_iter().inspect(|_| {
                thread::sleep(Duration::from_micros(300));
            });
            if wal.compact(Box::new(slow)) {
                compactions += 1;
                if !wal.compact(Box::new(std::iter::empty())) {
                    refused += 1;
                }
            }
            drop(st);
        }
        while wal.is_compacting() {
            thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        assert!(compactions >= 2, "{compactions}");
        assert!(refused >= 1);
        let stats = wal.stats();
        assert!(stats.compacted_bytes > 0);
        assert!(stats.log_bytes >= stats.compacted_bytes);

        // One more compaction still running at close: close waits for it.
        {
            let st = state.lock();
            let snapshot: Vec<_> = st.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let slow = snapshot.into_iter().inspect(|_| {
                thread::sleep(Duration::from_micros(500));
            });
            assert!(wal.compact(Box::new(slow)));
            wal.append(vec![put("after-last-compact", "1")])
                .wait_blocking()
                .unwrap();
            drop(st);
            state
                .lock()
                .insert(b"after-last-compact".to_vec(), b"1".to_vec());
        }
        wal.close().unwrap();
        let final_len = fs::metadata(&path).unwrap().len();
        assert_eq!(wal.stats().log_bytes, final_len);
        assert!(!dir.path().join("wal.tmp").exists());

        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(sorted(&rec), *state.lock());
    }

    #[test]
    fn compaction_shrinks_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        for i in 0..200 {
            wal.append(vec![put("same", &format!("{i:0>100}"))])
                .wait_blocking()
                .unwrap();
        }
        let before = wal.stats().log_bytes;
        assert!(wal.compact(Box::new(std::iter::once((
            b"same".to_vec(),
            format!("{:0>100}", 199).into_bytes()
        )))));
        while wal.is_compacting() {
            // The switch happens on the writer's next round.
            wal.append(vec![]).wait_blocking().unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        let after = wal.stats();
        assert!(after.log_bytes < before / 50, "{before} -> {after:?}");
        assert_eq!(after.log_bytes, after.compacted_bytes);
        assert_eq!(fs::metadata(&path).unwrap().len(), after.log_bytes);
        wal.close().unwrap();
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), 1);
        assert_eq!(wal.stats().compacted_bytes, wal.stats().log_bytes);
    }

    #[test]
    fn interval_mode_acknowledges_immediately_and_persists_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Interval(Duration::from_secs(3600))).unwrap();
        // A slow fsync must not delay acknowledgements.
        wal.shared.sync_delay_us.store(200_000, Ordering::Relaxed);
        let t0 = Instant::now();
        for i in 0..100 {
            let t = wal.append(vec![put(&format!("k{i}"), "v")]);
            assert!(matches!(t.0, TicketState::Ready(Ok(()))));
            t.wait_blocking().unwrap();
        }
        assert!(t0.elapsed() < Duration::from_millis(150));
        assert_eq!(wal.fsync_count(), 0);
        wal.close().unwrap();
        assert_eq!(wal.fsync_count(), 1);
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(rec.entries.len(), 100);
    }

    #[test]
    fn interval_mode_syncs_periodically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Interval(Duration::from_millis(20))).unwrap();
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while wal.fsync_count() == 0 {
            assert!(Instant::now() < deadline, "no periodic fsync");
            thread::sleep(Duration::from_millis(5));
        }
        // Nothing new written: no more fsyncs.
        let n = wal.fsync_count();
        thread::sleep(Duration::from_millis(80));
        assert_eq!(wal.fsync_count(), n);
        wal.close().unwrap();
    }

    #[test]
    fn acknowledged_data_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        for i in 0..20 {
            wal.append(vec![put(&format!("k{i}"), "v")])
                .wait_blocking()
                .unwrap();
        }
        wal.append(vec![del("k3")]).wait_blocking().unwrap();
        wal.crash();
        let (wal, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(rec.entries.len(), 19);
        // Again, with a crash in the middle of a compaction.
        assert!(wal.compact(Box::new(
            rec.entries
                .clone()
                .into_iter()
                .inspect(|_| thread::sleep(Duration::from_millis(2)))
        )));
        wal.append(vec![put("during", "compaction")])
            .wait_blocking()
            .unwrap();
        wal.crash();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(rec.entries.len(), 20);
    }

    #[test]
    fn failed_write_is_never_retried_and_stops_the_log_until_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        let (s1, t) = wal.append_seq(vec![put("a", "1")]);
        t.wait_blocking().unwrap();
        assert_eq!(wal.durable_seq(), s1);
        wal.inject_write_failures(1);
        let (s2, t) = wal.append_seq(vec![put("b", "2")]);
        let err = t.wait_blocking().unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(s2 > s1 && wal.durable_seq() == s1);
        assert!(wal.failed().is_some());
        // Until resumed, every append fails without touching the file.
        let (s3, t) = wal.append_seq(vec![put("c", "3")]);
        assert!(t.wait_blocking().is_err());
        assert_eq!(wal.durable_seq(), s1);
        wal.resume();
        assert!(wal.failed().is_none());
        // Half-written bytes were truncated away; b and c are not retried.
        let (s4, t) = wal.append_seq(vec![del("a"), put("d", "4")]);
        t.wait_blocking().unwrap();
        assert!(s4 > s3 && wal.durable_seq() == s4);
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged);
        assert_eq!(sorted(&rec), model(&[("d", "4")]));
        assert!(corrupt_files(dir.path()).is_empty());

        // A failure while compacting abandons the compaction (its snapshot may hold changes
        // that were undone).
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        wal.inject_write_failures(1);
        let t = wal.append(vec![put("e", "5")]);
        assert!(wal.compact(Box::new(
            vec![
                (b"d".to_vec(), b"4".to_vec()),
                (b"e".to_vec(), b"5".to_vec())
            ]
            .into_iter()
        )));
        assert!(t.wait_blocking().is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        while wal.is_compacting() {
            assert!(Instant::now() < deadline);
            wal.append(vec![]).wait_blocking().ok();
            thread::sleep(Duration::from_millis(5));
        }
        wal.resume();
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert!(!rec.damaged, "a failed write leaves no garbage behind");
        assert_eq!(sorted(&rec), model(&[("d", "4")]));
    }

    #[test]
    fn failed_write_in_interval_mode_is_retried_without_spinning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Interval(Duration::from_millis(10))).unwrap();
        wal.shared.fail_writes.store(3, Ordering::Relaxed);
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while wal.shared.fail_writes.load(Ordering::Relaxed) > 0 {
            assert!(Instant::now() < deadline, "failed write not retried");
            thread::sleep(Duration::from_millis(2));
        }
        wal.close().unwrap();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(sorted(&rec), model(&[("a", "1")]));
    }

    #[test]
    fn panicking_snapshot_iterator_does_not_wedge_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (wal, _) = Wal::open(&path, SyncMode::Always).unwrap();
        wal.append(vec![put("a", "1")]).wait_blocking().unwrap();
        let bad = (0..3).map(|i| {
            assert!(i < 2, "caller bug");
            (vec![i as u8], vec![])
        });
        assert!(wal.compact(Box::new(bad)));
        wal.append(vec![put("b", "2")]).wait_blocking().unwrap();
        while wal.is_compacting() {
            wal.append(vec![]).wait_blocking().unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        // The failed compaction left the log alone; a new one can start.
        let entries = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ];
        assert!(wal.compact(Box::new(entries.into_iter())));
        wal.close().unwrap();
        assert!(!dir.path().join("wal.tmp").exists());
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        assert_eq!(sorted(&rec), model(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Wal>();
        send_sync::<Ticket>();
        send_sync::<WalError>();
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(&dir.path().join("wal"), SyncMode::Always).unwrap();
        let fut = wal.append(vec![]).wait();
        send(&fut);
        drop(fut);
    }

    #[test]
    fn op_iter_rejects_malformed_payloads() {
        assert!(!payload_valid(&[]));
        assert!(!payload_valid(&[9]));
        assert!(!payload_valid(&[TAG_PUT, 1, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!payload_valid(&[TAG_DELETE, 2, 0, 0, 0, b'a']));
        assert!(payload_valid(&[TAG_DELETE, 1, 0, 0, 0, b'a', TAG_CLEAR]));
        assert!(payload_valid(&[
            TAG_PUT, 1, 0, 0, 0, 1, 0, 0, 0, b'k', b'v'
        ]));
    }

    /// 100,000 records of ~3 KB must load in well under a second. Run with
    /// `cargo test --release -p store -- --ignored load_is_fast`.
    #[test]
    #[ignore]
    fn load_is_fast() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let n = 100_000usize;
        let value: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let (wal, _) = Wal::open(&path, SyncMode::Interval(Duration::from_secs(3600))).unwrap();
        for chunk in 0..n / 1000 {
            let ops = (0..1000)
                .map(|i| Op::Put {
                    key: format!("job/instance-{}", chunk * 1000 + i).into_bytes(),
                    value: value.clone(),
                })
                .map(|op| vec![op]);
            for op in ops {
                let _ = wal.append(op);
            }
        }
        wal.close().unwrap();
        let bytes = fs::metadata(&path).unwrap().len();
        let t0 = Instant::now();
        let (_, rec) = Wal::open(&path, SyncMode::Always).unwrap();
        let elapsed = t0.elapsed();
        assert_eq!(rec.entries.len(), n);
        eprintln!("loaded {n} records, {bytes} bytes in {elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }
}
