//! Go-compatible float formatting (`strconv.FormatFloat`).
//!
//! Go's `strconv.FormatFloat(f, 'g', -1, 64)` prints the shortest decimal that round-trips, in
//! scientific notation iff the decimal exponent is below -4 or at least 6 (for the shortest
//! format Go uses 6 as the precision in that decision), with an exponent of at least two digits
//! and an explicit sign: `1e+06`, `1.5e-07`, `123456`, `0.0001`. Rust's `{:e}` gives the same
//! shortest digits, so we only re-arrange them.

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
    // Integers below 1e6 print as themselves (the common case for counters and counts).
    if v.fract() == 0.0 && v.abs() < 1e6 {
        let mut b = itoa::Buffer::new();
        out.push_str(b.format(v as i64));
        return;
    }
    // Shortest round-trip digits from ryu, re-arranged into Go's layout.
    let mut rb = ryu::Buffer::new();
    let s = rb.format_finite(v);
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut digits = [0u8; 32];
    let mut nd = 0;
    let exp: i32;
    if let Some((m, e)) = s.split_once('e') {
        for b in m.bytes().filter(|b| *b != b'.') {
            digits[nd] = b;
            nd += 1;
        }
        exp = e.parse().expect("ryu exponent");
    } else {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int != "0" {
            exp = int.len() as i32 - 1;
            for b in int.bytes().chain(frac.bytes()) {
                digits[nd] = b;
                nd += 1;
            }
        } else {
            let zeros = frac.bytes().take_while(|b| *b == b'0').count();
            exp = -(zeros as i32) - 1;
            for b in frac.bytes().skip(zeros) {
                digits[nd] = b;
                nd += 1;
            }
        }
    }
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
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
        let mut b = itoa::Buffer::new();
        out.push_str(b.format(a));
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
            (
                f64::from_bits(0x42ea_8090_bb0f_6d84),
                "2.3311589051479612e+14",
            ),
            (123456.5, "123456.5"),
            (0.000123, "0.000123"),
            (1e-4, "0.0001"),
            (-1e6, "-1e+06"),
            (1e15, "1e+15"),
            (123456789012.0, "1.23456789012e+11"),
            (1.0000000000000002, "1.0000000000000002"),
            (0.30000000000000004, "0.30000000000000004"),
            (999999.0, "999999"),
            (-0.5, "-0.5"),
            (12.5, "12.5"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(*v), *want, "formatting {v:?}");
        }
    }

    /// Reference: Rust's `{:e}` (shortest digits) re-arranged, the slow way.
    fn reference(v: f64) -> String {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap();
        let exp: i32 = e.parse().unwrap();
        let (neg, m) = m.strip_prefix('-').map_or((false, m), |m| (true, m));
        let digits: String = m.chars().filter(|c| *c != '.').collect();
        let mut out = String::from(if neg { "-" } else { "" });
        if !(-4..6).contains(&exp) {
            out.push_str(&digits[..1]);
            if digits.len() > 1 {
                out.push('.');
                out.push_str(&digits[1..]);
            }
            out.push_str(&format!(
                "e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            ));
        } else if exp < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            out.push_str(&padded[..int_len]);
            if padded.len() > int_len {
                out.push('.');
                out.push_str(&padded[int_len..]);
            }
        }
        out
    }

    #[test]
    fn fast_path_matches_reference_on_many_values() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                0 => f64::from_bits(x),
                1 => (x % 10_000_000) as f64 / 1000.0,
                2 => (x % 100_000_000) as f64,
                _ => (x as f64) * 1e-12,
            };
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            // Same layout and digit count as the reference; the digits may differ only on
            // exact ties, where ryu (like Go) rounds half to even and `{:e}` does not.
            let (got, want) = (go_float(v), reference(v));
            assert_eq!(
                got.len(),
                want.len(),
                "bits {:#x}: {got} vs {want}",
                v.to_bits()
            );
            assert_eq!(
                got.parse::<f64>().unwrap(),
                v,
                "bits {:#x}: {got}",
                v.to_bits()
            );
        }
    }

    #[test]
    fn text_float_prints_negative_zero_as_zero() {
        let mut s = String::new();
        write_text_float(&mut s, -0.0);
        assert_eq!(s, "0");
    }
}
