//! The one place where errors become HTTP responses.

use crate::http::{text_response, Resp};
use hyper::header::HeaderValue;
use hyper::StatusCode;
use store::QuotaExceeded;
use store::StoreError;

/// Everything a handler can fail with, mapped to the official status codes and bodies.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A bad URL or body: 400 with the reason.
    #[error("{0}")]
    BadRequest(String),
    /// The push was refused by the store's checks: 400.
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Rejected(String),
    /// The change could not be made durable: 500, and nothing is acknowledged.
    #[error("{0}")]
    Internal(String),
    #[error("404 page not found")]
    NotFound,
    /// A request or the group it builds is over a size limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// A store-wide quota is exhausted: 403, nothing changed.
    #[error("{0}")]
    Quota(String),
    /// The client pushes faster than `--limits.push-rate`: 429 with `Retry-After`.
    #[error(
        "rate limit exceeded: at most {rate} pushes per second per client; retry in {retry_after}s"
    )]
    RateLimited { rate: f64, retry_after: u64 },
    /// The body did not arrive within `--web.read-timeout`: 408.
    #[error("request body not received within {0:?}")]
    Timeout(std::time::Duration),
    /// No or wrong credentials: 401 with `WWW-Authenticate`.
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed: 403 with the reason.
    #[error("{0}")]
    Forbidden(String),
    /// Replicated mode: the shared log cannot be reached: 503, nothing changed.
    #[error("{0}")]
    Unavailable(String),
    /// OTLP: a body in an encoding the receiver does not take: 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request head is longer than Go's server reads (`reqline::MAX_HEAD_BYTES`): 431 as
    /// Go writes it (no trailing newline), and the connection closes.
    #[error("431 Request Header Fields Too Large")]
    HeadTooLarge,
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Timestamps | StoreError::Inconsistent(_) => {
                HttpError::Rejected(e.to_string())
            }
            StoreError::Accumulate(why) => HttpError::BadRequest(why),
            // The change was undone; a full disk is a transient outage of writes (reads
            // keep working and the next write tries again).
            StoreError::Persist(_) => HttpError::Unavailable(e.to_string()),
            StoreError::Quota(
                q @ (QuotaExceeded::SeriesPerGroup { .. } | QuotaExceeded::RecordSize { .. }),
            ) => HttpError::TooLarge(q.to_string()),
            StoreError::Quota(q) => HttpError::Quota(q.to_string()),
            StoreError::Unavailable(why) => HttpError::Unavailable(why),
        }
    }
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) | HttpError::Rejected(_) => StatusCode::BAD_REQUEST,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Quota(_) | HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Like Go's `http.Error`: `text/plain; charset=utf-8`, `nosniff`, message plus newline.
    pub fn into_response(self) -> Resp {
        // Refusals are the client's business: visible with --log.level=debug only.
        if self.status().is_client_error() && !matches!(self, HttpError::NotFound) {
            tracing::debug!(status = self.status().as_u16(), reason = %self, "request refused");
        }
        if let HttpError::HeadTooLarge = self {
            let mut r = crate::http::with_type(
                self.status(),
                "text/plain; charset=utf-8",
                self.to_string(),
            );
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let mut r = text_response(self.status(), format!("{self}\n"));
        match &self {
            HttpError::RateLimited { retry_after, .. } => {
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            HttpError::Unauthorized => {
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic"),
                );
            }
            _ => {}
        }
        r
    }

    /// The same error as an OTLP/HTTP failure: a `google.rpc.Status` body in the request's
    /// encoding, `Retry-After` on the retryable 429 and 503.
    pub fn into_otlp_response(self, enc: otlp::Encoding) -> Resp {
        let status = self.status();
        let body = otlp::encode_status(status.as_u16(), &self.to_string(), enc);
        let mut r = crate::http::with_type(status, enc.content_type(), body);
        let retry_after = match &self {
            HttpError::RateLimited { retry_after, .. } => Some(*retry_after),
            HttpError::Unavailable(_) => Some(OTLP_UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(s));
        }
        if matches!(self, HttpError::Unauthorized) {
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic"),
            );
        }
        r
    }
}

/// Seconds an OTLP client is asked to wait after a 503 (replicated mode without NATS).
const OTLP_UNAVAILABLE_RETRY_AFTER: u64 = 5;
