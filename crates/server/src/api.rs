//! `/api/v1/status` and `/api/v1/metrics`: the official JSON, written directly (keys sorted,
//! every value a string in Go's `%v` format, Go's HTML-safe string escaping).

use crate::histogram::Count;
use crate::http::Resp;
use crate::json::{json_float, json_response, json_str};
use crate::timefmt::{rfc3339_nano, system_time_nanos, TimeCache};
use crate::App;
use exposition::float::write_go_float;
use exposition::pb::{Metric, MetricType};
use std::fmt::Write;
use std::sync::Arc;
use store::{FamilyEntry, Group};

/// GET /api/v1/status
pub fn status(app: &Arc<App>) -> Resp {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"build_information\":{");
    let info = app.cfg.build.fields();
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
                json_count(out, Count::cumulative(b));
            }
            out.push_str("},\"count\":");
            json_count(out, Count::samples(h));
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

/// A histogram count: a JSON string either way (`"3"`, `"2.5"`).
fn json_count(out: &mut String, c: Count) {
    match c {
        Count::Float(f) => json_float(out, f),
        Count::Int(n) => {
            let _ = write!(out, "\"{n}\"");
        }
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
