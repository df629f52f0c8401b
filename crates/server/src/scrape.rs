//! The scrape: the gateway's own families merged with the store's, sorted by name, written by
//! concatenating each group's pre-encoded bytes. Reads one immutable snapshot, so it never
//! waits for a push and never shows a half-applied one.

use crate::http::{text_response, Resp};
use crate::telemetry::{own_help, OwnFamily};
use crate::App;
use bytes::Bytes;
use exposition::delimited;
use exposition::pb::MetricType;
use exposition::text_encode;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::io::Write;
use std::sync::Arc;
use store::{FamilyEntry, GroupKey, Snapshot};

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition format a client asked for (expfmt's `Negotiate`, without prototext).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Format {
    Text,
    Protobuf,
}

/// One media range of an `Accept` header: q-value, position, media type, parameters.
type AcceptEntry = (f64, usize, String, Vec<(String, String)>);

/// Picks the format from `Accept`, honouring q-values as goautoneg does.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut entries: Vec<AcceptEntry> = Vec::new();
    for (i, part) in accept.split(',').enumerate() {
        let mut fields = part.split(';');
        let media = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0;
        let mut params = Vec::new();
        for f in fields {
            if let Some((k, v)) = f.split_once('=') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "q" {
                    q = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
        }
        entries.push((q, i, media, params));
    }
    entries.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    for (q, _, media, params) in entries {
        if q <= 0.0 {
            continue;
        }
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        if media == "application/vnd.google.protobuf"
            && param("proto") == Some("io.prometheus.client.MetricFamily")
        {
            if param("encoding") == Some("delimited") {
                return Format::Protobuf;
            }
            continue;
        }
        if media == "text/plain" && matches!(param("version"), None | Some("0.0.4")) {
            return Format::Text;
        }
    }
    Format::Text
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
    if let Some(o) = m.own {
        return (Some(o.help), o.mtype);
    }
    let first = m
        .stored
        .and_then(|g| g.values().next())
        .expect("non-empty family");
    let help = own_help(name).or(first.help.as_deref());
    (help, first.mtype)
}

/// Renders the text exposition of a snapshot plus own families.
pub fn render_text(own: &[OwnFamily], snap: &Snapshot) -> Vec<u8> {
    let families = merged(own, snap);
    let mut size = 0;
    for (_, m) in &families {
        if let Some(g) = m.stored {
            size += g.values().map(|e| e.text().len()).sum::<usize>();
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(size + families.len() * 96 + 4096);
    let mut scratch = String::new();
    for (name, m) in &families {
        scratch.clear();
        let (help, t) = header_of(name, m);
        text_encode::write_header(&mut scratch, name, help, t);
        if let Some(o) = m.own {
            for metric in &o.metrics {
                let _ = text_encode::write_metric(&mut scratch, name, o.mtype, metric);
            }
        }
        out.extend_from_slice(scratch.as_bytes());
        if let Some(g) = m.stored {
            for e in g.values() {
                out.extend_from_slice(e.text());
            }
        }
    }
    out
}

/// Renders the delimited protobuf exposition of a snapshot plus own families.
pub fn render_protobuf(own: &[OwnFamily], snap: &Snapshot) -> Vec<u8> {
    let families = merged(own, snap);
    let mut out = Vec::new();
    let mut head = Vec::new();
    for (name, m) in &families {
        head.clear();
        let (help, t) = header_of(name, m);
        prost::encoding::string::encode(1, &name.to_string(), &mut head);
        if let Some(h) = help {
            prost::encoding::string::encode(2, &h.to_string(), &mut head);
        }
        prost::encoding::int32::encode(3, &(t as i32), &mut head);
        if let Some(o) = m.own {
            for metric in &o.metrics {
                prost::encoding::message::encode(4, metric, &mut head);
            }
        }
        let stored_len: usize = m
            .stored
            .map_or(0, |g| g.values().map(|e| e.proto_metrics().len()).sum());
        delimited::write_varint(&mut out, (head.len() + stored_len) as u64);
        out.extend_from_slice(&head);
        if let Some(g) = m.stored {
            for e in g.values() {
                out.extend_from_slice(e.proto_metrics());
            }
        }
    }
    out
}

/// GET on the telemetry path.
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
    let (body, content_type) = match negotiate(accept) {
        Format::Text => (render_text(&own, &snap), TEXT_CONTENT_TYPE),
        Format::Protobuf => (render_protobuf(&own, &snap), delimited::CONTENT_TYPE),
    };
    drop(snap);
    let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let body = if gzip_accepted(headers) {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 8),
            flate2::Compression::new(1),
        );
        let _ = enc.write_all(&body);
        resp.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        enc.finish().unwrap_or_default()
    } else {
        body
    };
    *resp.body_mut() = http_body_util::Full::new(Bytes::from(body));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
