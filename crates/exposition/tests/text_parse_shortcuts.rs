//! The text parser's shortcuts change nothing: `parse_text_names` (which resumes a sample
//! line where its bytes repeat the previous line's, and parses floats on a fast path) gives
//! exactly what `parse_text_reference` (the same parser without them) gives, the same
//! families bit for bit or the same error line, on every case input and its variants, and on
//! generated bodies full of near-repeated lines with byte mutations.

use std::path::Path;

use exposition::text_parse::{parse_text_names, parse_text_reference};
use prost::Message;

/// The families as protobuf bytes (floats bit for bit, NaNs included), or the error line.
fn outcome(
    r: Result<Vec<exposition::MetricFamily>, exposition::text_parse::TextParseError>,
) -> Result<Vec<u8>, String> {
    match r {
        Ok(families) => {
            let mut out = Vec::new();
            for f in &families {
                f.encode_length_delimited(&mut out).expect("Vec grows");
            }
            Ok(out)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn same(body: &[u8]) {
    for utf8 in [false, true] {
        let fast = outcome(parse_text_names(body, utf8));
        let reference = outcome(parse_text_reference(body, utf8));
        assert!(
            fast == reference,
            "utf8={utf8}: shortcuts changed the outcome of {:?}\n  fast: {:?}\n  reference: {:?}",
            String::from_utf8_lossy(body),
            fast.as_ref().map(|b| b.len()),
            reference.as_ref().map(|b| b.len()),
        );
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// Each sample line of `body` followed by copies of itself with one byte changed, at every
/// position: the copies resume from the original's points wherever their bytes agree.
fn with_line_variants(body: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    const SUBST: &[u8] = b"a_\"\\,={} \t\n.0-9#\rxle";
    let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.len() > 200 || line.first() == Some(&b'#') {
            continue;
        }
        for pos in 0..line.len() {
            let mut variant = line.to_vec();
            variant[pos] = SUBST[rng.below(SUBST.len())];
            let mut b = Vec::with_capacity(body.len() + line.len());
            for l in &lines[..=i] {
                b.extend_from_slice(l);
            }
            b.extend_from_slice(&variant);
            if !variant.ends_with(b"\n") {
                b.push(b'\n');
            }
            for l in &lines[i + 1..] {
                b.extend_from_slice(l);
            }
            out.push(b);
        }
    }
    out
}

#[test]
fn shortcuts_agree_on_every_case_input_and_its_line_variants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/text_parse");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut inputs = 0;
    for mode in ["legacy", "utf8", "payloads"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(mode))
            .expect("case directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for path in files {
            let body = std::fs::read(&path).expect("case input");
            same(&body);
            // Every line twice in a row: all of the second copy is a resumed line.
            let doubled: Vec<u8> = body
                .split_inclusive(|&b| b == b'\n')
                .flat_map(|l| [l, l])
                .flatten()
                .copied()
                .collect();
            same(&doubled);
            if body.len() < 4_000 {
                for variant in with_line_variants(&body, &mut rng) {
                    same(&variant);
                }
            }
            inputs += 1;
        }
    }
    assert!(inputs > 100, "only {inputs} case inputs found");
}

/// One generated sample line of family `name` (of type `typ`), from a small vocabulary so
/// that consecutive lines share long prefixes.
fn sample_line(rng: &mut Rng, name: &str, typ: &str) -> String {
    let suffix = match typ {
        "histogram" => rng.pick(&["_bucket", "_bucket", "_bucket", "_sum", "_count", ""]),
        "summary" => rng.pick(&["", "", "_sum", "_count"]),
        _ => rng.pick(&["", "", "", "_total"]),
    };
    let mut line = String::new();
    if rng.below(20) == 0 {
        line.push_str(rng.pick(&[" ", "\t", "  "]));
    }
    let braced = rng.below(15) == 0;
    if braced {
        line.push_str("{\"");
        line.push_str(name);
        line.push_str(suffix);
        line.push('"');
    } else {
        line.push_str(name);
        line.push_str(suffix);
    }
    let n = rng.below(5);
    if n > 0 || braced {
        if !braced {
            line.push_str(rng.pick(&["{", "{", " {"]));
        }
        for i in 0..n {
            if i > 0 || braced {
                line.push_str(rng.pick(&[",", ",", ", ", " ,"]));
            }
            let lname = rng.pick(&["a", "b", "stage", "shard", "le", "quantile", "a", "\"x.y\""]);
            line.push_str(lname);
            line.push_str(rng.pick(&["=", "=", " = "]));
            let value = rng.pick(&[
                "0.5", "1", "+Inf", "0.005", "x", "y", "stage01", "stage02", "NaN", "a\\\\b",
                "a\\nb", "a\\\"b", "", "0.25", "-1", "10", "1e3", "é",
            ]);
            line.push('"');
            line.push_str(value);
            line.push('"');
        }
        if rng.below(10) == 0 {
            line.push(',');
        }
        line.push('}');
    }
    line.push_str(rng.pick(&[" ", " ", "  ", "\t"]));
    line.push_str(rng.pick(&[
        "1",
        "0",
        "-0",
        "2.5",
        "0.125",
        "17",
        "1700000000",
        "1e3",
        "NaN",
        "+Inf",
        "-Inf",
        "3.",
        ".5",
        "-7",
        "123456789012345678",
        "0.1",
        "1.5",
        "4",
    ]));
    if rng.below(10) == 0 {
        line.push_str(rng.pick(&[" 1234", " -5", " 12 x", " 1.5"]));
    }
    if rng.below(30) == 0 {
        line.push('\r');
    }
    line.push('\n');
    line
}

/// A generated body: a few families, runs of similar sample lines, some comments and blank
/// lines.
fn generated_body(rng: &mut Rng) -> Vec<u8> {
    let mut body = String::new();
    let families = 1 + rng.below(3);
    for _ in 0..families {
        let name = rng.pick(&["h", "s", "c", "g", "x_count", "h_sum", "metric"]);
        let typ = rng.pick(&["histogram", "summary", "counter", "gauge", "untyped", ""]);
        if !typ.is_empty() && rng.below(5) != 0 {
            body.push_str(&format!("# TYPE {name} {typ}\n"));
        }
        if rng.below(4) == 0 {
            body.push_str(&format!("# HELP {name} Some help.\n"));
        }
        let lines = 1 + rng.below(12);
        let mut last = String::new();
        for _ in 0..lines {
            match rng.below(12) {
                0 => body.push('\n'),
                1 => body.push_str("# a comment\n"),
                // A repeat of the previous line with another value or label value.
                2..=6 if !last.is_empty() => {
                    let mut l = last.clone();
                    let at = rng.below(l.len());
                    if l.is_char_boundary(at) && l.is_char_boundary(at + 1) {
                        let c = rng.pick(&["1", "2", "a", "b", "\"", ","]);
                        l.replace_range(at..at + 1, c);
                    }
                    body.push_str(&l);
                    if !l.ends_with('\n') {
                        body.push('\n');
                    }
                }
                _ => {
                    last = sample_line(rng, name, if typ.is_empty() { "untyped" } else { typ });
                    body.push_str(&last);
                }
            }
        }
    }
    let mut bytes = body.into_bytes();
    // Now and then a byte mutation anywhere.
    if rng.below(3) == 0 && !bytes.is_empty() {
        let at = rng.below(bytes.len());
        bytes[at] = b"\"\\,={} \n0x\xff"[rng.below(11)];
    }
    bytes
}

#[test]
fn shortcuts_agree_on_generated_bodies() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..30_000 {
        let body = generated_body(&mut rng);
        same(&body);
    }
}

/// pgwbench's large push, the body the shortcuts are for.
#[test]
fn shortcuts_agree_on_the_large_push_body() {
    for g in 0..3 {
        same(testkit::bench::large_push_body(g, g as u64).as_bytes());
        same(testkit::bench::small_push_body(g, g as u64).as_bytes());
    }
}

fn parse(body: &str) -> Result<Vec<exposition::MetricFamily>, String> {
    same(body.as_bytes());
    parse_text_names(body.as_bytes(), false).map_err(|e| e.to_string())
}

fn labels(m: &exposition::Metric) -> Vec<(String, String)> {
    m.label
        .iter()
        .map(|l| (l.name().to_owned(), l.value().to_owned()))
        .collect()
}

/// A resumed line takes over an escaped (owned) value of the line it resumes from, and keeps
/// its own values after the point.
#[test]
fn resumed_line_keeps_escaped_values_before_and_its_own_after_the_point() {
    let fams = parse("m{a=\"x\\\\y\\n\",b=\"1\"} 1\nm{a=\"x\\\\y\\n\",b=\"2\"} 2\n").unwrap();
    let m = &fams[0].metric;
    assert_eq!(
        labels(&m[0]),
        [("a".into(), "x\\y\n".into()), ("b".into(), "1".into())]
    );
    assert_eq!(
        labels(&m[1]),
        [("a".into(), "x\\y\n".into()), ("b".into(), "2".into())]
    );
    assert_eq!(m[1].untyped.as_ref().unwrap().value, Some(2.0));
}

/// `_sum` and `_count` lines resume from the previous `_sum`/`_count` line (another label
/// set) and still go to their own label set's histogram.
#[test]
fn sum_and_count_lines_resume_into_their_own_histogram() {
    let mut body = String::from("# TYPE h histogram\n");
    for s in ["a", "b", "c"] {
        for (le, c) in [("0.5", 1), ("+Inf", 2)] {
            body.push_str(&format!("h_bucket{{x=\"1\",s=\"{s}\",le=\"{le}\"}} {c}\n"));
        }
        body.push_str(&format!("h_sum{{x=\"1\",s=\"{s}\"}} 0.{}\n", s.len() + 4));
        body.push_str(&format!("h_count{{x=\"1\",s=\"{s}\"}} 2\n"));
    }
    // Back to the first label set, after the others.
    body.push_str("h_bucket{x=\"1\",s=\"a\",le=\"10\"} 2\n");
    let fams = parse(&body).unwrap();
    let m = &fams[0].metric;
    assert_eq!(m.len(), 3);
    for (i, s) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(
            labels(&m[i]),
            [("x".into(), "1".into()), ("s".into(), (*s).into())]
        );
        let h = m[i].histogram.as_ref().unwrap();
        assert_eq!((h.sample_count, h.sample_sum), (Some(2), Some(0.5)));
        let bounds: Vec<f64> = h.bucket.iter().map(|b| b.upper_bound()).collect();
        let want: &[f64] = if i == 0 {
            &[0.5, f64::INFINITY, 10.0]
        } else {
            &[0.5, f64::INFINITY]
        };
        assert_eq!(bounds, want, "label set {s}");
    }
}

