//! Recovery at open: reading the log (fast streaming path, then an in-memory scan for intact
//! frames after the first bad byte), classifying what was found ([`Outcome`]) and acting on
//! each outcome as the [module documentation](super) describes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::format::{
    file_header, find_next_frame, frame_at, parse_frame_header, payload_valid, read_u32, OpIter,
    OpRef, FILE_HEADER_LEN, FRAME_HEADER_LEN, MAGIC, VERSION,
};
use super::fs::{preserve_damaged, sync_dir, write_snapshot};
use super::WalError;

/// Read buffer used when loading the log at open.
const READ_BUF: usize = 4 << 20;

/// Keys come from our own file, so a fast non-DoS-resistant hash is fine for replay.
pub(super) type Map = HashMap<Vec<u8>, Vec<u8>, ahash::RandomState>;

pub(super) fn apply(map: &mut Map, payload: &[u8]) {
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
    map: Map,
    /// How many intact frames were replayed (for the log messages).
    frames: u64,
    /// The file's size when it was read.
    file_len: u64,
    /// What to do with the file.
    outcome: Outcome,
}

/// Sequential reader handing out slices of a large buffer, so frames are
/// checked and decoded in place (one copy from the kernel, one into the
/// recovered values, one `read` per `READ_BUF` bytes).
struct ChunkReader<'f> {
    file: &'f File,
    /// Bytes read from the file; `buf[start..end]` is not consumed yet.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes.
    start: usize,
    /// End of the bytes read.
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
pub(super) fn load(mut file: &File) -> io::Result<Loaded> {
    let file_len = file.metadata()?.len();
    let mut map = Map::default();
    let mut frames = 0u64;

    if file_len < FILE_HEADER_LEN as u64 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let outcome = short_file_outcome(&bytes);
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
    let header_damage = match check_header(&header) {
        Ok(damage) => damage,
        Err(found) => {
            return Ok(Loaded {
                map,
                frames,
                file_len,
                outcome: Outcome::UnsupportedVersion { found },
            })
        }
    };

    let bad_at = if header_damage.is_some() {
        Some(FILE_HEADER_LEN as u64)
    } else {
        replay_intact(&mut r, file_len, &mut map, &mut frames)?
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
    let outcome = scan_damaged(&rest, bad_at, header_damage, &mut map, &mut frames);
    Ok(Loaded {
        map,
        frames,
        file_len,
        outcome,
    })
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

/// The fast path: replays intact frames after the header, streaming, until the end of the
/// file (`None`) or the first bad byte (its offset).
fn replay_intact(
    r: &mut ChunkReader<'_>,
    file_len: u64,
    map: &mut Map,
    frames: &mut u64,
) -> io::Result<Option<u64>> {
    let mut off = FILE_HEADER_LEN as u64;
    loop {
        let remaining = file_len - off;
        if remaining == 0 {
            return Ok(None);
        }
        if remaining < FRAME_HEADER_LEN as u64 {
            return Ok(Some(off));
        }
        let Some((plen, pcrc)) = parse_frame_header(r.peek(FRAME_HEADER_LEN)?) else {
            return Ok(Some(off));
        };
        if plen as u64 > remaining - FRAME_HEADER_LEN as u64 {
            return Ok(Some(off));
        }
        let frame = r.peek(FRAME_HEADER_LEN + plen)?;
        let payload = &frame[FRAME_HEADER_LEN..];
        if crc32fast::hash(payload) != pcrc || !payload_valid(payload) {
            return Ok(Some(off));
        }
        apply(map, payload);
        r.consume(FRAME_HEADER_LEN + plen);
        *frames += 1;
        off += (FRAME_HEADER_LEN + plen) as u64;
    }
}

/// The slow path: `rest` is the file from offset `bad_at` (the first bad byte) on. Replays
/// every intact frame in it, skipping damaged regions, and tells a torn tail (nothing intact
/// after the bad byte) from damage.
fn scan_damaged(
    rest: &[u8],
    bad_at: u64,
    header_damage: Option<String>,
    map: &mut Map,
    frames: &mut u64,
) -> Outcome {
    let mut pos = 0usize;
    let mut valid_end = 0usize;
    let mut regions = 0usize;
    let mut skipped = 0usize;
    let mut first_damage = None;
    while pos < rest.len() {
        if let Some((payload, n)) = frame_at(&rest[pos..]) {
            apply(map, payload);
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
pub(super) fn recover(files: &Files<'_>) -> Result<(File, Map, u64, bool), WalError> {
    let path = files.path;
    let existing = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(WalError::io("opening", path, e)),
    };
    let Some(mut file) = existing else {
        let map = Map::default();
        let (file, size) = fresh(files, &map)?;
        tracing::info!(path = %path.display(), "created new persistence file");
        return Ok((file, map, size, false));
    };
    let loaded = load(&file).map_err(|e| WalError::io("reading", path, e))?;
    let Loaded {
        map,
        frames,
        file_len,
        outcome,
    } = loaded;
    match outcome {
        Outcome::Clean => {
            file.seek(SeekFrom::End(0))
                .map_err(|e| WalError::io("seeking in", path, e))?;
            Ok((file, map, file_len, false))
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
            let (file, size) = fresh(files, &map)?;
            Ok((file, map, size, false))
        }
        Outcome::TornTail { valid_len } => {
            truncate_torn_tail(path, &mut file, frames, file_len, valid_len)?;
            Ok((file, map, valid_len, false))
        }
        Outcome::Damaged { reason } => {
            drop(file);
            let (file, size) = replace_damaged(files, &map, frames, &reason)?;
            Ok((file, map, size, true))
        }
        Outcome::UnsupportedVersion { found } => Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        }),
    }
}

/// The size a compaction of `map` would have (the initial `compacted_bytes`).
pub(super) fn compacted_size(map: &Map) -> u64 {
    FILE_HEADER_LEN as u64
        + map
            .iter()
            .map(|(k, v)| (FRAME_HEADER_LEN + 9 + k.len() + v.len()) as u64)
            .sum::<u64>()
}

/// Writes a new log holding `entries` to `tmp` and fsyncs it. A new file is written to `tmp`
/// and fsynced, then renamed over `path` ([`install`]): `path` never holds a partial file.
fn prepare(files: &Files<'_>, entries: &Map) -> Result<(File, u64), WalError> {
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
fn fresh(files: &Files<'_>, entries: &Map) -> Result<(File, u64), WalError> {
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
    map: &Map,
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
