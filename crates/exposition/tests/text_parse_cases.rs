//! Data-driven cases for the text-format parser (`exposition::text_parse`).
//!
//! Each case under `testdata/text_parse/<mode>/` is an input file `NAME.txt` (the exact bytes
//! pushed) and either `NAME.out`, the parsed families in the dump format below, or `NAME.err`,
//! the one error line Go's `expfmt.TextParser` gives (`text format parsing error in line N:
//! ...`). `<mode>` is the parser entry point: `legacy` ([`parse_text`]) or `utf8`
//! ([`parse_text_names`] with UTF-8 names allowed). `testdata/text_parse/payloads/` holds real
//! scrapes (node_exporter-like, the Python and Go clients' output), parsed in `legacy` mode.
//!
//! The dump is complete: every field the parser can set is written (floats as Go prints them,
//! so `-0` and `0` differ; strings quoted with Go's `%q`), and a field it does not know about
//! fails the case. One family per `family` line, in the order the parser returns them, then one
//! line per metric:
//!
//! ```text
//! family "name" type=COUNTER help="two-line\n doc"
//!   {labelname="val2"} counter=0.23 ts=1234567890
//!   {} summary count=1 sum=2 quantile(0.5)=3
//!   {} histogram count=4 sum=7 bucket(1):count=2 bucket(+Inf):count_float=3.5
//! ```
//!
//! `PGW_BLESS=1 cargo test -p exposition --test text_parse_cases` writes the `.out`/`.err`
//! files from the current parser (for new cases; review the diff).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use exposition::pb::{Metric, MetricFamily, MetricType};
use exposition::text_parse::{parse_text, parse_text_names};
use gocompat::float::go_float;
use gocompat::quote::quote;

fn type_name(t: i32) -> &'static str {
    match MetricType::try_from(t) {
        Ok(MetricType::Counter) => "COUNTER",
        Ok(MetricType::Gauge) => "GAUGE",
        Ok(MetricType::Summary) => "SUMMARY",
        Ok(MetricType::Untyped) => "UNTYPED",
        Ok(MetricType::Histogram) => "HISTOGRAM",
        Ok(MetricType::GaugeHistogram) => "GAUGE_HISTOGRAM",
        _ => "?",
    }
}

/// The dump of one metric; panics on a field the dump does not cover.
fn dump_metric(out: &mut String, m: &Metric) {
    let mut rest = m.clone();
    out.push_str("  {");
    for (i, l) in std::mem::take(&mut rest.label).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = l.name.as_deref().expect("label name set");
        let value = l.value.as_deref().expect("label value set");
        let _ = write!(
            out,
            "{}={}",
            quote(name.as_bytes()),
            quote(value.as_bytes())
        );
    }
    out.push('}');
    let opt = |out: &mut String, key: &str, v: Option<f64>| {
        if let Some(v) = v {
            let _ = write!(out, " {key}={}", go_float(v));
        }
    };
    if let Some(c) = rest.counter.take() {
        let mut c = *c;
        opt(out, "counter", c.value.take());
        assert_eq!(c, Default::default(), "counter fields not in the dump");
    }
    if let Some(mut g) = rest.gauge.take() {
        opt(out, "gauge", g.value.take());
        assert_eq!(g, Default::default(), "gauge fields not in the dump");
    }
    if let Some(mut u) = rest.untyped.take() {
        opt(out, "untyped", u.value.take());
        assert_eq!(u, Default::default(), "untyped fields not in the dump");
    }
    if let Some(s) = rest.summary.take() {
        let mut s = *s;
        out.push_str(" summary");
        if let Some(c) = s.sample_count.take() {
            let _ = write!(out, " count={c}");
        }
        opt(out, "sum", s.sample_sum.take());
        for q in std::mem::take(&mut s.quantile) {
            let _ = write!(
                out,
                " quantile({})={}",
                q.quantile.map_or("-".into(), go_float),
                q.value.map_or("-".into(), go_float)
            );
        }
        assert_eq!(s, Default::default(), "summary fields not in the dump");
    }
    if let Some(h) = rest.histogram.take() {
        let mut h = *h;
        out.push_str(" histogram");
        if let Some(c) = h.sample_count.take() {
            let _ = write!(out, " count={c}");
        }
        opt(out, "count_float", h.sample_count_float.take());
        opt(out, "sum", h.sample_sum.take());
        for mut b in std::mem::take(&mut h.bucket) {
            let _ = write!(
                out,
                " bucket({}):",
                b.upper_bound.take().map_or("-".into(), go_float)
            );
            if let Some(c) = b.cumulative_count.take() {
                let _ = write!(out, "count={c}");
            }
            if let Some(c) = b.cumulative_count_float.take() {
                let _ = write!(out, "count_float={}", go_float(c));
            }
            assert_eq!(b, Default::default(), "bucket fields not in the dump");
        }
        assert_eq!(h, Default::default(), "histogram fields not in the dump");
    }
    if let Some(ts) = rest.timestamp_ms.take() {
        let _ = write!(out, " ts={ts}");
    }
    assert_eq!(rest, Metric::default(), "metric fields not in the dump");
    out.push('\n');
}

