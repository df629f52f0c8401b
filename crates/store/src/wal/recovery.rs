//! Recovery at open: reading the log (mapped, or read into one buffer where it cannot be
//! mapped; intact frames replayed in place, then a scan for intact frames after the first bad
//! byte) into positions per live key, not copies ([`State`]), classifying what was found ([`Outcome`]) and acting on
//! each outcome as the [module documentation](super) describes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use super::format::{
    file_header, find_next_frame, frame_at, parse_frame_header, payload_valid, read_u32, OpIter,
    OpRef, FILE_HEADER_LEN, FRAME_HEADER_LEN, MAGIC, VERSION,
};
use super::fs::{preserve_damaged, sync_dir, write_snapshot};
use super::WalError;

/// Where a key's current value is in the file's bytes: its latest put (or first append) and
/// the appends after it, to be concatenated. Positions, not copies: recovery reads the file
/// once and the records are decoded straight from those bytes.
#[derive(Debug, Clone, Default)]
pub(super) struct Pieces {
    pub(super) first: Range<usize>,
    pub(super) more: Vec<Range<usize>>,
}

impl Pieces {
    pub(super) fn len(&self) -> usize {
        self.first.len() + self.more.iter().map(|r| r.len()).sum::<usize>()
    }

    /// The value: borrowed from `data` when it is one piece, else concatenated.
    pub(super) fn value<'d>(&self, data: &'d [u8]) -> Cow<'d, [u8]> {
        if self.more.is_empty() {
            return Cow::Borrowed(&data[self.first.clone()]);
        }
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&data[self.first.clone()]);
        for r in &self.more {
            v.extend_from_slice(&data[r.clone()]);
        }
        Cow::Owned(v)
    }
}

/// One live key after replay: the key's and its value's positions in the file's bytes.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) key: Range<usize>,
    pub(super) value: Pieces,
}

/// The replayed state: the file's bytes and every live key in them (in no particular order).
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) data: bytes::Bytes,
    pub(super) slots: Vec<Slot>,
}

impl State {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every live key and its value.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], Cow<'_, [u8]>)> {
        self.slots
            .iter()
            .map(|s| (&self.data[s.key.clone()], s.value.value(&self.data)))
    }
}

/// Keys come from our own file, so a fast non-DoS-resistant hash is fine for replay. The
/// keys borrow the file's bytes; the values are positions in them.
type Map<'d> = HashMap<&'d [u8], Pieces, ahash::RandomState>;

/// The position of `part`, a slice of the buffer starting at address `base`, in it.
fn range_of(base: usize, part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - base;
    start..start + part.len()
}

fn apply<'d>(map: &mut Map<'d>, base: usize, payload: &'d [u8]) {
    for op in (OpIter { buf: payload }).flatten() {
        match op {
            OpRef::Put(k, v) => {
                let v = range_of(base, v);
                if let Some(slot) = map.get_mut(k) {
                    slot.first = v;
                    slot.more.clear();
                } else {
                    map.insert(
                        k,
                        Pieces {
                            first: v,
                            more: Vec::new(),
                        },
                    );
                }
            }
            OpRef::Append(k, v) => {
                let v = range_of(base, v);
                match map.get_mut(k) {
                    Some(slot) => slot.more.push(v),
                    None => {
                        map.insert(
                            k,
                            Pieces {
                                first: v,
                                more: Vec::new(),
                            },
                        );
                    }
                }
            }
            OpRef::Delete(k) => {
                map.remove(k);
            }
            OpRef::Clear => map.clear(),
        }
    }
}

/// How the file was found, which decides what [`recover`] does with it.
pub(super) enum Outcome {
    /// Every byte after the header is an intact frame.
    Clean,
    /// Empty file or only a prefix of the header: (re)initialise.
    Uninitialized,
    /// Intact frames up to `valid_len`, then bytes containing no intact frame.
    TornTail { valid_len: u64 },
    /// Damage followed by intact data, or a bad header.
    Damaged { reason: String },
    /// A newer format version than this build reads: refused, left untouched.
    UnsupportedVersion { found: u32 },
}

/// What [`load`] read.
pub(super) struct Loaded {
    /// The state replayed from every intact frame.
    state: State,
    /// How many intact frames were replayed (for the log messages).
    frames: u64,
    /// The file's size when it was read.
    file_len: u64,
    /// What to do with the file.
    outcome: Outcome,
}

