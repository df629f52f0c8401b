//! The scrape: the gateway's own families merged with the store's, sorted by name, written by
//! concatenating each group's pre-encoded bytes. Reads one immutable snapshot, so it never
//! waits for a push and never shows a half-applied one.

use crate::http::{text_response, Resp, RespBody};
use crate::telemetry::{own_help, OwnFamily};
use crate::App;
use exposition::delimited;
use exposition::names::{escape_name, Escaping};
use exposition::pb::{Metric, MetricType};
use exposition::text_encode;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::sync::Arc;
use store::{FamilyEntry, GroupKey, Snapshot};

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition format a client asked for (expfmt's `Negotiate`, without the protobuf text
/// formats; `NegotiateIncludingOpenMetrics` with `--web.enable-openmetrics`).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Format {
    Text,
    Protobuf,
    /// OpenMetrics; `true` for version 1.0.0, `false` for 0.0.1.
    OpenMetrics(bool),
}

/// The negotiated format and name escaping of a scrape.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Negotiated {
    pub format: Format,
    pub escaping: Escaping,
}

impl Negotiated {
    /// The `Content-Type` of the answer: the format with its `escaping` term, as expfmt
    /// returns it from negotiation and promhttp sets it.
    pub fn content_type(&self) -> String {
        let base = match self.format {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::Protobuf => delimited::CONTENT_TYPE,
            Format::OpenMetrics(true) => OPENMETRICS_CONTENT_TYPE,
            Format::OpenMetrics(false) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8"
            }
        };
        format!("{base}; escaping={}", self.escaping.as_str())
    }
}

/// One media range of an `Accept` header, as goautoneg's `ParseAccept` reads it.
struct Accept<'a> {
    q: f64,
    typ: &'a str,
    sub: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl Accept<'_> {
    fn param(&self, k: &str) -> Option<&str> {
        // A repeated parameter: the last one wins (Go map assignment).
        self.params
            .iter()
            .rev()
            .find(|(pk, _)| *pk == k)
            .map(|(_, v)| *v)
    }
}

/// goautoneg's `ParseAccept`: case-sensitive, `q` parsed as a 32-bit float (0 when it does
/// not parse), sorted by its (non-transitive) `Less` with Go's insertion sort.
fn parse_accept(header: &str) -> Vec<Accept<'_>> {
    let mut out: Vec<Accept> = Vec::new();
    for part in header.split(',') {
        let part = part.trim_matches(' ');
        let mut fields = part.split(';');
        let range = fields.next().unwrap_or("");
        let sp: Vec<&str> = range.split('/').collect();
        let typ = sp[0].trim_matches(' ');
        let sub = match sp.len() {
            1 if typ == "*" => "*",
            2 => sp[1].trim_matches(' '),
            _ => continue,
        };
        let mut a = Accept {
            q: 1.0,
            typ,
            sub,
            params: Vec::new(),
        };
        for param in fields {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim_matches(' ');
            if k == "q" {
                a.q = v.parse::<f32>().map(f64::from).unwrap_or(0.0);
            } else {
                a.params.push((k, v.trim_matches(' ')));
            }
        }
        out.push(a);
    }
    let less = |a: &Accept, b: &Accept| {
        a.q > b.q || (a.typ != "*" && b.typ == "*") || (a.sub != "*" && b.sub == "*")
    };
    if out.len() <= 64 {
        for i in 1..out.len() {
            let mut j = i;
            while j > 0 && less(&out[j], &out[j - 1]) {
                out.swap(j, j - 1);
                j -= 1;
            }
        }
    } else {
        // Hostile header sizes: a stable sort with the same preferences, O(n log n).
        out.sort_by(|a, b| {
            b.q.partial_cmp(&a.q)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then((a.typ == "*").cmp(&(b.typ == "*")))
                .then((a.sub == "*").cmp(&(b.sub == "*")))
        });
    }
    out
}

