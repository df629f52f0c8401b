//! The checks behind the fuzz targets, one public function per target, so that the libFuzzer
//! binaries (`fuzz_targets/*.rs`), the regression tests (`tests/regressions.rs`) and a plain
//! `cargo test` over the seed corpora all run the very same code.
//!
//! Every function must not panic for any input; a panic (an `assert!` here, or a bug in the
//! code under test) is what the fuzzer reports as a crash.

use exposition::pb::{Bucket, MetricFamily, MetricType};
use exposition::{delimited, text_encode, text_parse};
// Go's amd64 `uint64(float64)` (what the parser does with counts).
use gocompat::strconv::f64_to_u64 as go_f64_to_u64;
use prost::Message;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

/// The targets by name, for the regression runner.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("text_parse", text_parse),
    ("delimited_protobuf", delimited_protobuf),
    ("grouping_path", grouping_path),
    ("store_push", store_push),
    ("store_persist", store_persist),
    ("wal_recover", wal_recover),
    ("web_config", web_config),
    ("openmetrics_parse", openmetrics_parse),
    ("otlp_decode", otlp_decode),
];

// ---------------------------------------------------------------------------------------------
// openmetrics_parse
// ---------------------------------------------------------------------------------------------

/// `parse_openmetrics` (`--push.enable-openmetrics`) never panics, reports a line inside the
/// input, and what it accepts is written by the OpenMetrics writer (`--web.enable-openmetrics`)
/// without panicking into text that parses again without panicking.
pub fn openmetrics_parse(data: &[u8]) {
    use exposition::openmetrics::{parse_openmetrics, write_family, EOF};
    let fams = match parse_openmetrics(data) {
        Ok(f) => f,
        Err(e) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(
                e.line <= lines,
                "error line {} outside 0..={lines}: {e}",
                e.line
            );
            return;
        }
    };
    let mut out = String::new();
    for f in &fams {
        assert!(
            !f.metric.is_empty(),
            "family {:?} without metrics",
            f.name()
        );
        write_family(
            &mut out,
            f.name(),
            f.help.as_deref(),
            f.unit.as_deref(),
            f.metric_type(),
            &f.metric,
        );
    }
    out.push_str(EOF);
    let _ = parse_openmetrics(out.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// text_parse
// ---------------------------------------------------------------------------------------------

/// `parse_text` never panics; what it accepts re-encodes (with the store's own writer,
/// `text_encode`) into text that parses back to the same families, modulo the documented
/// normalisations (see [`normalise`]) and skipping inputs where the round trip cannot hold
/// (see [`roundtrip_applies`]). The error message always carries a line number within the input.
/// The parser's shortcuts (resumed lines, the float fast path) change nothing: it gives what
/// `parse_text_reference` gives, bit for bit, with and without UTF-8 names.
pub fn text_parse(data: &[u8]) {
    for utf8 in [false, true] {
        let outcome = |r: Result<Vec<MetricFamily>, text_parse::TextParseError>| {
            r.map(|fams| {
                let mut out = Vec::new();
                for f in &fams {
                    f.encode_length_delimited(&mut out).expect("Vec grows");
                }
                out
            })
            .map_err(|e| e.to_string())
        };
        let fast = outcome(text_parse::parse_text_names(data, utf8));
        let reference = outcome(text_parse::parse_text_reference(data, utf8));
        assert!(
            fast == reference,
            "utf8={utf8}: the shortcuts changed the outcome: {fast:?} vs {reference:?}"
        );
    }
    let fams = match text_parse::parse_text(data) {
        Ok(f) => f,
        Err(e) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(
                e.line >= 1 && e.line <= lines,
                "error line {} outside 1..={lines}: {e}",
                e.line
            );
            return;
        }
    };
    for f in &fams {
        assert!(
            !f.metric.is_empty(),
            "family {:?} without metrics",
            f.name()
        );
        assert!(f.r#type.is_some(), "family {:?} without type", f.name());
    }
    if !roundtrip_applies(&fams) {
        return;
    }
    let text = encode_text(&fams);
    let again = match text_parse::parse_text(text.as_bytes()) {
        Ok(f) => f,
        Err(e) => panic!("re-encoded text does not parse: {e}\n--- text:\n{text}"),
    };
    let (a, b) = (normalise(&fams), normalise(&again));
    if a != b {
        panic!(
            "round trip changed the families\n--- re-encoded text:\n{text}\n--- first parse:\n{:?}\n--- second parse:\n{:?}",
            fams, again
        );
    }
}

/// Writes families the way a scrape does: `write_header` per family, then `write_metric` per
/// metric.
pub fn encode_text(fams: &[MetricFamily]) -> String {
    let mut out = String::new();
    for f in fams {
        let t = f.metric_type();
        text_encode::write_header(&mut out, f.name(), f.help.as_deref(), t);
        for m in &f.metric {
            text_encode::write_metric(&mut out, f.name(), t, m)
                .unwrap_or_else(|e| panic!("parsed metric does not encode: {e}"));
        }
    }
    out
}

/// Where the text round trip cannot hold, by design rather than by bug:
///
/// * `GAUGE_HISTOGRAM` families: the text format has no gauge histogram, the writer writes
///   them as `histogram` (as expfmt does), so they come back as histograms.
/// * Name collisions between families through the `_sum`, `_count` and `_bucket` suffixes
///   (`x_count` untyped next to summary `x`): the re-encoded `x_count` lines of the summary
///   land in the untyped family on the second parse. The store's consistency check rejects
///   such pushes anyway.
pub fn roundtrip_applies(fams: &[MetricFamily]) -> bool {
    if fams
        .iter()
        .any(|f| f.metric_type() == MetricType::GaugeHistogram)
    {
        return false;
    }
    let names: std::collections::HashSet<&str> = fams.iter().map(|f| f.name()).collect();
    !fams.iter().any(|f| {
        ["_sum", "_count", "_bucket"]
            .iter()
            .any(|s| f.name().strip_suffix(s).is_some_and(|b| names.contains(b)))
    })
}

fn canon(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0 // the text writer prints -0 as `0`, as expfmt does
    } else {
        v
    }
}

