//! The web UI: one server-rendered HTML page with a "Metrics" and a "Status" tab, plus a few
//! embedded static assets (a small stylesheet, a small vanilla script and an icon). Nothing is
//! loaded from the network. Asset links start with the external path (`.` or the path of
//! `--web.external-url`) and the script's requests are page-relative (`metrics/...`,
//! `api/v1/...`), so the page works under any route prefix, at `<prefix>/` and `<prefix>/status`.
//!
//! * Metrics: every group, in snapshot order, as a collapsible `<details>` panel with its
//!   grouping labels (job first), the last push time, a "Last push failed!" badge, the two
//!   push-time gauges and a "Delete Group" button; inside, one collapsible card per family with
//!   a table of its series.
//! * Status: start time, build information and the start-up flags.
//!
//! Large stores (more than [`FULL_MAX_GROUPS`] groups or [`FULL_MAX_SERIES`] series) would make
//! a page that browsers take many seconds to lay out, so for them the page embeds only a compact
//! JSON list of the group headers; the script renders them 200 at a time ("Show more", and the
//! filter searches all of them) and loads a group's series when its panel is opened, from
//! `api/v1/` + the group's path (that group only, [`crate::api::group`]). The page is written into one pre-sized `String`, without per-item allocations on
//! the hot paths.
//!
//! Text content is escaped for `<`, `>` and `&` only (so a label reads `job="x"` in the raw
//! HTML); attribute values are escaped for quotes too.

use crate::error::HttpError;
use crate::histogram::Count;
use crate::http::{with_type, Resp};
use crate::json::json_str;
use crate::timefmt::{rfc3339_nano, system_time_nanos};
use crate::{App, Config};
use base64::Engine;
use bytes::Bytes;
use exposition::float::write_go_float;
use exposition::pb::{Metric, MetricType};
use hyper::StatusCode;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;
use store::{FamilyEntry, Group, GroupKey};

const CSS: &[u8] = include_bytes!("../assets/pushgateway.css");
const JS: &[u8] = include_bytes!("../assets/pushgateway.js");
const FAVICON: &[u8] = include_bytes!("../assets/favicon.svg");
/// The Help tab: TTLs, staleness and ages, what the official README does not cover.
const HELP: &[u8] = include_bytes!("../assets/help.html");

/// Stores with more groups than this get the compact page (headers as JSON, series on demand).
pub const FULL_MAX_GROUPS: usize = 1_000;
/// Stores with more series than this get the compact page (headers as JSON, series on demand).
pub const FULL_MAX_SERIES: u64 = 10_000;

