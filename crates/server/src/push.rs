//! PUT/POST/DELETE on `/metrics/job/<job>{/<name>/<value>}`: the grouping key from the URL,
//! the request body (gzip or snappy, text or delimited protobuf), and the call into the store.

use crate::error::HttpError;
use crate::http::{empty, Resp};
use crate::limits::{Limits, Reason};
use crate::App;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use exposition::limits::ParseLimits;
use exposition::text_parse::{parse_text_limited, LimitedParseError};
use exposition::MetricFamily;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use store::{GroupKey, Push, StoreError};

/// URL-safe base64, padding optional (trailing `=` are stripped first), trailing bits ignored.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes an `@base64` value as the official gateway does; errors are worded like Go's.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let trimmed = s.trim_end_matches('=');
    B64.decode(trimmed).map_err(|e| match e {
        base64::DecodeError::InvalidByte(i, _) => format!("illegal base64 data at input byte {i}"),
        base64::DecodeError::InvalidLastSymbol(i, _) => {
            format!("illegal base64 data at input byte {i}")
        }
        _ => format!("illegal base64 data at input byte {}", trimmed.len()),
    })
}

fn is_valid_label_name(name: &str) -> bool {
    store::check::is_valid_label_name(name)
}

/// Parses the part of a push path after `/metrics/job` or `/metrics/job@base64`
/// (`/<job>{/<name>/<value>}`, already percent-decoded) into a grouping key.
pub fn parse_grouping_key(base64: bool, rest: &str) -> Result<GroupKey, HttpError> {
    parse_grouping_key_names(base64, rest, false)
}

/// Like [`parse_grouping_key`]; with `utf8` (`--push.enable-utf8-names`) label names may be
/// any UTF-8, written in the path with the `values` escaping (`U__foo_2e_bar` → `foo.bar`),
/// as upstream 1.11 unescapes them (`model.UnescapeName(name, ValueEncodingEscaping)`).
pub fn parse_grouping_key_names(
    base64: bool,
    rest: &str,
    utf8: bool,
) -> Result<GroupKey, HttpError> {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (job_raw, labels) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let job = if base64 {
        let bytes = decode_base64(job_raw).map_err(|e| {
            HttpError::BadRequest(format!("invalid base64 encoding in job name {:?}: {e}", ""))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| HttpError::BadRequest("job name is not valid UTF-8".to_string()))?
    } else {
        job_raw.to_string()
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if labels.len() > 1 {
        // Components: one more than the slashes.
        let slashes = labels[1..].bytes().filter(|&b| b == b'/').count();
        if slashes.is_multiple_of(2) {
            return Err(HttpError::BadRequest(format!(
                "odd number of components in label string {labels:?}"
            )));
        }
        pairs.reserve(slashes.div_ceil(2) + 1);
        let mut comps = labels[1..].split('/');
        while let (Some(name), Some(value)) = (comps.next(), comps.next()) {
            let (trimmed, is_b64) = match name.strip_suffix("@base64") {
                Some(n) => (n, true),
                None => (name, false),
            };
            let name = if utf8 {
                exposition::names::unescape_values(trimmed)
            } else {
                trimmed.into()
            };
            let valid = if utf8 {
                !name.is_empty()
            } else {
                is_valid_label_name(&name)
            };
            if !valid || trimmed.starts_with("__") {
                return Err(HttpError::BadRequest(format!(
                    "improper label name {trimmed:?}"
                )));
            }
            let value = if is_b64 {
                let bytes = decode_base64(value).map_err(|e| {
                    HttpError::BadRequest(format!(
                        "invalid base64 encoding for label {trimmed}={value:?}: {e}"
                    ))
                })?;
                String::from_utf8(bytes).map_err(|_| {
                    HttpError::BadRequest(format!(
                        "label {trimmed} has a value that is not valid UTF-8"
                    ))
                })?
            } else {
                value.to_string()
            };
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name.into_owned(), value));
        }
    }
    if job.is_empty() {
        return Err(HttpError::BadRequest("job name is required".into()));
    }
    pairs.retain(|(n, _)| n != "job");
    pairs.push(("job".into(), job));
    Ok(GroupKey::new(pairs))
}

/// Undoes `Content-Encoding: gzip` (any case) or `snappy` (framed); other encodings pass.
/// A decompressed body larger than `max` bytes (0: no limit) is refused, so a small
/// compression bomb cannot make the gateway allocate without bound.
pub fn decode_body(parts: &Parts, body: Bytes, max: usize) -> Result<Bytes, HttpError> {
    let enc = parts
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    decode_encoded(enc.as_deref(), body, max)
}

