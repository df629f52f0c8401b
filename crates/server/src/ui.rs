//! The web UI (placeholder; being written).

use crate::http::{with_type, Resp};
use crate::App;
use hyper::StatusCode;
use std::sync::Arc;

pub fn page(app: &Arc<App>) -> Resp {
    let snap = app.store.snapshot();
    let mut s = String::from("<!DOCTYPE html><html><body>");
    for g in snap.groups.values() {
        for (n, v) in g.key.labels() {
            s.push_str(&crate::http::html_escape(&format!("{n}=\"{v}\" ")));
        }
    }
    s.push_str("</body></html>");
    with_type(StatusCode::OK, "text/html; charset=utf-8", s)
}

pub fn static_file(_file: &str) -> Resp {
    crate::error::HttpError::NotFound.into_response()
}
