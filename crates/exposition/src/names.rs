//! Metric and label names: the legacy character set, UTF-8 names, and the escaping schemes a
//! scraper negotiates with the `escaping=` parameter of its `Accept` header.
//!
//! The rules are those of prometheus/common `model` (v0.67, `metric.go`: `EscapeName`,
//! `UnescapeName`, `EscapeMetricFamily`, `IsValidLegacyMetricName`): a name that is a valid
//! legacy metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) is never changed on output, whatever the
//! scheme; other names are escaped, or written quoted in the text format with `allow-utf-8`.

/// How names that are not legacy names are presented to a scraper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escaping {
    /// `allow-utf-8`: names as they are (quoted in the text format when needed).
    AllowUtf8,
    /// `underscores`: every character outside the legacy set becomes `_` (the default).
    Underscores,
    /// `dots`: `_` → `__`, `.` → `_dot_`, other characters → `__`.
    Dots,
    /// `values`: `U__` prefix, `_` → `__`, other characters → `_<hex code point>_`.
    Values,
}

impl Escaping {
    /// The value of the `escaping=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }

    /// Parses an `escaping=` value; unknown values are `None`.
    pub fn parse(s: &str) -> Option<Escaping> {
        match s {
            "allow-utf-8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }
}

fn legacy_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: a name every scraper can read unquoted. (Label names are held
/// to the same test when deciding whether to escape or quote them, as upstream does.)
pub fn is_legacy_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a legacy label name.
pub fn is_legacy_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Escapes a name for `scheme`. Legacy names are returned unchanged (as `EscapeMetricFamily`
/// leaves them), so only names that need it are ever rewritten.
pub fn escape_name(name: &str, scheme: Escaping) -> std::borrow::Cow<'_, str> {
    if name.is_empty() || scheme == Escaping::AllowUtf8 || is_legacy_name(name) {
        return name.into();
    }
    let mut out = String::with_capacity(name.len() + 8);
    match scheme {
        Escaping::AllowUtf8 => unreachable!(),
        Escaping::Underscores => {
            for (i, c) in name.chars().enumerate() {
                out.push(if legacy_char(c, i == 0) { c } else { '_' });
            }
        }
        Escaping::Dots => {
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if legacy_char(c, i == 0) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
        }
        Escaping::Values => {
            out.push_str("U__");
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    c if legacy_char(c, i == 0) => out.push(c),
                    c => {
                        use std::fmt::Write;
                        let _ = write!(out, "_{:x}_", c as u32);
                    }
                }
            }
        }
    }
    out.into()
}

/// Undoes the `values` escaping of a label name in a push path (`U__foo_2e_bar` → `foo.bar`),
/// as `model.UnescapeName(name, ValueEncodingEscaping)` does: anything malformed is returned
/// unchanged.
pub fn unescape_values(name: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.into();
    };
    let b = rest.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        if i >= b.len() {
            return name.into();
        }
        if b[i] == b'_' {
            out.push(b'_');
            i += 1;
            continue;
        }
        let mut v: u32 = 0;
        let mut digits = 0;
        loop {
            if digits >= 6 || i >= b.len() {
                return name.into();
            }
            if b[i] == b'_' {
                break;
            }
            let d = match b[i].to_ascii_lowercase() {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                _ => return name.into(),
            };
            v = v * 16 + u32::from(d);
            digits += 1;
            i += 1;
        }
        // `i` is at the closing underscore.
        i += 1;
        let Some(c) = char::from_u32(v) else {
            return name.into();
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    match String::from_utf8(out) {
        Ok(s) => s.into(),
        Err(_) => name.into(),
    }
}

/// Appends a name for the text format: bare when it is a legacy name, otherwise quoted with
/// `\`, `"` and newline escaped (expfmt's `writeName`).
pub fn write_text_name(out: &mut String, name: &str) {
    if is_legacy_name(name) {
        out.push_str(name);
    } else {
        out.push('"');
        crate::text_encode::escape_into(out, name, true);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_name_matches_common_model() {
        // Expectations from prometheus/common model/metric_test.go (TestEscapeName).
        let u = Escaping::Underscores;
        let d = Escaping::Dots;
        let v = Escaping::Values;
        assert_eq!(
            escape_name("no:escaping_required", u),
            "no:escaping_required"
        );
        assert_eq!(
            escape_name("no:escaping_required", v),
            "no:escaping_required"
        );
        assert_eq!(
            escape_name("mysystem.prod.west.cpu.load", u),
            "mysystem_prod_west_cpu_load"
        );
        assert_eq!(
            escape_name("mysystem.prod.west.cpu.load_total", d),
            "mysystem_dot_prod_dot_west_dot_cpu_dot_load__total"
        );
        assert_eq!(
            escape_name("mysystem.prod.west.cpu.load_total", v),
            "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load__total"
        );
        assert_eq!(escape_name("http.status:sum", d), "http_dot_status:sum");
        assert_eq!(escape_name("label with 😱", u), "label_with__");
        assert_eq!(escape_name("label with 😱", d), "label__with____");
        assert_eq!(
            escape_name("label with 😱", v),
            "U__label_20_with_20__1f631_"
        );
        assert_eq!(escape_name("花火", u), "__");
        assert_eq!(escape_name("花火", v), "U___82b1__706b_");
        assert_eq!(escape_name("1a", u), "_a");
        assert_eq!(escape_name("1a", v), "U___31_a");
        assert_eq!(escape_name("x", Escaping::AllowUtf8), "x");
    }

    #[test]
    fn unescape_values_round_trips_and_rejects_malformed() {
        for n in ["foo.bar", "label with 😱", "a_b.c", "1a", "ü"] {
            assert_eq!(unescape_values(&escape_name(n, Escaping::Values)), n);
        }
        assert_eq!(unescape_values("U__foo_2e_bar"), "foo.bar");
        assert_eq!(unescape_values("U__foo_2E_bar"), "foo.bar");
        assert_eq!(unescape_values("foo_2e_bar"), "foo_2e_bar");
        for bad in [
            "U__a_",
            "U__a_2e",
            "U__a_zz_",
            "U__a_1234567_",
            "U__a_d800_",
        ] {
            assert_eq!(unescape_values(bad), bad);
        }
    }

    #[test]
    fn text_names_are_quoted_only_when_needed() {
        let mut s = String::new();
        write_text_name(&mut s, "a:b_c");
        s.push(' ');
        write_text_name(&mut s, "my.metric\"x");
        assert_eq!(s, "a:b_c \"my.metric\\\"x\"");
    }
}