/// [`decode_body`] for a `Content-Encoding` already read (trimmed, lower case).
pub fn decode_encoded(enc: Option<&str>, body: Bytes, max: usize) -> Result<Bytes, HttpError> {
    let limit = if max == 0 { u64::MAX } else { max as u64 };
    let too_large = || {
        HttpError::TooLarge(format!(
            "limit exceeded: decompressed request body larger than {max} bytes (--limits.max-body-size)"
        ))
    };
    match enc {
        Some("gzip") => {
            if body.is_empty() {
                return Err(HttpError::BadRequest("EOF".into()));
            }
            let mut out = Vec::with_capacity((body.len() * 4).min(limit as usize));
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| HttpError::BadRequest(gzip_error(e)))?;
            if out.len() as u64 > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        Some("snappy") => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit as usize));
            snap::read::FrameDecoder::new(&body[..])
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| HttpError::BadRequest(format!("snappy: {e}")))?;
            if out.len() as u64 > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        _ => Ok(body),
    }
}

fn gzip_error(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        _ => format!("gzip: {e}"),
    }
}

/// How a push body is parsed, from its `Content-Type` and the format flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// Text 0.0.4 with legacy names (quoted legacy names accepted).
    Text,
    /// Text 0.0.4 with UTF-8 names (`--push.enable-utf8-names`).
    TextUtf8,
    /// Delimited protobuf.
    Protobuf,
    /// OpenMetrics 1.0 (`--push.enable-openmetrics`).
    OpenMetrics,
}

impl BodyFormat {
    pub fn of(content_type: Option<&str>, formats: crate::Formats) -> BodyFormat {
        if formats.openmetrics_push && exposition::openmetrics::is_openmetrics(content_type) {
            BodyFormat::OpenMetrics
        } else if is_delimited_protobuf(content_type) {
            BodyFormat::Protobuf
        } else if formats.utf8_names {
            BodyFormat::TextUtf8
        } else {
            BodyFormat::Text
        }
    }
}

/// True if the content type names the delimited protobuf format. Media type and parameter
/// names are case-insensitive, parameter values are not (Go's `mime.ParseMediaType`).
pub fn is_delimited_protobuf(content_type: Option<&str>) -> bool {
    const MEDIA: &str = "application/vnd.google.protobuf";
    let Some(ct) = content_type else { return false };
    // The media type is what precedes the first `;`, trimmed: a type that does not start
    // with it (the usual text push) is not split.
    if !ct
        .trim_start()
        .get(..MEDIA.len())
        .is_some_and(|m| m.eq_ignore_ascii_case(MEDIA))
    {
        return false;
    }
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(MEDIA) {
        return false;
    }
    let (mut proto, mut encoding) = (None, None);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else {
            return false;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v.to_string()),
            "encoding" => encoding = Some(v.to_string()),
            _ => {}
        }
    }
    proto.as_deref() == Some("io.prometheus.client.MetricFamily")
        && encoding.as_deref() == Some("delimited")
}

/// A matched push route: the grouping key part of the path, and whether it was under
/// `/accumulate`.
#[derive(Clone, Copy, Debug)]
pub struct PushRoute<'a> {
    pub base64: bool,
    pub rest: &'a str,
    pub accumulate: bool,
}

/// The header that names a push for exactly-once retries.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// [`IDEMPOTENCY_KEY_HEADER`] as a header name (looked up without parsing the name).
const IDEMPOTENCY_KEY_NAME: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static(IDEMPOTENCY_KEY_HEADER);

/// The response header that tells an accumulating pusher its summary quantiles were dropped.
pub const WARNING_HEADER: &str = "pushgateway-warning";

