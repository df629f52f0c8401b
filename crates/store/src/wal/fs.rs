//! Filesystem helpers: durable directory creation, directory fsync, writing a complete
//! (snapshot) log file, and preserving a damaged file next to the log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{
    file_header, frame_header, FILE_HEADER_LEN, FRAME_HEADER_LEN, MAX_PAYLOAD, TAG_PUT,
};
use super::WalError;

/// Write buffer used when writing a snapshot.
const WRITE_BUF: usize = 1 << 20;

/// Writes a complete log file (header + one put frame per entry) to `tmp`,
/// fsyncs it and returns the open handle (positioned at the end) and its size.
pub(super) fn write_snapshot<I, K, V>(tmp: &Path, entries: I) -> io::Result<(File, u64)>
where
    I: Iterator<Item = (K, V)>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    // Readable by the gateway's user only, as the official gateway's file (os.CreateTemp).
    let file = std::os::unix::fs::OpenOptionsExt::mode(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
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

#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates `dir` and any missing ancestors, making the new entries durable.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), WalError> {
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

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Preserves a damaged file as `NAME.corrupt-<unix-ts>[-N]` next to it (a
/// hard link, or a copy where links are not supported). `path` itself is left
/// in place so that it is only ever replaced atomically by a rename.
pub(super) fn preserve_damaged(path: &Path, dir: &Path, name: &str) -> Result<PathBuf, WalError> {
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

/// Takes the exclusive lock on the persistence file (see [`crate::lock`]).
pub(super) fn lock(path: &Path) -> Result<crate::lock::FileLock, WalError> {
    crate::lock::lock(path).map_err(|e| match e {
        crate::lock::LockError::Held { lock_path, holder } => WalError::Locked {
            path: path.to_path_buf(),
            lock_path,
            holder,
        },
        crate::lock::LockError::Io(e) => WalError::io("locking", path, e),
    })
}

/// A file-size limit (`ulimit -f`) must fail a write (EFBIG, handled like a full disk), not
/// kill the process.
pub(super) fn ignore_sigxfsz() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Removes `tmp`, a leftover from a compaction interrupted by a crash (never referenced).
/// Recreating it first also checks that the directory is writable, which compaction needs.
pub(super) fn clear_tmp(path: &Path, tmp: &Path) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| WalError::io("creating a file in the directory of", path, e))?;
    fs::remove_file(tmp).map_err(|e| WalError::io("removing", tmp, e))
}
