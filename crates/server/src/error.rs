//! The one place where errors become HTTP responses.

use crate::http::{text_response, Resp};
use hyper::StatusCode;
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
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Timestamps | StoreError::Inconsistent(_) => {
                HttpError::Rejected(e.to_string())
            }
            StoreError::Persist(_) => HttpError::Internal(e.to_string()),
        }
    }
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) | HttpError::Rejected(_) => StatusCode::BAD_REQUEST,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// Like Go's `http.Error`: `text/plain; charset=utf-8`, `nosniff`, message plus newline.
    pub fn into_response(self) -> Resp {
        text_response(self.status(), format!("{self}\n"))
    }
}