fn dump(families: &[MetricFamily]) -> String {
    let mut out = String::new();
    for f in families {
        let mut rest = f.clone();
        let name = rest.name.take().expect("family name set");
        let _ = write!(out, "family {}", quote(name.as_bytes()));
        if let Some(t) = rest.r#type.take() {
            let _ = write!(out, " type={}", type_name(t));
        }
        if let Some(h) = rest.help.take() {
            let _ = write!(out, " help={}", quote(h.as_bytes()));
        }
        out.push('\n');
        for m in std::mem::take(&mut rest.metric) {
            dump_metric(&mut out, &m);
        }
        assert_eq!(
            rest,
            MetricFamily::default(),
            "family fields not in the dump"
        );
    }
    out
}

/// What the parser makes of `input` in `mode`: `Ok(dump)` or `Err(error line)`.
fn run(mode: &str, input: &[u8]) -> Result<String, String> {
    let parsed = match mode {
        "legacy" | "payloads" => parse_text(input),
        "utf8" => parse_text_names(input, true),
        _ => panic!("unknown case directory {mode}"),
    };
    parsed.map(|f| dump(&f)).map_err(|e| e.to_string())
}

fn case_dir(mode: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/text_parse")
        .join(mode)
}

/// Runs every case of one directory; returns the failures, each naming its file.
fn check_dir(mode: &str, dir: &Path) -> Vec<String> {
    let bless = std::env::var_os("PGW_BLESS").is_some();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    let has_ext = |p: &Path, ext: &str| p.extension().is_some_and(|e| e == ext);
    let mut inputs: Vec<PathBuf> = files
        .iter()
        .filter(|p| has_ext(p, "txt"))
        .cloned()
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "{}: no cases (*.txt) in the case directory",
        dir.display()
    );
    // An expectation whose input is gone would silently drop a case.
    let mut failures: Vec<String> = files
        .iter()
        .filter(|p| (has_ext(p, "out") || has_ext(p, "err")) && !p.with_extension("txt").exists())
        .map(|p| format!("{}: expected output without its input (.txt)", p.display()))
        .collect();
    for input_path in inputs {
        let input = std::fs::read(&input_path).expect("read case input");
        let (out_path, err_path) = (
            input_path.with_extension("out"),
            input_path.with_extension("err"),
        );
        let got = run(mode, &input);
        if bless {
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
            match &got {
                Ok(d) => std::fs::write(&out_path, d),
                Err(e) => std::fs::write(&err_path, format!("{e}\n")),
            }
            .expect("write expected file");
            continue;
        }
        let want = match (
            std::fs::read_to_string(&out_path),
            std::fs::read_to_string(&err_path),
        ) {
            (Ok(d), Err(_)) => Ok(d),
            (Err(_), Ok(e)) => Err(e.strip_suffix('\n').unwrap_or(&e).to_owned()),
            _ => {
                failures.push(format!(
                    "{}: needs exactly one of {} and {}",
                    input_path.display(),
                    out_path.display(),
                    err_path.display()
                ));
                continue;
            }
        };
        if got != want {
            failures.push(format!(
                "{}:\n  want {want:?}\n  got  {got:?}",
                input_path.display()
            ));
        }
    }
    failures
}

fn check(mode: &str) {
    let failures = check_dir(mode, &case_dir(mode));
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn legacy_name_cases() {
    check("legacy");
}

#[test]
fn utf8_name_cases() {
    check("utf8");
}

#[test]
fn real_payloads() {
    check("payloads");
}

#[test]
fn harness_refuses_an_empty_case_directory() {
    let dir = std::env::temp_dir().join(format!("text-parse-cases-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create empty case dir");
    let r = std::panic::catch_unwind(|| check_dir("legacy", &dir));
    std::fs::remove_dir(&dir).expect("remove empty case dir");
    let msg = r.expect_err("an empty case directory must fail");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("no cases"), "{msg}");
}
