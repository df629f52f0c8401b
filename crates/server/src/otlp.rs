//! `POST <route-prefix>/api/v1/otlp/v1/metrics` (with `--web.enable-otlp-receiver`): OTLP/HTTP
//! metrics, protobuf or JSON, plain or gzip, answered as the OTLP/HTTP specification says.
//!
//! The body is translated by the `otlp` crate into one group per resource; every group then
//! goes through the same checks and store path as a POST to `/metrics/job/...`: per-request
//! limits, scoped access (push matchers on the derived grouping key), the TTL (header, query,
//! rules, flags), the consistency check, quotas, persistence and replication. Cumulative
//! points replace the families they carry (a POST); delta points accumulate (a push to
//! `/accumulate`, gauges from delta up-down counters summed), exactly once per export: a retry
//! of the same export is recognised by its idempotency key.
//!
//! Answers: 200 with an `ExportMetricsServiceResponse` (its `partial_success` counts the
//! points that were not stored and says why), or a `google.rpc.Status` body with 400 (bad
//! body), 401/403, 413 (too large), 415 (neither `application/x-protobuf` nor
//! `application/json`), 429 (rate, with `Retry-After`), 500, or 503 (replicated mode without
//! the shared log, with `Retry-After`). Every limit and access check is made for all groups
//! before the first one is stored, so a refused request changes nothing.

use crate::error::HttpError;
use crate::http::Resp;
use crate::router::{Dispatch, Route};
use crate::{limits, App, BoxError};
use bytes::Bytes;
use hyper::body::Body;
use hyper::http::request::Parts;
use hyper::{Method, Request, StatusCode};
use otlp::Encoding;
use sha2::Digest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use store::{GroupKey, Push, StoreError};

/// Handles one OTLP export request.
pub async fn handle<B>(
    app: &Arc<App>,
    req: Request<B>,
    remote: SocketAddr,
    client: Option<String>,
    peer: Option<&webconfig::ClientIdentity>,
) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let approx_size = crate::telemetry::approximate_request_size(&req);
    let encoding = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type);
    let answer_in = encoding.unwrap_or(Encoding::Protobuf);
    let resp = match export(app, req, remote, client, peer, encoding).await {
        Ok((rejected, message)) => crate::http::with_type(
            StatusCode::OK,
            answer_in.content_type(),
            otlp::encode_response(rejected, &message, answer_in),
        ),
        Err(e) => e.into_otlp_response(answer_in),
    };
    app.telemetry.observe_push(
        &Method::POST,
        started.elapsed().as_secs_f64(),
        approx_size as f64,
    );
    resp
}

/// Stores what a request carries; `(rejected points, why)` on success.
async fn export<B>(
    app: &Arc<App>,
    req: Request<B>,
    remote: SocketAddr,
    client: Option<String>,
    peer: Option<&webconfig::ClientIdentity>,
    encoding: Option<Encoding>,
) -> Result<(u64, String), HttpError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(settings) = app.cfg.otlp.as_ref() else {
        return Err(HttpError::NotFound);
    };
    if app.rate.enabled() {
        let client = client.unwrap_or_else(|| remote.ip().to_string());
        if let Err(retry_after) = app.rate.take(&client, Instant::now()) {
            app.rejections.count(limits::Reason::Rate);
            return Err(HttpError::RateLimited {
                rate: app.cfg.limits.push_rate,
                retry_after,
            });
        }
    }
    let (parts, body) = crate::dispatch::read_body(app, req).await?;
    let encoding = check_encodings(&parts, encoding)?;
    let body =
        crate::push::decode_body(&parts, body, app.cfg.limits.max_body_bytes).inspect_err(|e| {
            if matches!(e, HttpError::TooLarge(_)) {
                app.rejections.count(limits::Reason::BodySize);
            }
        })?;
    let request =
        otlp::decode(&body, encoding).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let mut translation = otlp::translate(request, settings);
    let requested_ttl = crate::expiry::requested_ttl(&parts)?;
    let time = app.clock.now();
    let groups = std::mem::take(&mut translation.groups);
    let planned = plan(app, &parts, peer, groups, requested_ttl)?;
    let body_digest = sha2::Sha256::digest(&body);
    for (key, group, ttl_ms) in planned {
        let delta_points = group.delta_points;
        if !group.cumulative.is_empty() {
            let push = Push {
                key: key.clone(),
                families: group.cumulative,
                replace: false,
                time,
                ttl_ms,
                accumulate: None,
                idempotency_key: None,
            };
            if let Err(why) = store_push(app, push, remote).await? {
                translation.reject(group.points - delta_points, why);
            }
        }
        if !group.delta.is_empty() {
            let push = Push {
                idempotency_key: delta_idempotency_key(
                    &parts,
                    &body_digest,
                    &key,
                    group.delta_timed,
                ),
                key,
                families: group.delta,
                replace: false,
                time,
                ttl_ms,
                // Delta sums, up-down ones (gauges here) included, add up.
                accumulate: Some(store::Accumulate {
                    gauges: store::GaugeMode::Sum,
                }),
            };
            if let Err(why) = store_push(app, push, remote).await? {
                translation.reject(delta_points, why);
            }
        }
    }
    Ok((translation.rejected, translation.message()))
}

