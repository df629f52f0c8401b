//! The official Pushgateway's persistence file: recognising it, reading it, and taking it
//! over into our own format on the first start (the original is kept beside it, untouched).
//!
//! The official gateway (`storage/diskmetricstore.go`) writes its whole state with Go's
//! `encoding/gob` as one value of type
//!
//! ```text
//! map[string]MetricGroup                 // grouping key string -> group
//! MetricGroup { Labels map[string]string; Metrics map[string]TimestampedMetricFamily }
//! TimestampedMetricFamily { Timestamp time.Time; GobbableMetricFamily *GobbableMetricFamily }
//! ```
//!
//! where `time.Time` is sent as its `MarshalBinary` bytes and `GobbableMetricFamily` as the
//! protobuf encoding of an `io.prometheus.client.MetricFamily`. Every group holds its
//! `push_time_seconds` and `push_failure_time_seconds` gauges as families; their values and
//! timestamps are carried over as they are, so staleness alerts do not reset.
//!
//! This layout is unchanged from 0.5 to current upstream (1.11): Debian's 1.5.1, whose
//! output the tests decode, also sends gob type definitions for the `dto.Metric` structs
//! (unused, skipped by the generic decoder); newer versions marshal with
//! `google.golang.org/protobuf` and may carry fields 1.5.1 does not know (native histogram
//! buckets, created timestamps, `unit`), which the protobuf decoding keeps or ignores like
//! any pushed protobuf body.

pub mod gob;

use crate::group::{FamilyEntry, Group, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::key::GroupKey;
use crate::store::{PersistConfig, Store, StoreConfig};
use crate::wal::{SyncMode, WalError};
use exposition::pb::MetricFamily;
use gob::Value;
use prost::Message;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

// Go's `time.Time` in its `MarshalBinary` form, as the file stores push times.
use gocompat::time::unmarshal_binary_nanos as go_time_nanos;
use std::time::{SystemTime, UNIX_EPOCH};

/// Our own file's magic (see `wal`): a file starting with it, or most of it, is ours.
const OUR_MAGIC: &[u8; 8] = b"\x89PGWWAL\n";

/// What a `--persistence.file` path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// No file yet (created on open).
    Missing,
    /// Our own format, possibly damaged (the write-ahead log recovers it), or empty.
    Ours,
    /// A Go gob stream: the official Pushgateway's file.
    Official,
    /// Neither: refused, never renamed or overwritten.
    Unrecognized,
}

#[derive(Debug, thiserror::Error)]
pub enum OfficialError {
    #[error("persistence file {path}: {action} failed: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "persistence file {path} is neither this gateway's format nor the official \
         Pushgateway's (a Go gob stream); it starts with {start}. It was left untouched: move \
         it away or point --persistence.file at another path (a missing file is created)"
    )]
    Unrecognized { path: PathBuf, start: String },
    #[error(
        "persistence file {path} is the official Pushgateway's format (Go gob) but cannot be \
         read ({reason}). It was left untouched: restore a good copy, or move it away to start \
         with an empty store"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error("persistence file {path}: writing the imported groups failed: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: WalError,
    },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> OfficialError + 'a {
    move |source| OfficialError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Classifies a file by its first bytes.
pub fn classify_bytes(head: &[u8]) -> FileKind {
    if head.is_empty() {
        return FileKind::Ours;
    }
    let n = head.len().min(OUR_MAGIC.len());
    let same = head[..n]
        .iter()
        .zip(OUR_MAGIC.iter())
        .filter(|(a, b)| a == b)
        .count();
    // A prefix of the header (interrupted creation) or a header with a few damaged bytes is
    // still ours: the log's recovery deals with it as it always did.
    if same == n || (n == OUR_MAGIC.len() && same >= 5) {
        return FileKind::Ours;
    }
    if gob::looks_like_gob(head) {
        return FileKind::Official;
    }
    FileKind::Unrecognized
}

