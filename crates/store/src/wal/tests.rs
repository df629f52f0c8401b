//! Unit tests of the write-ahead log: round trips, group commit, every recovery outcome,
//! compaction, sync modes, failure handling.

use super::format::*;
use super::*;
use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
