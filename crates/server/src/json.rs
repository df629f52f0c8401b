//! The JSON answers of the API (`/api/v1/...`): strings escaped as Go's `encoding/json` does
//! (HTML-safe), floats as strings in Go's `%v` format, and the CORS headers the official API
//! sets. The JSON is written directly into one `String`, without a serializer.

use crate::http::{with_type, Resp};
use exposition::float::write_go_float;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use std::fmt::Write;

/// Adds the CORS headers the official API sets on every response.
pub fn cors(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
    );
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Date"),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r
}

/// A 200 JSON answer with the CORS headers.
pub(crate) fn json_response(body: String) -> Resp {
    cors(with_type(StatusCode::OK, "application/json", body))
}

/// Bytes that may need escaping: controls, quote, backslash, `<`, `>`, `&`, and 0xE2 (the
/// first byte of U+2028/U+2029, checked properly on the slow path).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b < 0x20 || matches!(b as u8, b'"' | b'\\' | b'<' | b'>' | b'&' | 0xE2);
        b += 1;
    }
    t
};

/// Appends `s` as a JSON string, escaped like Go's `encoding/json`.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escaping at all: copy them in one go.
    let plain = !s.bytes().any(|b| NEEDS_ESCAPE[b as usize]);
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float as a JSON string in Go's `%v` format (`"1.5"`, `"+Inf"`).
pub fn json_float(out: &mut String, v: f64) {
    out.push('"');
    write_go_float(out, v);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a<b>&\"\\\n\u{1}é");
        assert_eq!(s, "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001é\"");
        let mut s = String::new();
        json_str(&mut s, "plain é \u{2028}x");
        assert_eq!(s, "\"plain é \\u2028x\"");
    }
}
