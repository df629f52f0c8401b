//! The exclusive lock on a persistence file: two processes appending to one log would each
//! compact away the other's acknowledged changes. The lock is a `flock` on `PATH.lock` (the
//! log itself is replaced by renames, so it cannot carry the lock); the holder writes its
//! pid into it, so a refused process can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the value lives (or until the process ends).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process (or another open log in this one) holds it.
    Held {
        lock_path: PathBuf,
        holder: String,
    },
    Io(io::Error),
}

/// The lock file of a persistence file: `PATH.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the exclusive lock for the persistence file at `path` without waiting.
pub fn lock(path: &Path) -> Result<FileLock, LockError> {
    let lp = lock_path(path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lp)
        .map_err(LockError::Io)?;
    if let Err(e) = flock_exclusive(&file) {
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(LockError::Io(e));
        }
        let mut content = String::new();
        let _ = file.read_to_string(&mut content);
        return Err(LockError::Held {
            lock_path: lp,
            holder: describe_holder(content.trim()),
        });
    }
    let pid = std::process::id();
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{pid}"))
        .map_err(LockError::Io)?;
    Ok(FileLock {
        _file: file,
        path: lp,
    })
}

fn describe_holder(pid: &str) -> String {
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return "a process that has not written its pid yet".into();
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("pid {pid} ({})", comm.trim()),
        Err(_) => format!("pid {pid}"),
    }
}

#[cfg(unix)]
fn flock_exclusive(f: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn flock_exclusive(_f: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.db");
        let held = lock(&p).unwrap();
        match lock(&p) {
            Err(LockError::Held { holder, lock_path }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
                assert_eq!(lock_path, dir.path().join("p.db.lock"));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        lock(&p).expect("released when dropped");
    }
}