/// Maps the whole log (or, where it cannot be mapped, reads it into one buffer) and replays it
/// in place: the intact frames from the start, then, from the first bad byte on, a scan for
/// intact frames.
pub(super) fn load(file: &File) -> io::Result<Loaded> {
    let data = read_all(file)?;
    let file_len = data.len() as u64;
    let mut frames = 0u64;

    if data.len() < FILE_HEADER_LEN {
        let outcome = short_file_outcome(&data);
        return Ok(Loaded {
            state: State {
                data,
                slots: Vec::new(),
            },
            frames,
            file_len,
            outcome,
        });
    }

    let mut header = [0u8; FILE_HEADER_LEN];
    header.copy_from_slice(&data[..FILE_HEADER_LEN]);
    let header_damage = match check_header(&header) {
        Ok(damage) => damage,
        Err(found) => {
            return Ok(Loaded {
                state: State {
                    data,
                    slots: Vec::new(),
                },
                frames,
                file_len,
                outcome: Outcome::UnsupportedVersion { found },
            })
        }
    };

    let base = data.as_ptr() as usize;
    let mut map = Map::default();
    let bad_at = if header_damage.is_some() {
        Some(FILE_HEADER_LEN)
    } else {
        replay_intact(&data, &mut map, &mut frames)
    };
    let outcome = match bad_at {
        None => Outcome::Clean,
        // Slow path: scan the rest of the file.
        Some(bad_at) => scan_damaged(
            &data[bad_at..],
            bad_at as u64,
            base,
            header_damage,
            &mut map,
            &mut frames,
        ),
    };
    let slots: Vec<Slot> = map
        .into_iter()
        .map(|(k, value)| Slot {
            key: range_of(base, k),
            value,
        })
        .collect();
    Ok(Loaded {
        state: State { data, slots },
        frames,
        file_len,
        outcome,
    })
}

/// The file's bytes: mapped, or read where mapping fails.
fn read_all(mut file: &File) -> io::Result<bytes::Bytes> {
    let len = file.metadata()?.len();
    if len > 0 {
        if let Ok(len) = usize::try_from(len) {
            if let Ok(m) = super::fs::Mapped::map(file, len) {
                return Ok(bytes::Bytes::from_owner(m));
            }
        }
    }
    let mut data = Vec::new();
    data.try_reserve_exact(len as usize)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
    file.read_to_end(&mut data)?;
    Ok(bytes::Bytes::from(data))
}

/// A file shorter than the header: a prefix of it (interrupted creation), or damage.
fn short_file_outcome(bytes: &[u8]) -> Outcome {
    if file_header().starts_with(bytes) {
        Outcome::Uninitialized
    } else {
        Outcome::Damaged {
            reason: format!(
                "{} bytes that are not a persistence file header",
                bytes.len()
            ),
        }
    }
}

/// Checks the file header: `Ok(None)` if intact, `Ok(Some(reason))` if damaged, `Err(version)`
/// if it is intact but of a newer format version.
fn check_header(header: &[u8; FILE_HEADER_LEN]) -> Result<Option<String>, u32> {
    if *header == file_header() {
        return Ok(None);
    }
    let version = read_u32(&header[8..12]);
    let crc_ok = crc32fast::hash(&header[..12]) == read_u32(&header[12..16]);
    if header[..8] != MAGIC {
        Ok(Some(
            "not a persistence file (bad magic number)".to_string(),
        ))
    } else if !crc_ok {
        Ok(Some("corrupt file header".to_string()))
    } else if version > VERSION {
        Err(version)
    } else {
        Ok(Some(format!("invalid format version {version}")))
    }
}

/// The fast path: replays intact frames after the header until the end of the file (`None`)
/// or the first bad byte (its offset).
fn replay_intact<'d>(data: &'d [u8], map: &mut Map<'d>, frames: &mut u64) -> Option<usize> {
    let base = data.as_ptr() as usize;
    let mut off = FILE_HEADER_LEN;
    loop {
        let remaining = data.len() - off;
        if remaining == 0 {
            return None;
        }
        if remaining < FRAME_HEADER_LEN {
            return Some(off);
        }
        let Some((plen, pcrc)) = parse_frame_header(&data[off..off + FRAME_HEADER_LEN]) else {
            return Some(off);
        };
        if plen > remaining - FRAME_HEADER_LEN {
            return Some(off);
        }
        let payload = &data[off + FRAME_HEADER_LEN..off + FRAME_HEADER_LEN + plen];
        if crc32fast::hash(payload) != pcrc || !payload_valid(payload) {
            return Some(off);
        }
        apply(map, base, payload);
        *frames += 1;
        off += FRAME_HEADER_LEN + plen;
    }
}

