//! Go-compatible float formatting.
//!
//! Go's `strconv.FormatFloat(f, 'g', -1, 64)` prints the shortest decimal that round-trips, in
//! scientific notation iff the decimal exponent is below -4 or at least 6 (for the shortest
//! format Go uses 6 as the precision in that decision), with an exponent of at least two digits
//! and an explicit sign: `1e+06`, `1.5e-07`, `123456`, `0.0001`. Rust's `{:e}` gives the same
//! shortest digits, so we only re-arrange them.

use std::fmt::Write;

/// Appends `v` as Go's `fmt.Sprint(float64)` / `strconv.FormatFloat(v, 'g', -1, 64)` would:
/// `NaN`, `+Inf`, `-Inf`, `-0` and the shortest `'g'` form otherwise.
pub fn write_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Shortest round-trip digits in the form "-d.ddde[-]x".
    let mut buf = String::with_capacity(32);
    let _ = write!(buf, "{:e}", v);
    let (mantissa, exp) = buf.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("valid exponent");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits = [0u8; 32];
    let mut nd = 0;
    for b in mantissa.bytes().filter(|b| *b != b'.') {
        digits[nd] = b;
        nd += 1;
    }
    let digits = &digits[..nd];
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0] as char);
        if digits.len() > 1 {
            out.push('.');
            for d in &digits[1..] {
                out.push(*d as char);
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        let _ = write!(out, "{}", a);
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        for d in digits {
            out.push(*d as char);
        }
    } else {
        let int_len = exp as usize + 1;
        for i in 0..int_len.max(digits.len()) {
            if i == int_len {
                out.push('.');
            }
            out.push(if i < digits.len() {
                digits[i] as char
            } else {
                '0'
            });
        }
    }
}

/// [`write_go_float`] into a new string.
pub fn go_float(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v);
    s
}

/// Appends `v` as the text exposition writes sample values: like [`write_go_float`], but
/// negative zero prints as `0` (expfmt special-cases `f == 0`).
pub fn write_text_float(out: &mut String, v: f64) {
    if v == 0.0 {
        out.push('0');
    } else {
        write_go_float(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_matches_strconv_g_shortest() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-1.0, "-1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1.23456789e8, "1.23456789e+08"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.2e-5, "1.2e-05"),
            (3.25, "3.25"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1.795292614853281e9, "1.795292614853281e+09"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (99.23, "99.23"),
            (999999.0, "999999"),
            (-0.5, "-0.5"),
            (12.5, "12.5"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(*v), *want, "formatting {v:?}");
        }
    }

    #[test]
    fn text_float_prints_negative_zero_as_zero() {
        let mut s = String::new();
        write_text_float(&mut s, -0.0);
        assert_eq!(s, "0");
    }
}
