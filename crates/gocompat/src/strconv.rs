//! Go's `strconv` parsing as the text format uses it, and Go's float-to-integer conversion.
//!
//! * [`parse_float`]: `strconv.ParseFloat(s, 64)` after expfmt's up-front refusal of hex and `_`.
//! * [`parse_int_bytes`]: `strconv.ParseInt(s, 10, 64)`.
//! * [`f64_to_u64`]: the `uint64(f)` conversion as compiled for amd64.

/// Go's `strconv.ParseFloat(s, 64)` as expfmt uses it: no hex floats, no `_` separators
/// (expfmt rejects any 'p', 'P' or '_' up front), case-insensitive `inf`/`infinity` with an
/// optional sign, `nan` without a sign, and an error instead of ±Inf when a finite literal
/// overflows. Underflow rounds to (signed) zero or a subnormal, as in Go.
pub fn parse_float(s: &str) -> Option<f64> {
    parse_float_bytes(s.as_bytes())
}

/// [`parse_float`] on bytes (the parser's tokens); invalid UTF-8 is a syntax error.
pub fn parse_float_bytes(s: &[u8]) -> Option<f64> {
    let (signed, negative, body) = match s.first()? {
        b'+' => (true, false, &s[1..]),
        b'-' => (true, true, &s[1..]),
        _ => (false, false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if !signed && body.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // Decimal syntax: digits, at most one '.', at least one digit in total, then an optional
    // exponent with at least one digit. Everything else (hex, '_', junk) is a syntax error.
    let mut i = 0;
    let mut digits = false;
    while i < body.len() && body[i].is_ascii_digit() {
        i += 1;
        digits = true;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
            digits = true;
        }
    }
    if !digits {
        return None;
    }
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        i += 1;
        if i < body.len() && (body[i] == b'+' || body[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != body.len() {
        return None;
    }
    // The syntax is validated and ASCII; Rust's parser is correctly rounded like Go's.
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // Go reports a finite literal that rounds to infinity as ErrRange.
    (!v.is_infinite()).then_some(v)
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only, no overflow.
pub fn parse_int_bytes(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Go's `uint64(f)` conversion on amd64 (what Pushgateway binaries run on): truncation toward
/// zero, negative values wrap (`-1` → 2^64-1), NaN, ±Inf and values out of range give 2^63.
pub fn f64_to_u64(v: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // CVTTSD2SQ: anything outside the int64 range (and NaN) becomes i64::MIN.
    fn cvttsd2sq(x: f64) -> i64 {
        if x.is_nan() || !(-TWO_63..TWO_63).contains(&x) {
            i64::MIN
        } else {
            x as i64
        }
    }
    if v < TWO_63 {
        cvttsd2sq(v) as u64
    } else {
        (cvttsd2sq(v - TWO_63) as u64) | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_float_cases() {
        assert_eq!(parse_float("1"), Some(1.0));
        assert_eq!(parse_float("-.5e-1"), Some(-0.05));
        assert_eq!(parse_float("+INF"), Some(f64::INFINITY));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NAN").unwrap().is_nan());
        assert_eq!(parse_float("4.9e-324"), Some(4.9e-324));
        assert_eq!(parse_float("2e-324"), Some(0.0));
        assert_eq!(parse_float("1.7976931348623158e308"), Some(f64::MAX));
        assert_eq!(
            parse_float("0.1000000000000000055511151231257827021181583404541015625"),
            Some(0.1)
        );
        for s in [
            "", " 1", "1 ", "-nan", "+nan", "1e309", "0x1p0", "1_000", "1p0", "inf ", "∞", "1e",
            "e1", ".e1", "1.e", "++1", "--1", "1+", "i", "in", "infinit", "na",
        ] {
            assert_eq!(parse_float(s), None, "{s:?}");
        }
    }

    #[test]
    fn parse_int_is_decimal_i64() {
        assert_eq!(parse_int_bytes(b"-42"), Some(-42));
        assert_eq!(parse_int_bytes(b"+7"), Some(7));
        assert_eq!(parse_int_bytes(b"9223372036854775807"), Some(i64::MAX));
        for s in [
            &b""[..],
            b"9223372036854775808",
            b"1.0",
            b"0x10",
            b" 1",
            b"\xff",
        ] {
            assert_eq!(parse_int_bytes(s), None, "{s:?}");
        }
    }

    #[test]
    fn uint64_conversion_as_on_amd64() {
        assert_eq!(f64_to_u64(3.9), 3);
        assert_eq!(f64_to_u64(-1.0), u64::MAX);
        assert_eq!(f64_to_u64(f64::NAN), 1 << 63);
        assert_eq!(f64_to_u64(f64::INFINITY), 1 << 63);
        assert_eq!(f64_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(f64_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(f64_to_u64(2e19), 1 << 63);
    }
}