/// Picks the format and escaping from `Accept` as prometheus/common v0.67's
/// `expfmt.Negotiate` (or, with `openmetrics`, `NegotiateIncludingOpenMetrics`) does: the
/// ranges in preference order, the `escaping` of the last range seen with a known value
/// (default `underscores`), text 0.0.4 when nothing matches.
pub fn negotiate_with(accept: Option<&str>, openmetrics: bool) -> Negotiated {
    let mut escaping = Escaping::Underscores;
    let mut format = Format::Text;
    for ac in parse_accept(accept.unwrap_or("")) {
        if let Some(e) = ac.param("escaping").and_then(Escaping::parse) {
            escaping = e;
        }
        let version = ac.param("version").unwrap_or("");
        if ac.typ == "application"
            && ac.sub == "vnd.google.protobuf"
            && ac.param("proto") == Some("io.prometheus.client.MetricFamily")
            && ac.param("encoding") == Some("delimited")
        {
            format = Format::Protobuf;
            break;
        }
        if ac.typ == "text" && ac.sub == "plain" && (version == "0.0.4" || version.is_empty()) {
            format = Format::Text;
            break;
        }
        if openmetrics
            && ac.typ == "application"
            && ac.sub == "openmetrics-text"
            && matches!(version, "" | "0.0.1" | "1.0.0")
        {
            format = Format::OpenMetrics(version == "1.0.0");
            break;
        }
    }
    Negotiated { format, escaping }
}

/// The format alone (OpenMetrics off), for callers that do not escape.
pub fn negotiate(accept: Option<&str>) -> Format {
    negotiate_with(accept, false).format
}

fn gzip_accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|p| p == "gzip" || p.starts_with("gzip;"))
}

/// One family to expose: own metrics and/or the store's entries of that name.
struct Slot {
    name: Arc<str>,
    /// Index into the own families.
    own: Option<usize>,
    /// The store's entries (an O(1) clone of the snapshot's map).
    stored: Option<imbl::OrdMap<GroupKey, Arc<FamilyEntry>>>,
}

/// The own families merged with the snapshot's, by name.
fn slots(own: &[OwnFamily], snap: &Snapshot) -> Vec<Slot> {
    let mut out: Vec<Slot> = Vec::with_capacity(snap.families.len() + own.len());
    let mut own_iter = own
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.metrics.is_empty())
        .peekable();
    let own_slot = |(i, o): (usize, &OwnFamily)| Slot {
        name: Arc::from(o.name),
        own: Some(i),
        stored: None,
    };
    for (name, groups) in snap.families.iter() {
        while let Some(o) = own_iter.next_if(|(_, o)| o.name < &**name) {
            out.push(own_slot(o));
        }
        let o = own_iter.next_if(|(_, o)| o.name == &**name);
        out.push(Slot {
            name: name.clone(),
            own: o.map(|(i, _)| i),
            stored: Some(groups.clone()),
        });
    }
    out.extend(own_iter.map(own_slot));
    out
}

fn header_of<'a>(
    name: &str,
    own: Option<&'a OwnFamily>,
    stored: Option<&'a imbl::OrdMap<GroupKey, Arc<FamilyEntry>>>,
) -> (Option<&'a str>, MetricType) {
    if let Some(o) = own {
        return (Some(o.help), o.mtype);
    }
    let first = stored
        .and_then(|g| g.values().next())
        .expect("non-empty family");
    let help = own_help(name).or(first.help.as_deref());
    (help, first.mtype)
}

/// The metrics of an entry with names escaped for `esc` (only for entries whose names need
/// it, and only when the scraper does not accept UTF-8 names: the rare, slow path).
fn escaped_metrics(e: &FamilyEntry, esc: Escaping) -> Vec<Metric> {
    let mut metrics = e.metrics();
    for m in &mut metrics {
        for l in &mut m.label {
            if let std::borrow::Cow::Owned(n) = escape_name(l.name(), esc) {
                l.name = Some(n);
            }
        }
    }
    metrics
}

/// The exposition of one snapshot plus the own families, rendered frame by frame
/// ([`crate::stream`]): a cursor over the merged families and, within a family, over its
/// groups (resumed after the last group written). Holds no lock; the snapshot's maps are
/// immutable.
pub struct ScrapeRender {
    format: Format,
    esc: Escaping,
    own: Vec<OwnFamily>,
    slots: Vec<Slot>,
    /// The family being written.
    at: usize,
    /// Its header is written.
    started: bool,
    /// The last group of it written.
    after: Option<GroupKey>,
    /// The family's name as exposed (escaped) and its type.
    out_name: String,
    mtype: MetricType,
    /// OpenMetrics: the length of the family's header, as `write_family` writes it before
    /// every batch of metrics.
    om_header: usize,
    scratch: String,
    head: Vec<u8>,
}

