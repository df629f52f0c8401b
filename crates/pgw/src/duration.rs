//! Go duration syntax (`25h`, `1h30m`, `500ms`, `1.5s`) plus Prometheus' `d`, `w` and `y`
//! (`2d`, `1w`), as the gateway's `Pushgateway-TTL` header and its flags take them, for pgw's
//! `--ttl`, `--timeout` and `--retry-max-time`.

use std::time::Duration;

/// A duration that is not in Go's syntax (or is negative).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 25h, 1h30m, 90s, 500ms)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses a non-negative Go duration: a sequence of decimal numbers, each with a unit
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, `d`, `w`, `y`), e.g. `25h`, `1h30m` or `2d`; a
/// bare `0` is allowed. The units are [`gocompat::duration::parse_units`]'s; pgw's own are the
/// sign handling (`+` alone is 0, `+0` is refused), the bound (10^12 s) and the wording.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    use gocompat::duration::{parse_units, DurationError as Why};
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("must not be negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let total = parse_units(s, true).map_err(|why| {
        err(match why {
            Why::MissingUnit => "missing unit",
            Why::UnknownUnit(_) => "unknown unit",
            Why::TooLarge => "too large",
            Why::Negative | Why::Empty | Why::ExpectedNumber | Why::BadNumber => {
                "expected a number"
            }
        })
    })?;
    if total > 1e12 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats an age for humans, at most two units: `45s`, `3m12s`, `5h3m`, `2d4h`.
pub fn format_age(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_string();
    }
    let negative = seconds < 0.0;
    let s = seconds.abs().round() as u64;
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let body = if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    };
    if negative {
        format!("in {body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("25h").unwrap(), Duration::from_secs(90_000));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("2m3s4ms").unwrap(),
            Duration::from_millis(123_004)
        );
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(
            parse_duration("2d").unwrap(),
            Duration::from_secs(2 * 86400)
        );
        assert_eq!(
            parse_duration("1w1d").unwrap(),
            Duration::from_secs(8 * 86400)
        );
        assert_eq!(
            parse_duration("1y").unwrap(),
            Duration::from_secs(365 * 86400)
        );
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "5", "h", "-1s", "1x", "1.2.3s", "1 h", "s5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_duration("1x").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
    }

    #[test]
    fn formats_ages() {
        assert_eq!(format_age(4.6), "5s");
        assert_eq!(format_age(192.0), "3m12s");
        assert_eq!(format_age(5.0 * 3600.0 + 180.0), "5h3m");
        assert_eq!(format_age(2.0 * 86400.0 + 4.0 * 3600.0 + 59.0), "2d4h");
        assert_eq!(format_age(-3.0), "in 3s");
    }
}
