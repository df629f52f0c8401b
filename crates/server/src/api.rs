//! `/api/v1/status` and `/api/v1/metrics`: the official JSON, written directly (keys sorted,
//! every value a string in Go's `%v` format, Go's HTML-safe string escaping).

use crate::http::Resp;
use crate::App;
use exposition::float::write_go_float;
use exposition::pb::{Metric, MetricType};
use hyper::header::HeaderValue;
use hyper::StatusCode;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;
use store::{FamilyEntry, Group};

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

fn json_response(body: String) -> Resp {
    cors(crate::http::with_type(
        StatusCode::OK,
        "application/json",
        body,
    ))
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

/// Appends `s` as a JSON string, escaped like Go's `encoding/json`.
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

fn json_float(out: &mut String, v: f64) {
    out.push('"');
    write_go_float(out, v);
    out.push('"');
}

/// RFC 3339 with nanoseconds (trailing zeros trimmed) in the given offset, as Go's
/// `time.RFC3339Nano`.
pub fn rfc3339_nano(unix_nanos: i64, offset: time::UtcOffset) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ns = t.nanosecond();
    if ns != 0 {
        let frac = format!("{ns:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if offset.is_utc() {
        s.push('Z');
    } else {
        let (h, m, _) = offset.as_hms();
        let _ = write!(
            s,
            "{}{:02}:{:02}",
            if offset.is_negative() { '-' } else { '+' },
            h.unsigned_abs(),
            m.unsigned_abs()
        );
    }
    s
}

pub fn system_time_nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// GET /api/v1/status
pub fn status(app: &Arc<App>) -> Resp {
    let b = &app.cfg.build;
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"build_information\":{");
    let info = [
        ("branch", &b.branch),
        ("buildDate", &b.build_date),
        ("buildUser", &b.build_user),
        ("goVersion", &b.go_version),
        ("revision", &b.revision),
        ("version", &b.version),
    ];
    for (i, (k, v)) in info.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, k);
        out.push(':');
        json_str(&mut out, v);
    }
    out.push_str("},\"flags\":{");
    for (i, (k, v)) in app.cfg.flags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, k);
        out.push(':');
        json_str(&mut out, v);
    }
    out.push_str("},\"start_time\":");
    json_str(
        &mut out,
        &rfc3339_nano(system_time_nanos(app.start_time), app.cfg.utc_offset),
    );
    out.push_str("}}");
    json_response(out)
}

fn labels_obj<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)> + Clone) {
    out.push('{');
    // Stored labels are sorted and unique already; only sort when they are not.
    let sorted = labels
        .clone()
        .zip(labels.clone().skip(1))
        .all(|(a, b)| a.0 < b.0);
    let mut write = |i: usize, n: &str, v: &str| {
        if i > 0 {
            out.push(',');
        }
        json_str(out, n);
        out.push(':');
        json_str(out, v);
    };
    if sorted {
        for (i, (n, v)) in labels.enumerate() {
            write(i, n, v);
        }
    } else {
        let mut pairs: Vec<(&str, &str)> = labels.collect();
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        for (i, (n, v)) in pairs.into_iter().enumerate() {
            write(i, n, v);
        }
    }
    out.push('}');
}

fn metric_obj(out: &mut String, t: MetricType, m: &Metric) {
    let labels = || m.label.iter().map(|l| (l.name(), l.value()));
    match t {
        MetricType::Summary => {
            let default = exposition::pb::Summary::default();
            let s = m.summary.as_deref().unwrap_or(&default);
            let _ = write!(
                out,
                "{{\"count\":\"{}\",\"labels\":",
                s.sample_count.unwrap_or(0)
            );
            labels_obj(out, labels());
            out.push_str(",\"quantiles\":{");
            for (i, q) in s.quantile.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_float(out, q.quantile.unwrap_or(0.0));
                out.push(':');
                json_float(out, q.value.unwrap_or(0.0));
            }
            out.push_str("},\"sum\":");
            json_float(out, s.sample_sum.unwrap_or(0.0));
            out.push('}');
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            let default = exposition::pb::Histogram::default();
            let h = m.histogram.as_deref().unwrap_or(&default);
            // A native histogram (any span) shows its native buckets, as upstream 1.8+ does
            // (api/v1/api.go, histogram/prometheus_model.go):
            // `[boundary_rule, "lower", "upper", "count"]`, empty buckets skipped.
            if let Some(v) = exposition::native::view(h) {
                out.push_str("{\"buckets\":[");
                for (i, b) in v.buckets.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "[{},", b.boundary_rule());
                    json_float(out, b.lower);
                    out.push(',');
                    json_float(out, b.upper);
                    out.push_str(",\"");
                    exposition::native::write_count(out, b.count, v.float);
                    out.push_str("\"]");
                }
                out.push_str("],\"count\":\"");
                exposition::native::write_count(out, v.count, v.float);
                out.push_str("\",\"labels\":");
                labels_obj(out, labels());
                out.push_str(",\"sum\":");
                json_float(out, h.sample_sum.unwrap_or(0.0));
                out.push('}');
                return;
            }
            out.push_str("{\"buckets\":{");
            for (i, b) in h.bucket.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_float(out, b.upper_bound.unwrap_or(0.0));
                out.push(':');
                match b.cumulative_count_float.filter(|f| *f > 0.0) {
                    Some(f) => json_float(out, f),
                    None => {
                        let _ = write!(out, "\"{}\"", b.cumulative_count.unwrap_or(0));
                    }
                }
            }
            out.push_str("},\"count\":");
            match h.sample_count_float.filter(|f| *f > 0.0) {
                Some(f) => json_float(out, f),
                None => {
                    let _ = write!(out, "\"{}\"", h.sample_count.unwrap_or(0));
                }
            }
            out.push_str(",\"labels\":");
            labels_obj(out, labels());
            out.push_str(",\"sum\":");
            json_float(out, h.sample_sum.unwrap_or(0.0));
            out.push('}');
        }
        _ => {
            let v = match t {
                MetricType::Counter => m.counter.as_ref().and_then(|c| c.value),
                MetricType::Gauge => m.gauge.as_ref().and_then(|g| g.value),
                _ => m.untyped.as_ref().and_then(|u| u.value),
            }
            .unwrap_or(0.0);
            out.push_str("{\"labels\":");
            labels_obj(out, labels());
            out.push_str(",\"value\":");
            json_float(out, v);
            out.push('}');
        }
    }
}