/// Classifies the file at `path`.
pub fn classify(path: &Path) -> Result<FileKind, OfficialError> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let mut head = Vec::with_capacity(256);
    f.by_ref()
        .take(256)
        .read_to_end(&mut head)
        .map_err(io_err("reading", path))?;
    Ok(classify_bytes(&head))
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(format!("{what}: want a string, found {other:?}")),
    }
}

fn gauge_value(mf: &MetricFamily) -> f64 {
    mf.metric
        .first()
        .and_then(|m| m.gauge.as_ref())
        .and_then(|g| g.value)
        .unwrap_or(0.0)
}

/// Turns one `MetricGroup` value into a group.
fn group_from(v: &Value) -> Result<Group, String> {
    let labels = match v.field("Labels") {
        Some(Value::Map(m)) => m
            .iter()
            .map(|(k, v)| Ok((text(k, "label name")?, text(v, "label value")?)))
            .collect::<Result<Vec<_>, String>>()?,
        None => Vec::new(),
        Some(other) => return Err(format!("Labels: want a map, found {other:?}")),
    };
    if labels.is_empty() {
        return Err("group without grouping labels".into());
    }
    let mut g = Group::new(GroupKey::new(labels));
    let (mut push, mut failure) = ((0.0, 0), (0.0, 0));
    let metrics: &[(Value, Value)] = match v.field("Metrics") {
        Some(Value::Map(m)) => m,
        None => &[],
        Some(other) => return Err(format!("Metrics: want a map, found {other:?}")),
    };
    for (k, tmf) in metrics {
        let key = text(k, "family name")?;
        let ts = match tmf.field("Timestamp") {
            Some(Value::Encoded(b)) => go_time_nanos(b).map_err(|e| format!("{key}: {e}"))?,
            None => 0,
            Some(other) => return Err(format!("{key}: Timestamp: found {other:?}")),
        };
        let mf = match tmf.field("GobbableMetricFamily") {
            Some(Value::Encoded(b)) => MetricFamily::decode(*b)
                .map_err(|e| format!("{key}: metric family protobuf: {e}"))?,
            None => continue,
            Some(other) => return Err(format!("{key}: metric family: found {other:?}")),
        };
        let name = mf.name.clone().unwrap_or(key);
        match name.as_str() {
            PUSH_TIME => push = (gauge_value(&mf), ts),
            PUSH_FAILURE_TIME => failure = (gauge_value(&mf), ts),
            _ => {
                let name: Arc<str> = Arc::from(name);
                let entry = FamilyEntry::build_shared(
                    name.clone(),
                    mf.help.as_deref(),
                    mf.metric_type(),
                    &mf.metric,
                    ts,
                    Some(&g.key),
                );
                g.families.insert(name, Arc::new(entry));
            }
        }
    }
    g.set_push_time(Arc::from(PUSH_TIME), push.0, push.1);
    g.set_push_failure_time(Arc::from(PUSH_FAILURE_TIME), failure.0, failure.1);
    Ok(g)
}

/// Decodes an official persistence file's contents into groups.
pub fn decode(data: &[u8]) -> Result<Vec<Group>, String> {
    let (v, _) = gob::Decoder::default()
        .decode(data)
        .map_err(|e| e.to_string())?;
    let Value::Map(groups) = v else {
        return Err("the stream's value is not a map of groups".into());
    };
    groups
        .iter()
        .map(|(k, g)| {
            group_from(g).map_err(|e| {
                let key = match k {
                    Value::String(b) => String::from_utf8_lossy(b).replace('\u{fffd}', "/"),
                    _ => "?".into(),
                };
                format!("group {key:?}: {e}")
            })
        })
        .collect()
}

/// Reads an official persistence file (for `--cluster.import-file`).
pub fn read_groups(path: &Path) -> Result<Vec<Group>, OfficialError> {
    let data = fs::read(path).map_err(io_err("reading", path))?;
    decode(&data).map_err(|reason| OfficialError::Damaged {
        path: path.to_path_buf(),
        reason,
    })
}