/// The `Idempotency-Key` of a request: 1 to 255 visible ASCII characters.
pub fn idempotency_key(parts: &Parts) -> Result<Option<String>, HttpError> {
    let Some(v) = parts.headers.get(&IDEMPOTENCY_KEY_NAME) else {
        return Ok(None);
    };
    let bad = || {
        HttpError::BadRequest(format!(
            "invalid Idempotency-Key header: want 1 to {} visible ASCII characters",
            store::idempotency::MAX_KEY_LEN
        ))
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s.is_empty()
        || s.len() > store::idempotency::MAX_KEY_LEN
        || !s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// Decompresses, parses and checks a push body against the per-request limits (the
/// per-series ones while parsing). CPU work proportional to the body: [`crate::cpu`] decides
/// where it runs.
pub fn parse_body(
    limits: &Limits,
    encoding: Option<&str>,
    format: BodyFormat,
    body: Bytes,
    key: &GroupKey,
) -> Result<Vec<MetricFamily>, crate::cpu::Refusal> {
    let body = decode_encoded(encoding, body, limits.max_body_bytes).map_err(|e| match e {
        HttpError::TooLarge(_) => (Some(Reason::BodySize), e),
        e => (None, e),
    })?;
    let parse_limits = ParseLimits {
        max_labels_per_series: limits.max_labels_per_series,
        max_label_value_bytes: limits.max_label_value_bytes,
    };
    let families = if let BodyFormat::Protobuf | BodyFormat::OpenMetrics = format {
        let f = if format == BodyFormat::Protobuf {
            exposition::delimited::parse_delimited(&body)
                .map_err(|e| (None, HttpError::BadRequest(e.to_string())))?
        } else {
            exposition::openmetrics::parse_openmetrics(&body)
                .map_err(|e| (None, HttpError::BadRequest(e.to_string())))?
        };
        parse_limits
            .check(&f)
            .map_err(|l| crate::limits::parse_limit_error(limits, l))?;
        f
    } else {
        let utf8 = format == BodyFormat::TextUtf8;
        parse_text_limited(&body, parse_limits, utf8).map_err(|e| match e {
            LimitedParseError::Syntax(e) => (None, HttpError::BadRequest(e.to_string())),
            LimitedParseError::Limit(l) => crate::limits::parse_limit_error(limits, l),
        })?
    };
    crate::limits::check_push(limits, key, &families).map_err(|(r, e)| (Some(r), e))?;
    Ok(families)
}

/// Handles a push or delete whose route matched.
pub async fn handle(
    app: &Arc<App>,
    parts: &Parts,
    route: PushRoute<'_>,
    body: Bytes,
    remote: SocketAddr,
) -> Result<Resp, HttpError> {
    let time = app.clock.now();
    let key = parse_grouping_key_names(route.base64, route.rest, app.cfg.formats.utf8_names)?;
    if parts.method == Method::DELETE {
        decode_body(parts, body, app.cfg.limits.max_body_bytes).inspect_err(|e| {
            if matches!(e, HttpError::TooLarge(_)) {
                app.rejections.count(crate::limits::Reason::BodySize);
            }
        })?;
        app.writer.delete(&key).await?;
        return Ok(empty(StatusCode::ACCEPTED));
    }
    let big = body.len();
    let (key, families) = match crate::cpu::run(app, big, parts, body, key).await {
        Ok(x) => x,
        Err((reason, e)) => {
            if let Some(r) = reason {
                app.rejections.count(r);
            }
            return Err(e);
        }
    };
    let checked = app.store.is_checked();
    let requested = crate::expiry::requested_ttl(parts)?;
    let ttl_ms = store::ttl::ceil_millis(app.cfg.ttl.resolve(requested, &key));
    let idempotency_key = idempotency_key(parts)?;
    let accumulate =
        app.cfg
            .ttl
            .accumulate_for(&key, route.accumulate, parts.method == Method::POST);
    let quantiles: usize = if accumulate.is_some() {
        families
            .iter()
            .flat_map(|f| &f.metric)
            .filter_map(|m| m.summary.as_ref())
            .map(|s| s.quantile.len())
            .sum()
    } else {
        0
    };
    let push = Push {
        key,
        families,
        replace: parts.method == Method::PUT,
        time,
        ttl_ms,
        accumulate,
        idempotency_key,
    };
    match crate::cpu::push(app, big, push).await {
        Ok(()) => {
            let mut r = empty(if checked {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            });
            if quantiles > 0 {
                let msg = format!(
                    "dropped {quantiles} summary quantiles: quantiles cannot be accumulated (_count and _sum were added)"
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&msg) {
                    r.headers_mut().insert(WARNING_HEADER, v);
                }
            }
            Ok(r)
        }
        Err(e @ StoreError::Accumulate(_)) => {
            tracing::error!(method = %parts.method, source = %remote, err = %e,
                "accumulating push cannot be merged into the stored group");
            Err(e.into())
        }
        Err(e @ (StoreError::Persist(_) | StoreError::Unavailable(_))) => Err(e.into()),
        Err(StoreError::Quota(q)) => {
            app.rejections.count(quota_reason(&q));
            Err(StoreError::Quota(q).into())
        }
        Err(e) if checked => {
            tracing::error!(method = %parts.method, source = %remote, err = %e,
                "pushed metrics are invalid or inconsistent with existing metrics");
            Err(e.into())
        }
        Err(e) => {
            tracing::debug!(err = %e, "unchecked push recorded as failed");
            Ok(empty(StatusCode::ACCEPTED))
        }
    }
}

/// The rejection counter a refused quota counts in.
pub(crate) fn quota_reason(q: &store::QuotaExceeded) -> crate::limits::Reason {
    use store::QuotaExceeded as Q;
    match q {
        Q::SeriesPerGroup { .. } | Q::RecordSize { .. } => crate::limits::Reason::SeriesPerGroup,
        Q::Groups { .. } => crate::limits::Reason::Groups,
        Q::TotalSeries { .. } => crate::limits::Reason::Series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(base64: bool, rest: &str) -> Vec<(String, String)> {
        parse_grouping_key(base64, rest)
            .unwrap()
            .labels()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn err(base64: bool, rest: &str) -> String {
        parse_grouping_key(base64, rest).unwrap_err().to_string()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plain_and_trailing_slash() {
        assert_eq!(key(false, "/a"), kv(&[("job", "a")]));
        assert_eq!(key(false, "/a/"), kv(&[("job", "a")]));
        assert_eq!(key(false, "/a/b/"), kv(&[("b", ""), ("job", "a")]));
        assert_eq!(key(false, "/a/job/b"), kv(&[("job", "a")]));
        assert_eq!(key(false, "/a/x/1/x/2"), kv(&[("job", "a"), ("x", "2")]));
    }

    #[test]
    fn base64_rules() {
        assert_eq!(key(true, "/dGVzdC9qb2I="), kv(&[("job", "test/job")]));
        assert_eq!(
            key(false, "/j/l@base64/bGFiZWwvdmFsdWUy=="),
            kv(&[("job", "j"), ("l", "label/value2")])
        );
        assert_eq!(
            key(false, "/j/x@base64/YR"),
            kv(&[("job", "j"), ("x", "a")])
        );
        assert_eq!(key(false, "/j/x@base64/="), kv(&[("job", "j"), ("x", "")]));
        assert_eq!(key(false, "/j/x@base64/"), kv(&[("job", "j"), ("x", "")]));
        assert_eq!(
            key(false, "/j/n@base64/zqDPgc6_zrzOt864zrXPjc-C"),
            kv(&[("job", "j"), ("n", "Προμηθεύς")])
        );
        assert_eq!(err(true, "/="), "job name is required");
        assert_eq!(
            err(false, "/j/a@base64/foo.bar"),
            "invalid base64 encoding for label a=\"foo.bar\": illegal base64 data at input byte 3"
        );
        assert!(err(false, "/j/a@base64/a+b").starts_with("invalid base64"));
        assert!(err(false, "/j/x@base64/_-8").contains("UTF-8"));
    }

    #[test]
    fn bad_label_names_and_odd_components() {
        assert_eq!(err(false, "/foo/a=b/x"), "improper label name \"a=b\"");
        assert_eq!(err(false, "/foo/__a/x"), "improper label name \"__a\"");
        assert_eq!(
            err(false, "/foo/a"),
            "odd number of components in label string \"/a\""
        );
        assert_eq!(
            err(false, "/a/b/c/"),
            "odd number of components in label string \"/b/c/\""
        );
    }

    #[test]
    fn utf8_label_names_in_the_path() {
        // pushgateway v1.11.3 handler/push.go splitLabels with --push.enable-utf8-names.
        let k = parse_grouping_key_names(false, "/j/U__foo_2e_bar/baz/plain/1", true).unwrap();
        let got: Vec<(String, String)> = k
            .labels()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, kv(&[("foo.bar", "baz"), ("job", "j"), ("plain", "1")]));
        let k = parse_grouping_key_names(false, "/j/U__a_2e_b@base64/dg", true).unwrap();
        assert_eq!(k.labels()[0].0.to_string(), "a.b");
        // Without the flag the escaped name is an ordinary (legacy) label name.
        assert_eq!(key(false, "/j/U__foo_2e_bar/baz")[0].0, "U__foo_2e_bar");
        assert_eq!(err(false, "/j/a.b/x"), "improper label name \"a.b\"");
        let e = parse_grouping_key_names(false, "/j/__x/1", true).unwrap_err();
        assert_eq!(e.to_string(), "improper label name \"__x\"");
        // With the flag a name that is not escaped is taken as it is.
        let k = parse_grouping_key_names(false, "/j/a.b/x", true).unwrap();
        assert_eq!(k.labels()[0].0.to_string(), "a.b");
    }

    #[test]
    fn content_type_detection() {
        let ct = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        assert!(is_delimited_protobuf(Some(ct)));
        assert!(is_delimited_protobuf(Some(
            "Application/Vnd.Google.Protobuf; ENCODING=delimited; Proto=io.prometheus.client.MetricFamily"
        )));
        assert!(!is_delimited_protobuf(Some(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=DELIMITED"
        )));
        assert!(!is_delimited_protobuf(Some("text/plain")));
        assert!(!is_delimited_protobuf(None));
        // The quick refusal of other types keeps Go's parsing: leading space, short or
        // non-ASCII types.
        assert!(is_delimited_protobuf(Some(
            "  application/vnd.google.protobuf ;proto=io.prometheus.client.MetricFamily;encoding=delimited"
        )));
        assert!(!is_delimited_protobuf(Some(
            "application/vnd.google.protobu"
        )));
        assert!(!is_delimited_protobuf(Some(
            "application/vnd.google.protobüf; x"
        )));
        assert!(!is_delimited_protobuf(Some("")));
    }
}