impl ScrapeRender {
    pub fn new(format: Format, esc: Escaping, own: Vec<OwnFamily>, snap: &Snapshot) -> Self {
        let slots = slots(&own, snap);
        ScrapeRender {
            format,
            esc,
            own,
            slots,
            at: 0,
            started: false,
            after: None,
            out_name: String::new(),
            mtype: MetricType::Untyped,
            om_header: 0,
            scratch: String::new(),
            head: Vec::new(),
        }
    }

    /// Writes the header of family `self.at` and its own metrics.
    fn begin(&mut self, out: &mut Vec<u8>) {
        let slot = &self.slots[self.at];
        let own = slot.own.map(|i| &self.own[i]);
        let (help, t) = header_of(&slot.name, own, slot.stored.as_ref());
        self.mtype = t;
        self.out_name.clear();
        self.out_name.push_str(&escape_name(&slot.name, self.esc));
        let out_name = &self.out_name;
        let scratch = &mut self.scratch;
        scratch.clear();
        match self.format {
            Format::Text => {
                text_encode::write_header(scratch, out_name, help, t);
                if let Some(o) = own {
                    for metric in &o.metrics {
                        let _ = text_encode::write_metric(scratch, &slot.name, o.mtype, metric);
                    }
                }
                out.extend_from_slice(scratch.as_bytes());
            }
            Format::Protobuf => {
                let head = &mut self.head;
                head.clear();
                prost::encoding::string::encode(1, out_name, head);
                if let Some(h) = help {
                    prost::encoding::string::encode(2, &h.to_string(), head);
                }
                prost::encoding::int32::encode(3, &(t as i32), head);
                if let Some(o) = own {
                    for metric in &o.metrics {
                        prost::encoding::message::encode(4, metric, head);
                    }
                }
                let mut stored_len = 0;
                for e in slot.stored.iter().flat_map(|g| g.values()) {
                    stored_len += if self.esc != Escaping::AllowUtf8 && e.needs_escaping {
                        escaped_metrics(e, self.esc)
                            .iter()
                            .map(|m| prost::encoding::message::encoded_len(4, m))
                            .sum()
                    } else {
                        e.proto_len()
                    };
                }
                delimited::write_varint(out, (head.len() + stored_len) as u64);
                out.extend_from_slice(head);
            }
            Format::OpenMetrics(_) => {
                exposition::openmetrics::write_family(scratch, out_name, help, None, t, &[]);
                self.om_header = scratch.len();
                if let Some(o) = own {
                    exposition::openmetrics::write_family(
                        scratch, out_name, help, None, t, &o.metrics,
                    );
                    // The header once, then the metrics without the repeated header.
                    let (h, rest) = scratch.split_at(self.om_header);
                    out.extend_from_slice(h.as_bytes());
                    out.extend_from_slice(&rest.as_bytes()[self.om_header..]);
                } else {
                    out.extend_from_slice(scratch.as_bytes());
                }
            }
        }
    }

    /// Writes one stored entry of the current family.
    fn entry(&mut self, e: &FamilyEntry, out: &mut Vec<u8>) {
        let escape = self.esc != Escaping::AllowUtf8 && e.needs_escaping;
        let (name, t) = (&self.out_name, self.mtype);
        match self.format {
            Format::Text if !escape => e.write_text(out),
            Format::Text => {
                self.scratch.clear();
                for metric in escaped_metrics(e, self.esc) {
                    let _ = text_encode::write_metric(&mut self.scratch, name, t, &metric);
                }
                out.extend_from_slice(self.scratch.as_bytes());
            }
            Format::Protobuf if !escape => e.write_proto_metrics(out),
            Format::Protobuf => {
                for metric in escaped_metrics(e, self.esc) {
                    prost::encoding::message::encode(4, &metric, out);
                }
            }
            Format::OpenMetrics(_) => {
                let metrics = if escape {
                    escaped_metrics(e, self.esc)
                } else {
                    e.metrics()
                };
                self.scratch.clear();
                // `write_family` writes the header and then each metric on its own: keep
                // the metrics.
                exposition::openmetrics::write_family(
                    &mut self.scratch,
                    name,
                    self.slots[self.at]
                        .own
                        .map(|i| self.own[i].help)
                        .or_else(|| header_help(&self.slots[self.at])),
                    None,
                    t,
                    &metrics,
                );
                out.extend_from_slice(&self.scratch.as_bytes()[self.om_header..]);
            }
        }
    }
}

