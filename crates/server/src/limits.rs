//! Limits that keep one runaway or hostile client from taking the gateway down: request body
//! size (before and after decompression), labels per series, label value length, series per
//! push, per-client push rate, and the counters of what was refused. Store-wide quotas (series
//! per group, groups, series) are checked by the store, atomically with the push; connection
//! count and read timeouts are applied by [`crate::serve`].
//!
//! Every refusal is a 4xx with the reason and is counted in
//! `pushgateway_pushes_rejected_total{reason=...}`; nothing stored is touched.

use crate::error::HttpError;
use exposition::MetricFamily;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use store::GroupKey;

/// The limits (0 disables each).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Request body bytes, and the same bound on a decompressed body.
    pub max_body_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_value_bytes: usize,
    pub max_series_per_push: usize,
    /// Pushes (PUT/POST/DELETE) per second per client (user, else remote address).
    pub push_rate: f64,
    /// Pushes a client may make at once before the rate applies.
    pub push_burst: f64,
    /// Time allowed for the request head to arrive.
    pub read_header_timeout: Duration,
    /// Time allowed for the request body to arrive.
    pub read_body_timeout: Duration,
    /// Open connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    /// Defaults that no normal user reaches.
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 << 20,
            max_labels_per_series: 128,
            max_label_value_bytes: 1 << 20,
            max_series_per_push: 2_000_000,
            push_rate: 0.0,
            push_burst: 0.0,
            read_header_timeout: Duration::from_secs(120),
            read_body_timeout: Duration::from_secs(120),
            max_connections: 16_384,
        }
    }
}

/// Why a request was refused, as the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    BodySize,
    LabelsPerSeries,
    LabelValueLength,
    SeriesPerPush,
    SeriesPerGroup,
    Groups,
    Series,
    Rate,
    Timeout,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::BodySize => "body_size",
            Reason::LabelsPerSeries => "labels_per_series",
            Reason::LabelValueLength => "label_value_length",
            Reason::SeriesPerPush => "series_per_push",
            Reason::SeriesPerGroup => "series_per_group",
            Reason::Groups => "groups",
            Reason::Series => "series",
            Reason::Rate => "rate",
            Reason::Timeout => "timeout",
        }
    }
}

/// Counts of refused requests by reason.
#[derive(Default)]
pub struct Rejections {
    counts: Mutex<BTreeMap<Reason, u64>>,
}

impl Rejections {
    pub fn count(&self, r: Reason) {
        *self.counts.lock().entry(r).or_insert(0) += 1;
    }

    /// `(reason label, count)` for every reason seen so far.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.counts
            .lock()
            .iter()
            .map(|(r, n)| (r.label(), *n))
            .collect()
    }
}

/// Checks a parsed push against the per-request limits.
pub fn check_push(
    limits: &Limits,
    key: &GroupKey,
    families: &[MetricFamily],
) -> Result<(), (Reason, HttpError)> {
    let lv = limits.max_label_value_bytes;
    if lv != 0 {
        if let Some((n, v)) = key.labels().iter().find(|(_, v)| v.len() > lv) {
            return Err(label_value_error(lv, n, v.len()));
        }
    }
    let mut series = 0usize;
    let grouping = key.labels();
    for f in families {
        series += f.metric.len();
        for m in &f.metric {
            // The stored series carries the grouping labels too (a pushed label of the same
            // name is replaced, not added). Grouping labels are sorted by name.
            let labels = if limits.max_labels_per_series == 0 {
                0
            } else if m.label.len() > limits.max_labels_per_series {
                m.label.len()
            } else {
                let overlap = m
                    .label
                    .iter()
                    .filter(|l| {
                        grouping
                            .binary_search_by(|(n, _)| (**n).cmp(l.name()))
                            .is_ok()
                    })
                    .count();
                m.label.len() + grouping.len() - overlap
            };
            if labels > limits.max_labels_per_series {
                return Err((
                    Reason::LabelsPerSeries,
                    HttpError::BadRequest(format!(
                        "limit exceeded: a series of {} has {} labels with the grouping labels, \
                         more than the {} allowed (--limits.max-labels-per-series)",
                        f.name(),
                        labels,
                        limits.max_labels_per_series
                    )),
                ));
            }
            if lv != 0 {
                if let Some(l) = m.label.iter().find(|l| l.value().len() > lv) {
                    return Err(label_value_error(lv, l.name(), l.value().len()));
                }
            }
        }
    }
    if limits.max_series_per_push != 0 && series > limits.max_series_per_push {
        return Err((
            Reason::SeriesPerPush,
            HttpError::TooLarge(format!(
                "limit exceeded: the push has {series} series, more than the {} allowed \
                 (--limits.max-series-per-push)",
                limits.max_series_per_push
            )),
        ));
    }
    Ok(())
}

