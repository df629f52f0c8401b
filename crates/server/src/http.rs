//! Small request and response helpers shared by the handlers.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub use crate::stream::RespBody;

pub type Resp = Response<RespBody>;

/// A Go `http.Error`-style response (`body` should end in a newline where Go adds one).
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(RespBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A response with no body and no content type (successful pushes, deletes).
pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(RespBody::default());
    *r.status_mut() = status;
    r
}

/// A response with a body and a content type, without `nosniff` (Go's sniffed writes).
pub fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(RespBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A redirect as Go's ServeMux and httprouter send them.
pub fn redirect(status: StatusCode, location: &str, method_is_get: bool) -> Resp {
    let body = if method_is_get {
        format!(
            "<a href=\"{}\">{}</a>.\n\n",
            html_escape(location),
            status.canonical_reason().unwrap_or("")
        )
    } else {
        String::new()
    };
    let mut r = if method_is_get {
        with_type(status, "text/html; charset=utf-8", body)
    } else {
        empty(status)
    };
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

/// 405 with the sorted `Allow` list, as httprouter answers.
pub fn method_not_allowed(allow: &[&str]) -> Resp {
    let mut r = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        r.headers_mut().insert(hyper::header::ALLOW, v);
    }
    r
}

/// HTML-escapes text for the UI and redirect bodies.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes an `application/x-www-form-urlencoded` query string (`+` is a space).
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs("match%5B%5D=%7Bjob%3D%22a%22%7D&dry_run&x=a+b"),
            vec![
                ("match[]".to_string(), "{job=\"a\"}".to_string()),
                ("dry_run".to_string(), String::new()),
                ("x".to_string(), "a b".to_string()),
            ]
        );
    }
}
