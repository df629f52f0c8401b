//! Table-driven tests at the `Store` boundary: every file in `testdata/cases/*.case` is a
//! sequence of pushes, deletes, wipes and expiries against one store built by the test kit,
//! each followed by the exact outcome (`ok`, or the error variant and its exact text), and
//! scrapes of the store's view in the text format (`testkit::store::scrape_text`).
//!
//! The format (see `testdata/cases/README.md`):
//!
//! ```text
//! What the case guards (free text up to the first `@` line).
//! @store max-groups=2 own=pushgateway_build_info:gauge
//! @put /job/a/instance/x at=5 ttl=60000
//! # TYPE foo gauge
//! foo 1
//! @expect ok
//! @scrape
//! # TYPE foo gauge
//! foo{instance="x",job="a"} 1
//! ...
//! ```
//!
//! `STORE_CASES_BLESS=1 cargo test -p store --test cases` rewrites the `@expect` lines and
//! `@scrape` blocks with what the store does now (review the diff before committing it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{Accumulate, GaugeMode, GroupKey, Quotas, Store, StoreError};
use testkit::store::{push, scrape_text, StoreBuilder};

/// One step of a case, with the file's lines that express it.
struct Step {
    /// 1-based line of the directive.
    line: usize,
    directive: String,
    body: Vec<String>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases")
}

fn parse(text: &str) -> (Vec<String>, Vec<Step>) {
    let mut description = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('@') {
            steps.push(Step {
                line: i + 1,
                directive: line.to_string(),
                body: Vec::new(),
            });
        } else if let Some(s) = steps.last_mut() {
            s.body.push(line.to_string());
        } else {
            description.push(line.to_string());
        }
    }
    (description, steps)
}

/// `/job/a/instance/x` → the group key `{instance="x",job="a"}`.
fn group_key(path: &str) -> Result<GroupKey, String> {
    let parts: Vec<&str> = path
        .strip_prefix('/')
        .ok_or("a group is written /name/value/...")?
        .split('/')
        .collect();
    let pairs = parts.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(format!("odd number of path segments in {path}"));
    }
    Ok(GroupKey::new(
        pairs.map(|c| (c[0].to_string(), c[1].to_string())),
    ))
}

fn at(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(secs)
}

fn store_of(words: &[&str]) -> Result<Store, String> {
    let mut b = StoreBuilder::new();
    let mut q = Quotas::default();
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        let num = || v.parse::<u64>().map_err(|e| format!("{w}: {e}"));
        match k {
            "unchecked" => b = b.checked(false),
            "utf8-label-names" => b = b.utf8_label_names(true),
            "max-groups" => q.max_groups = num()?,
            "max-series" => q.max_total_series = num()?,
            "max-series-per-group" => q.max_series_per_group = num()?,
            "own" => {
                let (name, t) = v.split_once(':').ok_or("own=NAME:TYPE")?;
                let t = (0..6)
                    .filter_map(|i| exposition::pb::MetricType::try_from(i).ok())
                    .find(|m| m.as_str_name().eq_ignore_ascii_case(t))
                    .ok_or_else(|| format!("unknown type {t}"))?;
                b = b.own_family(name, t);
            }
            _ => return Err(format!("unknown @store setting {w}")),
        }
    }
    Ok(b.quotas(q).build())
}

fn outcome(r: Result<(), StoreError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => {
            let variant = match &e {
                StoreError::Timestamps => "Timestamps",
                StoreError::Inconsistent(_) => "Inconsistent",
                StoreError::Persist(_) => "Persist",
                StoreError::Unavailable(_) => "Unavailable",
                StoreError::Quota(_) => "Quota",
                StoreError::Accumulate(_) => "Accumulate",
            };
            format!("err {variant}: {e}")
        }
    }
}

