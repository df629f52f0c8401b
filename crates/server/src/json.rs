//! The JSON answers of the API (`/api/v1/...`): strings escaped as Go's `encoding/json` does
//! (HTML-safe), floats as strings in Go's `%v` format, and the CORS headers the official API
//! sets. The JSON is written directly into one `String`, without a serializer.

use crate::http::{with_type, Resp};
use exposition::float::write_go_float;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use std::fmt::Write;

/// Adds the CORS headers the official API sets on every response.
pub fn cors(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
    );
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Date"),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r
}

/// A 200 JSON answer with the CORS headers.
pub(crate) fn json_response(body: String) -> Resp {
    cors(with_type(StatusCode::OK, "application/json", body))
}

/// Bytes that may need escaping: controls, quote, backslash, `<`, `>`, `&`, and 0xE2 (the
/// first byte of U+2028/U+2029, checked properly on the slow path).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b < 0x20 || matches!(b as u8, b'"' | b'\\' | b'<' | b'>' | b'&' | 0xE2);
        b += 1;
    }
    t
};

/// Appends `s` as a JSON string, escaped like Go's `encoding/json` (Go 1.22 and later write
/// `\b` and `\f` as such, not as `\u0008`/`\u000c`; upstream 1.11 is built with those).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escaping at all: copy them in one go.
    let plain = !s.bytes().any(|b| NEEDS_ESCAPE[b as usize]);
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float as a JSON string in Go's `%v` format (`"1.5"`, `"+Inf"`).
pub fn json_float(out: &mut String, v: f64) {
    out.push('"');
    write_go_float(out, v);
    out.push('"');
}

/// Appends `s` (UTF-8) as a JSON string, byte for byte what [`json_str`] writes: for writers
/// that build their answer as bytes and take strings straight from stored encodings.
pub fn json_bytes(out: &mut Vec<u8>, s: &[u8]) {
    if is_plain(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut last = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if !NEEDS_ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            0xE2 => match (s.get(i + 1), s.get(i + 2)) {
                (Some(0x80), Some(0xA8)) => b"\\u2028",
                (Some(0x80), Some(0xA9)) => b"\\u2029",
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => {
                // The other controls: `\u00XX`.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&s[last..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                i += 1;
                last = i;
                continue;
            }
        };
        out.extend_from_slice(&s[last..i]);
        out.extend_from_slice(esc);
        i += if b == 0xE2 { 3 } else { 1 };
        last = i;
    }
    out.extend_from_slice(&s[last..]);
    out.push(b'"');
}

/// Whether `s` has no byte that may need escaping ([`NEEDS_ESCAPE`]), eight bytes at a time.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero iff some byte of `v` is below `n` (n <= 0x80).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let has = |v: u64, c: u8| below(v ^ (ONES * u64::from(c)), 1);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let hit = below(v, 0x20)
            | has(v, b'"')
            | has(v, b'\\')
            | has(v, b'<')
            | has(v, b'>')
            | has(v, b'&')
            | has(v, 0xE2);
        if hit != 0 {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| NEEDS_ESCAPE[b as usize])
}

/// `"00"` to `"99"`.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes `n` in decimal at the end of `b`, returning where it starts.
#[inline]
fn u64_digits(b: &mut [u8; 20], mut n: u64) -> usize {
    let mut i = b.len();
    while n >= 100 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        b[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    }
    if n >= 10 {
        let r = n as usize * 2;
        i -= 2;
        b[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    } else {
        i -= 1;
        b[i] = b'0' + n as u8;
    }
    i
}

/// Appends `n` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut b = [0u8; 20];
    let i = u64_digits(&mut b, n);
    out.extend_from_slice(&b[i..]);
}

/// Appends a float as a JSON string, byte for byte what [`json_float`] writes; `scratch` is
/// reused for the values that need the general formatter.
pub fn json_float_bytes(out: &mut Vec<u8>, scratch: &mut String, v: f64) {
    out.push(b'"');
    if !short_decimal(out, v) && !special_float(out, v) && !big_integer(out, v) {
        scratch.clear();
        write_go_float(scratch, v);
        out.extend_from_slice(scratch.as_bytes());
    }
    out.push(b'"');
}