/// What [`take_over`] did.
#[derive(Debug)]
pub struct TakenOver {
    pub groups: usize,
    /// Where the official file now is (a hard link or copy of the original bytes).
    pub kept_at: PathBuf,
}

/// Makes `path` usable by the write-ahead log, before it is opened: our own file (or none)
/// is left alone; the official gateway's file is imported into a new file in our format that
/// replaces it, the original being kept as `PATH.official-<unix-ts>`; anything else is
/// refused and left untouched.
///
/// Crash-safe: the new file is complete and fsynced before it is renamed over `path`, and the
/// original is linked aside before that, so a crash at any point leaves either the official
/// file at `path` (the next start imports it again) or the imported one.
pub fn take_over(path: &Path, sync: SyncMode) -> Result<Option<TakenOver>, OfficialError> {
    match classify(path)? {
        FileKind::Missing | FileKind::Ours => return Ok(None),
        FileKind::Unrecognized => {
            let mut head = Vec::new();
            if let Ok(f) = fs::File::open(path) {
                let _ = f.take(16).read_to_end(&mut head);
            }
            return Err(OfficialError::Unrecognized {
                path: path.to_path_buf(),
                start: format!("{:?}", String::from_utf8_lossy(&head)),
            });
        }
        FileKind::Official => {}
    }
    let groups = read_groups(path)?;
    let n = groups.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!("{name}.official-import"));
    for leftover in [tmp.clone(), dir.join(format!("{name}.official-import.tmp"))] {
        match fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &leftover)(e)),
        }
    }
    let write_err = |source| OfficialError::Write {
        path: tmp.clone(),
        source,
    };
    let store = Store::open(StoreConfig {
        checked: false,
        own_families: Vec::new(),
        persistence: Some(PersistConfig {
            path: tmp.clone(),
            sync,
        }),
        quotas: Default::default(),
    })
    .map_err(write_err)?;
    for g in groups {
        let key = g.key.clone();
        store.apply_replicated(&key, Some(g));
    }
    store.close().map_err(write_err)?;
    drop(store);
    // The temporary store's lock file (its store is closed; nobody else knows the name).
    let _ = fs::remove_file(crate::lock::lock_path(&tmp));
    if let Ok(f) = fs::File::open(&tmp) {
        f.sync_all().map_err(io_err("syncing", &tmp))?;
    }

    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut kept_at = dir.join(format!("{name}.official-{ts}"));
    let mut i = 1;
    while kept_at.exists() {
        kept_at = dir.join(format!("{name}.official-{ts}-{i}"));
        i += 1;
    }
    if fs::hard_link(path, &kept_at).is_err() {
        fs::copy(path, &kept_at).map_err(io_err("copying the official file aside from", path))?;
        fs::File::open(&kept_at)
            .and_then(|f| f.sync_all())
            .map_err(io_err("syncing", &kept_at))?;
    }
    fs::rename(&tmp, path).map_err(io_err("renaming the imported file to", path))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the directory of", path))?;
    Ok(Some(TakenOver { groups: n, kept_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_the_first_bytes() {
        assert_eq!(classify_bytes(b""), FileKind::Ours);
        assert_eq!(classify_bytes(b"\x89PGW"), FileKind::Ours);
        assert_eq!(classify_bytes(b"\x89PGWWAL\n\x01\0\0\0"), FileKind::Ours);
        assert_eq!(classify_bytes(b"\x89PGXWAL\n\x01\0\0\0"), FileKind::Ours);
        assert_eq!(classify_bytes(b"hello, world"), FileKind::Unrecognized);
        // The first bytes of a file written by prometheus-pushgateway 1.5.1.
        assert_eq!(
            classify_bytes(b"\x29\xff\x8d\x04\x01\x01\x18GroupingKeyToMetricGroup\x01\xff\x8e\0"),
            FileKind::Official
        );
    }
}
