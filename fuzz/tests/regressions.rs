//! Replays every committed input through its target's checks: the regression inputs in
//! `regressions/<target>/` (one file per crash the fuzzer found, minimised) and the seed
//! corpora in `corpus/<target>/`. Runs on stable without libFuzzer: `cargo test` in `fuzz/`.

use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    let mut failed = Vec::new();
    for (target, check) in pushgateway_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&f).unwrap();
            n += 1;
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(f.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "inputs that fail their target's checks:\n{}",
        failed.join("\n")
    );
    n
}

#[test]
fn regressions() {
    replay("regressions");
}

#[test]
fn seed_corpora() {
    assert!(replay("corpus") > 0, "no seed corpus found");
}