/// Runs one case; returns the file as it would be with today's outcomes, and the
/// differences from what it says.
fn run(text: &str) -> Result<(String, Vec<String>), String> {
    let (description, steps) = parse(text);
    if steps.is_empty() {
        return Err("no steps".into());
    }
    let mut out = String::new();
    for d in &description {
        let _ = writeln!(out, "{d}");
    }
    let mut diffs = Vec::new();
    let mut store: Option<Store> = None;
    let mut last: Option<String> = None; // the outcome of the last action, not yet expected
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut n = 0usize;
    for s in &steps {
        let mut words = s.directive.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let words: Vec<&str> = words.collect();
        let here = format!("line {}: {}", s.line, s.directive);
        if verb != "@expect" {
            if let Some(o) = last.take() {
                diffs.push(format!(
                    "{here}: the outcome ({o}) of the step before has no @expect"
                ));
                let _ = writeln!(out, "@expect {o}");
            }
        }
        if verb == "@store" {
            if store.is_some() || n > 0 {
                return Err(format!("{here}: @store must come first"));
            }
            store = Some(store_of(&words).map_err(|e| format!("{here}: {e}"))?);
            let _ = writeln!(out, "{}", s.directive);
            continue;
        }
        let st = store.get_or_insert_with(|| StoreBuilder::new().build());
        n += 1;
        // Attributes: `at=SECONDS` (default: the step's number), `ttl=MS`,
        // `accumulate[=gauges]`, `key=IDEMPOTENCY_KEY`.
        let mut time = at(n as f64);
        let mut ttl_ms = 0;
        let mut acc = None;
        let mut idem = None;
        let mut target = None;
        let attributes = if matches!(verb, "@expect" | "@scrape") {
            &[][..]
        } else {
            &words[..]
        };
        for w in attributes {
            match w.split_once('=') {
                Some(("at", v)) => time = at(v.parse().map_err(|e| format!("{here}: {e}"))?),
                Some(("ttl", v)) => ttl_ms = v.parse().map_err(|e| format!("{here}: {e}"))?,
                Some(("key", v)) => idem = Some(v.to_string()),
                Some(("accumulate", v)) => {
                    let gauges = match v {
                        "sum" => GaugeMode::Sum,
                        "max" => GaugeMode::Max,
                        "min" => GaugeMode::Min,
                        _ => GaugeMode::Last,
                    };
                    acc = Some(Accumulate { gauges })
                }
                None if *w == "accumulate" => acc = Some(Accumulate::default()),
                None if w.starts_with('/') => target = Some(*w),
                _ => return Err(format!("{here}: unknown attribute {w}")),
            }
        }
        match verb {
            "@put" | "@post" => {
                let key = group_key(target.ok_or(format!("{here}: no group"))?)
                    .map_err(|e| format!("{here}: {e}"))?;
                let body = s.body.join("\n") + "\n";
                let families = exposition::text_parse::parse_text_names(body.as_bytes(), true)
                    .map_err(|e| format!("{here}: the body does not parse: {e}"))?;
                let mut p = push(key, families, verb == "@put", time);
                p.ttl_ms = ttl_ms;
                p.accumulate = acc;
                p.idempotency_key = idem;
                last = Some(outcome(rt.block_on(st.push(p))));
                let _ = writeln!(out, "{}", s.directive);
                for l in &s.body {
                    let _ = writeln!(out, "{l}");
                }
            }
            "@delete" => {
                let key = group_key(target.ok_or(format!("{here}: no group"))?)
                    .map_err(|e| format!("{here}: {e}"))?;
                last = Some(outcome(rt.block_on(st.delete(&key))));
                let _ = writeln!(out, "{}", s.directive);
            }
            "@wipe" => {
                last = Some(outcome(rt.block_on(st.wipe())));
                let _ = writeln!(out, "{}", s.directive);
            }
            "@expire" => {
                last = Some(match rt.block_on(st.expire_due(time)) {
                    Ok(k) => format!("expired {k}"),
                    Err(e) => outcome(Err(e)),
                });
                let _ = writeln!(out, "{}", s.directive);
            }
            "@expect" => {
                n -= 1;
                let want = s.directive["@expect".len()..].trim();
                let Some(got) = last.take() else {
                    return Err(format!("{here}: @expect without a step before it"));
                };
                if want != got {
                    diffs.push(format!("{here}\n  want: {want}\n  got:  {got}"));
                }
                let _ = writeln!(out, "@expect {got}");
                if s.body.iter().any(|l| !l.trim().is_empty()) {
                    return Err(format!("{here}: text after @expect"));
                }
                for l in &s.body {
                    let _ = writeln!(out, "{l}");
                }
            }
            "@scrape" => {
                n -= 1;
                let snap = st.snapshot();
                let mut got = String::new();
                if snap.inconsistent {
                    got.push_str("(inconsistent: a scrape answers 500)\n");
                }
                got.push_str(&scrape_text(&snap));
                let mut want = s.body.join("\n");
                while want.ends_with('\n') {
                    want.pop();
                }
                let got_trim = got.trim_end_matches('\n');
                if want != got_trim {
                    diffs.push(format!("{here}\n--- want\n{want}\n--- got\n{got_trim}"));
                }
                let _ = writeln!(out, "@scrape");
                let _ = writeln!(out, "{got_trim}");
                // Keep the blank lines that separate this block from the next step.
                let trailing = s.body.iter().rev().take_while(|l| l.is_empty()).count();
                for _ in 0..trailing {
                    let _ = writeln!(out);
                }
            }
            _ => return Err(format!("{here}: unknown directive {verb}")),
        }
    }
    if let Some(o) = last {
        diffs.push(format!("the outcome ({o}) of the last step has no @expect"));
        let _ = writeln!(out, "@expect {o}");
    }
    Ok((out, diffs))
}

#[test]
fn store_cases() {
    let bless = std::env::var_os("STORE_CASES_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("crates/store/testdata/cases exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.case files in {}",
        cases_dir().display()
    );
    let mut failed = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        match run(&text) {
            Err(e) => failed.push(format!("{name}: malformed case: {e}")),
            Ok((_, diffs)) if diffs.is_empty() => {}
            Ok((blessed, diffs)) => {
                if bless {
                    std::fs::write(f, blessed).unwrap();
                    eprintln!("blessed {name}");
                } else {
                    failed.push(format!("{name}:\n{}", diffs.join("\n")));
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failed.len(),
        files.len(),
        failed.join("\n\n")
    );
    eprintln!("{} store cases passed", files.len());
}