/// The body's encoding (from `Content-Type`), refused if unknown, and its
/// `Content-Encoding`: OTLP/HTTP bodies are plain or gzip.
fn check_encodings(parts: &Parts, encoding: Option<Encoding>) -> Result<Encoding, HttpError> {
    let Some(encoding) = encoding else {
        return Err(HttpError::UnsupportedMediaType(format!(
            "unsupported Content-Type {:?}: OTLP/HTTP takes application/x-protobuf or application/json",
            parts
                .headers
                .get(hyper::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        )));
    };
    // Anything else would only fail to decode.
    if let Some(enc) = parts.headers.get(hyper::header::CONTENT_ENCODING) {
        let enc = String::from_utf8_lossy(enc.as_bytes())
            .trim()
            .to_ascii_lowercase();
        if !matches!(enc.as_str(), "" | "identity" | "gzip") {
            return Err(HttpError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {enc:?}: OTLP/HTTP bodies are plain or gzip"
            )));
        }
    }
    Ok(encoding)
}

/// Every check before the first change, so a refused request changes nothing: scoped access
/// per grouping key, the per-push limits, the series per request; each group with its TTL.
fn plan(
    app: &App,
    parts: &Parts,
    peer: Option<&webconfig::ClientIdentity>,
    groups: Vec<otlp::Group>,
    requested_ttl: Option<std::time::Duration>,
) -> Result<Vec<(GroupKey, otlp::Group, u64)>, HttpError> {
    let mut planned = Vec::with_capacity(groups.len());
    let mut series = 0usize;
    for group in groups {
        let key = GroupKey::new(group.key.iter().cloned());
        authorize(app, parts, peer, &key)?;
        for families in [&group.cumulative, &group.delta] {
            if let Err((reason, e)) = limits::check_push(&app.cfg.limits, &key, families) {
                app.rejections.count(reason);
                return Err(e);
            }
            series += families.iter().map(|f| f.metric.len()).sum::<usize>();
        }
        // One request is one push for --limits.max-series-per-push, however many groups.
        let max = app.cfg.limits.max_series_per_push;
        if max != 0 && series > max {
            app.rejections.count(limits::Reason::SeriesPerPush);
            return Err(HttpError::TooLarge(format!(
                "limit exceeded: the OTLP request has more than the {max} series allowed per \
                 push (--limits.max-series-per-push)"
            )));
        }
        let ttl_ms = app.cfg.ttl.resolve(requested_ttl, &key).as_millis() as u64;
        planned.push((key, group, ttl_ms));
    }
    Ok(planned)
}

/// What makes a retried export count once: the client's `Idempotency-Key`, else the digest of
/// the body when every delta point carries its time (an SDK's export of one state: a client
/// retrying after a lost answer sends the same bytes). Per group, since one request feeds
/// several groups. Untimed points (hand-written bodies) get no key: identical bodies are then
/// separate contributions.
fn delta_idempotency_key(
    parts: &Parts,
    body_digest: &[u8],
    key: &GroupKey,
    timed: bool,
) -> Option<String> {
    use std::fmt::Write;
    let given = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let mut out = String::from("otlp:");
    match given {
        Some(k) => out.push_str(k),
        None if timed => {
            for b in body_digest {
                let _ = write!(out, "{b:02x}");
            }
        }
        None => return None,
    }
    out.push(':');
    out.push_str(&String::from_utf8_lossy(key.canonical()));
    Some(out)
}

/// `push` of the web config's scoped access, for a derived grouping key.
fn authorize(
    app: &App,
    parts: &Parts,
    peer: Option<&webconfig::ClientIdentity>,
    key: &GroupKey,
) -> Result<(), HttpError> {
    let Some(web) = app.cfg.web.as_ref().map(|w| w.current()) else {
        return Ok(());
    };
    crate::dispatch::authorize(
        &web,
        parts,
        peer,
        &Dispatch::Handle(Route::OtlpMetrics),
        Some(key),
    )
    .map(|_| ())
}

/// One push through the writer. `Ok(Err(why))`: the group's points were not stored (refused
/// by the consistency check or a quota), which the answer reports as a partial success;
/// `Err`: the request fails (the change could not be made durable, or the shared log is
/// unreachable).
async fn store_push(
    app: &App,
    push: Push,
    remote: SocketAddr,
) -> Result<Result<(), String>, HttpError> {
    match app.writer.push(push).await {
        Ok(()) => Ok(Ok(())),
        Err(e @ (StoreError::Persist(_) | StoreError::Unavailable(_))) => Err(e.into()),
        Err(StoreError::Quota(q)) => {
            app.rejections.count(crate::push::quota_reason(&q));
            Ok(Err(q.to_string()))
        }
        Err(e) => {
            tracing::warn!(source = %remote, err = %e,
                "OTLP metrics are invalid or inconsistent with existing metrics");
            Ok(Err(format!(
                "pushed metrics are invalid or inconsistent with existing metrics: {e}"
            )))
        }
    }
}