/// A label after the resume point that repeats one before it is still a duplicate, and the
/// error names the resumed line.
#[test]
fn duplicate_label_after_the_resume_point_is_refused() {
    let err = parse("m{a=\"1\",b=\"2\"} 1\nm{a=\"1\",a=\"2\"} 1\n").unwrap_err();
    assert_eq!(
        err,
        "text format parsing error in line 2: duplicate label names for metric \"m\""
    );
}

/// A TYPE line between two lines of the same prefix: the second is read from its start
/// (the comment forgets the recent lines), and the TYPE after samples is refused as before.
#[test]
fn comment_lines_end_resuming() {
    let fams = parse("m{a=\"1\"} 1\n# HELP m doc\nm{a=\"1\"} 2\n").unwrap();
    assert_eq!(fams[0].help.as_deref(), Some("doc"));
    assert_eq!(fams[0].metric.len(), 2);
    let err = parse("m{a=\"1\"} 1\n# TYPE m counter\nm{a=\"1\"} 2\n").unwrap_err();
    assert!(err.contains("line 2: second TYPE line"), "{err}");
}

/// A CR before the newline stays part of the value token (Go's blanks are ' ' and '\t'
/// only), also on resumed lines and on the float fast path.
#[test]
fn crlf_value_is_refused_on_resumed_lines_too() {
    let err = parse("m{a=\"1\"} 1\nm{a=\"1\"} 2\r\n").unwrap_err();
    assert_eq!(
        err,
        "text format parsing error in line 2: expected float as value, got \"2\\r\""
    );
}