/// The refusal for a limit crossed while parsing, worded as [`check_push`] words it.
pub fn parse_limit_error(
    limits: &Limits,
    hit: exposition::limits::LimitExceeded,
) -> (Option<Reason>, HttpError) {
    use exposition::limits::LimitExceeded as L;
    let (r, e) = match hit {
        L::LabelsPerSeries { family, max } => (
            Reason::LabelsPerSeries,
            HttpError::BadRequest(format!(
                "limit exceeded: a series of {family} has more than the {max} labels allowed \
                 (--limits.max-labels-per-series)"
            )),
        ),
        L::LabelValueLength { label, len, .. } => {
            label_value_error(limits.max_label_value_bytes, &label, len)
        }
    };
    (Some(r), e)
}

fn label_value_error(max: usize, name: &str, len: usize) -> (Reason, HttpError) {
    (
        Reason::LabelValueLength,
        HttpError::BadRequest(format!(
            "limit exceeded: the value of label {name:?} is {len} bytes long, more than the \
             {max} allowed (--limits.max-label-value-length)"
        )),
    )
}

/// Token buckets per client. Bounded: when it holds too many clients, full buckets (clients
/// idle long enough to have their whole burst back) are dropped.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

const MAX_CLIENTS: usize = 100_000;

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes one token for `client`, or says how many seconds until one is available.
    pub fn take(&self, client: &str, now: Instant) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let mut b = self.buckets.lock();
        if b.len() >= MAX_CLIENTS && !b.contains_key(client) {
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(client.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::text_parse::parse_text;

    #[test]
    fn per_request_limits() {
        let limits = Limits {
            max_labels_per_series: 3,
            max_label_value_bytes: 5,
            max_series_per_push: 3,
            ..Limits::default()
        };
        let key = GroupKey::new([("job", "j")]);
        // The grouping labels count, once even when the push names them too.
        let ok =
            parse_text(b"a{x=\"1\",y=\"2\"} 1\nb{job=\"x\",x=\"1\",y=\"2\"} 1\nc 1\n").unwrap();
        assert!(check_push(&limits, &key, &ok).is_ok());
        let two = GroupKey::new([("job", "j"), ("g", "1")]);
        assert_eq!(
            check_push(&limits, &two, &ok).unwrap_err().0,
            Reason::LabelsPerSeries
        );
        let f = parse_text(b"a{x=\"1\",y=\"2\",z=\"3\"} 1\n").unwrap();
        assert_eq!(
            check_push(&limits, &key, &f).unwrap_err().0,
            Reason::LabelsPerSeries
        );
        let f = parse_text(b"a{x=\"123456\"} 1\n").unwrap();
        let (r, e) = check_push(&limits, &key, &f).unwrap_err();
        assert_eq!(r, Reason::LabelValueLength);
        assert!(e.to_string().contains("\"x\" is 6 bytes"), "{e}");
        let f = parse_text(b"a 1\nb 1\nc 1\nd 1\n").unwrap();
        assert_eq!(
            check_push(&limits, &key, &f).unwrap_err().0,
            Reason::SeriesPerPush
        );
        let long_key = GroupKey::new([("job", "toolong")]);
        assert_eq!(
            check_push(&limits, &long_key, &ok).unwrap_err().0,
            Reason::LabelValueLength
        );
        let off = Limits {
            max_labels_per_series: 0,
            max_label_value_bytes: 0,
            max_series_per_push: 0,
            ..Limits::default()
        };
        let f = parse_text(b"a{x=\"123456\",y=\"1\",z=\"1\"} 1\nb 1\nc 1\nd 1\n").unwrap();
        assert!(check_push(&off, &long_key, &f).is_ok());
    }

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let rl = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.take("a", t0).is_ok());
        }
        assert_eq!(rl.take("a", t0), Err(1));
        assert!(rl.take("b", t0).is_ok(), "clients are separate");
        assert!(rl.take("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(rl.take("a", t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0.0, 0.0).take("a", t0).is_ok());
    }
}