/// How far ahead of the entry being written a scrape prefetches entries, and their
/// encodings.
const PREFETCH_FAR: usize = 8;
const PREFETCH_NEAR: usize = 4;

/// The HELP of a stored-only family, as [`header_of`] picks it.
fn header_help(slot: &Slot) -> Option<&str> {
    header_of(&slot.name, None, slot.stored.as_ref()).0
}

impl crate::stream::Render for ScrapeRender {
    fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        use std::ops::Bound;
        while self.at < self.slots.len() {
            if out.len() >= crate::stream::FRAME {
                return false;
            }
            if !self.started {
                self.begin(out);
                self.started = true;
            }
            if let Some(groups) = self.slots[self.at].stored.clone() {
                let from = match &self.after {
                    Some(k) => Bound::Excluded(k),
                    None => Bound::Unbounded,
                };
                let mut stop = None;
                let entries = groups.range((from, Bound::Unbounded));
                // Each entry is of another group, somewhere else in memory: start loading
                // the entry 8 ahead and the encodings of the one 4 ahead, so that their
                // cache misses overlap with the copying instead of following it.
                let mut far = entries.clone().skip(PREFETCH_FAR);
                let mut near = entries.clone().skip(PREFETCH_NEAR);
                for (_, e) in entries.clone().take(PREFETCH_FAR) {
                    FamilyEntry::prefetch_arc(e);
                }
                for (_, e) in entries.clone().take(PREFETCH_NEAR) {
                    e.prefetch();
                }
                for (k, e) in entries {
                    if let Some((_, a)) = far.next() {
                        FamilyEntry::prefetch_arc(a);
                    }
                    if let Some((_, a)) = near.next() {
                        a.prefetch();
                    }
                    self.entry(e, out);
                    if out.len() >= crate::stream::FRAME {
                        stop = Some(k.clone());
                        break;
                    }
                }
                if let Some(k) = stop {
                    self.after = Some(k);
                    return false;
                }
            }
            self.at += 1;
            self.started = false;
            self.after = None;
        }
        if matches!(self.format, Format::OpenMetrics(_)) && self.at == self.slots.len() {
            if out.len() >= crate::stream::FRAME {
                return false;
            }
            out.extend_from_slice(exposition::openmetrics::EOF.as_bytes());
            self.at += 1;
        }
        true
    }
}

fn render_all(format: Format, own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
    crate::stream::collect(ScrapeRender::new(format, esc, own.to_vec(), snap))
}

/// Renders the text exposition of a snapshot plus own families, names escaped as a scraper
/// without UTF-8 support expects by default (`underscores`).
pub fn render_text(own: &[OwnFamily], snap: &Snapshot) -> Vec<u8> {
    render_text_with(own, snap, Escaping::Underscores)
}

/// Renders the text exposition with the negotiated name escaping. Entries whose names are all
/// legacy names (nearly all) are copied as stored whatever the escaping.
pub fn render_text_with(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
    render_all(Format::Text, own, snap, esc)
}

/// Renders the delimited protobuf exposition with names escaped as by default.
pub fn render_protobuf(own: &[OwnFamily], snap: &Snapshot) -> Vec<u8> {
    render_protobuf_with(own, snap, Escaping::Underscores)
}

/// Renders the delimited protobuf exposition of a snapshot plus own families with the
/// negotiated name escaping.
pub fn render_protobuf_with(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
    render_all(Format::Protobuf, own, snap, esc)
}

/// Renders OpenMetrics 1.0 (`--web.enable-openmetrics`), with exemplars and `_created`
/// samples. Not pre-encoded: every entry is decoded and written (the flag is opt-in).
pub fn render_openmetrics(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
    render_all(Format::OpenMetrics(true), own, snap, esc)
}

