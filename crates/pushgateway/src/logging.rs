//! Log lines as the official gateway writes them (go-kit style, `--log.format=logfmt`):
//!
//! ```text
//! ts=2026-12-04T05:47:37.440Z caller=main.rs:85 level=info msg="Starting pushgateway" version="(version=...)"
//! ```
//!
//! `key=value` pairs, values quoted when they contain a space, `=`, `"` or a control
//! character, lower-case levels, one line per event; `--log.format=json` writes one JSON
//! object per line with the same keys (`ts`, `caller`, `level`, `msg`, then the event's own).

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The two output formats of `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

/// A `FormatEvent` writing official-style lines.
pub struct GoKitFormat(pub Format);

/// A field's value, kept typed for JSON.
enum Val {
    Str(String),
    Num(String),
    Bool(bool),
}

#[derive(Default)]
struct Fields {
    msg: Option<String>,
    pairs: Vec<(&'static str, Val)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Val::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Val::Num(value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Val::Num(value.to_string()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put(field, Val::Num(value.to_string()));
        } else {
            self.put(field, Val::Str(value.to_string()));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Val::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Val::Str(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, v: Val) {
        if field.name() == "message" {
            let Val::Str(s) = v else { return };
            self.msg = Some(s);
        } else {
            self.pairs.push((field.name(), v));
        }
    }
}

/// `ts=` value: UTC, millisecond precision, as Go's `log.DefaultTimestampUTC`.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// Whether go-logfmt would quote this value.
fn needs_quotes(v: &str) -> bool {
    v.chars()
        .any(|c| c <= ' ' || c == '=' || c == '"' || c == '\u{fffd}' || c.is_control())
}

/// Writes a logfmt value (quoted and escaped when needed).
pub fn logfmt_value(out: &mut String, v: &str) {
    if v == "null" {
        out.push_str("\"null\"");
    } else if needs_quotes(v) {
        quoted(out, v);
    } else {
        out.push_str(v);
    }
}

/// A double-quoted string with Go's escapes (also valid JSON).
fn quoted(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A logfmt key: characters a key cannot hold become `_`.
fn logfmt_key(out: &mut String, k: &str) {
    for c in k.chars() {
        out.push(if c <= ' ' || c == '=' || c == '"' {
            '_'
        } else {
            c
        });
    }
}

/// Formats one event as a line (without the newline).
fn format_line(
    format: Format,
    ts: &str,
    caller: &str,
    level: &Level,
    msg: Option<&str>,
    pairs: &[(&str, Val)],
) -> String {
    let mut out = String::with_capacity(128);
    match format {
        Format::Logfmt => {
            let _ = write!(out, "ts={ts} caller=");
            logfmt_value(&mut out, caller);
            let _ = write!(out, " level={}", level_name(level));
            if let Some(m) = msg {
                out.push_str(" msg=");
                logfmt_value(&mut out, m);
            }
            for (k, v) in pairs {
                out.push(' ');
                logfmt_key(&mut out, k);
                out.push('=');
                match v {
                    Val::Str(s) | Val::Num(s) => logfmt_value(&mut out, s),
                    Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                }
            }
        }
        Format::Json => {
            out.push_str("{\"ts\":");
            quoted(&mut out, ts);
            out.push_str(",\"caller\":");
            quoted(&mut out, caller);
            let _ = write!(out, ",\"level\":\"{}\"", level_name(level));
            if let Some(m) = msg {
                out.push_str(",\"msg\":");
                quoted(&mut out, m);
            }
            for (k, v) in pairs {
                out.push(',');
                quoted(&mut out, k);
                out.push(':');
                match v {
                    Val::Str(s) => quoted(&mut out, s),
                    Val::Num(s) => out.push_str(s),
                    Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                }
            }
            out.push('}');
        }
    }
    out
}

impl<S, N> FormatEvent<S, N> for GoKitFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let file = meta.file().unwrap_or(meta.target());
        let base = file.rsplit('/').next().unwrap_or(file);
        let caller = match meta.line() {
            Some(l) => format!("{base}:{l}"),
            None => base.to_string(),
        };
        let line = format_line(
            self.0,
            &timestamp(),
            &caller,
            meta.level(),
            fields.msg.as_deref(),
            &fields.pairs,
        );
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_as_go_logfmt_does() {
        let pairs = vec![
            ("version", Val::Str("(version=1, branch=main)".into())),
            ("file", Val::Str("/var/lib/x".into())),
            ("empty", Val::Str(String::new())),
            ("groups", Val::Num("12".into())),
            ("http2", Val::Bool(false)),
            ("err", Val::Str("line 1: \"x\"\nbad\\".into())),
        ];
        let l = format_line(
            Format::Logfmt,
            "2026-12-04T05:47:37.440Z",
            "main.rs:85",
            &Level::INFO,
            Some("starting pushgateway"),
            &pairs,
        );
        assert_eq!(
            l,
            "ts=2026-12-04T05:47:37.440Z caller=main.rs:85 level=info msg=\"starting pushgateway\" \
             version=\"(version=1, branch=main)\" file=/var/lib/x empty= groups=12 http2=false \
             err=\"line 1: \\\"x\\\"\\nbad\\\\\""
        );
        let j = format_line(Format::Json, "t", "c:1", &Level::WARN, Some("m"), &pairs);
        assert_eq!(
            j,
            "{\"ts\":\"t\",\"caller\":\"c:1\",\"level\":\"warn\",\"msg\":\"m\",\
             \"version\":\"(version=1, branch=main)\",\"file\":\"/var/lib/x\",\"empty\":\"\",\
             \"groups\":12,\"http2\":false,\"err\":\"line 1: \\\"x\\\"\\nbad\\\\\"}"
        );
    }
}