/// Writes zero, the infinities and NaN as `%v` does and returns true; otherwise nothing.
#[inline]
fn special_float(out: &mut Vec<u8>, v: f64) -> bool {
    let s: &[u8] = if v == 0.0 {
        if v.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        }
    } else if v.is_nan() {
        b"NaN"
    } else if v == f64::INFINITY {
        b"+Inf"
    } else if v == f64::NEG_INFINITY {
        b"-Inf"
    } else {
        return false;
    };
    out.extend_from_slice(s);
    true
}

/// Writes an integer of at least 1e6 and below 2^53 (`1.7e+09`, `1.234567e+06`) as `%v`
/// does and returns true; otherwise writes nothing.
///
/// Below 2^53 neighbouring doubles are at most 1 apart, so no decimal with fewer
/// significant digits than the integer (trailing zeros dropped) reads back as it: those
/// digits are the shortest, in exponent form from 1e6 on.
#[inline]
fn big_integer(out: &mut Vec<u8>, v: f64) -> bool {
    let a = v.abs();
    if !(1e6..9_007_199_254_740_992.0).contains(&a) {
        return false;
    }
    let n = a as i64;
    if n as f64 != a {
        return false;
    }
    let n = n as u64;
    let mut b = [0u8; 20];
    let i = u64_digits(&mut b, n);
    let exp = b.len() - i - 1;
    let mut end = b.len();
    while b[end - 1] == b'0' {
        end -= 1;
    }
    if v < 0.0 {
        out.push(b'-');
    }
    out.push(b[i]);
    if end > i + 1 {
        out.push(b'.');
        out.extend_from_slice(&b[i + 1..end]);
    }
    // 1e6 <= a < 1e16: a two-digit exponent.
    out.extend_from_slice(&[b'e', b'+', b'0' + (exp / 10) as u8, b'0' + (exp % 10) as u8]);
    true
}