/// `GET <prefix>/` and `GET <prefix>/status`: the whole page.
pub fn page(app: &Arc<App>) -> Resp {
    let snap = app.store.snapshot();
    let groups: Vec<&Group> = snap.groups.values().map(|g| &**g).collect();
    let html = render(&app.cfg, app.start_time, app.clock.now_seconds(), &groups);
    with_type(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// `GET <prefix>/static/<file>`: the embedded assets.
pub fn static_file(file: &str) -> Resp {
    let (content_type, body): (&'static str, &'static [u8]) = match file {
        "pushgateway.css" => ("text/css; charset=utf-8", CSS),
        "pushgateway.js" => ("text/javascript; charset=utf-8", JS),
        "favicon.svg" => ("image/svg+xml", FAVICON),
        "help.html" => ("text/html; charset=utf-8", HELP),
        _ => return HttpError::NotFound.into_response(),
    };
    with_type(StatusCode::OK, content_type, Bytes::from_static(body))
}

/// Renders the page for `groups` (in display order).
pub fn render(cfg: &Config, start_time: SystemTime, now: f64, groups: &[&Group]) -> String {
    let series: u64 = groups
        .iter()
        .flat_map(|g| g.families.values())
        .map(|f| u64::from(f.metric_count))
        .sum();
    let full = groups.len() <= FULL_MAX_GROUPS && series <= FULL_MAX_SERIES;
    let cap = 12_288
        + cfg.flags.len() * 96
        + if full {
            groups.len() * 2_400 + series as usize * 320
        } else {
            groups.len() * 240
        };
    let mut out = String::with_capacity(cap);
    head(&mut out, cfg);
    metrics_section(&mut out, cfg, now, groups, series, full);
    status_section(&mut out, cfg, start_time);
    foot(&mut out, cfg);
    out
}

// ---- Escaping and formatting ---------------------------------------------------------------

/// Appends `s` as HTML text content: `<`, `>` and `&` escaped, quotes kept literally.
pub fn push_text(out: &mut String, s: &str) {
    push_escaped(out, s, false);
}

/// Appends `s` as a (double-quoted) HTML attribute value: quotes escaped too.
pub fn push_attr(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

fn push_escaped(out: &mut String, s: &str, attr: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' if attr => "&#34;",
            b'\'' if attr => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Appends a sample value as the official UI shows it (Go's `FormatFloat(v, 'f', -1, 64)`:
/// shortest round-trip digits, no exponent), falling back to the `'g'` form for magnitudes
/// that would print dozens of zeros. Matches JavaScript's `String(number)` thresholds.
pub fn push_value(out: &mut String, v: f64) {
    let a = v.abs();
    if v.is_finite() && (a == 0.0 || (1e-6..1e21).contains(&a)) {
        let _ = write!(out, "{v}");
    } else {
        write_go_float(out, v);
    }
}

/// A time as the UI shows it: RFC 3339 to the millisecond (the API keeps nanoseconds).
fn push_time(out: &mut String, unix_nanos: i64, cfg: &Config) {
    let millis = unix_nanos.div_euclid(1_000_000).saturating_mul(1_000_000);
    out.push_str(&rfc3339_nano(millis, cfg.utc_offset));
}

fn seconds_to_nanos(s: f64) -> i64 {
    (s * 1e9).round() as i64
}

/// The characters `encodeURIComponent` leaves alone are the only ones not escaped.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// base64url of the UTF-8 bytes, padding stripped, then one `=` so that an empty value still
/// makes a non-empty path segment (`=` decodes to the empty string).
fn push_b64(out: &mut String, s: &str) {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(s.as_bytes(), out);
    out.push('=');
}

/// Appends the page-relative delete path of a group:
/// `metrics/job@base64/<job>=/<name>@base64/<value>=...` (the other labels sorted by name).
/// The script computes the same string from the embedded labels (see `groupPath`) and fetches
/// the group's series from `api/v1/` + this path.
pub fn push_group_path(out: &mut String, key: &GroupKey) {
    out.push_str("metrics/job@base64/");
    push_b64(out, key.get("job").unwrap_or(""));
    for (n, v) in key.labels() {
        if &**n == "job" {
            continue;
        }
        out.push('/');
        out.extend(percent_encoding::utf8_percent_encode(n, URI_COMPONENT));
        out.push_str("@base64/");
        push_b64(out, v);
    }
}

/// A `name="value"` badge.
fn label_badge(out: &mut String, name: &str, value: &str) {
    out.push_str(match name {
        "job" => "<span class=\"lbl job\">",
        "instance" => "<span class=\"lbl inst\">",
        _ => "<span class=\"lbl\">",
    });
    push_text(out, name);
    out.push_str("=\"");
    push_text(out, value);
    out.push_str("\"</span> ");
}

// ---- Page parts ----------------------------------------------------------------------------

const LOGO: &str = "<svg width=\"22\" height=\"22\" viewBox=\"0 0 32 32\" aria-hidden=\"true\">\
<circle cx=\"16\" cy=\"16\" r=\"15\" fill=\"#e6522c\"/><path d=\"M16 6l-8 9h5v9h6v-9h5z\" fill=\"#fff\"/></svg>";

/// Picks the tab before the first paint (the full script is deferred).
const TAB_SCRIPT: &str = "<script>(function(d,l){var s=l.hash==='#status'||(l.hash!=='#metrics'&&\
/\\/status$/.test(l.pathname));d.className='js'+(s?' show-status':'');})(document.documentElement,location);</script>\n";

fn asset(out: &mut String, cfg: &Config, file: &str) {
    push_attr(out, &cfg.external_path);
    out.push_str("/static/");
    out.push_str(file);
}

fn head(out: &mut String, cfg: &Config) {
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Prometheus Pushgateway</title>\n<link rel=\"icon\" type=\"image/svg+xml\" href=\"",
    );
    asset(out, cfg, "favicon.svg");
    out.push_str("\">\n<link rel=\"stylesheet\" href=\"");
    asset(out, cfg, "pushgateway.css");
    out.push_str("\">\n");
    out.push_str(TAB_SCRIPT);
    out.push_str("<script src=\"");
    asset(out, cfg, "pushgateway.js");
    out.push_str("\" defer></script>\n</head>\n<body>\n<nav class=\"navbar\">\n<a class=\"brand\" href=\"#metrics\">");
    out.push_str(LOGO);
    out.push_str(
        "Pushgateway</a>\n<a class=\"tab active\" id=\"metrics-tab\" href=\"#metrics\">Metrics</a>\n\
<a class=\"tab\" id=\"status-tab\" href=\"#status\">Status</a>\n<a class=\"tab\" href=\"",
    );
    asset(out, cfg, "help.html");
    out.push_str("\" target=\"_blank\" rel=\"noopener noreferrer\">Help</a>\n</nav>\n<main>\n");
}

fn metrics_section(
    out: &mut String,
    cfg: &Config,
    now: f64,
    groups: &[&Group],
    series: u64,
    full: bool,
) {
    let n = groups.len();
    out.push_str(
        "<section id=\"metrics-div\">\n\
<div id=\"error\" class=\"error\" role=\"alert\" title=\"Click to dismiss\" hidden></div>\n\
<div class=\"toolbar\">\n<input type=\"search\" id=\"filter\" class=\"no-js-hide\" \
placeholder=\"Filter groups by label, e.g. job=&#34;myjob&#34;\" aria-label=\"Filter groups by label\" \
autocomplete=\"off\" spellcheck=\"false\">\n<span id=\"group-count\" class=\"count\">",
    );
    let _ = write!(out, "{n} {}", if n == 1 { "group" } else { "groups" });
    out.push_str("</span>\n<span class=\"grow\"></span>\n");
    if full {
        out.push_str(
            "<button type=\"button\" class=\"btn no-js-hide\" id=\"expand-all\">Expand all</button>\n\
<button type=\"button\" class=\"btn no-js-hide\" id=\"collapse-all\">Collapse all</button>\n",
        );
    }
    if cfg.enable_admin_api {
        let _ = writeln!(
            out,
            "<button type=\"button\" class=\"btn danger no-js-hide\" id=\"wipe\"{}>Delete All {n} Groups</button>",
            if n == 0 { " disabled" } else { "" }
        );
    }
    out.push_str("</div>\n");
    if !full {
        let _ = writeln!(
            out,
            "<p class=\"note\">This Pushgateway holds {n} groups with {series} series. To keep this page \
fast, the series of a group are loaded when its panel is expanded.</p>"
        );
    }
    out.push_str("<p id=\"empty\" class=\"empty\"");
    if n > 0 {
        out.push_str(" hidden");
    }
    out.push_str(">No metric groups have been pushed yet.</p>\n");
    if full {
        out.push_str("<div id=\"groups\">\n");
        for g in groups {
            group_panel(out, cfg, now, g);
        }
        out.push_str("</div>\n");
    } else {
        out.push_str(
            "<noscript><p class=\"note\">Listing this many groups needs JavaScript. \
The same data is available as JSON at <a href=\"api/v1/metrics\">api/v1/metrics</a>.</p></noscript>\n\
<div id=\"groups\" class=\"lazy-groups\"></div>\n\
<div id=\"more-bar\" class=\"more-bar\" hidden><span id=\"shown-count\"></span> \
<button type=\"button\" class=\"btn\" id=\"show-more\">Show more</button></div>\n\
<script id=\"group-data\" type=\"application/json\">[",
        );
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            group_json(out, cfg, now, g);
        }
        out.push_str("]</script>\n");
    }
    out.push_str("</section>\n");
}

/// One group header for the script (large stores):
/// `[[name, value, ...], push_time, push_failure_time, last_pushed, failed, failed_at, families,
/// age, ttl, stale]`
/// with the labels in display order (job first) and the values formatted as on the page.
/// `json_str` escapes `<`, `>` and `&`, so nothing can close the `<script>` element.
fn group_json(out: &mut String, cfg: &Config, now: f64, g: &Group) {
    out.push_str("[[");
    let mut first = true;
    let mut label = |out: &mut String, n: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        json_str(out, n);
        out.push(',');
        json_str(out, v);
    };
    if let Some(job) = g.key.get("job") {
        label(out, "job", job);
    }
    for (n, v) in g.key.labels() {
        if &**n != "job" {
            label(out, n, v);
        }
    }
    out.push_str("],\"");
    push_value(out, g.push_time);
    out.push_str("\",\"");
    push_value(out, g.push_failure_time);
    out.push_str("\",\"");
    if g.push_time > 0.0 {
        push_time(out, seconds_to_nanos(g.push_time), cfg);
    } else {
        out.push_str("never");
    }
    out.push_str("\",");
    if g.last_push_successful() {
        out.push_str("0,\"\"");
    } else {
        out.push_str("1,\"");
        push_time(out, seconds_to_nanos(g.push_failure_time), cfg);
        out.push('"');
    }
    let _ = write!(out, ",{},", g.families.len());
    let l = Lifecycle::of(cfg, now, g);
    json_str(out, &l.age);
    out.push(',');
    json_str(out, &l.ttl);
    out.push_str(if l.stale { ",1]" } else { ",0]" });
}

/// A group's age, TTL and staleness as the UI shows them.
struct Lifecycle {
    /// `age 5m3s` (since the last push, successful or not).
    age: String,
    /// `TTL 1h, expires in 20m` (empty without a TTL).
    ttl: String,
    /// Not pushed for longer than `--web.stale-warning-age`.
    stale: bool,
}

impl Lifecycle {
    fn of(cfg: &Config, now: f64, g: &Group) -> Lifecycle {
        let last = g.last_pushed();
        let age = (now - last).max(0.0);
        let ttl = if g.ttl_ms != 0 {
            format!(
                "TTL {}, expires in {}",
                human_duration(g.ttl_ms as f64 / 1000.0),
                human_duration((g.expires_at - now).max(0.0))
            )
        } else {
            String::new()
        };
        let warn = cfg.stale_warning_age.as_secs_f64();
        Lifecycle {
            age: if last > 0.0 {
                format!("age {}", human_duration(age))
            } else {
                String::new()
            },
            ttl,
            stale: warn > 0.0 && last > 0.0 && age > warn,
        }
    }
}

/// `3d4h`, `5m12s`, `42s`: the two largest units, for people.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut out = String::new();
    let mut rest = s;
    let mut shown = 0;
    for (size, name) in units {
        let n = rest / size;
        if n > 0 || (shown > 0 && shown < 2) {
            if n > 0 {
                let _ = write!(out, "{n}{name}");
            }
            shown += 1;
            rest %= size;
        }
        if shown == 2 {
            break;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn group_panel(out: &mut String, cfg: &Config, now: f64, g: &Group) {
    out.push_str("<details class=\"group\" data-path=\"");
    let start = out.len();
    push_group_path(out, &g.key);
    // The path is URL-safe except for `'` (kept by encodeURIComponent): escape it in place.
    if out[start..].contains('\'') {
        let path = out.split_off(start);
        push_attr(out, &path);
    }
    out.push_str("\">\n<summary>");
    if let Some(job) = g.key.get("job") {
        label_badge(out, "job", job);
    }
    for (n, v) in g.key.labels() {
        if &**n != "job" {
            label_badge(out, n, v);
        }
    }
    out.push_str("<span class=\"meta\">last pushed: ");
    if g.push_time > 0.0 {
        push_time(out, seconds_to_nanos(g.push_time), cfg);
    } else {
        out.push_str("never");
    }
    out.push_str("</span>");
    let l = Lifecycle::of(cfg, now, g);
    if !l.age.is_empty() {
        let _ = write!(out, " <span class=\"meta age\">{}</span>", l.age);
    }
    if !l.ttl.is_empty() {
        let _ = write!(out, " <span class=\"meta ttl\">{}</span>", l.ttl);
    }
    if l.stale {
        out.push_str(" <span class=\"badge-stale\" title=\"not pushed for longer than ");
        out.push_str(&human_duration(cfg.stale_warning_age.as_secs_f64()));
        out.push_str("\">Stale</span>");
    }
    if !g.last_push_successful() {
        out.push_str(" <span class=\"badge-fail\" title=\"last failed push: ");
        push_time(out, seconds_to_nanos(g.push_failure_time), cfg);
        out.push_str("\">Last push failed!</span>");
    }
    out.push_str(
        " <button type=\"button\" class=\"btn danger xs del push-right\">Delete Group</button></summary>\n\
<div class=\"group-body\">\n<div class=\"times\"><span><code>",
    );
    out.push_str(store::group::PUSH_TIME);
    out.push_str("</code> ");
    push_value(out, g.push_time);
    out.push_str("</span><span><code>");
    out.push_str(store::group::PUSH_FAILURE_TIME);
    out.push_str("</code> ");
    push_value(out, g.push_failure_time);
    let _ = writeln!(
        out,
        "</span><span>{} metric families</span></div>",
        g.families.len()
    );
    for f in g.families.values() {
        family_card(out, cfg, f);
    }
    out.push_str("</div>\n</details>\n");
}

fn family_card(out: &mut String, cfg: &Config, f: &FamilyEntry) {
    out.push_str("<details class=\"fam\"><summary><span class=\"fname\">");
    push_text(out, &f.name);
    out.push_str("</span> ");
    if let Some(h) = f.help.as_deref().filter(|h| !h.is_empty()) {
        out.push_str("<span class=\"help\">");
        push_text(out, h);
        out.push_str("</span> ");
    }
    out.push_str("<span class=\"type\">");
    out.push_str(f.mtype.as_str_name());
    out.push_str("</span> <span class=\"meta\">last pushed: ");
    push_time(out, f.timestamp_ns, cfg);
    out.push_str("</span></summary>\n<div class=\"fam-body\"><table class=\"tbl\"><thead><tr><th>Labels</th><th>Value</th>");
    let metrics = f.metrics();
    let with_ts = metrics.iter().any(|m| m.timestamp_ms.is_some());
    if with_ts {
        out.push_str("<th>Timestamp</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for m in &metrics {
        out.push_str("<tr><td>");
        for lp in &m.label {
            label_badge(out, lp.name(), lp.value());
        }
        out.push_str("</td><td class=\"val\">");
        metric_value(out, f.mtype, m);
        out.push_str("</td>");
        if with_ts {
            out.push_str("<td>");
            if let Some(ms) = m.timestamp_ms {
                push_time(out, ms.saturating_mul(1_000_000), cfg);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div></details>\n");
}

fn sub_row_start(out: &mut String) {
    out.push_str("<tr><th scope=\"row\">");
}

fn metric_value(out: &mut String, t: MetricType, m: &Metric) {
    match t {
        MetricType::Summary => {
            let Some(s) = m.summary.as_ref() else { return };
            out.push_str("<table class=\"sub\">");
            for q in &s.quantile {
                sub_row_start(out);
                out.push_str("Quantile ");
                write_go_float(out, q.quantile.unwrap_or(0.0));
                out.push_str("</th><td>");
                push_value(out, q.value.unwrap_or(0.0));
                out.push_str("</td></tr>");
            }
            sub_row_start(out);
            let _ = write!(
                out,
                "Sample Count</th><td>{}</td></tr>",
                s.sample_count.unwrap_or(0)
            );
            sub_row_start(out);
            out.push_str("Sample Sum</th><td>");
            push_value(out, s.sample_sum.unwrap_or(0.0));
            out.push_str("</td></tr></table>");
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            let Some(h) = m.histogram.as_ref() else {
                return;
            };
            // As upstream 1.9+ (resources/template.html): the native histogram in Prometheus'
            // notation, then the classic buckets with count and sum (count and sum alone when
            // there are neither).
            out.push_str("<table class=\"sub\">");
            let native = exposition::native::view(h);
            if let Some(v) = &native {
                sub_row_start(out);
                out.push_str("Native Histogram representation</th><td>");
                exposition::native::write_string(out, v);
                out.push_str("</td></tr>");
            }
            for b in &h.bucket {
                sub_row_start(out);
                out.push_str("Sample values &le; ");
                push_value(out, b.upper_bound.unwrap_or(0.0));
                out.push_str("</th><td>");
                push_count(out, Count::cumulative(b));
                out.push_str("</td></tr>");
            }
            if native.is_none() || !h.bucket.is_empty() {
                sub_row_start(out);
                out.push_str("Total sample Count</th><td>");
                push_count(out, Count::samples(h));
                out.push_str("</td></tr>");
                sub_row_start(out);
                out.push_str("Sample Sum</th><td>");
                push_value(out, h.sample_sum.unwrap_or(0.0));
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        MetricType::Counter => {
            push_value(out, m.counter.as_ref().and_then(|c| c.value).unwrap_or(0.0))
        }
        MetricType::Gauge => push_value(out, m.gauge.as_ref().and_then(|g| g.value).unwrap_or(0.0)),
        MetricType::Untyped => {
            push_value(out, m.untyped.as_ref().and_then(|u| u.value).unwrap_or(0.0))
        }
    }
}

/// A histogram count in a table cell.
fn push_count(out: &mut String, c: Count) {
    match c {
        Count::Float(f) => push_value(out, f),
        Count::Int(n) => {
            let _ = write!(out, "{n}");
        }
    }
}

fn kv_row(out: &mut String, k: &str, v: &str) {
    out.push_str("<tr><th scope=\"row\">");
    push_text(out, k);
    out.push_str("</th><td>");
    push_text(out, v);
    out.push_str("</td></tr>\n");
}

fn status_section(out: &mut String, cfg: &Config, start_time: SystemTime) {
    out.push_str(
        "<section id=\"status-div\">\n<h2>Runtime Information</h2>\n\
<table class=\"tbl kv\"><tbody>\n",
    );
    kv_row(
        out,
        "Started",
        &rfc3339_nano(system_time_nanos(start_time), cfg.utc_offset),
    );
    out.push_str("</tbody></table>\n<h2>Build Information</h2>\n<table class=\"tbl kv\"><tbody>\n");
    for (k, v) in cfg.build.fields() {
        kv_row(out, k, v);
    }
    out.push_str("</tbody></table>\n<h2>Startup Flags</h2>\n<table class=\"tbl kv\"><tbody>\n");
    for (k, v) in &cfg.flags {
        kv_row(out, k, v);
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn foot(out: &mut String, cfg: &Config) {
    out.push_str(
        "</main>\n<footer><a href=\"https://github.com/prometheus/pushgateway\">Code</a>\
<a href=\"https://prometheus.io/community/\">Community</a>Pushgateway ",
    );
    push_text(out, &cfg.build.version);
    out.push_str(
        "</footer>\n<dialog id=\"confirm\" aria-labelledby=\"confirm-title\"><form method=\"dialog\">\
<h3 id=\"confirm-title\">Deletion Confirmation</h3><p id=\"confirm-msg\"></p><div class=\"actions\">\
<button class=\"btn\" value=\"cancel\" id=\"confirm-cancel\">Cancel</button>\
<button class=\"btn danger\" value=\"ok\" id=\"confirm-ok\">Delete</button></div></form></dialog>\n\
</body>\n</html>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::pb::{Bucket, Gauge, Histogram, LabelPair, Quantile, Summary};

    fn cfg(admin: bool) -> Config {
        let mut cfg = crate::testing::config();
        cfg.flags
            .insert("web.listen-address".to_string(), ":9091".to_string());
        cfg.flags
            .insert("web.route-prefix".to_string(), "<odd>".to_string());
        cfg.routes.admin_api = admin;
        cfg.enable_admin_api = admin;
        cfg
    }

    #[test]
    fn ui_times_are_shown_to_the_millisecond() {
        let mut out = String::new();
        push_time(&mut out, 1_700_000_000_123_456_789, &cfg(false));
        assert_eq!(out, "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn group_shows_age_ttl_and_stale_mark() {
        let mut fresh = group(&[("job", "fresh")], vec![], 10_000.0, 0.0);
        fresh.set_ttl("push_expiry_time_seconds".into(), 5_400_000, 10_000.0, 0);
        let old = group(&[("job", "old")], vec![], 1_000.0, 0.0);
        let html = render(
            &cfg(false),
            SystemTime::UNIX_EPOCH,
            10_600.0,
            &[&fresh, &old],
        );
        assert!(
            html.contains("<span class=\"meta age\">age 10m</span>"),
            "{html}"
        );
        assert!(html.contains("TTL 1h30m, expires in 1h20m"), "{html}");
        assert_eq!(html.matches("class=\"badge-stale\"").count(), 1);
        assert!(html.contains("age 2h40m"));
        assert_eq!(human_duration(0.4), "0s");
        assert_eq!(human_duration(90_061.0), "1d1h");
        assert_eq!(human_duration(3_605.0), "1h");
        assert_eq!(human_duration(59.0), "59s");
    }

    fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric {
            label: labels.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
            ..Default::default()
        }
    }

    fn group(labels: &[(&str, &str)], families: Vec<FamilyEntry>, push: f64, fail: f64) -> Group {
        let key = GroupKey::new(labels.iter().copied());
        let mut g = Group::new(key);
        for f in families {
            g.families.insert(f.name.clone(), Arc::new(f));
        }
        g.set_push_time(
            store::group::PUSH_TIME.into(),
            push,
            1_700_000_000_000_000_000,
        );
        g.set_push_failure_time(store::group::PUSH_FAILURE_TIME.into(), fail, 0);
        g
    }

    fn gauge_family(
        name: &str,
        help: Option<&str>,
        labels: &[(&str, &str)],
        v: f64,
    ) -> FamilyEntry {
        let mut m = metric(labels);
        m.gauge = Some(Gauge { value: Some(v) });
        FamilyEntry::build(
            name.into(),
            help,
            MetricType::Gauge,
            &[m],
            1_700_000_000_500_000_000,
        )
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_text(&mut s, "a<b>&\"'c");
        assert_eq!(s, "a&lt;b&gt;&amp;\"'c");
        s.clear();
        push_attr(&mut s, "a<b>&\"'c");
        assert_eq!(s, "a&lt;b&gt;&amp;&#34;&#39;c");
        s.clear();
        push_text(&mut s, "plain ünïcode");
        assert_eq!(s, "plain ünïcode");
    }

    #[test]
    fn values() {
        let f = |v: f64| {
            let mut s = String::new();
            push_value(&mut s, v);
            s
        };
        assert_eq!(f(3.5), "3.5");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(1_700_000_000.123), "1700000000.123");
        assert_eq!(f(1e6), "1000000");
        assert_eq!(f(0.000001), "0.000001");
        assert_eq!(f(1e-7), "1e-07");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(f64::NAN), "NaN");
    }

    #[test]
    fn group_paths() {
        let path = |labels: &[(&str, &str)]| {
            let mut s = String::new();
            push_group_path(&mut s, &GroupKey::new(labels.iter().copied()));
            s
        };
        assert_eq!(path(&[("job", "x")]), "metrics/job@base64/eA=");
        // job first, then the other labels sorted; empty values become "=".
        assert_eq!(
            path(&[("zone", "a/b"), ("job", "j"), ("instance", "")]),
            "metrics/job@base64/ag=/instance@base64/=/zone@base64/YS9i="
        );
        // URL-safe alphabet, UTF-8 bytes, padding stripped before the forced '='.
        assert_eq!(
            path(&[("job", "<script>alert(1)</script>")]),
            "metrics/job@base64/PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg="
        );
        assert_eq!(path(&[("job", "??>")]), "metrics/job@base64/Pz8-=");
        assert_eq!(path(&[("job", "ü")]), "metrics/job@base64/w7w=");
        // And it decodes back with the push handler's decoder.
        assert_eq!(crate::push::decode_base64("w7w=").unwrap(), "ü".as_bytes());
        assert_eq!(crate::push::decode_base64("=").unwrap(), b"");
    }

    #[test]
    fn static_files() {
        for (f, t) in [
            ("pushgateway.css", "text/css; charset=utf-8"),
            ("pushgateway.js", "text/javascript; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
            ("help.html", "text/html; charset=utf-8"),
        ] {
            let r = static_file(f);
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["content-type"], t);
        }
        for f in ["", "nope.js", "../ui.rs", "pushgateway.css/x"] {
            assert_eq!(static_file(f).status(), StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn page_lists_groups_escaped() {
        let g1 = group(
            &[("job", "myjob"), ("instance", "inst1"), ("color", "red")],
            vec![gauge_family(
                "my_metric",
                Some("Some helpful text."),
                &[("color", "red"), ("instance", "inst1"), ("job", "myjob")],
                3.5,
            )],
            1_700_000_000.0,
            0.0,
        );
        let g2 = group(
            &[("job", "<script>alert(1)</script>")],
            vec![gauge_family(
                "foo",
                None,
                &[
                    ("a", "<b>x</b>"),
                    ("instance", ""),
                    ("job", "<script>alert(1)</script>"),
                ],
                1.0,
            )],
            1_700_000_000.0,
            1_700_000_001.0,
        );
        let html = render(&cfg(true), SystemTime::UNIX_EPOCH, 0.0, &[&g1, &g2]);
        for needle in [
            "<html",
            "job=\"myjob\"",
            "instance=\"inst1\"",
            "color=\"red\"",
            "my_metric",
            "Some helpful text.",
            ">3.5<",
            "push_time_seconds",
            "push_failure_time_seconds",
            "&lt;b&gt;x&lt;/b&gt;",
            "job=\"&lt;script&gt;alert(1)&lt;/script&gt;\"",
            "Last push failed!",
            "Delete All 2 Groups",
            "data-path=\"metrics/job@base64/bXlqb2I=/color@base64/cmVk=/instance@base64/aW5zdDE=\"",
            "last pushed: 2023-11-14T22:13:20Z",
            "<th scope=\"row\">web.route-prefix</th><td>&lt;odd&gt;</td>",
            "<th scope=\"row\">version</th><td>1.2.3</td>",
            "<th scope=\"row\">Started</th><td>1970-01-01T00:00:00Z</td>",
            "href=\"./static/pushgateway.css\"",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(!html.contains("<b>x</b>"));
        // Job badge first, then the other grouping labels sorted.
        let j = html.find("<span class=\"lbl job\">job=\"myjob\"").unwrap();
        let c = html.find("<span class=\"lbl\">color=\"red\"").unwrap();
        let i = html
            .find("<span class=\"lbl inst\">instance=\"inst1\"")
            .unwrap();
        assert!(j < c && c < i);
        // Only the second group failed.
        assert_eq!(html.matches("Last push failed!").count(), 1);
        // No admin API: no wipe button.
        let html = render(&cfg(false), SystemTime::UNIX_EPOCH, 0.0, &[&g1]);
        assert!(!html.contains("id=\"wipe\""));
    }

    #[test]
    fn summaries_and_histograms() {
        let mut s = metric(&[("instance", ""), ("job", "j")]);
        s.summary = Some(
            Summary {
                sample_count: Some(7),
                sample_sum: Some(12.5),
                quantile: vec![Quantile {
                    quantile: Some(0.99),
                    value: Some(4.25),
                }],
                ..Default::default()
            }
            .into(),
        );
        let mut h = metric(&[("instance", ""), ("job", "j")]);
        h.histogram = Some(
            Histogram {
                sample_count: Some(9),
                sample_sum: Some(33.0),
                bucket: vec![
                    Bucket {
                        upper_bound: Some(0.5),
                        cumulative_count: Some(3),
                        ..Default::default()
                    },
                    Bucket {
                        upper_bound: Some(f64::INFINITY),
                        cumulative_count: Some(9),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }
            .into(),
        );
        let fams = vec![
            FamilyEntry::build("s".into(), Some("sum"), MetricType::Summary, &[s], 0),
            FamilyEntry::build("h".into(), Some("hist"), MetricType::Histogram, &[h], 0),
        ];
        let g = group(&[("job", "j")], fams, 1.0, 0.0);
        let html = render(&cfg(false), SystemTime::UNIX_EPOCH, 0.0, &[&g]);
        for needle in [
            "Quantile 0.99</th><td>4.25</td>",
            "Sample Count</th><td>7</td>",
            "Sample Sum</th><td>12.5</td>",
            "Sample values &le; 0.5</th><td>3</td>",
            "Sample values &le; +Inf</th><td>9</td>",
            "Total sample Count</th><td>9</td>",
            "Sample Sum</th><td>33</td>",
            "<span class=\"type\">SUMMARY</span>",
            "<span class=\"type\">HISTOGRAM</span>",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        // Families are sorted by name: h, push_failure_time_seconds, push_time_seconds, s.
        let pos = |n: &str| {
            html.find(&format!("<span class=\"fname\">{n}</span>"))
                .unwrap()
        };
        assert!(pos("h") < pos("push_failure_time_seconds"));
        assert!(pos("push_time_seconds") < pos("s"));
    }

    #[test]
    fn large_stores_embed_group_headers_as_json() {
        let mut groups: Vec<Group> = (0..FULL_MAX_GROUPS)
            .map(|i| {
                let job = format!("job{i}");
                let f = gauge_family("m", Some("help"), &[("instance", ""), ("job", &job)], 1.0);
                group(&[("job", job.as_str())], vec![f], 1.5, 0.0)
            })
            .collect();
        groups.push(group(
            &[("job", "</script><b>"), ("a", "\"q\"")],
            vec![],
            1.0,
            2.0,
        ));
        let refs: Vec<&Group> = groups.iter().collect();
        let html = render(&cfg(true), SystemTime::UNIX_EPOCH, 0.0, &refs);
        assert!(html.contains("<script id=\"group-data\" type=\"application/json\">[[[\"job\",\"job0\"],\"1.5\",\"0\",\"1970-01-01T00:00:01.5Z\",0,\"\",3,\"age 0s\",\"\",0]"));
        assert!(html.contains(
            "[[\"job\",\"\\u003c/script\\u003e\\u003cb\\u003e\",\"a\",\"\\\"q\\\"\"],\"1\",\"2\",\"1970-01-01T00:00:01Z\",1,\"1970-01-01T00:00:02Z\",2,\"age 0s\",\"\",0]]</script>"
        ));
        assert!(!html.contains("</script><b>"));
        assert!(!html.contains("class=\"fam\""));
        assert!(!html.contains("<details"));
        assert!(!html.contains("id=\"expand-all\""));
        assert!(html.contains("Delete All 1001 Groups"));
        let small = render(&cfg(true), SystemTime::UNIX_EPOCH, 0.0, &refs[..10]);
        assert!(small.contains("class=\"fam\""));
        assert!(!small.contains("group-data"));
    }

    #[test]
    fn empty_store() {
        let html = render(&cfg(true), SystemTime::UNIX_EPOCH, 0.0, &[]);
        assert!(html.contains("<p id=\"empty\" class=\"empty\">"));
        assert!(html.contains("id=\"wipe\" disabled"));
        assert!(html.ends_with("</html>\n"));
    }
}
