//! Time-to-live policy: which TTL a push gives its group.
//!
//! In order: the TTL the push asks for (header or query parameter, resolved by the server),
//! else the first rule whose selector matches the grouping key, else the default. A cap
//! (`--push.max-ttl`) bounds what pushers may ask for, and turns "0 = never" into the cap.
//! All durations use Go's syntax plus Prometheus' `d`, `w` and `y` units (`90m`, `1h30m`, `2d`).

use crate::key::GroupKey;
use crate::matcher::Selector;
use std::time::Duration;

/// One rule of `--push.ttl-rules`: groups matching `selector` get `ttl`.
#[derive(Clone, Debug)]
pub struct TtlRule {
    pub selector: Selector,
    pub ttl: Duration,
}

/// The TTL settings from the flags and the rules file.
#[derive(Clone, Debug, Default)]
pub struct TtlPolicy {
    pub rules: Vec<TtlRule>,
    /// `--push.default-ttl` (zero: never expire).
    pub default: Duration,
    /// `--push.max-ttl` (zero: no cap).
    pub max: Duration,
    /// Rules file entries with `accumulate` or `gauges` (first match wins).
    pub accumulate: Vec<crate::accumulate::AccumulateRule>,
}

impl TtlPolicy {
    /// True when no flag or rule is set (pushes may still ask for a TTL).
    pub fn is_unset(&self) -> bool {
        self.rules.is_empty() && self.default.is_zero() && self.max.is_zero()
    }

    /// Whether and how a push to `key` accumulates: always on the `/accumulate` route
    /// (`prefix`), with the gauge mode of the first matching rule; on the normal route only a
    /// POST (`post`) to a group whose first matching rule says `accumulate: true`.
    pub fn accumulate_for(
        &self,
        key: &GroupKey,
        prefix: bool,
        post: bool,
    ) -> Option<crate::accumulate::Accumulate> {
        let rule = self.accumulate.iter().find(|r| r.selector.matches(key));
        let on = prefix || (post && rule.is_some_and(|r| r.accumulate));
        on.then(|| crate::accumulate::Accumulate {
            gauges: rule.map(|r| r.gauges).unwrap_or_default(),
        })
    }

    /// The TTL for a push to `key`, given what the push asked for (if anything).
    pub fn resolve(&self, requested: Option<Duration>, key: &GroupKey) -> Duration {
        let ttl = match requested {
            Some(t) => t,
            None => self
                .rules
                .iter()
                .find(|r| r.selector.matches(key))
                .map_or(self.default, |r| r.ttl),
        };
        if self.max.is_zero() {
            ttl
        } else if ttl.is_zero() {
            self.max
        } else {
            ttl.min(self.max)
        }
    }
}

/// A TTL in whole milliseconds, rounded up: a positive TTL below the resolution (`1ns`,
/// `999us`) must not become 0, which means "never expires".
pub fn ceil_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Parses a duration: Go's syntax (`1h30m`, `1.5h`, `300ms`, `0`) plus Prometheus' `d`, `w`
/// and `y` (365 days). Negative and overflowing durations are refused.
/// ([`gocompat::duration::parse_go_duration_with_days`], with the gateway's error wording.)
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    gocompat::duration::parse_go_duration_with_days(s)
        .map_err(|why| format!("invalid duration {s:?}: {why}"))
}

/// Parses Go's duration syntax only (`time.ParseDuration`, as the official flags and
/// exporter-toolkit's config take it); negative and overflowing durations are refused.
/// ([`gocompat::duration::parse_go_duration`], with the gateway's error wording.)
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    gocompat::duration::parse_go_duration(s).map_err(|why| format!("invalid duration {s:?}: {why}"))
}

/// Builds the rules from `(selector, duration)` pairs as read from the rules file (a YAML list
/// of `{match: '<selector>', ttl: <duration>}`; the server reads the YAML). First match wins.
pub fn rules_from_entries(entries: &[(String, String)]) -> Result<Vec<TtlRule>, String> {
    entries
        .iter()
        .enumerate()
        .map(|(i, (sel, ttl))| {
            let selector = Selector::parse(sel).map_err(|e| format!("rule {}: {e}", i + 1))?;
            let ttl = parse_duration(ttl).map_err(|e| format!("rule {}: {e}", i + 1))?;
            Ok(TtlRule { selector, ttl })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(l: &[(&str, &str)]) -> GroupKey {
        GroupKey::new(l.iter().map(|(a, b)| (*a, *b)))
    }

    #[test]
    fn duration_errors_name_the_input() {
        // The syntax itself is tested in gocompat::duration.
        assert_eq!(parse_duration(" 90m ").unwrap().as_secs(), 5400);
        assert_eq!(
            parse_duration("-5m").unwrap_err(),
            "invalid duration \"-5m\": must not be negative"
        );
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
        assert_eq!(parse_go_duration("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_go_duration("2d").is_err(), "Go has no day unit");
    }

    #[test]
    fn resolution_order_and_cap() {
        let rules = rules_from_entries(&[
            (r#"{job=~"backup-.*"}"#.into(), "25h".into()),
            (r#"{job=~".*"}"#.into(), "1h".into()),
        ])
        .unwrap();
        let mut p = TtlPolicy {
            rules,
            default: Duration::from_secs(60),
            max: Duration::ZERO,
            accumulate: Vec::new(),
        };
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(p.resolve(Some(h(2)), &key(&[("job", "backup-db")])), h(2));
        assert_eq!(p.resolve(None, &key(&[("job", "backup-db")])), h(25));
        assert_eq!(p.resolve(None, &key(&[("job", "other")])), h(1));
        p.rules.pop();
        assert_eq!(
            p.resolve(None, &key(&[("job", "other")])),
            Duration::from_secs(60)
        );
        assert_eq!(
            p.resolve(Some(Duration::ZERO), &key(&[("job", "x")])),
            Duration::ZERO
        );
        p.max = h(10);
        assert_eq!(p.resolve(Some(h(20)), &key(&[("job", "x")])), h(10));
        assert_eq!(
            p.resolve(Some(Duration::ZERO), &key(&[("job", "x")])),
            h(10)
        );
        assert_eq!(p.resolve(None, &key(&[("job", "backup-1")])), h(10));
        assert_eq!(p.resolve(Some(h(3)), &key(&[("job", "x")])), h(3));
    }

    #[test]
    fn bad_rules_name_the_rule() {
        let e = rules_from_entries(&[
            ("{job=\"a\"}".into(), "1h".into()),
            ("{job=".into(), "1h".into()),
        ])
        .unwrap_err();
        assert!(e.starts_with("rule 2:"), "{e}");
        let e = rules_from_entries(&[("{job=\"a\"}".into(), "1q".into())]).unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
    }
}
