//! Go's durations: `time.ParseDuration` syntax (and the gateway's variant with Prometheus' `d`,
//! `w`, `y` units) and `time.Duration.String()`.
//!
//! * [`parse_go_duration`] mirrors Go's `time.ParseDuration`, as the official flags and
//!   exporter-toolkit's web config take durations, refusing negative ones.
//! * [`parse_go_duration_with_days`] is the same syntax plus the `d`, `w` and `y` (365 days)
//!   units of Prometheus' `model.ParseDuration` (whose own syntax, integers in a fixed unit
//!   order, is narrower): what the gateway's TTL flags, `Pushgateway-TTL` header and rules
//!   file take (`90m`, `1h30m`, `1.5h`, `2d`).
//! * [`parse_units`] is their shared core, the `<number><unit>` sequence; `pgw` puts its own
//!   sign and bound handling around it.
//! * [`format_go_duration`] mirrors `time.Duration.String()` (`5m0s`, `1m30s`, `500ms`).

use std::time::Duration;

/// Why a duration was refused. Displayed as the gateway words it (after
/// `invalid duration "<input>": `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// A leading `-`.
    Negative,
    /// Nothing (or only a sign).
    Empty,
    /// A unit where a number should be.
    ExpectedNumber,
    /// Digits and dots that do not make a number (`1.2.3`, `.`).
    BadNumber,
    /// A number without a unit at the end of the input (`5`).
    MissingUnit,
    /// A unit the syntax does not have.
    UnknownUnit(String),
    /// Beyond the bound the caller set.
    TooLarge,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Negative => f.write_str("must not be negative"),
            DurationError::Empty => f.write_str("empty"),
            DurationError::ExpectedNumber => f.write_str("expected a number"),
            DurationError::BadNumber => f.write_str("bad number"),
            DurationError::MissingUnit => {
                f.write_str("missing unit (one of ns, us, ms, s, m, h, d, w, y)")
            }
            DurationError::UnknownUnit(u) => write!(f, "unknown unit {u:?}"),
            DurationError::TooLarge => f.write_str("too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// The bound of [`parse_go_duration`] and [`parse_go_duration_with_days`]: 1000 years, well
/// below `Duration`'s range and far beyond any sensible TTL or timeout.
pub const MAX_SECS: f64 = 1000.0 * 365.0 * 86400.0;

/// Go's `time.ParseDuration` for non-negative durations: an optional `+`, then `0` or a
/// sequence of decimal numbers (with optional fraction) each followed by a unit (`ns`, `us`,
/// `µs`, `μs`, `ms`, `s`, `m`, `h`): `300ms`, `1.5h`, `1h30m`. At most [`MAX_SECS`].
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    parse_signed(s, false)
}

/// [`parse_go_duration`] plus Prometheus' `d`, `w` and `y` (365 days) units: `2d`, `1w1d`.
pub fn parse_go_duration_with_days(s: &str) -> Result<Duration, DurationError> {
    parse_signed(s, true)
}

fn parse_signed(s: &str, days: bool) -> Result<Duration, DurationError> {
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let total = parse_units(rest, days)?;
    if total > MAX_SECS {
        return Err(DurationError::TooLarge);
    }
    Ok(Duration::from_secs_f64(total))
}

/// The `<number><unit>...` sequence of `time.ParseDuration` (with `d`, `w`, `y` when `days`),
/// in seconds (not negative; possibly infinite, which callers refuse as too large). The empty
/// string is 0.
pub fn parse_units(s: &str, days: bool) -> Result<f64, DurationError> {
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DurationError::MissingUnit)?;
        if num_len == 0 {
            return Err(DurationError::ExpectedNumber);
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| DurationError::BadNumber)?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" if days => 86400.0,
            "w" if days => 7.0 * 86400.0,
            "y" if days => 365.0 * 86400.0,
            u => return Err(DurationError::UnknownUnit(u.to_owned())),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    if total.is_finite() {
        Ok(total)
    } else {
        Err(DurationError::TooLarge)
    }
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `500ms`, `1m30s`, `1h0m0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (v, unit) = if nanos < 1_000 {
            (nanos as f64, "ns")
        } else if nanos < 1_000_000 {
            (nanos as f64 / 1e3, "µs")
        } else {
            (nanos as f64 / 1e6, "ms")
        };
        return format!("{}{unit}", crate::float::go_float(v));
    }
    let total_secs = d.as_secs();
    let frac = d.subsec_nanos();
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = total_secs % 60;
    let mut secs = s.to_string();
    if frac > 0 {
        let f = format!("{frac:09}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_and_prometheus_syntax() {
        let d = |s| parse_go_duration_with_days(s).unwrap().as_secs_f64();
        assert_eq!(d("90m"), 5400.0);
        assert_eq!(d("1h30m"), 5400.0);
        assert_eq!(d("1.5h"), 5400.0);
        assert_eq!(d("2d"), 172800.0);
        assert_eq!(d("1w"), 604800.0);
        assert_eq!(d("0"), 0.0);
        assert_eq!(d("+0"), 0.0);
        assert_eq!(d("250ms"), 0.25);
        for bad in ["", "+", "5", "abc", "-5m", "5x", "1e3s", "99999999y", ".h"] {
            assert!(parse_go_duration_with_days(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_go_duration_with_days("-5m"),
            Err(DurationError::Negative)
        );
        assert_eq!(
            parse_go_duration_with_days("1q"),
            Err(DurationError::UnknownUnit("q".into()))
        );
        assert_eq!(parse_go_duration("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_go_duration("2d").is_err(), "Go has no day unit");
    }

    #[test]
    fn unit_sequences() {
        assert_eq!(parse_units("", true), Ok(0.0));
        assert_eq!(parse_units("10us", false), Ok(10.0 * 1e-6));
        assert_eq!(parse_units("1µs1μs", false), Ok(1e-6 + 1e-6));
        assert_eq!(parse_units("5", true), Err(DurationError::MissingUnit));
        assert_eq!(parse_units("h", true), Err(DurationError::ExpectedNumber));
        assert_eq!(parse_units("1.2.3s", true), Err(DurationError::BadNumber));
    }

    #[test]
    fn go_duration_strings() {
        for (input, shown) in [
            ("5m", "5m0s"),
            ("90s", "1m30s"),
            ("1s", "1s"),
            ("2s", "2s"),
            ("1h", "1h0m0s"),
            ("500ms", "500ms"),
            ("1.5h", "1h30m0s"),
            ("1h30m5s", "1h30m5s"),
            ("0", "0s"),
            ("1500ns", "1.5µs"),
            ("7ns", "7ns"),
            ("1.25s", "1.25s"),
        ] {
            assert_eq!(
                format_go_duration(parse_go_duration(input).unwrap()),
                shown,
                "{input}"
            );
        }
    }
}