/// Writes `v` if it is a number Go's `%v` prints as a plain decimal with at most three
/// fractional digits (integers, `12.5`, `0.01`; the common values) and returns true;
/// otherwise writes nothing.
///
/// `%v` prints the shortest decimal that reads back as `v`, without an exponent for
/// 1e-4 <= |v| < 1e6. If `n / 10^k` (n < 1e9) reads back as `v`, no other decimal of at
/// most 15 significant digits does (`DBL_DIG`), so that decimal, trailing zeros dropped,
/// is the shortest.
#[inline]
fn short_decimal(out: &mut Vec<u8>, v: f64) -> bool {
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return false;
    }
    let sign = |out: &mut Vec<u8>| {
        if v < 0.0 {
            out.push(b'-');
        }
    };
    // Conversions to integers truncate (no call to libm's `trunc`/`round`; signed ones are
    // single instructions, and every value here is below 1e9); what is written is decided
    // by the exact round-trip checks, not by how the candidate was rounded.
    let int = a as i64;
    if int as f64 == a {
        sign(out);
        push_u64(out, int as u64);
        return true;
    }
    for (k, scale) in [(1u32, 10.0), (2, 100.0), (3, 1000.0)] {
        let n = (a * scale + 0.5) as i64;
        if n as f64 / scale != a {
            continue;
        }
        let n = n as u64;
        let p = 10u64.pow(k);
        let (int, mut frac, mut digits) = (n / p, n % p, k);
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        sign(out);
        push_u64(out, int);
        out.push(b'.');
        let mut buf = [b'0'; 3];
        for i in (0..digits as usize).rev() {
            buf[i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        out.extend_from_slice(&buf[..digits as usize]);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a<b>&\"\\\n\u{1}é");
        assert_eq!(s, "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001é\"");
        let mut s = String::new();
        json_str(&mut s, "plain é \u{2028}x");
        assert_eq!(s, "\"plain é \\u2028x\"");
    }

    /// Go 1.22+ (what upstream 1.11 is built with) writes backspace and form feed as `\b`, `\f`.
    #[test]
    fn backspace_and_form_feed_escaped_as_go_1_22_does() {
        let mut s = String::new();
        json_str(&mut s, "a\u{8}b\u{c}c\u{b}");
        assert_eq!(s, "\"a\\bb\\fc\\u000b\"");
        let mut b = Vec::new();
        json_bytes(&mut b, "a\u{8}b\u{c}c\u{b}".as_bytes());
        assert_eq!(b, s.as_bytes());
    }

    /// The byte writers write what the `String` ones do.
    #[test]
    fn byte_writers_match_string_writers() {
        for s in [
            "",
            "plain",
            "a<b>&\"\\\n\r\t\u{1}\u{8}\u{c}\u{1f}é",
            "x\u{2028}y\u{2029}z\u{2027}€ – ✓",
            "\u{7f}\u{80}\u{ff}",
        ] {
            let (mut a, mut b) = (String::new(), Vec::new());
            json_str(&mut a, s);
            json_bytes(&mut b, s.as_bytes());
            assert_eq!(a.as_bytes(), b, "{s:?}");
        }
        // Every byte value at every position of a 16-byte string.
        for pos in 0..16 {
            for b in 0..=255u8 {
                let mut s = *b"abcdefghijklmnop";
                s[pos] = b;
                assert_eq!(
                    is_plain(&s),
                    !NEEDS_ESCAPE[b as usize],
                    "byte {b:#x} at {pos}"
                );
            }
        }
        let mut scratch = String::new();
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            999_999.0,
            1e6,
            -1e6,
            0.5,
            1e-7,
            1.5e300,
            123456.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            4.0e15,
            -7.0,
        ] {
            let (mut a, mut b) = (String::new(), Vec::new());
            json_float(&mut a, v);
            json_float_bytes(&mut b, &mut scratch, v);
            assert_eq!(a.as_bytes(), b, "{v}");
        }
        // Every value with few decimals in the fast path's range and around its edges.
        let mut values = Vec::new();
        for n in (0..2_000_000u64)
            .step_by(997)
            .chain([1, 5, 10, 99, 999_999_999])
        {
            for scale in [1.0, 10.0, 100.0, 1000.0, 1e4, 7.0, 3.0] {
                values.push(n as f64 / scale);
                values.push(-(n as f64) / scale);
            }
        }
        values.extend([
            1e-4,
            0.0001,
            0.00011,
            999_999.999,
            999_999.999_9,
            1e6 - 0.5,
            0.1 + 0.2,
        ]);
        for v in values {
            let (mut a, mut b) = (String::new(), Vec::new());
            json_float(&mut a, v);
            json_float_bytes(&mut b, &mut scratch, v);
            assert_eq!(a.as_bytes(), b, "{v:e}");
        }
        // Integers from 1e6 on (exponent form), around 2^53 and beyond; zeros, the
        // infinities, NaN and extremes.
        let mut values: Vec<f64> = vec![
            1e6,
            1_000_001.0,
            1_700_000_123.0,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            1e15,
            1e16,
            123_456_789_012_345_680.0,
            0.0,
            -0.0,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut x: u64 = 1;
        for i in 0..200_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = (x >> (i % 40)) as f64;
            values.extend([n, -n, n * 10.0, (1_000_000 + i * 9973) as f64]);
        }
        for v in values {
            let (mut a, mut b) = (String::new(), Vec::new());
            json_float(&mut a, v);
            json_float_bytes(&mut b, &mut scratch, v);
            assert_eq!(a.as_bytes(), b, "{v:e}");
        }
        let powers = (0..20).flat_map(|k| [10u64.pow(k) - 1, 10u64.pow(k), 10u64.pow(k) + 7]);
        for n in [0, 7, 9, 10, 99, 100, 101, 1234567890, u64::MAX]
            .into_iter()
            .chain(powers)
        {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }
}
