//! Label matchers on grouping keys, in Prometheus selector syntax: `{job="etl",env=~"dev|test"}`.
//!
//! Used by the TTL rules, the admin API's bulk deletes and group listing, and scoped push access.
//! Semantics follow Prometheus: a label missing from the key matches as the empty string, and
//! regular expressions are fully anchored (`=~"a|b"` means `^(?:a|b)$`).

use crate::key::GroupKey;
use regex::Regex;

/// A matcher operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

/// One `name op "value"` matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the anchored regex for `=~`/`!~`.
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, MatcherError> {
        if !is_label_name(name) {
            return Err(MatcherError(format!("invalid label name {name:?}")));
        }
        let re =
            match op {
                Op::Re | Op::NotRe => Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    MatcherError(format!("invalid regular expression {value:?}: {e}"))
                })?),
                _ => None,
            };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches_value(&self, v: &str) -> bool {
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

/// A conjunction of matchers: `{a="1",b=~"x.*"}`. The empty selector `{}` matches every group.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
}

/// A selector that could not be parsed; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MatcherError(pub String);

impl Selector {
    /// Parses `{name op "value", ...}`. Values may be double-, single- or back-quoted, with Go
    /// escapes in the first two. A trailing comma is allowed, as in PromQL.
    pub fn parse(s: &str) -> Result<Selector, MatcherError> {
        let mut p = Parser {
            s: s.as_bytes(),
            src: s,
            i: 0,
        };
        p.ws();
        p.expect(b'{')?;
        let mut matchers = Vec::new();
        loop {
            p.ws();
            if p.eat(b'}') {
                break;
            }
            let name = p.ident()?;
            p.ws();
            let op = p.op()?;
            p.ws();
            let value = p.string()?;
            matchers.push(Matcher::new(&name, op, &value)?);
            p.ws();
            if p.eat(b',') {
                continue;
            }
            p.ws();
            p.expect(b'}')?;
            break;
        }
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("unexpected text after '}'"));
        }
        Ok(Selector { matchers })
    }

    /// Whether every matcher matches the key (absent labels count as empty).
    pub fn matches(&self, key: &GroupKey) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches_value(key.get(&m.name).unwrap_or("")))
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> MatcherError {
        MatcherError(format!(
            "bad matcher {:?}: {what} at position {}",
            self.src, self.i
        ))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), MatcherError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }
    fn ident(&mut self) -> Result<String, MatcherError> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        let name = &self.src[start..self.i];
        if !is_label_name(name) {
            self.i = start;
            return Err(self.err("expected a label name"));
        }
        Ok(name.to_string())
    }
    fn op(&mut self) -> Result<Op, MatcherError> {
        let rest = &self.s[self.i..];
        let (op, n) = if rest.starts_with(b"=~") {
            (Op::Re, 2)
        } else if rest.starts_with(b"!~") {
            (Op::NotRe, 2)
        } else if rest.starts_with(b"!=") {
            (Op::Ne, 2)
        } else if rest.starts_with(b"=") {
            (Op::Eq, 1)
        } else {
            return Err(self.err("expected one of =, !=, =~, !~"));
        };
        self.i += n;
        Ok(op)
    }
    fn string(&mut self) -> Result<String, MatcherError> {
        let q = match self.s.get(self.i) {
            Some(&c @ (b'"' | b'\'' | b'`')) => c,
            _ => return Err(self.err("expected a quoted string")),
        };
        self.i += 1;
        let mut out = String::new();
        let rest = &self.src[self.i..];
        let mut chars = rest.char_indices();
        while let Some((off, c)) = chars.next() {
            if c as u32 == q as u32 {
                self.i += off + 1;
                return Ok(out);
            }
            if c == '\\' && q != b'`' {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    // Regex escapes such as \d or \. pass through unchanged, as users write them.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                continue;
            }
            out.push(c);
        }
        self.i = self.s.len();
        Err(self.err("unterminated string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(l: &[(&str, &str)]) -> GroupKey {
        GroupKey::new(l.iter().map(|(a, b)| (*a, *b)))
    }

    #[test]
    fn equality_and_regex_are_anchored() {
        let s = Selector::parse(r#"{job="etl", env=~"dev|test"}"#).unwrap();
        assert!(s.matches(&key(&[("job", "etl"), ("env", "dev")])));
        assert!(!s.matches(&key(&[("job", "etl"), ("env", "development")])));
        assert!(!s.matches(&key(&[("job", "etl2"), ("env", "dev")])));
        let s = Selector::parse(r#"{job=~"backup-.*"}"#).unwrap();
        assert!(s.matches(&key(&[("job", "backup-db")])));
        assert!(!s.matches(&key(&[("job", "x-backup-db")])));
    }

    #[test]
    fn absent_label_matches_as_empty() {
        let s = Selector::parse(r#"{instance=""}"#).unwrap();
        assert!(s.matches(&key(&[("job", "a")])));
        let s = Selector::parse(r#"{instance!=""}"#).unwrap();
        assert!(!s.matches(&key(&[("job", "a")])));
        assert!(s.matches(&key(&[("job", "a"), ("instance", "x")])));
        let s = Selector::parse(r#"{env!~"prod.*",}"#).unwrap();
        assert!(s.matches(&key(&[("job", "a")])));
        assert!(!s.matches(&key(&[("job", "a"), ("env", "prod-1")])));
    }

    #[test]
    fn empty_selector_matches_all_and_quotes_and_escapes_work() {
        assert!(Selector::parse("{}")
            .unwrap()
            .matches(&key(&[("job", "x")])));
        let s = Selector::parse(r#"{ a = 'x"y' , b=`c\d`, c="q\"\\" }"#).unwrap();
        assert_eq!(s.matchers[0].value, "x\"y");
        assert_eq!(s.matchers[1].value, "c\\d");
        assert_eq!(s.matchers[2].value, "q\"\\");
        let s = Selector::parse(r#"{n=~"\d+"}"#).unwrap();
        assert!(s.matches(&key(&[("n", "123")])));
        assert!(!s.matches(&key(&[("n", "12a")])));
    }

    #[test]
    fn bad_selectors_give_reasons() {
        for (bad, why) in [
            ("job=\"x\"", "expected '{'"),
            ("{job}", "expected one of"),
            ("{job=x}", "quoted string"),
            ("{job=\"x}", "unterminated"),
            ("{1job=\"x\"}", "label name"),
            ("{job=~\"(\"}", "invalid regular expression"),
            ("{job=\"x\"} y", "after '}'"),
            ("{job=\"x\" a=\"b\"}", "expected '}'"),
            ("", "expected '{'"),
        ] {
            let e = Selector::parse(bad).unwrap_err();
            assert!(e.0.contains(why), "{bad}: {e}");
        }
    }
}
