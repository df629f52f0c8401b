//! Go's `strconv.ParseFloat` as expfmt calls it ([`gocompat::strconv::parse_float_bytes`]),
//! with a fast path for the forms sample values almost always take: an optional sign, at most
//! 15 decimal digits and at most one '.' (`42`, `-0`, `0.125`, `1700000000`, `.5`, `3.`).
//!
//! Such a number is `m / 10^k` with `m < 10^15 < 2^53` and `k ≤ 15`: both are exact `f64`s, and
//! one IEEE division is correctly rounded, so the result is the correctly rounded value of the
//! decimal, the same bits Go's (and Rust's) parser produce (Clinger's fast path). Anything
//! else (exponents, more digits, `Inf`, `NaN`, junk) goes to the exact parser.

use gocompat::strconv::parse_float_bytes as parse_go_float_bytes;

/// Powers of ten exactly representable as `f64`, for the fraction digits.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Go's `ParseFloat(s, 64)` as expfmt uses it: `None` where Go returns an error.
#[inline]
pub(crate) fn parse_float(s: &[u8]) -> Option<f64> {
    match simple_decimal(s) {
        Some(v) => Some(v),
        None => parse_go_float_bytes(s),
    }
}

/// The value of a short plain decimal; `None` for any other form (not necessarily invalid).
#[inline]
fn simple_decimal(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    // At most 15 digits and a '.'.
    if body.is_empty() || body.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut digits = 0;
    let mut dot = None;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(b - b'0');
                digits += 1;
            }
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let k = dot.map_or(0, |d| body.len() - d - 1);
    let v = m as f64 / POW10[k];
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path and the exact parser agree bit for bit (and on refusals) on every form
    /// the fast path takes or declines.
    #[test]
    fn fast_path_gives_the_exact_parsers_bits() {
        let cases = [
            "0",
            "-0",
            "+0",
            "0.0",
            "-0.0",
            "1",
            "+1",
            "-1",
            "42",
            "3.",
            ".5",
            "-.5",
            "+.5",
            "0.1",
            "0.2",
            "0.3",
            "0.125",
            "2.5",
            "1700000000",
            "123456789012345",
            "999999999999999",
            "0.999999999999999",
            "99999999999999.9",
            "1234567890123456",
            "12345678901234567890",
            "0.000000000000001",
            "0.0000000000000001",
            "1.000000000000001",
            "9007199254740993",
            "1e308",
            "1e309",
            "-1e308",
            "1E5",
            "1e-400",
            "4.9e-324",
            "2.2250738585072014e-308",
            "NaN",
            "nan",
            "+Inf",
            "-Inf",
            "inf",
            "Infinity",
            "+NaN",
            ".",
            "-",
            "+",
            "",
            "-.",
            "1..2",
            "1.2.3",
            "0x1p-2",
            "0x10",
            "1_000",
            "1 ",
            " 1",
            "1\r",
            "١",
            "00000000000000001",
            "000000000000001",
            "-000.100",
            "17.25",
            "3.14159",
        ];
        for c in cases {
            let want = parse_go_float_bytes(c.as_bytes());
            let got = parse_float(c.as_bytes());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "{c:?}: fast {got:?}, exact {want:?}"
            );
        }
    }

    /// Generated decimals of every digit count and point position up to the fast path's
    /// bounds and just past them.
    #[test]
    fn fast_path_matches_on_generated_decimals() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = 1 + (x % 17) as usize;
            let mut s: String = (0..digits)
                .map(|i| char::from(b'0' + ((x >> (i * 3 % 60)) % 10) as u8))
                .collect();
            if x & 0x100 != 0 {
                let at = (x >> 20) as usize % (digits + 1);
                s.insert(at, '.');
            }
            if x & 0x200 != 0 {
                s.insert(0, '-');
            }
            let want = parse_go_float_bytes(s.as_bytes()).map(f64::to_bits);
            assert_eq!(parse_float(s.as_bytes()).map(f64::to_bits), want, "{s:?}");
        }
    }
}