/// What a text round trip legitimately changes, applied to both sides; the result is compared
/// as protobuf bytes (so that NaN equals NaN):
///
/// * Counts are written as floats and read back through Go's `uint64(f)`: a count above 2^53
///   (or a "negative" one, wrapped by the first parse) comes back rounded.
/// * A float histogram's count is written from its float field: an integer `sample_count` set
///   by an earlier `_count` line of the same metric is not written back.
/// * Summaries and histograms always get `_sum` and `_count` lines (0 when absent), and
///   histograms a `+Inf` bucket (the sample count) when they have none.
/// * All NaNs are the same NaN, and -0 is 0 (expfmt, and so `write_text_float`, prints `0`).
pub fn normalise(fams: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fams {
        let mut f = f.clone();
        for m in &mut f.metric {
            if let Some(c) = &mut m.counter {
                c.value = Some(canon(c.value.unwrap_or(0.0)));
            }
            if let Some(g) = &mut m.gauge {
                g.value = Some(canon(g.value.unwrap_or(0.0)));
            }
            if let Some(u) = &mut m.untyped {
                u.value = Some(canon(u.value.unwrap_or(0.0)));
            }
            if let Some(s) = &mut m.summary {
                s.sample_sum = Some(canon(s.sample_sum.unwrap_or(0.0)));
                s.sample_count = Some(go_f64_to_u64(s.sample_count.unwrap_or(0) as f64));
                for q in &mut s.quantile {
                    q.quantile = Some(canon(q.quantile.unwrap_or(0.0)));
                    q.value = Some(canon(q.value.unwrap_or(0.0)));
                }
            }
            if let Some(h) = &mut m.histogram {
                // A float histogram (the parser makes one all-float) keeps its float counts.
                let float = h.sample_count_float.is_some()
                    || h.bucket.iter().any(|b| b.cumulative_count_float.is_some());
                let count = h.sample_count.unwrap_or(0);
                if !h
                    .bucket
                    .iter()
                    .any(|b| b.upper_bound.unwrap_or(0.0) == f64::INFINITY)
                {
                    h.bucket.push(if float {
                        Bucket {
                            cumulative_count_float: Some(h.sample_count_float.unwrap_or(0.0)),
                            upper_bound: Some(f64::INFINITY),
                            ..Default::default()
                        }
                    } else {
                        Bucket {
                            cumulative_count: Some(count),
                            upper_bound: Some(f64::INFINITY),
                            ..Default::default()
                        }
                    });
                }
                for b in &mut h.bucket {
                    b.upper_bound = Some(canon(b.upper_bound.unwrap_or(0.0)));
                    if float {
                        b.cumulative_count_float =
                            Some(canon(b.cumulative_count_float.unwrap_or(0.0)));
                    } else {
                        b.cumulative_count =
                            Some(go_f64_to_u64(b.cumulative_count.unwrap_or(0) as f64));
                    }
                }
                h.sample_sum = Some(canon(h.sample_sum.unwrap_or(0.0)));
                if float {
                    h.sample_count_float = Some(canon(h.sample_count_float.unwrap_or(0.0)));
                    // A metric whose `_count` came as a whole number and again as a float keeps
                    // both fields (as Go's parser does); the text writer writes the float one.
                    h.sample_count = None;
                } else {
                    h.sample_count = Some(go_f64_to_u64(count as f64));
                }
            }
        }
        f.encode_length_delimited(&mut out).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// delimited_protobuf
// ---------------------------------------------------------------------------------------------

/// `parse_delimited` never panics; what it accepts re-encodes (delimited, prost) into bytes
/// that decode to the same families, and encoding is then a fixed point. A later family of the
/// same name replaces an earlier one, so names are unique in the result.
pub fn delimited_protobuf(data: &[u8]) {
    let Ok(fams) = delimited::parse_delimited(data) else {
        return;
    };
    let mut names = std::collections::HashSet::new();
    for f in &fams {
        assert!(names.insert(f.name()), "duplicate family {:?}", f.name());
    }
    let enc = encode_delimited(&fams);
    let again = delimited::parse_delimited(&enc).expect("re-encoded stream does not parse");
    assert_eq!(again.len(), fams.len());
    assert_eq!(
        encode_delimited(&again),
        enc,
        "encoding is not a fixed point"
    );
    // The text writer must cope with whatever protobuf delivers (type mismatches are errors,
    // never panics).
    for f in &fams {
        let mut s = String::new();
        text_encode::write_header(&mut s, f.name(), f.help.as_deref(), f.metric_type());
        for m in &f.metric {
            let _ = text_encode::write_metric(&mut s, f.name(), f.metric_type(), m);
        }
    }
}

fn encode_delimited(fams: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fams {
        f.encode_length_delimited(&mut out).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// grouping_path
// ---------------------------------------------------------------------------------------------

/// The first byte picks the variant, the rest (as UTF-8, lossily) is the path:
///
/// * `parse_grouping_key(base64, rest)`: an accepted key has a non-empty `job`, valid label
///   names not starting with `__` (`job` included), sorted and unique, and a canonical form
///   that a key rebuilt from its labels reproduces.
/// * `decode_base64`: what it accepts is a fixed point of URL-safe re-encoding.
/// * The router (`Routes::dispatch`, with and without a route prefix): `clean_path` is
///   idempotent, redirect targets are clean paths, following redirects ends within a few hops,
///   and a matched push route hands on a `rest` that starts with `/`, whose key parses without
///   panicking (and, when accepted, is valid as above).
pub fn grouping_path(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    let s = s.as_ref();
    match sel % 4 {
        0 | 1 => check_key(sel % 2 == 1, s),
        2 => check_base64(s),
        _ => check_router(sel, s),
    }
}

fn check_key(base64: bool, rest: &str) {
    let Ok(key) = server::push::parse_grouping_key(base64, rest) else {
        return;
    };
    let labels = key.labels();
    let job = key.get("job").expect("accepted key without job");
    assert!(!job.is_empty(), "accepted key with empty job: {rest:?}");
    for w in labels.windows(2) {
        assert!(w[0].0 < w[1].0, "labels not sorted/unique: {labels:?}");
    }
    for (n, _) in labels {
        assert!(
            store::check::is_valid_label_name(n) && !n.starts_with("__"),
            "accepted invalid label name {n:?} from {rest:?}"
        );
    }
    let rebuilt = store::GroupKey::new(labels.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    assert_eq!(rebuilt.canonical(), key.canonical());
}

fn check_base64(s: &str) {
    use base64_roundtrip::encode_url_safe_no_pad;
    let Ok(bytes) = server::push::decode_base64(s) else {
        return;
    };
    let enc = encode_url_safe_no_pad(&bytes);
    let again = server::push::decode_base64(&enc).expect("re-encoded base64 does not decode");
    assert_eq!(again, bytes);
    // With padding added back, still the same bytes.
    let padded = format!("{enc}{}", "=".repeat((4 - enc.len() % 4) % 4));
    assert_eq!(server::push::decode_base64(&padded).unwrap(), bytes);
}

mod base64_roundtrip {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// URL-safe base64 without padding (a tiny independent encoder, so the check does not
    /// use the decoder's own library).
    pub fn encode_url_safe_no_pad(b: &[u8]) -> String {
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

fn check_router(sel: u8, path: &str) {
    use hyper::Method;
    use server::router::{clean_path, Dispatch, Route, Routes};
    let cleaned = clean_path(path);
    assert!(cleaned.starts_with('/'));
    assert_eq!(clean_path(&cleaned), cleaned, "clean_path not idempotent");
    let routes = if sel & 4 == 0 {
        Routes {
            prefix: String::new(),
            telemetry: "/metrics".into(),
            admin_api: sel & 8 != 0,
            otlp: false,
        }
    } else {
        Routes {
            prefix: "/pg".into(),
            telemetry: "/pg/metrics".into(),
            admin_api: sel & 8 != 0,
            otlp: false,
        }
    };
    for method in [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
        Method::HEAD,
    ] {
        let mut p = path.to_string();
        for hop in 0.. {
            assert!(hop < 4, "redirect loop for {method} {path:?} (at {p:?})");
            match routes.dispatch(&method, &p) {
                Dispatch::Redirect(code, target) => {
                    assert!(code.is_redirection());
                    assert_eq!(clean_path(&target), target, "unclean redirect target");
                    assert_ne!(target, p, "redirect to itself");
                    p = target;
                }
                Dispatch::Handle(Route::Push { base64, rest, .. }) => {
                    assert!(rest.starts_with('/'), "push rest {rest:?}");
                    check_key(base64, &rest);
                    break;
                }
                Dispatch::MethodNotAllowed(allow) | Dispatch::Options(allow) => {
                    assert!(!allow.is_empty());
                    break;
                }
                _ => break,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// store_push
// ---------------------------------------------------------------------------------------------

/// Runs a store future that never waits (no persistence configured: nothing to fsync).
fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory store operation did not complete at once"),
    }
}

fn keys() -> [store::GroupKey; 4] {
    [
        store::GroupKey::new([("job", "a")]),
        store::GroupKey::new([("job", "b")]),
        store::GroupKey::new([("job", "a"), ("instance", "i")]),
        store::GroupKey::new([("job", "c"), ("zone", "z"), ("le", "1")]),
    ]
}

/// Everything a rejected push must leave alone: every family but the two push-time gauges,
/// as stored text and protobuf bytes (what a scrape concatenates), per group.
fn stored_state(snap: &store::Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, groups) in snap.families.iter() {
        if &**name == "push_time_seconds" || &**name == "push_failure_time_seconds" {
            continue;
        }
        for (k, e) in groups.iter() {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(k.canonical());
            out.push(0);
            out.extend_from_slice(e.help.as_deref().unwrap_or("").as_bytes());
            out.push(e.mtype as u8);
            out.extend_from_slice(&e.text());
            out.push(0);
            out.extend_from_slice(&e.proto_metrics());
            out.push(0);
        }
    }
    // Empty families are not in `families`; include each group's family names and sizes.
    // (The group set itself is checked separately: a rejected push may create its group.)
    for (k, g) in snap.groups.iter() {
        for (n, e) in &g.families {
            if &**n == "push_time_seconds" || &**n == "push_failure_time_seconds" {
                continue;
            }
            out.extend_from_slice(k.canonical());
            out.push(0);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&e.metric_count.to_le_bytes());
        }
    }
    out
}

/// A sequence of operations on one in-memory store. The first byte picks the store mode: bit 0
/// `--push.disable-consistency-check`, bits 1-2 a small quota (none, 3 series per group,
/// 2 groups, 5 series in total); then each operation is a header byte and,
/// for pushes, a 2-byte length and that many body bytes:
///
/// * header bits 0-1: which of four group keys; bit 2: PUT (else POST); bit 3: protobuf body
///   (else text); bits 4-5 = 3: DELETE of the group instead of a push.
///
/// Bodies that do not parse are skipped (the server answers 400 before the store sees them).
/// Checked for every push the store receives:
///
/// * It never panics. A push refused by a quota changes nothing at all. A rejected push leaves every stored family byte-for-byte as it was
///   (only `push_failure_time_seconds` of the pushed group changes, and the group is created
///   with `push_time_seconds` 0 if it was missing), with the same group set otherwise.
/// * An accepted push leaves a checked store consistent, and the group carries every pushed
///   family (other than the push-time ones).
/// * A consistent store's scrape (text and protobuf, as `server::scrape` renders it) parses
///   again with our own parsers: what we serve, Prometheus can read. (The text check skips
///   stores holding a gauge histogram, see `check_scrape_parses`.)
pub fn store_push(data: &[u8]) {
    let Some((&mode, mut ops)) = data.split_first() else {
        return;
    };
    let checked = mode & 1 == 0;
    let quotas = match (mode >> 1) & 3 {
        0 => store::Quotas::default(),
        1 => store::Quotas {
            max_series_per_group: 3,
            ..Default::default()
        },
        2 => store::Quotas {
            max_groups: 2,
            ..Default::default()
        },
        _ => store::Quotas {
            max_total_series: 5,
            ..Default::default()
        },
    };
    let st = store::Store::open(store::StoreConfig {
        checked,
        own_families: server::telemetry::OWN_FAMILIES
            .iter()
            .chain(server::telemetry::EXTRA_FAMILIES)
            .map(|(n, t, _)| (n.to_string(), *t))
            .collect(),
        persistence: None,
        quotas,
    })
    .expect("in-memory store");
    let keys = keys();
    let mut clock = 1_000u64;
    while let Some((&h, rest)) = ops.split_first() {
        ops = rest;
        let key = keys[(h & 3) as usize].clone();
        if (h >> 4) & 3 == 3 {
            now_or_never(st.delete(&key)).expect("delete");
            assert!(!st.snapshot().groups.contains_key(&key));
            continue;
        }
        let len = match ops {
            [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
            _ => return,
        };
        let body = &ops[2..][..len.min(ops.len() - 2)];
        ops = &ops[2 + body.len()..];
        let families = if h & 8 != 0 {
            delimited::parse_delimited(body).ok()
        } else {
            text_parse::parse_text(body).ok()
        };
        let Some(families) = families else { continue };
        clock += 1;
        push_one(
            &st,
            checked,
            quotas.max_groups,
            key,
            families,
            h & 4 != 0,
            clock,
        );
    }
}

fn push_one(
    st: &store::Store,
    checked: bool,
    max_groups: u64,
    key: store::GroupKey,
    families: Vec<MetricFamily>,
    replace: bool,
    clock: u64,
) {
    let before = st.snapshot();
    let before_state = stored_state(&before);
    let names: Vec<String> = families.iter().map(|f| f.name().to_string()).collect();
    let push = store::Push {
        key: key.clone(),
        families,
        replace,
        time: UNIX_EPOCH + Duration::from_secs(clock),
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    };
    let result = now_or_never(st.push(push));
    let after = st.snapshot();
    match result {
        Ok(()) => {
            if checked {
                assert!(
                    !after.inconsistent,
                    "an accepted push made the store inconsistent"
                );
            }
            let g = after.groups.get(&key).expect("pushed group missing");
            assert_eq!(g.push_time, clock as f64);
            for n in &names {
                if n != "push_time_seconds" && n != "push_failure_time_seconds" {
                    assert!(g.families.contains_key(n.as_str()), "family {n:?} missing");
                }
            }
        }
        Err(store::StoreError::Persist(e)) => panic!("persistence error without a file: {e}"),
        Err(store::StoreError::Quota(q)) => {
            // Refused before anything changed, not even the failure time.
            assert!(
                stored_state(&after) == before_state,
                "a push refused by a quota ({q}) changed the stored families"
            );
            assert_eq!(after.groups.len(), before.groups.len());
            for (k, g) in after.groups.iter() {
                let o = before
                    .groups
                    .get(k)
                    .expect("a refused push created a group");
                assert!(
                    Arc::ptr_eq(g, o),
                    "a push refused by a quota touched a group"
                );
            }
        }
        Err(e) => {
            assert!(
                checked || matches!(e, store::StoreError::Timestamps),
                "unchecked store rejected a push: {e}"
            );
            assert!(
                stored_state(&after) == before_state,
                "a rejected push ({e}) changed the stored families"
            );
            let mut groups_before: Vec<_> = before.groups.keys().cloned().collect();
            // The failure is recorded in a new group only if the group quota has room.
            let room = max_groups == 0 || (before.groups.len() as u64) < max_groups;
            if !before.groups.contains_key(&key) && room {
                groups_before.push(key.clone());
                groups_before.sort();
            }
            let groups_after: Vec<_> = after.groups.keys().cloned().collect();
            assert!(
                groups_before == groups_after,
                "a rejected push changed the group set"
            );
            for (k, g) in after.groups.iter() {
                let old = before.groups.get(k);
                if *k == key && (old.is_some() || room) {
                    assert_eq!(g.push_failure_time, clock as f64);
                    assert_eq!(g.push_time, old.map_or(0.0, |o| o.push_time));
                } else {
                    let o = old.unwrap();
                    assert!(Arc::ptr_eq(g, o), "a rejected push touched another group");
                }
            }
        }
    }
    if !after.inconsistent {
        check_scrape_parses(&after);
    }
}

fn check_scrape_parses(snap: &store::Snapshot) {
    let pb = server::scrape::render_protobuf(&[], snap);
    if let Err(e) = delimited::parse_delimited(&pb) {
        panic!("the protobuf scrape of a consistent store does not parse: {e}");
    }
    // The default scrape escapes names that are not legacy names (and writes a gauge
    // histogram as `histogram`), so it parses with the legacy rules.
    let text = server::scrape::render_text(&[], snap);
    if let Err(e) = text_parse::parse_text(&text) {
        panic!(
            "the scrape of a consistent store does not parse: {e}\n--- scrape:\n{}",
            String::from_utf8_lossy(&text)
        );
    }
    // With `escaping=allow-utf-8` names are quoted instead; our parser refuses quoted names
    // with backslash escapes, so stores holding such names are skipped.
    let escapes = |n: &str| n.contains(['"', '\\', '\n']);
    let odd = snap.families.iter().any(|(n, g)| {
        escapes(n)
            || g.values().any(|e| {
                e.metrics()
                    .iter()
                    .any(|m| m.label.iter().any(|l| escapes(l.name())))
            })
    });
    if !odd {
        let text =
            server::scrape::render_text_with(&[], snap, exposition::names::Escaping::AllowUtf8);
        if let Err(e) = text_parse::parse_text_names(&text, true) {
            panic!(
                "the UTF-8 scrape of a consistent store does not parse: {e}\n--- scrape:\n{}",
                String::from_utf8_lossy(&text)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// web_config
// ---------------------------------------------------------------------------------------------

/// The first byte picks the variant:
///
/// * even: the rest (UTF-8, lossily) is a `--web.config.file`, given to `WebConfig::parse`
///   (base directory `/nonexistent`). It never panics; parsing is deterministic (a second parse
///   agrees on TLS, client auth, headers, rate limit and users); configured headers are among
///   the allowed ones; and anonymous requests (read, push of a few groups, admin) are decided
///   without panicking, with 401 or 403 on refusal. Requests with credentials are not tried: a
///   fuzzed bcrypt cost of up to 31 would make a single check take hours.
///   Inputs that could name a file (`file` anywhere, or a YAML `\x`/`\u`/`\U` escape that could
///   spell one) are skipped, so the loader never opens files such as `/dev/zero`; inline
///   `cert`/`key`/`client_ca` PEM is still fuzzed.
/// * odd: the rest is a DER certificate for `ClientIdentity::from_der`, which must not panic.
pub fn web_config(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel % 2 == 1 {
        if let Ok(id) = webconfig::ClientIdentity::from_der(rest) {
            let _ = id.names().count();
        }
        return;
    }
    let lower = rest.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"file") || has(b"\\x") || has(b"\\u") {
        return;
    }
    let yaml = String::from_utf8_lossy(rest);
    let dir = std::path::Path::new("/nonexistent");
    let Ok(c) = webconfig::WebConfig::parse(&yaml, dir) else {
        return;
    };
    let again = webconfig::WebConfig::parse(&yaml, dir).expect("second parse failed");
    assert_eq!(c.tls().is_some(), again.tls().is_some());
    assert_eq!(c.client_auth(), again.client_auth());
    assert_eq!(c.headers(), again.headers());
    assert_eq!(c.rate_limit(), again.rate_limit());
    assert_eq!(c.has_users(), again.has_users());
    assert_eq!(c.http2(), again.http2());
    for (n, v) in c.headers() {
        assert!(!v.is_empty(), "empty header {n} configured");
    }
    let keys = keys();
    let mut actions = vec![webconfig::Action::Read, webconfig::Action::Admin];
    actions.extend(keys.iter().map(webconfig::Action::Push));
    for action in actions {
        let req = webconfig::AuthRequest {
            authorization: None,
            client_cert: None,
            action,
        };
        match c.authorize(&req) {
            Ok(p) => assert_eq!(p, webconfig::Principal::Anonymous),
            Err(d) => {
                let s = d.status().as_u16();
                assert!(s == 401 || s == 403, "denial with status {s}");
                let _ = (d.www_authenticate(), d.body());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// store_persist
// ---------------------------------------------------------------------------------------------

/// Drives a future to completion on this thread (the store's futures only wait for the log's
/// writer thread).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut f = std::pin::pin!(f);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a store operation hung"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Removes its directory when dropped.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh (not yet created) directory for one run of a target, removed when the guard is
/// dropped. On tmpfs when there is one: fsyncs are free there, so the fuzzer runs many more
/// inputs.
fn scratch_dir(target: &str, run: &std::sync::atomic::AtomicU64) -> (std::path::PathBuf, Cleanup) {
    let base = match std::path::Path::new("/dev/shm") {
        p if p.is_dir() => p.to_path_buf(),
        _ => std::env::temp_dir(),
    };
    let dir = base.join(format!(
        "pgw-fuzz-{target}-{}-{}",
        std::process::id(),
        run.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    (dir.clone(), Cleanup(dir))
}

/// Everything a client can observe of the store: per group, its header and every family in
/// both encodings.
fn visible(st: &store::Store) -> Vec<Vec<u8>> {
    let snap = st.snapshot();
    let mut out = Vec::new();
    for (k, g) in snap.groups.iter() {
        let mut v = k.canonical().to_vec();
        v.extend_from_slice(&g.push_time.to_le_bytes());
        v.extend_from_slice(&g.push_failure_time.to_le_bytes());
        v.extend_from_slice(&g.ttl_ms.to_le_bytes());
        v.extend_from_slice(&g.expires_at.to_le_bytes());
        for (n, e) in &g.families {
            v.extend_from_slice(n.as_bytes());
            v.push(0);
            v.extend_from_slice(e.help.as_deref().unwrap_or("").as_bytes());
            v.push(e.mtype as u8);
            v.extend_from_slice(&e.timestamp_ns.to_le_bytes());
            v.extend_from_slice(&e.text());
            v.push(0);
            v.extend_from_slice(&e.proto_metrics());
        }
        out.push(v);
    }
    out
}

/// Push, delete, wipe, expiry, compaction and restart sequences on a store with a persistence
/// file whose writes fail on demand (as on a full disk). The first byte picks the mode (bit 0:
/// consistency check off); then each operation is an opcode byte and two argument bytes:
///
/// * `op % 8`: 0 PUT, 1 POST (key `a % 4`, body from `b`), 2 DELETE, 3 wipe, 4 make the next
///   `a % 3` writes fail, 5 compact, 6 restart (close and reopen the file), 7 expire groups
///   due at `1000 + a` seconds.
/// * Bodies: family `["x", "y", "x_count"][b % 3]` of type `[gauge, counter, untyped,
///   summary][b / 3 % 4]`, label value `a`, a sample timestamp when `b & 0x40`; TTL `a % 3` s.
/// * Keys include one with a grouping value long enough to be shared ([`store::shared`]).
///
/// Checked: what is visible always equals what was acknowledged. A change refused because its
/// write failed leaves the visible state exactly as it was; any other outcome (accepted, or a
/// failure recorded by the consistency check) is the new acknowledged state; after a restart
/// the store shows exactly the last acknowledged state.
pub fn store_persist(data: &[u8]) {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((&mode, ops)) = data.split_first() else {
        return;
    };
    let (dir, _cleanup) = scratch_dir("persist", &RUN);
    let open = || {
        store::Store::open(store::StoreConfig {
            checked: mode & 1 == 0,
            own_families: Vec::new(),
            persistence: Some(store::PersistConfig {
                path: dir.join("p.db"),
                sync: store::wal::SyncMode::Always,
            }),
            quotas: Default::default(),
        })
        .expect("open the persistence file")
    };
    let long = "L".repeat(80);
    let keys = [
        store::GroupKey::new([("job", "a")]),
        store::GroupKey::new([("job", "b"), ("instance", "i")]),
        store::GroupKey::new([("job", "c"), ("long", long.as_str())]),
        store::GroupKey::new([("job", long.as_str())]),
    ];
    let mut st = open();
    let mut acked = visible(&st);
    for op in ops.chunks_exact(3).take(64) {
        let (code, a, b) = (op[0] % 8, op[1], op[2]);
        let key = &keys[(a % 4) as usize];
        let time = UNIX_EPOCH + Duration::from_secs(1000 + u64::from(a));
        let result = match code {
            0 | 1 => {
                let name = ["x", "y", "x_count"][(b % 3) as usize];
                let t = ["gauge", "counter", "untyped", "summary"][(b / 3 % 4) as usize];
                let ts = if b & 0x40 != 0 { " 7" } else { "" };
                let body = if t == "summary" {
                    format!("# TYPE {name} {t}\n{name}{{l=\"{a}\",quantile=\"0.5\"}} 1{ts}\n{name}_sum{{l=\"{a}\"}} 1\n{name}_count{{l=\"{a}\"}} 1\n")
                } else {
                    format!(
                        "# HELP {name} help {b}\n# TYPE {name} {t}\n{name}{{l=\"{a}\"}} {b}{ts}\n"
                    )
                };
                let families = text_parse::parse_text(body.as_bytes()).expect("valid body");
                block_on(st.push(store::Push {
                    key: key.clone(),
                    families,
                    replace: code == 0,
                    time,
                    ttl_ms: u64::from(a % 3) * 1000,
                    accumulate: None,
                    idempotency_key: None,
                }))
            }
            2 => block_on(st.delete(key)),
            3 => block_on(st.wipe()),
            4 => {
                st.inject_write_failures(u64::from(a % 3));
                continue;
            }
            5 => {
                st.maybe_compact(true);
                continue;
            }
            6 => {
                st.inject_write_failures(0);
                st.close().expect("close");
                drop(st);
                st = open();
                assert!(
                    visible(&st) == acked,
                    "after a restart the store differs from what was acknowledged"
                );
                continue;
            }
            _ => block_on(st.expire_due(time)).map(|_| ()),
        };
        let now = visible(&st);
        match result {
            Err(store::StoreError::Persist(e)) => {
                assert!(now == acked, "a change whose write failed ({e}) is visible")
            }
            _ => acked = now,
        }
    }
    st.inject_write_failures(0);
    st.close().expect("close");
    drop(st);
    let st = open();
    assert!(
        visible(&st) == acked,
        "after a restart the store differs from what was acknowledged"
    );
    st.close().expect("close");
}

// wal_recover
// ---------------------------------------------------------------------------------------------

/// Recomputes the CRCs of the file header and of every frame whose length fits (the layout is
/// in `store::wal`'s module documentation), so that the fuzzer reaches the record decoding
/// behind the checksums instead of only the checksums.
fn reseal(file: &mut [u8]) {
    let crc = |b: &[u8]| crc32fast::hash(b).to_le_bytes();
    if file.len() < 16 {
        return;
    }
    let h = crc(&file[..12]);
    file[12..16].copy_from_slice(&h);
    let mut pos = 16;
    while pos + 12 <= file.len() {
        let len = u32::from_le_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 || len > file.len() - pos - 12 {
            break;
        }
        let p = crc(&file[pos + 12..pos + 12 + len]);
        file[pos + 4..pos + 8].copy_from_slice(&p);
        let h = crc(&file[pos..pos + 8]);
        file[pos + 8..pos + 12].copy_from_slice(&h);
        pos += 12 + len;
    }
}

/// The files in `dir` other than the lock file, by name.
fn files_in(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list the directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| !p.to_string_lossy().ends_with(".lock"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read a file"))
        })
        .collect()
}

/// Arbitrary bytes as the persistence file; the first byte picks the mode (bit 0: the CRCs
/// are recomputed first, see [`reseal`]; bit 1: consistency check off), the rest is the file.
/// Opening the store on it never panics, and the recovery policy of `store::wal` holds
/// exactly:
///
/// * Refused (open fails): only for a newer format version, and the file is left
///   byte-identical, with nothing beside it.
/// * Otherwise, with no `.corrupt-*` copy: the file is left byte-identical, or truncated to a
///   prefix of itself (a torn tail), or, if it held only a prefix of the file header, now holds
///   the header it was a prefix of.
/// * Otherwise exactly one `NAME.corrupt-<ts>` copy exists and holds the original bytes.
///
/// Every recovered group is well-formed: the scrape renders (text and protobuf; without
/// recomputed CRCs every record is one this code wrote, so a consistent scrape also parses),
/// a push afterwards is accepted or refused without a persistence error, and after a forced
/// compaction and a restart the store shows exactly what it showed before.
pub fn wal_recover(data: &[u8]) {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mut original = file.to_vec();
    if mode & 1 != 0 {
        reseal(&mut original);
    }
    let (dir, _cleanup) = scratch_dir("recover", &RUN);
    std::fs::create_dir_all(&dir).expect("create the directory");
    let path = dir.join("p.db");
    std::fs::write(&path, &original).expect("write the persistence file");
    let open = || {
        store::Store::open(store::StoreConfig {
            checked: mode & 2 == 0,
            own_families: Vec::new(),
            persistence: Some(store::PersistConfig {
                path: path.clone(),
                sync: store::wal::SyncMode::Always,
            }),
            quotas: Default::default(),
        })
    };
    let st = match open() {
        Ok(st) => st,
        Err(e) => {
            assert!(
                matches!(e, store::wal::WalError::UnsupportedVersion { .. }),
                "open failed other than for a newer version: {e}"
            );
            let left = files_in(&dir);
            assert!(
                left.len() == 1 && left.get("p.db") == Some(&original),
                "a refused file was modified or copied"
            );
            return;
        }
    };
    check_recovery_kept_original(&dir, &original);
    check_recovered_groups(&st, mode & 1 == 0);

    let before = visible(&st);
    let key = store::GroupKey::new([("job", "wal_recover_after")]);
    let body = "# TYPE wal_recover_after_total counter\nwal_recover_after_total 1\n";
    let pushed = block_on(st.push(store::Push {
        key,
        families: text_parse::parse_text(body.as_bytes()).expect("valid body"),
        replace: true,
        time: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        ttl_ms: 0,
        accumulate: None,
        idempotency_key: None,
    }));
    if let Err(store::StoreError::Persist(e)) = &pushed {
        panic!("a push after recovery failed to persist: {e}");
    }
    let after_push = visible(&st);
    assert!(
        pushed.is_ok() || after_push.len() == before.len(),
        "a refused push changed the set of groups"
    );
    st.maybe_compact(true);
    st.close().expect("close");
    drop(st);
    let st = open().expect("reopen after compaction");
    assert!(
        visible(&st) == after_push,
        "after a compaction and a restart the store differs from before"
    );
    st.close().expect("close");
}

/// The recovery policy on the files left in `dir` after a successful open of `original`.
fn check_recovery_kept_original(dir: &std::path::Path, original: &[u8]) {
    let mut left = files_in(dir);
    let now = left.remove("p.db").expect("the persistence file exists");
    if left.is_empty() {
        let header_prefix = original.len() < 16 && now.len() == 16 && now.starts_with(original);
        assert!(
            original.starts_with(&now) || header_prefix,
            "the file was changed other than by truncating a torn tail ({} -> {} bytes)",
            original.len(),
            now.len()
        );
        assert!(now.len() >= 16, "the file was left without a header");
    } else {
        assert!(
            left.len() == 1,
            "more than one file beside the log: {left:?}"
        );
        let (name, copy) = left.iter().next().unwrap();
        assert!(name.starts_with("p.db.corrupt-"), "unexpected file {name}");
        assert!(
            copy == original,
            "the damaged file's copy differs from the original"
        );
    }
}

/// Every recovered group renders; without recomputed CRCs a consistent scrape also parses.
fn check_recovered_groups(st: &store::Store, written_by_us: bool) {
    let snap = st.snapshot();
    for g in snap.groups.values() {
        for e in g.families.values() {
            let _ = (e.text(), e.proto_metrics(), e.metrics(), e.series());
        }
    }
    let _ = server::scrape::render_text(&[], &snap);
    let _ = server::scrape::render_protobuf(&[], &snap);
    if snap.inconsistent {
        let _ = st.describe_inconsistency(&snap);
    } else if written_by_us {
        check_scrape_parses(&snap);
    }
}

// otlp_decode
// ---------------------------------------------------------------------------------------------

/// An OTLP/HTTP export body through the receiver's whole path. The first byte picks the
/// settings: bit 0 OTLP/JSON (else protobuf), bit 1 `UnderscoreEscapingWithoutSuffixes` (else
/// Prometheus' default), bit 2 `promote_scope_metadata`, bit 3 promotes the resource attribute
/// `a`, bit 4 `keep_identifying_resource_attributes`; the rest is the body. Checked:
///
/// * Decoding and translation never panic; the response and status bodies encode.
/// * Accepted plus rejected points never exceed the points of the request.
/// * Every group key has a non-empty `job` and label names a push URL could carry; every
///   family name is a valid metric name, every metric's label names are valid, not reserved
///   (`__*`), sorted and unique, and the metric's kind matches its family's type (the text
///   writer takes it).
/// * Every group, pushed into a checked in-memory store as the server pushes it, is accepted
///   or refused without a panic, and the store's scrape still parses.
pub fn otlp_decode(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let enc = if mode & 1 != 0 {
        otlp::Encoding::Json
    } else {
        otlp::Encoding::Protobuf
    };
    let settings = otlp::Settings {
        strategy: if mode & 2 != 0 {
            otlp::Strategy::UnderscoreEscapingWithoutSuffixes
        } else {
            otlp::Strategy::UnderscoreEscapingWithSuffixes
        },
        promote_scope_metadata: mode & 4 != 0,
        promote_resource_attributes: if mode & 8 != 0 {
            vec!["a".into()]
        } else {
            Vec::new()
        },
        keep_identifying_resource_attributes: mode & 16 != 0,
    };
    let Ok(req) = otlp::decode(body, enc) else {
        return;
    };
    let total = otlp_points(&req);
    let t = otlp::translate(req, &settings);
    let accepted: u64 = t.groups.iter().map(|g| g.points).sum();
    assert!(
        accepted + t.rejected <= total,
        "{accepted} accepted + {} rejected of {total} points",
        t.rejected
    );
    let _ = otlp::encode_response(t.rejected, &t.message(), enc);
    let _ = otlp::encode_status(400, &t.message(), enc);
    let st = store::Store::open(store::StoreConfig {
        checked: true,
        own_families: server::telemetry::OWN_FAMILIES
            .iter()
            .map(|(n, t, _)| (n.to_string(), *t))
            .collect(),
        persistence: None,
        quotas: Default::default(),
    })
    .expect("in-memory store");
    for g in t.groups {
        assert!(g.delta_points <= g.points);
        let key = store::GroupKey::new(g.key.iter().cloned());
        assert!(key.get("job").is_some_and(|j| !j.is_empty()), "{:?}", g.key);
        for (n, _) in &g.key {
            assert!(
                store::check::is_valid_label_name(n) && !n.starts_with("__"),
                "grouping label {n:?}"
            );
        }
        for f in g.cumulative.iter().chain(&g.delta) {
            assert!(
                exposition::names::is_legacy_name(f.name()),
                "family {:?}",
                f.name()
            );
            for m in &f.metric {
                let names: Vec<&str> = m.label.iter().map(|l| l.name()).collect();
                assert!(names.windows(2).all(|w| w[0] < w[1]), "labels {names:?}");
                for n in names {
                    assert!(
                        store::check::is_valid_label_name(n) && !n.starts_with("__"),
                        "label {n:?} of {}",
                        f.name()
                    );
                }
                let mut out = String::new();
                text_encode::write_metric(&mut out, f.name(), f.metric_type(), m)
                    .expect("kind matches the family type");
            }
        }
        // As the receiver pushes them: cumulative families like a POST, delta families
        // accumulating (twice, so that they merge with what the first push stored).
        let delta = Some(store::Accumulate {
            gauges: store::GaugeMode::Sum,
        });
        for (families, accumulate) in [
            (g.cumulative, None),
            (g.delta.clone(), delta),
            (g.delta, delta),
        ] {
            if families.is_empty() {
                continue;
            }
            let _ = now_or_never(st.push(store::Push {
                key: key.clone(),
                families,
                replace: false,
                time: UNIX_EPOCH + Duration::from_secs(1_000),
                ttl_ms: 0,
                accumulate,
                idempotency_key: None,
            }));
        }
    }
    check_scrape_parses(&st.snapshot());
}

fn otlp_points(req: &otlp::ExportMetricsServiceRequest) -> u64 {
    use otlp::proto::metric::Data;
    let mut n = 0;
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                n += match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64;
            }
        }
    }
    n
}