/// The slow path: `rest` is the file from offset `bad_at` (the first bad byte) on. Replays
/// every intact frame in it, skipping damaged regions, and tells a torn tail (nothing intact
/// after the bad byte) from damage.
fn scan_damaged<'d>(
    rest: &'d [u8],
    bad_at: u64,
    base: usize,
    header_damage: Option<String>,
    map: &mut Map<'d>,
    frames: &mut u64,
) -> Outcome {
    let mut pos = 0usize;
    let mut valid_end = 0usize;
    let mut regions = 0usize;
    let mut skipped = 0usize;
    let mut first_damage = None;
    while pos < rest.len() {
        if let Some((payload, n)) = frame_at(&rest[pos..]) {
            apply(map, base, payload);
            *frames += 1;
            pos += n;
            valid_end = pos;
            continue;
        }
        match find_next_frame(rest, pos + 1) {
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
    if let Some(reason) = header_damage {
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
    }
}

/// The paths recovery works with: the log, its directory, the temporary file a new log is
/// written to before it is renamed over the log, and the log's file name.
pub(super) struct Files<'a> {
    pub(super) path: &'a Path,
    pub(super) dir: &'a Path,
    pub(super) tmp: &'a Path,
    pub(super) name: &'a str,
}

/// Opens the log at `files.path` (creating it if missing), replays it and acts on what was
/// found (see the module documentation of `wal`). Returns the file to append to
/// (positioned at its end), the recovered state, the file's size and whether it was
/// damaged.
pub(super) fn recover(files: &Files<'_>) -> Result<(File, State, u64, bool), WalError> {
    let path = files.path;
    let existing = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(WalError::io("opening", path, e)),
    };
    let Some(mut file) = existing else {
        let state = State::default();
        let (file, size) = fresh(files, &state)?;
        tracing::info!(path = %path.display(), "created new persistence file");
        return Ok((file, state, size, false));
    };
    let loaded = load(&file).map_err(|e| WalError::io("reading", path, e))?;
    let Loaded {
        state,
        frames,
        file_len,
        outcome,
    } = loaded;
    match outcome {
        Outcome::Clean => {
            file.seek(SeekFrom::End(0))
                .map_err(|e| WalError::io("seeking in", path, e))?;
            Ok((file, state, file_len, false))
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
            let (file, size) = fresh(files, &state)?;
            Ok((file, state, size, false))
        }
        Outcome::TornTail { valid_len } => {
            truncate_torn_tail(path, &mut file, frames, file_len, valid_len)?;
            Ok((file, state, valid_len, false))
        }
        Outcome::Damaged { reason } => {
            drop(file);
            let (file, size) = replace_damaged(files, &state, frames, &reason)?;
            Ok((file, state, size, true))
        }
        Outcome::UnsupportedVersion { found } => Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        }),
    }
}

/// The size a compaction of `state` would have (the initial `compacted_bytes`).
pub(super) fn compacted_size(state: &State) -> u64 {
    FILE_HEADER_LEN as u64
        + state
            .slots
            .iter()
            .map(|s| (FRAME_HEADER_LEN + 9 + s.key.len() + s.value.len()) as u64)
            .sum::<u64>()
}

/// Writes a new log holding `entries` to `tmp` and fsyncs it. A new file is written to `tmp`
/// and fsynced, then renamed over `path` ([`install`]): `path` never holds a partial file.
fn prepare(files: &Files<'_>, entries: &State) -> Result<(File, u64), WalError> {
    write_snapshot(files.tmp, entries.iter()).map_err(|e| {
        let _ = fs::remove_file(files.tmp);
        WalError::io("writing", files.tmp, e)
    })
}

/// Renames the prepared `tmp` over `path` and makes the rename durable.
fn install(files: &Files<'_>) -> Result<(), WalError> {
    fs::rename(files.tmp, files.path).map_err(|e| {
        let _ = fs::remove_file(files.tmp);
        WalError::io("renaming new file to", files.path, e)
    })?;
    sync_dir(files.dir).map_err(|e| WalError::io("syncing directory", files.dir, e))
}

/// [`prepare`] then [`install`]: a new log holding `entries` replaces `path`.
fn fresh(files: &Files<'_>, entries: &State) -> Result<(File, u64), WalError> {
    let created = prepare(files, entries)?;
    install(files)?;
    Ok(created)
}

/// [`Outcome::TornTail`]: drops the incomplete tail and leaves `file` positioned at the end.
fn truncate_torn_tail(
    path: &Path,
    file: &mut File,
    frames: u64,
    file_len: u64,
    valid_len: u64,
) -> Result<(), WalError> {
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
        .map_err(|e| WalError::io("truncating torn tail of", path, e))?;
    Ok(())
}

/// [`Outcome::Damaged`]: keeps the damaged file as `NAME.corrupt-<ts>` and replaces the log
/// with a clean one holding everything recovered.
fn replace_damaged(
    files: &Files<'_>,
    map: &State,
    frames: u64,
    reason: &str,
) -> Result<(File, u64), WalError> {
    // Order matters: if anything fails, `path` still holds the damaged file and the next
    // start tries again.
    let (file, size) = prepare(files, map)?;
    let aside = preserve_damaged(files.path, files.dir, files.name).inspect_err(|_| {
        let _ = fs::remove_file(files.tmp);
    })?;
    install(files)?;
    tracing::error!(
        path = %files.path.display(),
        moved_to = %aside.display(),
        recovered_records = frames,
        recovered_keys = map.len(),
        %reason,
        "persistence file is damaged: recovered every intact record, moved \
         the damaged file aside and wrote a clean file from what was \
         recovered; inspect the moved file for anything missing"
    );
    Ok((file, size))
}