/// The families of a group share their push time: format each distinct time once.
pub struct TimeCache {
    offset: time::UtcOffset,
    last: Option<(i64, String)>,
}

impl TimeCache {
    pub fn new(offset: time::UtcOffset) -> TimeCache {
        TimeCache { offset, last: None }
    }

    fn get(&mut self, ns: i64) -> &str {
        if self.last.as_ref().is_none_or(|(t, _)| *t != ns) {
            self.last = Some((ns, rfc3339_nano(ns, self.offset)));
        }
        &self.last.as_ref().expect("just set").1
    }
}

fn family_obj(out: &mut String, e: &FamilyEntry, times: &mut TimeCache) {
    out.push('{');
    if let Some(h) = e.help.as_deref().filter(|h| !h.is_empty()) {
        out.push_str("\"help\":");
        json_str(out, h);
        out.push(',');
    }
    out.push_str("\"metrics\":[");
    for (i, m) in e.metrics().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        metric_obj(out, e.mtype, m);
    }
    out.push_str("],\"time_stamp\":");
    json_str(out, times.get(e.timestamp_ns));
    out.push_str(",\"type\":");
    json_str(out, e.mtype.as_str_name());
    out.push('}');
}

/// One group as the API shows it: `labels`, `last_push_successful` and one key per family,
/// all sorted.
pub fn group_obj(out: &mut String, g: &Group, times: &mut TimeCache) {
    enum Item<'a> {
        Labels,
        Success,
        Ttl,
        ExpiresAt,
        Family(&'a FamilyEntry),
    }
    let mut items: Vec<(&str, Item)> = vec![
        ("labels", Item::Labels),
        ("last_push_successful", Item::Success),
    ];
    // Groups with a TTL also show it and their expiry time (an extension: groups without
    // one look exactly as in the official API).
    if g.ttl_ms != 0 {
        items.push(("ttl_seconds", Item::Ttl));
        items.push(("expires_at", Item::ExpiresAt));
    }
    for (name, e) in &g.families {
        if items.iter().any(|(k, _)| *k == &**name) {
            continue;
        }
        items.push((name, Item::Family(e)));
    }
    items.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, item)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        match item {
            Item::Labels => labels_obj(out, g.key.labels().iter().map(|(n, v)| (&**n, &**v))),
            Item::Success => out.push_str(if g.last_push_successful() {
                "true"
            } else {
                "false"
            }),
            Item::Ttl => {
                out.push('"');
                write_go_float(out, g.ttl_ms as f64 / 1000.0);
                out.push('"');
            }
            Item::ExpiresAt => json_str(out, times.get((g.expires_at * 1e9) as i64)),
            Item::Family(e) => family_obj(out, e, times),
        }
    }
    out.push('}');
}

/// GET /api/v1/metrics
pub fn metrics(app: &Arc<App>) -> Resp {
    let snap = app.store.snapshot();
    let mut out = String::with_capacity(64 + snap.groups.len() * 512);
    out.push_str("{\"status\":\"success\",\"data\":[");
    let mut times = TimeCache::new(app.cfg.utc_offset);
    for (i, g) in snap.groups.values().enumerate() {
        if i > 0 {
            out.push(',');
        }
        group_obj(&mut out, g, &mut times);
    }
    out.push_str("]}");
    json_response(out)
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

    #[test]
    fn rfc3339() {
        assert_eq!(
            rfc3339_nano(1_583_781_848_025_744_841, time::UtcOffset::UTC),
            "2020-03-09T19:24:08.025744841Z"
        );
        assert_eq!(
            rfc3339_nano(1_583_781_848_000_000_000, time::UtcOffset::UTC),
            "2020-03-09T19:24:08Z"
        );
        let ist = time::UtcOffset::from_hms(5, 30, 0).unwrap();
        assert_eq!(
            rfc3339_nano(1_583_781_848_100_000_000, ist),
            "2020-03-10T00:54:08.1+05:30"
        );
    }
}