/// GET on the telemetry path. The body is streamed from the snapshot
/// ([`ScrapeRender`]); the only failure (an inconsistent store) is answered before it.
pub fn handle(app: &Arc<App>, headers: &HeaderMap) -> Resp {
    let snap = app.store.snapshot();
    if snap.inconsistent {
        let msg = app.store.describe_inconsistency(&snap);
        tracing::error!(err = %msg, "error gathering metrics");
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("An error has occurred while serving metrics:\n\n{msg}\n"),
        );
    }
    let expired_total = app.store.expired_total();
    let lifecycle =
        (!app.cfg.ttl.is_unset() || snap.ttl_groups > 0 || expired_total > 0).then(|| {
            crate::telemetry::LifecycleStats {
                groups: snap.groups.len(),
                expired_total,
            }
        });
    let mut own = app.telemetry.gather(lifecycle, &app.rejections.snapshot());
    let dropped = app.store.dropped_quantiles_total();
    if dropped > 0 {
        own.push(crate::telemetry::dropped_quantiles_family(dropped));
        own.sort_by(|a, b| a.name.cmp(b.name));
    }
    let accept = headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let neg = negotiate_with(accept, app.cfg.formats.openmetrics_scrape);
    let render = ScrapeRender::new(neg.format, neg.escaping, own, &snap);
    drop(snap);
    let gzip = gzip_accepted(headers);
    let mut resp = Response::new(RespBody::stream(render, gzip));
    if let Ok(v) = HeaderValue::from_str(&neg.content_type()) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    if gzip {
        resp.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// The whole-body renderers as they were before streaming, kept to check the streamed
/// output against.
#[cfg(test)]
mod whole {
    use super::*;

    /// One family to expose: own metrics and/or the store's entries of that name.
    struct Merged<'a> {
        own: Option<&'a OwnFamily>,
        stored: Option<&'a imbl::OrdMap<GroupKey, Arc<FamilyEntry>>>,
    }

    fn merged<'a>(own: &'a [OwnFamily], snap: &'a Snapshot) -> Vec<(&'a str, Merged<'a>)> {
        let mut out: Vec<(&str, Merged)> = Vec::with_capacity(snap.families.len() + own.len());
        let mut own_iter = own.iter().filter(|f| !f.metrics.is_empty()).peekable();
        for (name, groups) in snap.families.iter() {
            while let Some(o) = own_iter.next_if(|o| o.name < &**name) {
                out.push((
                    o.name,
                    Merged {
                        own: Some(o),
                        stored: None,
                    },
                ));
            }
            let o = own_iter.next_if(|o| o.name == &**name);
            out.push((
                name,
                Merged {
                    own: o,
                    stored: Some(groups),
                },
            ));
        }
        for o in own_iter {
            out.push((
                o.name,
                Merged {
                    own: Some(o),
                    stored: None,
                },
            ));
        }
        out
    }

    fn header_of<'a>(name: &str, m: &'a Merged<'a>) -> (Option<&'a str>, MetricType) {
        super::header_of(name, m.own, m.stored)
    }

    use super::escaped_metrics;

    /// Renders the text exposition with the negotiated name escaping. Entries whose names are all
    /// legacy names (nearly all) are copied as stored whatever the escaping.
    pub fn render_text_with(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
        let families = merged(own, snap);
        let mut size = 0;
        for (_, m) in &families {
            if let Some(g) = m.stored {
                size += g.values().map(|e| e.text_len()).sum::<usize>();
            }
        }
        let mut out: Vec<u8> = Vec::with_capacity(size + families.len() * 96 + 4096);
        let mut scratch = String::new();
        for (name, m) in &families {
            scratch.clear();
            let (help, t) = header_of(name, m);
            let out_name = escape_name(name, esc);
            text_encode::write_header(&mut scratch, &out_name, help, t);
            if let Some(o) = m.own {
                for metric in &o.metrics {
                    let _ = text_encode::write_metric(&mut scratch, name, o.mtype, metric);
                }
            }
            out.extend_from_slice(scratch.as_bytes());
            if let Some(g) = m.stored {
                for e in g.values() {
                    if esc != Escaping::AllowUtf8 && e.needs_escaping {
                        scratch.clear();
                        for metric in escaped_metrics(e, esc) {
                            let _ = text_encode::write_metric(&mut scratch, &out_name, t, &metric);
                        }
                        out.extend_from_slice(scratch.as_bytes());
                    } else {
                        e.write_text(&mut out);
                    }
                }
            }
        }
        out
    }

    /// Renders the delimited protobuf exposition of a snapshot plus own families with the
    /// negotiated name escaping.
    pub fn render_protobuf_with(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
        let families = merged(own, snap);
        let mut out = Vec::new();
        let mut head = Vec::new();
        let mut parts: Vec<std::borrow::Cow<'_, [u8]>> = Vec::new();
        for (name, m) in &families {
            head.clear();
            parts.clear();
            let (help, t) = header_of(name, m);
            let out_name = escape_name(name, esc);
            prost::encoding::string::encode(1, &out_name.to_string(), &mut head);
            if let Some(h) = help {
                prost::encoding::string::encode(2, &h.to_string(), &mut head);
            }
            prost::encoding::int32::encode(3, &(t as i32), &mut head);
            if let Some(o) = m.own {
                for metric in &o.metrics {
                    prost::encoding::message::encode(4, metric, &mut head);
                }
            }
            if let Some(g) = m.stored {
                for e in g.values() {
                    if esc != Escaping::AllowUtf8 && e.needs_escaping {
                        let mut buf = Vec::new();
                        for metric in escaped_metrics(e, esc) {
                            prost::encoding::message::encode(4, &metric, &mut buf);
                        }
                        parts.push(buf.into());
                    } else {
                        parts.push(e.proto_metrics());
                    }
                }
            }
            let stored_len: usize = parts.iter().map(|p| p.len()).sum();
            delimited::write_varint(&mut out, (head.len() + stored_len) as u64);
            out.extend_from_slice(&head);
            for p in &parts {
                out.extend_from_slice(p);
            }
        }
        out
    }

    /// Renders OpenMetrics 1.0 (`--web.enable-openmetrics`), with exemplars and `_created`
    /// samples. Not pre-encoded: every entry is decoded and written (the flag is opt-in).
    pub fn render_openmetrics(own: &[OwnFamily], snap: &Snapshot, esc: Escaping) -> Vec<u8> {
        let families = merged(own, snap);
        let mut out = String::new();
        for (name, m) in &families {
            let (help, t) = header_of(name, m);
            let out_name = escape_name(name, esc);
            let mut metrics: Vec<Metric> = m.own.map(|o| o.metrics.clone()).unwrap_or_default();
            if let Some(g) = m.stored {
                for e in g.values() {
                    if esc != Escaping::AllowUtf8 && e.needs_escaping {
                        metrics.extend(escaped_metrics(e, esc));
                    } else {
                        metrics.extend(e.metrics());
                    }
                }
            }
            exposition::openmetrics::write_family(&mut out, &out_name, help, None, t, &metrics);
        }
        out.push_str(exposition::openmetrics::EOF);
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(accept: &str, om: bool) -> String {
        negotiate_with(Some(accept), om).content_type()
    }

    #[test]
    fn escaping_negotiation_table() {
        // prometheus/common v0.67.5 expfmt/encode_test.go (TestNegotiate*), with the
        // protobuf text encodings left out (not served, as before).
        let pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily";
        let pb_ct = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        let text = "text/plain; version=0.0.4; charset=utf-8";
        assert_eq!(
            ct(&format!("{pb};encoding=delimited"), false),
            format!("{pb_ct}; escaping=underscores")
        );
        assert_eq!(
            ct("text/plain;version=0.0.4", false),
            format!("{text}; escaping=underscores")
        );
        assert_eq!(
            ct(
                &format!("{pb};encoding=delimited; escaping=allow-utf-8;"),
                false
            ),
            format!("{pb_ct}; escaping=allow-utf-8")
        );
        assert_eq!(
            ct("text/plain;version=0.0.4;", false),
            format!("{text}; escaping=underscores")
        );
        assert_eq!(
            ct("text/plain;version=0.0.4; escaping=values;", false),
            format!("{text}; escaping=values")
        );
        assert_eq!(
            ct("text/plain;version=0.0.4; escaping=dots", false),
            format!("{text}; escaping=dots")
        );
        assert_eq!(
            ct("text/plain;version=0.0.4; escaping=bogus", false),
            format!("{text}; escaping=underscores")
        );
        assert_eq!(
            negotiate_with(None, false).content_type(),
            format!("{text}; escaping=underscores")
        );
        // OpenMetrics only when enabled.
        assert_eq!(
            ct("application/openmetrics-text;version=1.0.0", true),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
        );
        assert_eq!(
            ct("application/openmetrics-text", true),
            "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores"
        );
        assert_eq!(
            ct("application/openmetrics-text;version=0.0.4", true),
            format!("{text}; escaping=underscores")
        );
        assert_eq!(
            ct("application/openmetrics-text;version=1.0.0", false),
            format!("{text}; escaping=underscores")
        );
        // Prometheus 3's default Accept (scrape/scrape.go acceptHeader with
        // DefaultScrapeProtocols) and its protobuf-first one (native histograms on).
        let p3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(ct(p3, false), format!("{text}; escaping=allow-utf-8"));
        assert_eq!(
            ct(p3, true),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
        );
        let p3pb = format!("{pb};encoding=delimited;q=0.7,{p3}");
        assert_eq!(ct(&p3pb, false), format!("{pb_ct}; escaping=underscores"));
        // Wildcards sort after concrete types of the same q (goautoneg's Less).
        assert_eq!(
            ct(&format!("*/*,{pb};encoding=delimited"), false),
            format!("{pb_ct}; escaping=underscores")
        );
        // q=0 is not a refusal in expfmt.
        assert_eq!(
            negotiate(Some(&format!("{pb};encoding=delimited;q=0"))),
            Format::Protobuf
        );
    }

    #[test]
    fn accept_negotiation() {
        let pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some(pb)), Format::Protobuf);
        assert_eq!(
            negotiate(Some(&format!("{pb};q=0.7,text/plain;version=0.0.4;q=0.3"))),
            Format::Protobuf
        );
        assert_eq!(
            negotiate(Some(&format!("{pb};q=0.2,text/plain;version=0.0.4;q=0.3"))),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::Text
        );
    }

    /// The streamed renderings equal the whole-body ones, for every format and escaping, on a
    /// store of many frames, through `RespBody` frames, and with gzip.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_equals_whole_body() {
        use crate::stream::{RespBody, FRAME};
        use hyper::body::Body as _;
        let app = crate::testing::app(crate::testing::config());
        crate::testing::fill_varied(&app, 600).await;
        let snap = app.store.snapshot();
        assert!(!snap.inconsistent);
        let own = app.telemetry.gather(None, &app.rejections.snapshot());
        let frames = |format, esc| {
            let mut b = RespBody::stream(ScrapeRender::new(format, esc, own.clone(), &snap), false);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut out = Vec::new();
            while let std::task::Poll::Ready(Some(f)) =
                std::pin::Pin::new(&mut b).poll_frame(&mut cx)
            {
                out.push(f.unwrap().into_data().unwrap());
            }
            out
        };
        let gunzip = |format, esc| {
            let b = RespBody::stream(ScrapeRender::new(format, esc, own.clone(), &snap), true);
            let mut b = b;
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut gz = Vec::new();
            while let std::task::Poll::Ready(Some(f)) =
                std::pin::Pin::new(&mut b).poll_frame(&mut cx)
            {
                gz.extend_from_slice(&f.unwrap().into_data().unwrap());
            }
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
                .unwrap();
            plain
        };
        for esc in [
            Escaping::Underscores,
            Escaping::AllowUtf8,
            Escaping::Dots,
            Escaping::Values,
        ] {
            for format in [Format::Text, Format::Protobuf, Format::OpenMetrics(true)] {
                let want = match format {
                    Format::Text => whole::render_text_with(&own, &snap, esc),
                    Format::Protobuf => whole::render_protobuf_with(&own, &snap, esc),
                    Format::OpenMetrics(_) => whole::render_openmetrics(&own, &snap, esc),
                };
                assert!(want.len() > 3 * FRAME, "{format:?}: {} bytes", want.len());
                let got = render_all(format, &own, &snap, esc);
                assert!(
                    got == want,
                    "{format:?} {esc:?}: streamed rendering differs"
                );
                let fs = frames(format, esc);
                assert!(fs.len() > 2, "{format:?}: {} frames", fs.len());
                assert!(fs.iter().all(|f| !f.is_empty() && f.len() < 2 * FRAME));
                assert!(fs.concat() == want, "{format:?} {esc:?}: frames differ");
                assert!(
                    gunzip(format, esc) == want,
                    "{format:?} {esc:?}: gzip differs"
                );
            }
        }
        // Small bodies stay whole, with their length.
        let empty = Snapshot::default();
        let b = RespBody::stream(
            ScrapeRender::new(Format::Text, Escaping::Underscores, own.clone(), &empty),
            false,
        );
        assert!(!b.is_streamed());
        assert_eq!(
            b.size_hint().exact(),
            Some(whole::render_text_with(&own, &empty, Escaping::Underscores).len() as u64)
        );
    }
}
