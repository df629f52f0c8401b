//! Parser for the Prometheus text exposition format 0.0.4.
//!
//! It accepts and rejects exactly what Go's `expfmt.TextParser` of prometheus/common v0.37
//! (the version Pushgateway 1.5.1 is built with, together with client_model v0.3.0) does, and
//! reports the same error messages, `text format parsing error in line N: ...`, including
//! Go's `%q` quoting of the offending token. The notable quirks reproduced here:
//!
//! * Every line, the last one included, must end in `\n`; running out of input anywhere but at
//!   the start of a line is `unexpected end of input stream`. Blanks are only ' ' and '\t', so
//!   a `\r` of a CRLF line ending becomes part of the value (or timestamp) token.
//! * `#` may be followed directly by `HELP`/`TYPE` (`#TYPE x gauge`). Any other `#` line is a
//!   comment. A `HELP`/`TYPE` line that ends right after the keyword or the metric name is
//!   ignored (but the latter still creates the family).
//! * `TYPE` values are matched after Go's `strings.ToUpper`; `GAUGE_HISTOGRAM` (known to
//!   client_model v0.3.0) is accepted, and its samples end up without any value, as in Go.
//!   Backslashes are silently dropped from the type token and from whatever follows a
//!   timestamp (Go's `readTokenUntilNewline(false)`).
//! * Summaries and histograms are assembled from `_sum`, `_count`, `_bucket` and the base name
//!   whenever a family of that base name with that type already exists, also when the lines
//!   are not contiguous; `quantile`/`le` labels are consumed, must be Go floats, and a `NaN`
//!   one drops the sample. Counts are converted from float with Go's amd64 `uint64(f)`.
//! * Duplicate label names within one sample are rejected, as Go does at parse time.
//!
//! The only intentional difference: a HELP text that is not valid UTF-8 (Go keeps the raw
//! bytes) is stored with U+FFFD replacements, because `MetricFamily.help` is a Rust `String`.
//! Invalid UTF-8 in label values is an error in Go as well (`invalid label value "\xff"`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::limits::{LimitExceeded, ParseLimits};
use crate::pb::{
    Bucket, Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Untyped,
};
#[cfg(test)]
use crate::pb::{Histogram, Summary};

/// A parse failure, displayed exactly as Go's expfmt does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text format parsing error in line {line}: {msg}")]
pub struct TextParseError {
    pub line: usize,
    pub msg: String,
}

/// Parses a whole text-format body into metric families (order unspecified; we return them in
/// order of first appearance). Families without samples (only HELP/TYPE lines) are dropped.
pub fn parse_text(body: &[u8]) -> Result<Vec<MetricFamily>, TextParseError> {
    let mut parser = Parser::new(body);
    parser.run()?;
    Ok(parser.finish())
}

/// A body refused by [`parse_text_limited`]: a syntax error, or a limit crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitedParseError {
    Syntax(TextParseError),
    Limit(LimitExceeded),
}

/// [`parse_text`] that stops at the first series crossing `limits` (a series with too many
/// labels is refused at its first extra label, not after reading all of them).
pub fn parse_text_limited(
    body: &[u8],
    limits: ParseLimits,
) -> Result<Vec<MetricFamily>, LimitedParseError> {
    let mut parser = Parser::new(body);
    parser.limits = limits;
    match parser.run() {
        Ok(()) => Ok(parser.finish()),
        Err(e) => Err(match parser.limit_hit.take() {
            Some(l) => LimitedParseError::Limit(l),
            None => LimitedParseError::Syntax(e),
        }),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` as expfmt uses it: no hex floats, no `_` separators
/// (expfmt rejects any 'p', 'P' or '_' up front), case-insensitive `inf`/`infinity` with an
/// optional sign, `nan` without a sign, and an error instead of ±Inf when a finite literal
/// overflows. Underflow rounds to (signed) zero or a subnormal, as in Go.
pub fn parse_go_float(s: &str) -> Option<f64> {
    parse_go_float_bytes(s.as_bytes())
}

fn parse_go_float_bytes(s: &[u8]) -> Option<f64> {
    let (signed, negative, body) = match s.first()? {
        b'+' => (true, false, &s[1..]),
        b'-' => (true, true, &s[1..]),
        _ => (false, false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if !signed && body.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // Decimal syntax: digits, at most one '.', at least one digit in total, then an optional
    // exponent with at least one digit. Everything else (hex, '_', junk) is a syntax error.
    let mut i = 0;
    let mut digits = false;
    while i < body.len() && body[i].is_ascii_digit() {
        i += 1;
        digits = true;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
            digits = true;
        }
    }
    if !digits {
        return None;
    }
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        i += 1;
        if i < body.len() && (body[i] == b'+' || body[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < body.len() && body[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != body.len() {
        return None;
    }
    // The syntax is validated and ASCII; Rust's parser is correctly rounded like Go's.
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // Go reports a finite literal that rounds to infinity as ErrRange.
    (!v.is_infinite()).then_some(v)
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only, no overflow.
fn parse_go_int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Go's `uint64(f)` conversion on amd64 (what Pushgateway binaries run on): truncation toward
/// zero, negative values wrap (`-1` → 2^64-1), NaN, ±Inf and values out of range give 2^63.
fn go_f64_to_u64(v: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // CVTTSD2SQ: anything outside the int64 range (and NaN) becomes i64::MIN.
    fn cvttsd2sq(x: f64) -> i64 {
        if x.is_nan() || !(-TWO_63..TWO_63).contains(&x) {
            i64::MIN
        } else {
            x as i64
        }
    }
    if v < TWO_63 {
        cvttsd2sq(v) as u64
    } else {
        (cvttsd2sq(v - TWO_63) as u64) | (1 << 63)
    }
}

/// Go's `MetricType_value[strings.ToUpper(token)]` of client_model v0.3.0.
fn lookup_type(token: &[u8]) -> Option<MetricType> {
    let s = std::str::from_utf8(token).ok()?;
    let mut upper = String::with_capacity(s.len());
    for c in s.chars() {
        upper.push(match c {
            // The only non-ASCII runes that unicode.ToUpper maps into ASCII.
            '\u{131}' => 'I',
            '\u{17f}' => 'S',
            c if c.is_ascii() => c.to_ascii_uppercase(),
            _ => return None,
        });
    }
    Some(match upper.as_str() {
        "COUNTER" => MetricType::Counter,
        "GAUGE" => MetricType::Gauge,
        "SUMMARY" => MetricType::Summary,
        "UNTYPED" => MetricType::Untyped,
        "HISTOGRAM" => MetricType::Histogram,
        "GAUGE_HISTOGRAM" => MetricType::GaugeHistogram,
        _ => return None,
    })
}

#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

#[inline]
fn is_metric_name_start(b: u8) -> bool {
    is_label_name_start(b) || b == b':'
}

const fn name_class(colon: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':');
        b += 1;
    }
    t
}
static METRIC_NAME_CONT: [bool; 256] = name_class(true);
static LABEL_NAME_CONT: [bool; 256] = name_class(false);

/// How a sample line relates to the summary/histogram family it was attached to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The family's own name (or `_bucket` of a histogram, or an unrelated family).
    Plain,
    /// `<base>_count` of a summary/histogram.
    Count,
    /// `<base>_sum` of a summary/histogram.
    Sum,
}

struct Family<'a> {
    name: &'a str,
    help: Option<String>,
    typ: Option<MetricType>,
    metrics: Vec<Metric>,
}

struct Parser<'a> {
    buf: &'a [u8],
    /// Index of the next byte to read.
    pos: usize,
    /// The byte read last (at `pos - 1`), like Go's `currentByte`.
    cur: u8,
    /// The current line, counted from 1.
    line: usize,
    families: Vec<Family<'a>>,
    by_name: HashMap<&'a [u8], usize, ahash::RandomState>,
    /// The family of the previous sample line: consecutive lines usually share it.
    last_family: Option<(&'a [u8], usize, Role)>,
    /// Summary/histogram metrics by family index and sorted label set (Go's signature map).
    grouped: HashMap<Vec<u8>, usize, ahash::RandomState>,
    /// The key and metric index of the previous summary/histogram line.
    last_grouped: Option<usize>,
    last_key: Vec<u8>,
    /// Scratch buffer for building `grouped` keys.
    key: Vec<u8>,
    /// Reused buffer for the labels of the current line.
    scratch_labels: Vec<RawLabel<'a>>,
    /// Limits checked while parsing (off for [`parse_text`]).
    limits: ParseLimits,
    /// The limit that stopped the parse, if one did.
    limit_hit: Option<LimitExceeded>,
}

/// A label as read from the line: the name, and the value (borrowed unless it had escapes).
type RawLabel<'a> = (&'a str, Cow<'a, str>);

fn owned_labels(labels: &[RawLabel]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(n, v)| LabelPair {
            name: Some((*n).to_owned()),
            value: Some(v.to_string()),
        })
        .collect()
}

type PResult<T> = Result<T, TextParseError>;

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Parser {
            buf,
            pos: 0,
            cur: 0,
            line: 0,
            families: Vec::new(),
            by_name: HashMap::default(),
            last_family: None,
            grouped: HashMap::default(),
            last_grouped: None,
            last_key: Vec::new(),
            key: Vec::new(),
            scratch_labels: Vec::new(),
            limits: ParseLimits::default(),
            limit_hit: None,
        }
    }

    /// Stops the parse because a limit was crossed (`parse_text_limited` reports `hit`).
    #[cold]
    fn limit(&mut self, hit: LimitExceeded) -> TextParseError {
        self.limit_hit = Some(hit);
        self.error("limit exceeded".to_owned())
    }

    fn finish(self) -> Vec<MetricFamily> {
        self.families
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .map(|f| MetricFamily {
                name: Some(f.name.to_owned()),
                help: f.help,
                r#type: f.typ.map(|t| t as i32),
                metric: f.metrics,
                unit: None,
            })
            .collect()
    }

    #[cold]
    fn error(&self, msg: String) -> TextParseError {
        TextParseError {
            line: self.line,
            msg,
        }
    }

    #[cold]
    fn eof(&self) -> TextParseError {
        self.error("unexpected end of input stream".to_owned())
    }

    /// Reads the next byte into `cur`; running out of input is an error.
    #[inline]
    fn read(&mut self) -> PResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                self.cur = b;
                Ok(b)
            }
            None => Err(self.eof()),
        }
    }

    /// Reads bytes until one that is not a blank; that byte is left in `cur`.
    #[inline]
    fn skip_blanks(&mut self) -> PResult<()> {
        while is_blank(self.read()?) {}
        Ok(())
    }

    /// Like `skip_blanks`, but only if `cur` is a blank.
    #[inline]
    fn skip_blanks_if_blank(&mut self) -> PResult<()> {
        if is_blank(self.cur) {
            self.skip_blanks()?;
        }
        Ok(())
    }

    /// The token starting at `cur` up to (excluding) the next blank or '\n', which is left in
    /// `cur`. The input must not end inside (or right after) the token.
    fn token_until_blank(&mut self) -> PResult<&'a [u8]> {
        let start = self.pos - 1;
        let mut b = self.cur;
        while !is_blank(b) && b != b'\n' {
            b = self.read()?;
        }
        Ok(&self.buf[start..self.pos - 1])
    }

    /// The rest of the line starting at `cur`, without the backslashes (Go's
    /// `readTokenUntilNewline(false)` drops them); leaves '\n' in `cur`.
    fn rest_of_line_without_backslashes(&mut self) -> PResult<Vec<u8>> {
        let mut out = Vec::new();
        while self.cur != b'\n' {
            if self.cur != b'\\' {
                out.push(self.cur);
            }
            self.read()?;
        }
        Ok(out)
    }

    /// A metric name starting at `cur` (empty if `cur` cannot start one, in which case nothing
    /// is read). The first byte after the name is left in `cur`.
    fn metric_name_token(&mut self) -> PResult<&'a [u8]> {
        let start = self.pos - 1;
        if !is_metric_name_start(self.cur) {
            return Ok(&self.buf[start..start]);
        }
        self.scan_while(start, &METRIC_NAME_CONT)
    }

    /// Advances over bytes in `class` (after the one in `cur`); the first other byte is left
    /// in `cur`. Same semantics as a `read()` loop, scanning the slice directly.
    #[inline]
    fn scan_while(&mut self, start: usize, class: &[bool; 256]) -> PResult<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let rest = &buf[self.pos..];
        match rest.iter().position(|&b| !class[b as usize]) {
            Some(n) => {
                self.pos += n + 1;
                self.cur = rest[n];
                Ok(&buf[start..self.pos - 1])
            }
            None => {
                self.pos = buf.len();
                Err(self.eof())
            }
        }
    }

    /// Like `metric_name_token`, for label names.
    fn label_name_token(&mut self) -> PResult<&'a [u8]> {
        let start = self.pos - 1;
        if !is_label_name_start(self.cur) {
            return Ok(&self.buf[start..start]);
        }
        self.scan_while(start, &LABEL_NAME_CONT)
    }

    fn run(&mut self) -> PResult<()> {
        loop {
            self.line += 1;
            // Skip leading blanks; running out of input here is the regular end.
            loop {
                match self.buf.get(self.pos) {
                    None => return Ok(()),
                    Some(&b) => {
                        self.pos += 1;
                        self.cur = b;
                        if !is_blank(b) {
                            break;
                        }
                    }
                }
            }
            match self.cur {
                b'\n' => {}
                b'#' => self.comment()?,
                _ => self.sample()?,
            }
            debug_assert_eq!(self.cur, b'\n');
        }
    }

    /// Go's `setOrCreateCurrentMF`: the family `name` belongs to, creating it if needed.
    fn family_for(&mut self, name: &'a [u8]) -> (usize, Role) {
        if let Some((last, i, role)) = self.last_family {
            if last == name {
                return (i, role);
            }
        }
        let found = self.family_lookup(name);
        self.last_family = Some((name, found.0, found.1));
        found
    }

    fn family_lookup(&mut self, name: &'a [u8]) -> (usize, Role) {
        if let Some(&i) = self.by_name.get(name) {
            return (i, Role::Plain);
        }
        let len = name.len();
        let (base, role) = if len > 6 && name.ends_with(b"_count") {
            (&name[..len - 6], Role::Count)
        } else if len > 4 && name.ends_with(b"_sum") {
            (&name[..len - 4], Role::Sum)
        } else if len > 7 && name.ends_with(b"_bucket") {
            (&name[..len - 7], Role::Plain)
        } else {
            (name, Role::Plain)
        };
        if base.len() < len {
            if let Some(&i) = self.by_name.get(base) {
                let is_bucket = role == Role::Plain;
                match self.families[i].typ {
                    Some(MetricType::Summary) if !is_bucket => return (i, role),
                    Some(MetricType::Histogram) => return (i, role),
                    _ => {}
                }
            }
        }
        let i = self.families.len();
        self.families.push(Family {
            // Metric names are ASCII by construction.
            name: std::str::from_utf8(name).unwrap_or_default(),
            help: None,
            typ: None,
            metrics: Vec::new(),
        });
        self.by_name.insert(name, i);
        (i, Role::Plain)
    }

    /// A line whose first non-blank byte, in `cur`, is '#'.
    fn comment(&mut self) -> PResult<()> {
        // HELP/TYPE lines can create families or fix types: forget the cached lookup.
        self.last_family = None;
        self.skip_blanks()?;
        if self.cur == b'\n' {
            return Ok(());
        }
        let keyword = self.token_until_blank()?;
        if self.cur == b'\n' {
            return Ok(());
        }
        let is_help = match keyword {
            b"HELP" => true,
            b"TYPE" => false,
            _ => {
                // A plain comment: fast-forward to the end of the line.
                return match memchr_newline(&self.buf[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.cur = b'\n';
                        Ok(())
                    }
                    None => Err(self.eof()),
                };
            }
        };
        self.skip_blanks()?;
        let name = self.metric_name_token()?;
        if self.cur == b'\n' {
            return Ok(());
        }
        if !is_blank(self.cur) {
            return Err(self.error("invalid metric name in comment".to_owned()));
        }
        let (fi, _) = self.family_for(name);
        self.skip_blanks()?;
        if self.cur == b'\n' {
            return Ok(());
        }
        if is_help {
            self.help(fi)
        } else {
            self.type_hint(fi)
        }
    }

    /// The docstring of a HELP line, starting at `cur`.
    fn help(&mut self, fi: usize) -> PResult<()> {
        if self.families[fi].help.is_some() {
            return Err(self.error(format!(
                "second HELP line for metric name {}",
                go_quote(self.families[fi].name.as_bytes())
            )));
        }
        let mut text = Vec::new();
        let mut escaped = false;
        loop {
            let b = self.cur;
            if escaped {
                match b {
                    b'\\' => text.push(b'\\'),
                    b'n' => text.push(b'\n'),
                    _ => {
                        return Err(
                            self.error(format!("invalid escape sequence '\\{}'", char::from(b)))
                        )
                    }
                }
                escaped = false;
            } else {
                match b {
                    b'\n' => break,
                    b'\\' => escaped = true,
                    _ => text.push(b),
                }
            }
            self.read()?;
        }
        let help = match String::from_utf8(text) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        self.families[fi].help = Some(help);
        Ok(())
    }

    /// The type of a TYPE line, starting at `cur`.
    fn type_hint(&mut self, fi: usize) -> PResult<()> {
        if self.families[fi].typ.is_some() {
            return Err(self.error(format!(
                "second TYPE line for metric name {}, or TYPE reported after samples",
                go_quote(self.families[fi].name.as_bytes())
            )));
        }
        let token = self.rest_of_line_without_backslashes()?;
        match lookup_type(&token) {
            Some(t) => {
                self.families[fi].typ = Some(t);
                Ok(())
            }
            None => Err(self.error(format!("unknown metric type {}", go_quote(&token)))),
        }
    }

    /// A sample line whose first non-blank byte is in `cur`.
    fn sample(&mut self) -> PResult<()> {
        let name = self.metric_name_token()?;
        if name.is_empty() {
            return Err(self.error("invalid metric name".to_owned()));
        }
        let (fi, role) = self.family_for(name);
        let typ = *self.families[fi].typ.get_or_insert(MetricType::Untyped);
        self.skip_blanks_if_blank()?;
        let mut labels = std::mem::take(&mut self.scratch_labels);
        labels.clear();
        // The value of the `quantile` (summary) or `le` (histogram) label.
        let mut special = f64::NAN;
        if self.cur == b'{' {
            self.labels(fi, typ, &mut labels, &mut special)?;
        }
        self.value(fi, typ, role, labels, special)
    }

    /// The label set; `cur` is '{'. Leaves the first byte of the value in `cur`.
    fn labels(
        &mut self,
        fi: usize,
        typ: MetricType,
        labels: &mut Vec<RawLabel<'a>>,
        special: &mut f64,
    ) -> PResult<()> {
        // Names seen so far, once a line has enough labels that scanning them for the
        // duplicate check would make a long label set quadratic.
        let mut seen: Option<std::collections::HashSet<&'a [u8], ahash::RandomState>> = None;
        loop {
            self.skip_blanks()?;
            if self.cur == b'}' {
                return self.skip_blanks();
            }
            let name = self.label_name_token()?;
            if name.is_empty() {
                return Err(self.error(format!(
                    "invalid label name for metric {}",
                    go_quote(self.families[fi].name.as_bytes())
                )));
            }
            if name == b"__name__" {
                return Err(self.error("label name \"__name__\" is reserved".to_owned()));
            }
            let is_special = match typ {
                MetricType::Summary => name == b"quantile",
                MetricType::Histogram => name == b"le",
                _ => false,
            };
            self.skip_blanks_if_blank()?;
            if self.cur != b'=' {
                return Err(self.error(format!(
                    "expected '=' after label name, found {}",
                    go_quote_byte(self.cur)
                )));
            }
            let duplicate = match &mut seen {
                Some(set) => set.contains(name),
                None => labels.iter().any(|l| l.0.as_bytes() == name),
            };
            if !is_special && duplicate {
                return Err(self.error(format!(
                    "duplicate label names for metric {}",
                    go_quote(self.families[fi].name.as_bytes())
                )));
            }
            self.skip_blanks()?;
            if self.cur != b'"' {
                return Err(self.error(format!(
                    "expected '\"' at start of label value, found {}",
                    go_quote_byte(self.cur)
                )));
            }
            let value = self.label_value()?;
            if self.limits.value_too_long(value.len()) {
                let hit = LimitExceeded::LabelValueLength {
                    label: String::from_utf8_lossy(name).into_owned(),
                    len: value.len(),
                    max: self.limits.max_label_value_bytes,
                };
                return Err(self.limit(hit));
            }
            if is_special {
                *special = match parse_go_float_bytes(value.as_bytes()) {
                    Some(v) => v,
                    None => {
                        return Err(self.error(format!(
                            "expected float as value for '{}' label, got {}",
                            if typ == MetricType::Summary {
                                "quantile"
                            } else {
                                "le"
                            },
                            go_quote(value.as_bytes())
                        )))
                    }
                };
            }
            self.skip_blanks()?;
            let end = match self.cur {
                b',' => false,
                b'}' => true,
                _ => {
                    return Err(self.error(format!(
                        "unexpected end of label value {}",
                        go_quote(value.as_bytes())
                    )))
                }
            };
            if !is_special {
                // Label names are ASCII by construction.
                labels.push((std::str::from_utf8(name).unwrap_or_default(), value));
                if self.limits.too_many_labels(labels.len()) {
                    let hit = LimitExceeded::LabelsPerSeries {
                        family: self.families[fi].name.to_owned(),
                        max: self.limits.max_labels_per_series,
                    };
                    return Err(self.limit(hit));
                }
                match &mut seen {
                    Some(set) => {
                        set.insert(name);
                    }
                    None if labels.len() >= 16 => {
                        seen = Some(labels.iter().map(|l| l.0.as_bytes()).collect());
                    }
                    None => {}
                }
            }
            if end {
                return self.skip_blanks();
            }
        }
    }

    /// A quoted label value; `cur` is the opening '"'. Leaves the closing '"' in `cur`.
    fn label_value(&mut self) -> PResult<Cow<'a, str>> {
        let start = self.pos;
        let rest = &self.buf[start..];
        if let Some(i) = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b == b'\n')
        {
            if rest[i] == b'"' {
                // Fast path: no escapes.
                self.pos = start + i + 1;
                self.cur = b'"';
                let buf: &'a [u8] = self.buf;
                return std::str::from_utf8(&buf[start..start + i])
                    .map(Cow::Borrowed)
                    .map_err(|_| {
                        self.error(format!(
                            "invalid label value {}",
                            go_quote(&buf[start..start + i])
                        ))
                    });
            }
        }
        let mut value = Vec::new();
        let mut escaped = false;
        loop {
            let b = self.read()?;
            if escaped {
                match b {
                    b'"' | b'\\' => value.push(b),
                    b'n' => value.push(b'\n'),
                    _ => {
                        return Err(
                            self.error(format!("invalid escape sequence '\\{}'", char::from(b)))
                        )
                    }
                }
                escaped = false;
                continue;
            }
            match b {
                b'"' => break,
                b'\n' => {
                    return Err(self.error(format!(
                        "label value {} contains unescaped new-line",
                        go_quote(&value)
                    )))
                }
                b'\\' => escaped = true,
                _ => value.push(b),
            }
        }
        self.label_value_string(value).map(Cow::Owned)
    }

    fn label_value_string(&self, value: Vec<u8>) -> PResult<String> {
        String::from_utf8(value)
            .map_err(|e| self.error(format!("invalid label value {}", go_quote(e.as_bytes()))))
    }

    /// The value (first byte in `cur`), the optional timestamp and the end of the line.
    fn value(
        &mut self,
        fi: usize,
        typ: MetricType,
        role: Role,
        labels: Vec<RawLabel<'a>>,
        special: f64,
    ) -> PResult<()> {
        let mi = if matches!(typ, MetricType::Summary | MetricType::Histogram) {
            // All lines of one summary/histogram with the same labels (apart from
            // quantile/le) make up one metric; the labels of its first line are kept.
            self.key.clear();
            self.key.extend_from_slice(&(fi as u64).to_le_bytes());
            // Label order for the key, without allocating for the usual few labels.
            let mut small = [0usize; 16];
            let mut large = Vec::new();
            let order: &mut [usize] = if labels.len() <= small.len() {
                &mut small[..labels.len()]
            } else {
                large.extend(0..labels.len());
                &mut large
            };
            for (i, o) in order.iter_mut().enumerate() {
                *o = i;
            }
            order.sort_unstable_by(|a, b| labels[*a].0.cmp(labels[*b].0));
            for l in order.iter().map(|i| &labels[*i]) {
                // 0xFF never occurs in UTF-8, so the key is unambiguous.
                self.key.extend_from_slice(l.0.as_bytes());
                self.key.push(0xFF);
                self.key.extend_from_slice(l.1.as_bytes());
                self.key.push(0xFF);
            }
            let cached = self.last_grouped.filter(|_| self.last_key == self.key);
            let mi = match cached.or_else(|| self.grouped.get(self.key.as_slice()).copied()) {
                Some(mi) => mi,
                None => {
                    let metrics = &mut self.families[fi].metrics;
                    metrics.push(Metric {
                        label: owned_labels(&labels),
                        ..Default::default()
                    });
                    self.grouped.insert(self.key.clone(), metrics.len() - 1);
                    metrics.len() - 1
                }
            };
            if cached.is_none() {
                std::mem::swap(&mut self.last_key, &mut self.key);
                self.last_grouped = Some(mi);
            }
            mi
        } else {
            let metrics = &mut self.families[fi].metrics;
            metrics.push(Metric {
                label: owned_labels(&labels),
                ..Default::default()
            });
            metrics.len() - 1
        };
        self.scratch_labels = labels;

        let token = self.token_until_blank()?;
        let Some(v) = parse_go_float_bytes(token) else {
            return Err(self.error(format!("expected float as value, got {}", go_quote(token))));
        };
        let metric = &mut self.families[fi].metrics[mi];
        match typ {
            MetricType::Counter => {
                metric.counter = Some(Box::new(Counter {
                    value: Some(v),
                    ..Default::default()
                }))
            }
            MetricType::Gauge => metric.gauge = Some(Gauge { value: Some(v) }),
            MetricType::Untyped => metric.untyped = Some(Untyped { value: Some(v) }),
            MetricType::Summary => {
                let summary = metric.summary.get_or_insert_with(Default::default);
                match role {
                    Role::Count => summary.sample_count = Some(go_f64_to_u64(v)),
                    Role::Sum => summary.sample_sum = Some(v),
                    Role::Plain if !special.is_nan() => summary.quantile.push(Quantile {
                        quantile: Some(special),
                        value: Some(v),
                    }),
                    Role::Plain => {}
                }
            }
            MetricType::Histogram => {
                let histogram = metric.histogram.get_or_insert_with(Default::default);
                match role {
                    Role::Count => histogram.sample_count = Some(go_f64_to_u64(v)),
                    Role::Sum => histogram.sample_sum = Some(v),
                    Role::Plain if !special.is_nan() => histogram.bucket.push(Bucket {
                        cumulative_count: Some(go_f64_to_u64(v)),
                        upper_bound: Some(special),
                        ..Default::default()
                    }),
                    Role::Plain => {}
                }
            }
            // Go records "unexpected type" here, but the error is overwritten by the next
            // read before anyone sees it: the sample is kept without a value.
            MetricType::GaugeHistogram => {}
        }
        if self.cur == b'\n' {
            return Ok(());
        }

        self.skip_blanks()?;
        let token = self.token_until_blank()?;
        let Some(ts) = parse_go_int(token) else {
            return Err(self.error(format!(
                "expected integer as timestamp, got {}",
                go_quote(token)
            )));
        };
        self.families[fi].metrics[mi].timestamp_ms = Some(ts);
        if self.cur == b'\n' {
            return Ok(());
        }
        let rest = self.rest_of_line_without_backslashes()?;
        if !rest.is_empty() {
            return Err(self.error(format!(
                "spurious string after timestamp: {}",
                go_quote(&rest)
            )));
        }
        Ok(())
    }
}

#[inline]
fn memchr_newline(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// Go's `fmt.Sprintf("%q", s)` for a string holding arbitrary bytes (`strconv.Quote`).
fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped_rune(&mut out, c, '"');
        }
        for &b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprintf("%q", b)` for a `byte`, which quotes the rune U+00XX: `'x'`.
fn go_quote_byte(b: u8) -> String {
    let mut out = String::with_capacity(4);
    out.push('\'');
    push_escaped_rune(&mut out, char::from(b), '\'');
    out.push('\'');
    out
}

/// strconv's `appendEscapedRune` (not ASCII-only, not graphic-only).
fn push_escaped_rune(out: &mut String, c: char, quote: char) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if go_is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let r = c as u32;
            if r < 0x20 || r == 0x7f {
                let _ = write!(out, "\\x{r:02x}");
            } else if r < 0x10000 {
                let _ = write!(out, "\\u{r:04x}");
            } else {
                let _ = write!(out, "\\U{r:08x}");
            }
        }
    }
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020.
fn go_is_print(c: char) -> bool {
    let r = c as u32;
    if r < 0x80 {
        return (0x20..=0x7E).contains(&r);
    }
    fn in_ranges<T: Copy + Ord>(ranges: &[(T, T)], r: T) -> bool {
        let i = ranges.partition_point(|&(_, hi)| hi < r);
        i < ranges.len() && ranges[i].0 <= r
    }
    match u16::try_from(r) {
        Ok(r) => in_ranges(&PRINT_RANGES16, r),
        Err(_) => in_ranges(&PRINT_RANGES32, r),
    }
}

// The ranges of runes >= U+0080 that Go's `strconv.IsPrint` accepts (letters, marks, numbers,
// punctuation, symbols), as inclusive pairs. Extracted from the `%q` output of the Pushgateway
// 1.5.1 binary (Go 1.19, Unicode 13.0.0) over all code points, so that quoted tokens in error
// messages match it exactly.
#[rustfmt::skip]
static PRINT_RANGES16: [(u16, u16); 348] = [
    (0x00a1, 0x00ac), (0x00ae, 0x0377), (0x037a, 0x037f), (0x0384, 0x038a), (0x038c, 0x038c), (0x038e, 0x03a1),
    (0x03a3, 0x052f), (0x0531, 0x0556), (0x0559, 0x058a), (0x058d, 0x058f), (0x0591, 0x05c7), (0x05d0, 0x05ea),
    (0x05ef, 0x05f4), (0x0606, 0x061b), (0x061e, 0x06dc), (0x06de, 0x070d), (0x0710, 0x074a), (0x074d, 0x07b1),
    (0x07c0, 0x07fa), (0x07fd, 0x082d), (0x0830, 0x083e), (0x0840, 0x085b), (0x085e, 0x085e), (0x0860, 0x086a),
    (0x08a0, 0x08b4), (0x08b6, 0x08c7), (0x08d3, 0x08e1), (0x08e3, 0x0983), (0x0985, 0x098c), (0x098f, 0x0990),
    (0x0993, 0x09a8), (0x09aa, 0x09b0), (0x09b2, 0x09b2), (0x09b6, 0x09b9), (0x09bc, 0x09c4), (0x09c7, 0x09c8),
    (0x09cb, 0x09ce), (0x09d7, 0x09d7), (0x09dc, 0x09dd), (0x09df, 0x09e3), (0x09e6, 0x09fe), (0x0a01, 0x0a03),
    (0x0a05, 0x0a0a), (0x0a0f, 0x0a10), (0x0a13, 0x0a28), (0x0a2a, 0x0a30), (0x0a32, 0x0a33), (0x0a35, 0x0a36),
    (0x0a38, 0x0a39), (0x0a3c, 0x0a3c), (0x0a3e, 0x0a42), (0x0a47, 0x0a48), (0x0a4b, 0x0a4d), (0x0a51, 0x0a51),
    (0x0a59, 0x0a5c), (0x0a5e, 0x0a5e), (0x0a66, 0x0a76), (0x0a81, 0x0a83), (0x0a85, 0x0a8d), (0x0a8f, 0x0a91),
    (0x0a93, 0x0aa8), (0x0aaa, 0x0ab0), (0x0ab2, 0x0ab3), (0x0ab5, 0x0ab9), (0x0abc, 0x0ac5), (0x0ac7, 0x0ac9),
    (0x0acb, 0x0acd), (0x0ad0, 0x0ad0), (0x0ae0, 0x0ae3), (0x0ae6, 0x0af1), (0x0af9, 0x0aff), (0x0b01, 0x0b03),
    (0x0b05, 0x0b0c), (0x0b0f, 0x0b10), (0x0b13, 0x0b28), (0x0b2a, 0x0b30), (0x0b32, 0x0b33), (0x0b35, 0x0b39),
    (0x0b3c, 0x0b44), (0x0b47, 0x0b48), (0x0b4b, 0x0b4d), (0x0b55, 0x0b57), (0x0b5c, 0x0b5d), (0x0b5f, 0x0b63),
    (0x0b66, 0x0b77), (0x0b82, 0x0b83), (0x0b85, 0x0b8a), (0x0b8e, 0x0b90), (0x0b92, 0x0b95), (0x0b99, 0x0b9a),
    (0x0b9c, 0x0b9c), (0x0b9e, 0x0b9f), (0x0ba3, 0x0ba4), (0x0ba8, 0x0baa), (0x0bae, 0x0bb9), (0x0bbe, 0x0bc2),
    (0x0bc6, 0x0bc8), (0x0bca, 0x0bcd), (0x0bd0, 0x0bd0), (0x0bd7, 0x0bd7), (0x0be6, 0x0bfa), (0x0c00, 0x0c0c),
    (0x0c0e, 0x0c10), (0x0c12, 0x0c28), (0x0c2a, 0x0c39), (0x0c3d, 0x0c44), (0x0c46, 0x0c48), (0x0c4a, 0x0c4d),
    (0x0c55, 0x0c56), (0x0c58, 0x0c5a), (0x0c60, 0x0c63), (0x0c66, 0x0c6f), (0x0c77, 0x0c8c), (0x0c8e, 0x0c90),
    (0x0c92, 0x0ca8), (0x0caa, 0x0cb3), (0x0cb5, 0x0cb9), (0x0cbc, 0x0cc4), (0x0cc6, 0x0cc8), (0x0cca, 0x0ccd),
    (0x0cd5, 0x0cd6), (0x0cde, 0x0cde), (0x0ce0, 0x0ce3), (0x0ce6, 0x0cef), (0x0cf1, 0x0cf2), (0x0d00, 0x0d0c),
    (0x0d0e, 0x0d10), (0x0d12, 0x0d44), (0x0d46, 0x0d48), (0x0d4a, 0x0d4f), (0x0d54, 0x0d63), (0x0d66, 0x0d7f),
    (0x0d81, 0x0d83), (0x0d85, 0x0d96), (0x0d9a, 0x0db1), (0x0db3, 0x0dbb), (0x0dbd, 0x0dbd), (0x0dc0, 0x0dc6),
    (0x0dca, 0x0dca), (0x0dcf, 0x0dd4), (0x0dd6, 0x0dd6), (0x0dd8, 0x0ddf), (0x0de6, 0x0def), (0x0df2, 0x0df4),
    (0x0e01, 0x0e3a), (0x0e3f, 0x0e5b), (0x0e81, 0x0e82), (0x0e84, 0x0e84), (0x0e86, 0x0e8a), (0x0e8c, 0x0ea3),
    (0x0ea5, 0x0ea5), (0x0ea7, 0x0ebd), (0x0ec0, 0x0ec4), (0x0ec6, 0x0ec6), (0x0ec8, 0x0ecd), (0x0ed0, 0x0ed9),
    (0x0edc, 0x0edf), (0x0f00, 0x0f47), (0x0f49, 0x0f6c), (0x0f71, 0x0f97), (0x0f99, 0x0fbc), (0x0fbe, 0x0fcc),
    (0x0fce, 0x0fda), (0x1000, 0x10c5), (0x10c7, 0x10c7), (0x10cd, 0x10cd), (0x10d0, 0x1248), (0x124a, 0x124d),
    (0x1250, 0x1256), (0x1258, 0x1258), (0x125a, 0x125d), (0x1260, 0x1288), (0x128a, 0x128d), (0x1290, 0x12b0),
    (0x12b2, 0x12b5), (0x12b8, 0x12be), (0x12c0, 0x12c0), (0x12c2, 0x12c5), (0x12c8, 0x12d6), (0x12d8, 0x1310),
    (0x1312, 0x1315), (0x1318, 0x135a), (0x135d, 0x137c), (0x1380, 0x1399), (0x13a0, 0x13f5), (0x13f8, 0x13fd),
    (0x1400, 0x167f), (0x1681, 0x169c), (0x16a0, 0x16f8), (0x1700, 0x170c), (0x170e, 0x1714), (0x1720, 0x1736),
    (0x1740, 0x1753), (0x1760, 0x176c), (0x176e, 0x1770), (0x1772, 0x1773), (0x1780, 0x17dd), (0x17e0, 0x17e9),
    (0x17f0, 0x17f9), (0x1800, 0x180d), (0x1810, 0x1819), (0x1820, 0x1878), (0x1880, 0x18aa), (0x18b0, 0x18f5),
    (0x1900, 0x191e), (0x1920, 0x192b), (0x1930, 0x193b), (0x1940, 0x1940), (0x1944, 0x196d), (0x1970, 0x1974),
    (0x1980, 0x19ab), (0x19b0, 0x19c9), (0x19d0, 0x19da), (0x19de, 0x1a1b), (0x1a1e, 0x1a5e), (0x1a60, 0x1a7c),
    (0x1a7f, 0x1a89), (0x1a90, 0x1a99), (0x1aa0, 0x1aad), (0x1ab0, 0x1ac0), (0x1b00, 0x1b4b), (0x1b50, 0x1b7c),
    (0x1b80, 0x1bf3), (0x1bfc, 0x1c37), (0x1c3b, 0x1c49), (0x1c4d, 0x1c88), (0x1c90, 0x1cba), (0x1cbd, 0x1cc7),
    (0x1cd0, 0x1cfa), (0x1d00, 0x1df9), (0x1dfb, 0x1f15), (0x1f18, 0x1f1d), (0x1f20, 0x1f45), (0x1f48, 0x1f4d),
    (0x1f50, 0x1f57), (0x1f59, 0x1f59), (0x1f5b, 0x1f5b), (0x1f5d, 0x1f5d), (0x1f5f, 0x1f7d), (0x1f80, 0x1fb4),
    (0x1fb6, 0x1fc4), (0x1fc6, 0x1fd3), (0x1fd6, 0x1fdb), (0x1fdd, 0x1fef), (0x1ff2, 0x1ff4), (0x1ff6, 0x1ffe),
    (0x2010, 0x2027), (0x2030, 0x205e), (0x2070, 0x2071), (0x2074, 0x208e), (0x2090, 0x209c), (0x20a0, 0x20bf),
    (0x20d0, 0x20f0), (0x2100, 0x218b), (0x2190, 0x2426), (0x2440, 0x244a), (0x2460, 0x2b73), (0x2b76, 0x2b95),
    (0x2b97, 0x2c2e), (0x2c30, 0x2c5e), (0x2c60, 0x2cf3), (0x2cf9, 0x2d25), (0x2d27, 0x2d27), (0x2d2d, 0x2d2d),
    (0x2d30, 0x2d67), (0x2d6f, 0x2d70), (0x2d7f, 0x2d96), (0x2da0, 0x2da6), (0x2da8, 0x2dae), (0x2db0, 0x2db6),
    (0x2db8, 0x2dbe), (0x2dc0, 0x2dc6), (0x2dc8, 0x2dce), (0x2dd0, 0x2dd6), (0x2dd8, 0x2dde), (0x2de0, 0x2e52),
    (0x2e80, 0x2e99), (0x2e9b, 0x2ef3), (0x2f00, 0x2fd5), (0x2ff0, 0x2ffb), (0x3001, 0x303f), (0x3041, 0x3096),
    (0x3099, 0x30ff), (0x3105, 0x312f), (0x3131, 0x318e), (0x3190, 0x31e3), (0x31f0, 0x321e), (0x3220, 0x9ffc),
    (0xa000, 0xa48c), (0xa490, 0xa4c6), (0xa4d0, 0xa62b), (0xa640, 0xa6f7), (0xa700, 0xa7bf), (0xa7c2, 0xa7ca),
    (0xa7f5, 0xa82c), (0xa830, 0xa839), (0xa840, 0xa877), (0xa880, 0xa8c5), (0xa8ce, 0xa8d9), (0xa8e0, 0xa953),
    (0xa95f, 0xa97c), (0xa980, 0xa9cd), (0xa9cf, 0xa9d9), (0xa9de, 0xa9fe), (0xaa00, 0xaa36), (0xaa40, 0xaa4d),
    (0xaa50, 0xaa59), (0xaa5c, 0xaac2), (0xaadb, 0xaaf6), (0xab01, 0xab06), (0xab09, 0xab0e), (0xab11, 0xab16),
    (0xab20, 0xab26), (0xab28, 0xab2e), (0xab30, 0xab6b), (0xab70, 0xabed), (0xabf0, 0xabf9), (0xac00, 0xd7a3),
    (0xd7b0, 0xd7c6), (0xd7cb, 0xd7fb), (0xf900, 0xfa6d), (0xfa70, 0xfad9), (0xfb00, 0xfb06), (0xfb13, 0xfb17),
    (0xfb1d, 0xfb36), (0xfb38, 0xfb3c), (0xfb3e, 0xfb3e), (0xfb40, 0xfb41), (0xfb43, 0xfb44), (0xfb46, 0xfbc1),
    (0xfbd3, 0xfd3f), (0xfd50, 0xfd8f), (0xfd92, 0xfdc7), (0xfdf0, 0xfdfd), (0xfe00, 0xfe19), (0xfe20, 0xfe52),
    (0xfe54, 0xfe66), (0xfe68, 0xfe6b), (0xfe70, 0xfe74), (0xfe76, 0xfefc), (0xff01, 0xffbe), (0xffc2, 0xffc7),
    (0xffca, 0xffcf), (0xffd2, 0xffd7), (0xffda, 0xffdc), (0xffe0, 0xffe6), (0xffe8, 0xffee), (0xfffc, 0xfffd),
];

#[rustfmt::skip]
static PRINT_RANGES32: [(u32, u32); 329] = [
    (0x10000, 0x1000b), (0x1000d, 0x10026), (0x10028, 0x1003a), (0x1003c, 0x1003d), (0x1003f, 0x1004d),
    (0x10050, 0x1005d), (0x10080, 0x100fa), (0x10100, 0x10102), (0x10107, 0x10133), (0x10137, 0x1018e),
    (0x10190, 0x1019c), (0x101a0, 0x101a0), (0x101d0, 0x101fd), (0x10280, 0x1029c), (0x102a0, 0x102d0),
    (0x102e0, 0x102fb), (0x10300, 0x10323), (0x1032d, 0x1034a), (0x10350, 0x1037a), (0x10380, 0x1039d),
    (0x1039f, 0x103c3), (0x103c8, 0x103d5), (0x10400, 0x1049d), (0x104a0, 0x104a9), (0x104b0, 0x104d3),
    (0x104d8, 0x104fb), (0x10500, 0x10527), (0x10530, 0x10563), (0x1056f, 0x1056f), (0x10600, 0x10736),
    (0x10740, 0x10755), (0x10760, 0x10767), (0x10800, 0x10805), (0x10808, 0x10808), (0x1080a, 0x10835),
    (0x10837, 0x10838), (0x1083c, 0x1083c), (0x1083f, 0x10855), (0x10857, 0x1089e), (0x108a7, 0x108af),
    (0x108e0, 0x108f2), (0x108f4, 0x108f5), (0x108fb, 0x1091b), (0x1091f, 0x10939), (0x1093f, 0x1093f),
    (0x10980, 0x109b7), (0x109bc, 0x109cf), (0x109d2, 0x10a03), (0x10a05, 0x10a06), (0x10a0c, 0x10a13),
    (0x10a15, 0x10a17), (0x10a19, 0x10a35), (0x10a38, 0x10a3a), (0x10a3f, 0x10a48), (0x10a50, 0x10a58),
    (0x10a60, 0x10a9f), (0x10ac0, 0x10ae6), (0x10aeb, 0x10af6), (0x10b00, 0x10b35), (0x10b39, 0x10b55),
    (0x10b58, 0x10b72), (0x10b78, 0x10b91), (0x10b99, 0x10b9c), (0x10ba9, 0x10baf), (0x10c00, 0x10c48),
    (0x10c80, 0x10cb2), (0x10cc0, 0x10cf2), (0x10cfa, 0x10d27), (0x10d30, 0x10d39), (0x10e60, 0x10e7e),
    (0x10e80, 0x10ea9), (0x10eab, 0x10ead), (0x10eb0, 0x10eb1), (0x10f00, 0x10f27), (0x10f30, 0x10f59),
    (0x10fb0, 0x10fcb), (0x10fe0, 0x10ff6), (0x11000, 0x1104d), (0x11052, 0x1106f), (0x1107f, 0x110bc),
    (0x110be, 0x110c1), (0x110d0, 0x110e8), (0x110f0, 0x110f9), (0x11100, 0x11134), (0x11136, 0x11147),
    (0x11150, 0x11176), (0x11180, 0x111df), (0x111e1, 0x111f4), (0x11200, 0x11211), (0x11213, 0x1123e),
    (0x11280, 0x11286), (0x11288, 0x11288), (0x1128a, 0x1128d), (0x1128f, 0x1129d), (0x1129f, 0x112a9),
    (0x112b0, 0x112ea), (0x112f0, 0x112f9), (0x11300, 0x11303), (0x11305, 0x1130c), (0x1130f, 0x11310),
    (0x11313, 0x11328), (0x1132a, 0x11330), (0x11332, 0x11333), (0x11335, 0x11339), (0x1133b, 0x11344),
    (0x11347, 0x11348), (0x1134b, 0x1134d), (0x11350, 0x11350), (0x11357, 0x11357), (0x1135d, 0x11363),
    (0x11366, 0x1136c), (0x11370, 0x11374), (0x11400, 0x1145b), (0x1145d, 0x11461), (0x11480, 0x114c7),
    (0x114d0, 0x114d9), (0x11580, 0x115b5), (0x115b8, 0x115dd), (0x11600, 0x11644), (0x11650, 0x11659),
    (0x11660, 0x1166c), (0x11680, 0x116b8), (0x116c0, 0x116c9), (0x11700, 0x1171a), (0x1171d, 0x1172b),
    (0x11730, 0x1173f), (0x11800, 0x1183b), (0x118a0, 0x118f2), (0x118ff, 0x11906), (0x11909, 0x11909),
    (0x1190c, 0x11913), (0x11915, 0x11916), (0x11918, 0x11935), (0x11937, 0x11938), (0x1193b, 0x11946),
    (0x11950, 0x11959), (0x119a0, 0x119a7), (0x119aa, 0x119d7), (0x119da, 0x119e4), (0x11a00, 0x11a47),
    (0x11a50, 0x11aa2), (0x11ac0, 0x11af8), (0x11c00, 0x11c08), (0x11c0a, 0x11c36), (0x11c38, 0x11c45),
    (0x11c50, 0x11c6c), (0x11c70, 0x11c8f), (0x11c92, 0x11ca7), (0x11ca9, 0x11cb6), (0x11d00, 0x11d06),
    (0x11d08, 0x11d09), (0x11d0b, 0x11d36), (0x11d3a, 0x11d3a), (0x11d3c, 0x11d3d), (0x11d3f, 0x11d47),
    (0x11d50, 0x11d59), (0x11d60, 0x11d65), (0x11d67, 0x11d68), (0x11d6a, 0x11d8e), (0x11d90, 0x11d91),
    (0x11d93, 0x11d98), (0x11da0, 0x11da9), (0x11ee0, 0x11ef8), (0x11fb0, 0x11fb0), (0x11fc0, 0x11ff1),
    (0x11fff, 0x12399), (0x12400, 0x1246e), (0x12470, 0x12474), (0x12480, 0x12543), (0x13000, 0x1342e),
    (0x14400, 0x14646), (0x16800, 0x16a38), (0x16a40, 0x16a5e), (0x16a60, 0x16a69), (0x16a6e, 0x16a6f),
    (0x16ad0, 0x16aed), (0x16af0, 0x16af5), (0x16b00, 0x16b45), (0x16b50, 0x16b59), (0x16b5b, 0x16b61),
    (0x16b63, 0x16b77), (0x16b7d, 0x16b8f), (0x16e40, 0x16e9a), (0x16f00, 0x16f4a), (0x16f4f, 0x16f87),
    (0x16f8f, 0x16f9f), (0x16fe0, 0x16fe4), (0x16ff0, 0x16ff1), (0x17000, 0x187f7), (0x18800, 0x18cd5),
    (0x18d00, 0x18d08), (0x1b000, 0x1b11e), (0x1b150, 0x1b152), (0x1b164, 0x1b167), (0x1b170, 0x1b2fb),
    (0x1bc00, 0x1bc6a), (0x1bc70, 0x1bc7c), (0x1bc80, 0x1bc88), (0x1bc90, 0x1bc99), (0x1bc9c, 0x1bc9f),
    (0x1d000, 0x1d0f5), (0x1d100, 0x1d126), (0x1d129, 0x1d172), (0x1d17b, 0x1d1e8), (0x1d200, 0x1d245),
    (0x1d2e0, 0x1d2f3), (0x1d300, 0x1d356), (0x1d360, 0x1d378), (0x1d400, 0x1d454), (0x1d456, 0x1d49c),
    (0x1d49e, 0x1d49f), (0x1d4a2, 0x1d4a2), (0x1d4a5, 0x1d4a6), (0x1d4a9, 0x1d4ac), (0x1d4ae, 0x1d4b9),
    (0x1d4bb, 0x1d4bb), (0x1d4bd, 0x1d4c3), (0x1d4c5, 0x1d505), (0x1d507, 0x1d50a), (0x1d50d, 0x1d514),
    (0x1d516, 0x1d51c), (0x1d51e, 0x1d539), (0x1d53b, 0x1d53e), (0x1d540, 0x1d544), (0x1d546, 0x1d546),
    (0x1d54a, 0x1d550), (0x1d552, 0x1d6a5), (0x1d6a8, 0x1d7cb), (0x1d7ce, 0x1da8b), (0x1da9b, 0x1da9f),
    (0x1daa1, 0x1daaf), (0x1e000, 0x1e006), (0x1e008, 0x1e018), (0x1e01b, 0x1e021), (0x1e023, 0x1e024),
    (0x1e026, 0x1e02a), (0x1e100, 0x1e12c), (0x1e130, 0x1e13d), (0x1e140, 0x1e149), (0x1e14e, 0x1e14f),
    (0x1e2c0, 0x1e2f9), (0x1e2ff, 0x1e2ff), (0x1e800, 0x1e8c4), (0x1e8c7, 0x1e8d6), (0x1e900, 0x1e94b),
    (0x1e950, 0x1e959), (0x1e95e, 0x1e95f), (0x1ec71, 0x1ecb4), (0x1ed01, 0x1ed3d), (0x1ee00, 0x1ee03),
    (0x1ee05, 0x1ee1f), (0x1ee21, 0x1ee22), (0x1ee24, 0x1ee24), (0x1ee27, 0x1ee27), (0x1ee29, 0x1ee32),
    (0x1ee34, 0x1ee37), (0x1ee39, 0x1ee39), (0x1ee3b, 0x1ee3b), (0x1ee42, 0x1ee42), (0x1ee47, 0x1ee47),
    (0x1ee49, 0x1ee49), (0x1ee4b, 0x1ee4b), (0x1ee4d, 0x1ee4f), (0x1ee51, 0x1ee52), (0x1ee54, 0x1ee54),
    (0x1ee57, 0x1ee57), (0x1ee59, 0x1ee59), (0x1ee5b, 0x1ee5b), (0x1ee5d, 0x1ee5d), (0x1ee5f, 0x1ee5f),
    (0x1ee61, 0x1ee62), (0x1ee64, 0x1ee64), (0x1ee67, 0x1ee6a), (0x1ee6c, 0x1ee72), (0x1ee74, 0x1ee77),
    (0x1ee79, 0x1ee7c), (0x1ee7e, 0x1ee7e), (0x1ee80, 0x1ee89), (0x1ee8b, 0x1ee9b), (0x1eea1, 0x1eea3),
    (0x1eea5, 0x1eea9), (0x1eeab, 0x1eebb), (0x1eef0, 0x1eef1), (0x1f000, 0x1f02b), (0x1f030, 0x1f093),
    (0x1f0a0, 0x1f0ae), (0x1f0b1, 0x1f0bf), (0x1f0c1, 0x1f0cf), (0x1f0d1, 0x1f0f5), (0x1f100, 0x1f1ad),
    (0x1f1e6, 0x1f202), (0x1f210, 0x1f23b), (0x1f240, 0x1f248), (0x1f250, 0x1f251), (0x1f260, 0x1f265),
    (0x1f300, 0x1f6d7), (0x1f6e0, 0x1f6ec), (0x1f6f0, 0x1f6fc), (0x1f700, 0x1f773), (0x1f780, 0x1f7d8),
    (0x1f7e0, 0x1f7eb), (0x1f800, 0x1f80b), (0x1f810, 0x1f847), (0x1f850, 0x1f859), (0x1f860, 0x1f887),
    (0x1f890, 0x1f8ad), (0x1f8b0, 0x1f8b1), (0x1f900, 0x1f978), (0x1f97a, 0x1f9cb), (0x1f9cd, 0x1fa53),
    (0x1fa60, 0x1fa6d), (0x1fa70, 0x1fa74), (0x1fa78, 0x1fa7a), (0x1fa80, 0x1fa86), (0x1fa90, 0x1faa8),
    (0x1fab0, 0x1fab6), (0x1fac0, 0x1fac2), (0x1fad0, 0x1fad6), (0x1fb00, 0x1fb92), (0x1fb94, 0x1fbca),
    (0x1fbf0, 0x1fbf9), (0x20000, 0x2a6dd), (0x2a700, 0x2b734), (0x2b740, 0x2b81d), (0x2b820, 0x2cea1),
    (0x2ceb0, 0x2ebe0), (0x2f800, 0x2fa1d), (0x30000, 0x3134a), (0xe0100, 0xe01ef),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(name: &str, value: &str) -> LabelPair {
        LabelPair::new(name, value)
    }

    fn family(name: &str, help: Option<&str>, t: MetricType, metric: Vec<Metric>) -> MetricFamily {
        MetricFamily {
            name: Some(name.to_owned()),
            help: help.map(str::to_owned),
            r#type: Some(t as i32),
            metric,
            unit: None,
        }
    }

    fn untyped(labels: Vec<LabelPair>, v: f64, ts: Option<i64>) -> Metric {
        Metric {
            label: labels,
            untyped: Some(Untyped { value: Some(v) }),
            timestamp_ms: ts,
            ..Default::default()
        }
    }

    fn gauge(labels: Vec<LabelPair>, v: f64, ts: Option<i64>) -> Metric {
        Metric {
            label: labels,
            gauge: Some(Gauge { value: Some(v) }),
            timestamp_ms: ts,
            ..Default::default()
        }
    }

    fn counter(labels: Vec<LabelPair>, v: f64, ts: Option<i64>) -> Metric {
        Metric {
            label: labels,
            counter: Some(Box::new(Counter {
                value: Some(v),
                ..Default::default()
            })),
            timestamp_ms: ts,
            ..Default::default()
        }
    }

    fn summary(
        labels: Vec<LabelPair>,
        count: Option<u64>,
        sum: Option<f64>,
        quantiles: &[(f64, f64)],
        ts: Option<i64>,
    ) -> Metric {
        Metric {
            label: labels,
            summary: Some(Box::new(Summary {
                sample_count: count,
                sample_sum: sum,
                quantile: quantiles
                    .iter()
                    .map(|&(q, v)| Quantile {
                        quantile: Some(q),
                        value: Some(v),
                    })
                    .collect(),
                ..Default::default()
            })),
            timestamp_ms: ts,
            ..Default::default()
        }
    }

    fn histogram(
        labels: Vec<LabelPair>,
        count: Option<u64>,
        sum: Option<f64>,
        buckets: &[(f64, u64)],
    ) -> Metric {
        Metric {
            label: labels,
            histogram: Some(Box::new(Histogram {
                sample_count: count,
                sample_sum: sum,
                bucket: buckets
                    .iter()
                    .map(|&(le, c)| Bucket {
                        upper_bound: Some(le),
                        cumulative_count: Some(c),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// Compares as Debug strings (so that NaN equals NaN), independent of family order.
    fn assert_families(body: &str, mut expected: Vec<MetricFamily>) {
        let mut got = parse_text(body.as_bytes())
            .unwrap_or_else(|e| panic!("unexpected error for {body:?}: {e}"));
        got.sort_by(|a, b| a.name.cmp(&b.name));
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            format!("{got:#?}"),
            format!("{expected:#?}"),
            "body: {body:?}"
        );
    }

    fn parse_ok(body: &[u8]) -> Vec<MetricFamily> {
        parse_text(body).unwrap_or_else(|e| panic!("unexpected error for {body:?}: {e}"))
    }

    fn one(body: &str) -> MetricFamily {
        let mut f = parse_ok(body.as_bytes());
        assert_eq!(f.len(), 1, "{f:?}");
        f.pop().unwrap()
    }

    fn err(body: &[u8]) -> String {
        match parse_text(body) {
            Ok(f) => panic!("expected an error for {body:?}, got {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_err(body: &str, line: usize, msg: &str) {
        assert_eq!(
            err(body.as_bytes()),
            format!("text format parsing error in line {line}: {msg}"),
            "body: {body:?}"
        );
    }

    // ---- Accepted input (Go's text_parse_test.go scenarios first). ----

    #[test]
    fn empty_input() {
        assert!(parse_ok(b"").is_empty());
        assert!(parse_ok(b"\n\n").is_empty());
        assert!(parse_ok(b"   \n\t\n  ").is_empty());
    }

    #[test]
    fn go_scenario_minimal() {
        assert_families(
            "
minimal_metric 1.234
another_metric -3e3 103948
# Even that:
no_labels{} 3
# HELP line for non-existing metric will be ignored.
",
            vec![
                family(
                    "minimal_metric",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![], 1.234, None)],
                ),
                family(
                    "another_metric",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![], -3e3, Some(103948))],
                ),
                family(
                    "no_labels",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![], 3.0, None)],
                ),
            ],
        );
    }

    #[test]
    fn go_scenario_counters_gauges_whitespace_escapes() {
        assert_families(
            "
# A normal comment.
#
# TYPE name counter
name{labelname=\"val1\",basename=\"basevalue\"} NaN
name {labelname=\"val2\",basename=\"base\\\"v\\\\al\\nue\"} 0.23 1234567890
# HELP name two-line\\n doc  str\\\\ing

 # HELP  name2  \tdoc str\"ing 2
  #    TYPE    name2 gauge
name2{labelname=\"val2\"\t,basename   =   \"basevalue2\"\t\t} +Inf 54321
name2{ labelname = \"val1\" , }-Inf
",
            vec![
                family(
                    "name",
                    Some("two-line\n doc  str\\ing"),
                    MetricType::Counter,
                    vec![
                        counter(
                            vec![lp("labelname", "val1"), lp("basename", "basevalue")],
                            f64::NAN,
                            None,
                        ),
                        counter(
                            vec![lp("labelname", "val2"), lp("basename", "base\"v\\al\nue")],
                            0.23,
                            Some(1234567890),
                        ),
                    ],
                ),
                family(
                    "name2",
                    Some("doc str\"ing 2"),
                    MetricType::Gauge,
                    vec![
                        gauge(
                            vec![lp("labelname", "val2"), lp("basename", "basevalue2")],
                            f64::INFINITY,
                            Some(54321),
                        ),
                        gauge(vec![lp("labelname", "val1")], f64::NEG_INFINITY, None),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn go_scenario_evil_summary() {
        assert_families(
            "
# TYPE my_summary summary
my_summary{n1=\"val1\",quantile=\"0.5\"} 110
decoy -1 -2
my_summary{n1=\"val1\",quantile=\"0.9\"} 140 1
my_summary_count{n1=\"val1\"} 42
# Latest timestamp wins in case of a summary.
my_summary_sum{n1=\"val1\"} 4711 2
fake_sum{n1=\"val1\"} 2001
# TYPE another_summary summary
another_summary_count{n2=\"val2\",n1=\"val1\"} 20
my_summary_count{n2=\"val2\",n1=\"val1\"} 5 5
another_summary{n1=\"val1\",n2=\"val2\",quantile=\".3\"} -1.2
my_summary_sum{n1=\"val2\"} 08 15
my_summary{n1=\"val3\", quantile=\"0.2\"} 4711
  my_summary{n1=\"val1\",n2=\"val2\",quantile=\"-12.34\",} NaN
# some
# funny comments
# HELP 
# HELP
# HELP my_summary
# HELP my_summary 
",
            vec![
                family(
                    "fake_sum",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![lp("n1", "val1")], 2001.0, None)],
                ),
                family(
                    "decoy",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![], -1.0, Some(-2))],
                ),
                family(
                    "my_summary",
                    None,
                    MetricType::Summary,
                    vec![
                        summary(
                            vec![lp("n1", "val1")],
                            Some(42),
                            Some(4711.0),
                            &[(0.5, 110.0), (0.9, 140.0)],
                            Some(2),
                        ),
                        summary(
                            vec![lp("n2", "val2"), lp("n1", "val1")],
                            Some(5),
                            None,
                            &[(-12.34, f64::NAN)],
                            Some(5),
                        ),
                        summary(vec![lp("n1", "val2")], None, Some(8.0), &[], Some(15)),
                        summary(vec![lp("n1", "val3")], None, None, &[(0.2, 4711.0)], None),
                    ],
                ),
                family(
                    "another_summary",
                    None,
                    MetricType::Summary,
                    vec![summary(
                        vec![lp("n2", "val2"), lp("n1", "val1")],
                        Some(20),
                        None,
                        &[(0.3, -1.2)],
                        None,
                    )],
                ),
            ],
        );
    }

    #[test]
    fn go_scenario_histogram() {
        assert_families(
            "
# HELP request_duration_microseconds The response latency.
# TYPE request_duration_microseconds histogram
request_duration_microseconds_bucket{le=\"100\"} 123
request_duration_microseconds_bucket{le=\"120\"} 412
request_duration_microseconds_bucket{le=\"144\"} 592
request_duration_microseconds_bucket{le=\"172.8\"} 1524
request_duration_microseconds_bucket{le=\"+Inf\"} 2693
request_duration_microseconds_sum 1.7560473e+06
request_duration_microseconds_count 2693
",
            vec![family(
                "request_duration_microseconds",
                Some("The response latency."),
                MetricType::Histogram,
                vec![histogram(
                    vec![],
                    Some(2693),
                    Some(1756047.3),
                    &[
                        (100.0, 123),
                        (120.0, 412),
                        (144.0, 592),
                        (172.8, 1524),
                        (f64::INFINITY, 2693),
                    ],
                )],
            )],
        );
    }

    #[test]
    fn histogram_with_labels_interleaved() {
        assert_families(
            "# TYPE h histogram
h_bucket{a=\"1\",le=\"1\"} 1
h_bucket{le=\"1\",a=\"2\"} 5
h_sum{a=\"1\"} 0.5
other 3
h_bucket{a=\"1\",le=\"+Inf\"} 2
h_count{a=\"1\"} 2
h{a=\"2\",le=\"2\"} 6
h_bucket{a=\"2\"} 99
",
            vec![
                family(
                    "h",
                    None,
                    MetricType::Histogram,
                    vec![
                        histogram(
                            vec![lp("a", "1")],
                            Some(2),
                            Some(0.5),
                            &[(1.0, 1), (f64::INFINITY, 2)],
                        ),
                        // `h{le=..}` adds a bucket too; a bucket line without `le` adds nothing.
                        histogram(vec![lp("a", "2")], None, None, &[(1.0, 5), (2.0, 6)]),
                    ],
                ),
                family(
                    "other",
                    None,
                    MetricType::Untyped,
                    vec![untyped(vec![], 3.0, None)],
                ),
            ],
        );
    }

    #[test]
    fn hash_type_without_space_and_type_case() {
        let f = one("#TYPE foo gauge\nfoo 1\n");
        assert_eq!(f.r#type, Some(MetricType::Gauge as i32));
        let f = one("#\tHELP foo bar\nfoo 1\n");
        assert_eq!(f.help.as_deref(), Some("bar"));
        for (t, want) in [
            ("Gauge", MetricType::Gauge),
            ("COUNTER", MetricType::Counter),
            ("cOuNtEr", MetricType::Counter),
            ("UnTyped", MetricType::Untyped),
            ("gau\\ge", MetricType::Gauge), // backslashes are dropped
            ("\u{17f}ummary", MetricType::Summary), // Go's ToUpper('ſ') == 'S'
            ("h\u{131}stogram", MetricType::Histogram), // Go's ToUpper('ı') == 'I'
            ("gauge_histogram", MetricType::GaugeHistogram),
        ] {
            let f = one(&format!("# TYPE foo {t}\nfoo 1\n"));
            assert_eq!(f.r#type, Some(want as i32), "{t}");
        }
    }

    #[test]
    fn gauge_histogram_samples_have_no_value() {
        let f = one("# TYPE foo gauge_histogram\nfoo{a=\"b\"} 1 5\n");
        assert_eq!(f.r#type, Some(MetricType::GaugeHistogram as i32));
        assert_eq!(
            f.metric,
            vec![Metric {
                label: vec![lp("a", "b")],
                timestamp_ms: Some(5),
                ..Default::default()
            }]
        );
        // No _bucket/_sum/_count assembly for gauge histograms.
        let fams = parse_ok(b"# TYPE foo gauge_histogram\nfoo_bucket{le=\"1\"} 1\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name.as_deref(), Some("foo_bucket"));
        assert_eq!(fams[0].metric[0].label, vec![lp("le", "1")]);
        // The value must still be a valid float.
        assert_err(
            "# TYPE foo gauge_histogram\nfoo x\n",
            2,
            "expected float as value, got \"x\"",
        );
    }

    #[test]
    fn label_syntax_variants() {
        let want = vec![lp("a", "b")];
        for body in [
            "foo{a=\"b\",} 1\n",
            "foo{ a = \"b\" } 1\n",
            "foo { a=\"b\" ,} 1\n",
            "foo{\ta\t=\t\"b\"\t,\t}\t1\n",
            "foo{a=\"b\"}1\n",
            "   foo{a=\"b\"} 1\n",
        ] {
            let f = one(body);
            assert_eq!(f.metric[0].label, want, "{body:?}");
            assert_eq!(f.metric[0].untyped, Some(Untyped { value: Some(1.0) }));
        }
        let f = one("foo{} 1\n");
        assert!(f.metric[0].label.is_empty());
        let f = one("foo{a=\"\",_b=\"x\",C9=\"\\\\\\\"\\n\"} 1\n");
        assert_eq!(
            f.metric[0].label,
            vec![lp("a", ""), lp("_b", "x"), lp("C9", "\\\"\n")]
        );
        let f = one("foo{a=\"ü€😀\"} 1\n");
        assert_eq!(f.metric[0].label, vec![lp("a", "ü€😀")]);
        let f = one("a:b:c_d 1\n");
        assert_eq!(f.name.as_deref(), Some("a:b:c_d"));
        let f = one(":x 1\n");
        assert_eq!(f.name.as_deref(), Some(":x"));
    }

    #[test]
    fn float_values() {
        for (s, want) in [
            ("1", 1.0),
            ("+1", 1.0),
            ("-1", -1.0),
            (".5", 0.5),
            ("1.", 1.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("1.5e+2", 150.0),
            ("inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
            ("-INFINITY", f64::NEG_INFINITY),
            ("08", 8.0),
            ("1e-400", 0.0),
            ("0e99999999999999999999", 0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            let f = one(&format!("foo {s}\n"));
            assert_eq!(
                f.metric[0].untyped,
                Some(Untyped { value: Some(want) }),
                "{s}"
            );
        }
        for s in ["nan", "NaN", "nAN"] {
            let f = one(&format!("foo {s}\n"));
            assert!(f.metric[0].untyped.unwrap().value.unwrap().is_nan());
        }
        let f = one("foo -0\n");
        assert!(f.metric[0]
            .untyped
            .unwrap()
            .value
            .unwrap()
            .is_sign_negative());
    }

    #[test]
    fn timestamps() {
        for (s, want) in [
            ("0", 0),
            ("-5", -5),
            ("+5", 5),
            ("0012", 12),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            let f = one(&format!("foo 1 {s}\n"));
            assert_eq!(f.metric[0].timestamp_ms, Some(want), "{s}");
        }
        let f = one("foo 1\t \t42\n");
        assert_eq!(f.metric[0].timestamp_ms, Some(42));
    }

    #[test]
    fn interleaved_samples_merge_into_one_family() {
        assert_families(
            "a 1\nb 2\na{x=\"y\"} 3\n# TYPE c counter\nc 4\nb{z=\"1\"} 5\nc{q=\"r\"} 6\n",
            vec![
                family(
                    "a",
                    None,
                    MetricType::Untyped,
                    vec![
                        untyped(vec![], 1.0, None),
                        untyped(vec![lp("x", "y")], 3.0, None),
                    ],
                ),
                family(
                    "b",
                    None,
                    MetricType::Untyped,
                    vec![
                        untyped(vec![], 2.0, None),
                        untyped(vec![lp("z", "1")], 5.0, None),
                    ],
                ),
                family(
                    "c",
                    None,
                    MetricType::Counter,
                    vec![
                        counter(vec![], 4.0, None),
                        counter(vec![lp("q", "r")], 6.0, None),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn duplicate_samples_are_kept() {
        let f = one("foo{a=\"b\"} 1\nfoo{a=\"b\"} 2\n");
        assert_eq!(f.metric.len(), 2);
    }

    #[test]
    fn families_without_samples_are_dropped() {
        assert!(parse_ok(b"# HELP foo x\n# TYPE foo gauge\n# TYPE bar counter\n").is_empty());
        let fams = parse_ok(b"# HELP foo x\nbar 1\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name.as_deref(), Some("bar"));
    }

    #[test]
    fn comments_and_incomplete_help_type_lines() {
        let f = one(
            "#\n# \n#\t\n#foo\n# foo bar baz\n# HELP\n# HELP \n# TYPE\n# HELP foo\n# TYPE foo \n\
             # help foo x\n# Type foo gauge\n  # indented comment {\"\n foo 1\n",
        );
        assert_eq!(f.help, None);
        assert_eq!(f.r#type, Some(MetricType::Untyped as i32));
    }

    #[test]
    fn help_text() {
        let f = one("# HELP foo  a\\\\b\\nc \"d\"  \t\nfoo 1\n");
        assert_eq!(f.help.as_deref(), Some("a\\b\nc \"d\"  \t"));
        // An empty HELP line creates the family but sets no help.
        let f = one("# HELP foo \n# HELP foo second\nfoo 1\n");
        assert_eq!(f.help.as_deref(), Some("second"));
        // Go keeps invalid UTF-8 in HELP; we replace it.
        let f = one("# HELP foo a\u{ff}b\nfoo 1\n");
        assert_eq!(f.help.as_deref(), Some("a\u{ff}b"));
        let fams = parse_ok(b"# HELP foo a\xffb\nfoo 1\n");
        assert_eq!(fams[0].help.as_deref(), Some("a\u{fffd}b"));
    }

    #[test]
    fn summary_parts_attach_to_base_family() {
        // HELP via a _sum name lands on the summary.
        let f = one("# TYPE s summary\n# HELP s_sum the help\ns_sum 1\n");
        assert_eq!(f.name.as_deref(), Some("s"));
        assert_eq!(f.help.as_deref(), Some("the help"));
        // _bucket does not belong to a summary; _count without the TYPE line is its own family.
        let fams = parse_ok(b"# TYPE s summary\ns_bucket 1\nt_count 2\n");
        let mut names: Vec<_> = fams.iter().map(|f| f.name.clone().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["s_bucket", "t_count"]);
        // A family that exists under the full name wins.
        let fams = parse_ok(b"s_count 1\n# TYPE s summary\ns_count 2\ns{quantile=\"1\"} 3\n");
        assert_eq!(fams.len(), 2);
        // The suffix has to follow something.
        let fams = parse_ok(b"# TYPE _count summary\n_count 1\n");
        assert_eq!(fams[0].metric[0].summary, Some(Box::default()));
    }

    #[test]
    fn summary_and_histogram_counts_use_go_conversion() {
        let f = one("# TYPE s summary\ns_count 1.9\n");
        assert_eq!(f.metric[0].summary.as_ref().unwrap().sample_count, Some(1));
        let f = one("# TYPE s summary\ns_count -1\n");
        assert_eq!(
            f.metric[0].summary.as_ref().unwrap().sample_count,
            Some(u64::MAX)
        );
        let f = one("# TYPE h histogram\nh_bucket{le=\"1\"} 2.9\nh_count NaN\n");
        let h = f.metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.bucket[0].cumulative_count, Some(2));
        assert_eq!(h.bucket[0].cumulative_count_float, None);
        assert_eq!(h.sample_count, Some(1 << 63));
        assert_eq!(go_f64_to_u64(0.0), 0);
        assert_eq!(go_f64_to_u64(-0.5), 0);
        assert_eq!(go_f64_to_u64(-2.5), u64::MAX - 1);
        assert_eq!(go_f64_to_u64(f64::INFINITY), 1 << 63);
        assert_eq!(go_f64_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(go_f64_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(go_f64_to_u64(1.8446744073709552e19), 1 << 63);
        assert_eq!(go_f64_to_u64(-1e19), 1 << 63);
    }

    #[test]
    fn nan_quantile_or_le_drops_the_sample() {
        let f = one(
            "# TYPE s summary\ns{quantile=\"NaN\"} 1\ns{quantile=\"0.5\",quantile=\"0.9\"} 2\n",
        );
        assert_eq!(
            f.metric,
            vec![summary(vec![], None, None, &[(0.9, 2.0)], None)]
        );
        let f = one("# TYPE h histogram\nh_bucket{le=\"nan\"} 1\nh_bucket 3\n");
        assert_eq!(f.metric, vec![histogram(vec![], None, None, &[])]);
        // quantile/le are ordinary labels for other types.
        let f = one("# TYPE h histogram\nh{quantile=\"x\",le=\"1\"} 1\n");
        assert_eq!(f.metric[0].label, vec![lp("quantile", "x")]);
        let f = one("foo{le=\"x\",quantile=\"y\"} 1\n");
        assert_eq!(f.metric[0].label, vec![lp("le", "x"), lp("quantile", "y")]);
    }

    #[test]
    fn summary_merge_ignores_label_order_and_keeps_first_order() {
        let f = one("# TYPE s summary\ns_sum{b=\"2\",a=\"1\"} 1\ns_count{a=\"1\",b=\"2\"} 2 7\n");
        assert_eq!(
            f.metric,
            vec![summary(
                vec![lp("b", "2"), lp("a", "1")],
                Some(2),
                Some(1.0),
                &[],
                Some(7)
            )]
        );
        // An empty label value is different from a missing label.
        let f = one("# TYPE s summary\ns_sum{a=\"\"} 1\ns_sum 2\n");
        assert_eq!(f.metric.len(), 2);
    }

    #[test]
    fn trailing_blank_line_at_eof() {
        assert_eq!(parse_ok(b"foo 1\n   ").len(), 1);
        assert_eq!(parse_ok(b"foo 1\n\t").len(), 1);
    }

    // ---- Rejected input, with Go's exact messages. ----

    #[test]
    fn go_error_scenarios() {
        assert_err(
            "\nbla 3.14\nblubber 42",
            3,
            "unexpected end of input stream",
        );
        assert_err(
            "metric{label=\"\\t\"} 3.14",
            1,
            "invalid escape sequence '\\t'",
        );
        assert_err(
            "\nmetric{label=\"new\nline\"} 3.14\n",
            2,
            "label value \"new\" contains unescaped new-line",
        );
        assert_err(
            "metric{@=\"bla\"} 3.14",
            1,
            "invalid label name for metric \"metric\"",
        );
        assert_err(
            "metric{__name__=\"bla\"} 3.14",
            1,
            "label name \"__name__\" is reserved",
        );
        assert_err(
            "metric{label+=\"bla\"} 3.14",
            1,
            "expected '=' after label name, found '+'",
        );
        assert_err(
            "metric{label=bla} 3.14",
            1,
            "expected '\"' at start of label value, found 'b'",
        );
        assert_err(
            "\n# TYPE metric summary\nmetric{quantile=\"bla\"} 3.14\n",
            3,
            "expected float as value for 'quantile' label, got \"bla\"",
        );
        assert_err(
            "metric{label=\"bla\"+} 3.14",
            1,
            "unexpected end of label value \"bla\"",
        );
        assert_err(
            "metric{label=\"bla\"} 3.14 2.72\n",
            1,
            "expected integer as timestamp, got \"2.72\"",
        );
        assert_err(
            "metric{label=\"bla\"} 3.14 2 3\n",
            1,
            "spurious string after timestamp: \" 3\"",
        );
        assert_err(
            "metric{label=\"bla\"} blubb\n",
            1,
            "expected float as value, got \"blubb\"",
        );
        assert_err(
            "\n# HELP metric one\n# HELP metric two\n",
            3,
            "second HELP line for metric name \"metric\"",
        );
        assert_err(
            "\n# TYPE metric counter\n# TYPE metric untyped\n",
            3,
            "second TYPE line for metric name \"metric\", or TYPE reported after samples",
        );
        assert_err(
            "\nmetric 4.12\n# TYPE metric counter\n",
            3,
            "second TYPE line for metric name \"metric\", or TYPE reported after samples",
        );
        assert_err("\n# TYPE metric bla\n", 2, "unknown metric type \"bla\"");
        assert_err("\n# TYPE met-ric\n", 2, "invalid metric name in comment");
        assert_err(
            "@invalidmetric{label=\"bla\"} 3.14 2",
            1,
            "invalid metric name",
        );
        assert_err("{label=\"bla\"} 3.14 2", 1, "invalid metric name");
        assert_err(
            "\n# TYPE metric histogram\nmetric_bucket{le=\"bla\"} 3.14\n",
            3,
            "expected float as value for 'le' label, got \"bla\"",
        );
        assert_eq!(
            err(b"metric{l=\"\xbd\"} 3.14\n"),
            "text format parsing error in line 1: invalid label value \"\\xbd\""
        );
        for v in [
            "1_2", "0x1p-3", "0x1P-3", "0B1", "0O1", "0X1", "0x1", "0b1", "0o1", "1p3",
        ] {
            assert_err(
                &format!("foo {v}\n"),
                1,
                &format!("expected float as value, got \"{v}\""),
            );
        }
        assert_err(
            "\n# TYPE metric histogram\nmetric_bucket{le=\"0x1p-3\"} 3.14\n",
            3,
            "expected float as value for 'le' label, got \"0x1p-3\"",
        );
        assert_err(
            "\n# TYPE metric summary\nmetric{quantile=\"0x1p-3\"} 3.14\n",
            3,
            "expected float as value for 'quantile' label, got \"0x1p-3\"",
        );
        assert_err(
            "metric{label=\"bla\",label=\"bla\"} 3.14",
            1,
            "duplicate label names for metric \"metric\"",
        );
    }

    #[test]
    fn unexpected_end_of_input() {
        for (body, line) in [
            ("foo 1", 1),
            ("foo", 1),
            ("foo ", 1),
            ("foo 1 ", 1),
            ("foo 1 2", 1),
            ("foo 1 2 ", 1),
            ("foo{", 1),
            ("foo{a", 1),
            ("foo{a=", 1),
            ("foo{a=\"b", 1),
            ("foo{a=\"b\\", 1),
            ("foo{a=\"b\"", 1),
            ("foo{a=\"b\"}", 1),
            ("foo{a=\"b\"} ", 1),
            ("#", 1),
            ("# ", 1),
            ("# comment", 1),
            ("# HELP", 1),
            ("# HELP ", 1),
            ("# HELP foo", 1),
            ("# HELP foo ", 1),
            ("# HELP foo bar", 1),
            ("# HELP foo bar\\", 1),
            ("# TYPE foo gauge", 1),
            ("foo 1\n\n# x\nbar 2", 4),
            ("\n\n\nfoo", 4),
        ] {
            assert_err(body, line, "unexpected end of input stream");
        }
    }

    #[test]
    fn value_and_timestamp_errors() {
        assert_err("foo 1\r\n", 1, "expected float as value, got \"1\\r\"");
        assert_err("foo 1 \n", 1, "expected integer as timestamp, got \"\"");
        assert_err(
            "foo 1 2\r\n",
            1,
            "expected integer as timestamp, got \"2\\r\"",
        );
        assert_err("foo 1 2 \n", 1, "spurious string after timestamp: \" \"");
        assert_err(
            "foo 1 2 \\x\\\n",
            1,
            "spurious string after timestamp: \" x\"",
        );
        assert_err(
            "foo 1 # {a=\"b\"} 1\n",
            1,
            "expected integer as timestamp, got \"#\"",
        );
        assert_err(
            "foo 1 9223372036854775808\n",
            1,
            "expected integer as timestamp, got \"9223372036854775808\"",
        );
        assert_err(
            "foo 1 1_0\n",
            1,
            "expected integer as timestamp, got \"1_0\"",
        );
        assert_err("foo 1 +\n", 1, "expected integer as timestamp, got \"+\"");
        assert_err("foo\n", 1, "expected float as value, got \"\"");
        assert_err("foo{a=\"b\"}\n", 1, "expected float as value, got \"\"");
        assert_err("foo-bar 1\n", 1, "expected float as value, got \"-bar\"");
        for v in [
            "-nan",
            "+NaN",
            "1e400",
            "-1e400",
            "1e",
            "1e+",
            ".",
            "+",
            "-",
            "e3",
            "1.2.3",
            "infin",
            "infinityy",
            "1,5",
            "1e99999999999999999999",
            "0x",
            "1f",
        ] {
            assert_err(
                &format!("foo {v}\n"),
                1,
                &format!("expected float as value, got \"{v}\""),
            );
        }
    }

    #[test]
    fn name_and_label_errors() {
        assert_err("{\"quoted\"} 1\n", 1, "invalid metric name");
        assert_err("1foo 1\n", 1, "invalid metric name");
        assert_err("\"foo\" 1\n", 1, "invalid metric name");
        assert_err(
            "foo{\"a\"=\"b\"} 1\n",
            1,
            "invalid label name for metric \"foo\"",
        );
        assert_err("foo{,} 1\n", 1, "invalid label name for metric \"foo\"");
        assert_err(
            "foo{a=\"b\",,} 1\n",
            1,
            "invalid label name for metric \"foo\"",
        );
        assert_err(
            "foo{1a=\"b\"} 1\n",
            1,
            "invalid label name for metric \"foo\"",
        );
        assert_err(
            "foo{a:b=\"c\"} 1\n",
            1,
            "expected '=' after label name, found ':'",
        );
        assert_err(
            "foo{a b=\"c\"} 1\n",
            1,
            "expected '=' after label name, found 'b'",
        );
        assert_err(
            "foo{a\n=\"c\"} 1\n",
            1,
            "expected '=' after label name, found '\\n'",
        );
        assert_err(
            "foo{a'=\"c\"} 1\n",
            1,
            "expected '=' after label name, found '\\''",
        );
        assert_err(
            "foo{a\"=\"c\"} 1\n",
            1,
            "expected '=' after label name, found '\"'",
        );
        assert_eq!(
            err(b"foo{a\x80=\"c\"} 1\n"),
            "text format parsing error in line 1: expected '=' after label name, found '\\u0080'"
        );
        assert_eq!(
            err(b"foo{a\xc3=\"c\"} 1\n"),
            "text format parsing error in line 1: expected '=' after label name, found '\u{c3}'"
        );
        assert_eq!(
            err(b"foo{a\x00=\"c\"} 1\n"),
            "text format parsing error in line 1: expected '=' after label name, found '\\x00'"
        );
        assert_err(
            "foo{a='b'} 1\n",
            1,
            "expected '\"' at start of label value, found '\\''",
        );
        assert_err(
            "foo{a=\n",
            1,
            "expected '\"' at start of label value, found '\\n'",
        );
        assert_err(
            "foo{a=\"b\" c=\"d\"} 1\n",
            1,
            "unexpected end of label value \"b\"",
        );
        assert_err(
            "foo{a=\"é\\\"\\n\" x} 1\n",
            1,
            "unexpected end of label value \"é\\\"\\n\"",
        );
        assert_err("foo{a=\"b\"\n", 1, "unexpected end of label value \"b\"");
        assert_err("foo{a=\"\\x\"} 1\n", 1, "invalid escape sequence '\\x'");
        assert_err("foo{a=\"\\'\"} 1\n", 1, "invalid escape sequence '\\''");
        assert_err("foo{a=\"\\\n\"} 1\n", 1, "invalid escape sequence '\\\n'");
        assert_eq!(
            err(b"foo{a=\"\\\xe9\"} 1\n"),
            "text format parsing error in line 1: invalid escape sequence '\\\u{e9}'"
        );
        assert_err(
            "foo{a=\"x\\\\\ny\"} 1\n",
            1,
            "label value \"x\\\\\" contains unescaped new-line",
        );
        assert_eq!(
            err(b"foo{a=\"ok\",b=\"\xe2\x82\"} 1\n"),
            "text format parsing error in line 1: invalid label value \"\\xe2\\x82\""
        );
        assert_err(
            "foo{a=\"1\",b=\"2\",a=\"3\"} 1\n",
            1,
            "duplicate label names for metric \"foo\"",
        );
        // The '=' check comes before the duplicate check.
        assert_err(
            "foo{a=\"1\",a} 1\n",
            1,
            "expected '=' after label name, found '}'",
        );
        // The duplicate message names the family, also for summary parts.
        assert_err(
            "# TYPE s summary\ns_sum{a=\"1\",a=\"1\"} 1\n",
            2,
            "duplicate label names for metric \"s\"",
        );
        assert_err(
            "# TYPE s summary\ns_count{,} 1\n",
            2,
            "invalid label name for metric \"s\"",
        );
    }

    #[test]
    fn help_and_type_errors() {
        assert_err("# HELP foo a\\tb\n", 1, "invalid escape sequence '\\t'");
        assert_err("# HELP foo a\\\"b\n", 1, "invalid escape sequence '\\\"'");
        assert_err("# HELP foo a\\\n", 1, "invalid escape sequence '\\\n'");
        assert_err("# TYPE foo gauge \n", 1, "unknown metric type \"gauge \"");
        assert_err(
            "# TYPE foo gaugehistogram\n",
            1,
            "unknown metric type \"gaugehistogram\"",
        );
        assert_err(
            "# TYPE foo \"gauge\"\n",
            1,
            "unknown metric type \"\\\"gauge\\\"\"",
        );
        assert_err(
            "# TYPE foo hi\u{fb06}ogram\n",
            1,
            "unknown metric type \"hi\u{fb06}ogram\"",
        );
        assert_eq!(
            err(b"# TYPE foo g\xffauge\n"),
            "text format parsing error in line 1: unknown metric type \"g\\xffauge\""
        );
        assert_err("# HELP 1foo x\n", 1, "invalid metric name in comment");
        assert_err("# HELP foo{} x\n", 1, "invalid metric name in comment");
        assert_err("# TYPE foo\r\n", 1, "invalid metric name in comment");
        assert_err(
            "# TYPE s summary\n# TYPE s_count counter\n",
            2,
            "second TYPE line for metric name \"s\", or TYPE reported after samples",
        );
        assert_err(
            "# HELP s x\n# TYPE s summary\n# HELP s_sum y\n",
            3,
            "second HELP line for metric name \"s\"",
        );
        assert_err(
            "# HELP foo \n# HELP foo a\n# HELP foo b\n",
            3,
            "second HELP line for metric name \"foo\"",
        );
        // An empty HELP text still counts as a HELP line.
        assert_err(
            "# HELP foo \\\\\n# HELP foo b\n",
            2,
            "second HELP line for metric name \"foo\"",
        );
    }

    #[test]
    fn error_line_numbers() {
        assert_err(
            "\n  \n# c\n\tfoo 1\nbar{a=\"b\"} 2\n\n baz x\n",
            7,
            "expected float as value, got \"x\"",
        );
    }

    // ---- Helpers. ----

    #[test]
    fn parse_go_float_cases() {
        assert_eq!(parse_go_float("1"), Some(1.0));
        assert_eq!(parse_go_float("-.5e-1"), Some(-0.05));
        assert_eq!(parse_go_float("+INF"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_go_float("NAN").unwrap().is_nan());
        assert_eq!(parse_go_float("4.9e-324"), Some(4.9e-324));
        assert_eq!(parse_go_float("2e-324"), Some(0.0));
        assert_eq!(parse_go_float("1.7976931348623158e308"), Some(f64::MAX));
        assert_eq!(
            parse_go_float("0.1000000000000000055511151231257827021181583404541015625"),
            Some(0.1)
        );
        for s in [
            "", " 1", "1 ", "-nan", "+nan", "1e309", "0x1p0", "1_000", "1p0", "inf ", "∞", "1e",
            "e1", ".e1", "1.e", "++1", "--1", "1+", "i", "in", "infinit", "na",
        ] {
            assert_eq!(parse_go_float(s), None, "{s:?}");
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote(b"plain"), "\"plain\"");
        assert_eq!(go_quote(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            go_quote(b"\x07\x08\x0c\n\r\t\x0b\x00\x1f\x7f"),
            "\"\\a\\b\\f\\n\\r\\t\\v\\x00\\x1f\\x7f\""
        );
        assert_eq!(go_quote("é€😀'".as_bytes()), "\"é€😀'\"");
        assert_eq!(
            go_quote("\u{a0}\u{ad}\u{85}\u{200b}\u{2028}\u{feff}\u{e000}\u{e0001}".as_bytes()),
            "\"\\u00a0\\u00ad\\u0085\\u200b\\u2028\\ufeff\\ue000\\U000e0001\""
        );
        assert_eq!(
            go_quote(b"\xff\xe2\x82a\xed\xa0\x80"),
            "\"\\xff\\xe2\\x82a\\xed\\xa0\\x80\""
        );
        assert_eq!(go_quote_byte(b'a'), "'a'");
        assert_eq!(go_quote_byte(b'\''), "'\\''");
        assert_eq!(go_quote_byte(b'"'), "'\"'");
        assert_eq!(go_quote_byte(b'\\'), "'\\\\'");
        assert_eq!(go_quote_byte(0xe9), "'é'");
        assert_eq!(go_quote_byte(0xa0), "'\\u00a0'");
    }

    #[test]
    fn is_print_tables() {
        assert!(PRINT_RANGES16.iter().all(|&(lo, hi)| lo <= hi));
        assert!(PRINT_RANGES16.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(PRINT_RANGES32.iter().all(|&(lo, hi)| lo <= hi));
        assert!(PRINT_RANGES32.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(PRINT_RANGES16[0].0 >= 0x80);
        for c in [
            'a',
            ' ',
            '~',
            'é',
            'Ω',
            '中',
            '한',
            '€',
            '😀',
            '\u{1d11e}',
            '\u{20000}',
            '\u{fffd}',
        ] {
            assert!(go_is_print(c), "{c:?}");
        }
        for c in [
            '\u{7f}',
            '\u{80}',
            '\u{a0}',
            '\u{ad}',
            '\u{378}',
            '\u{2000}',
            '\u{200b}',
            '\u{2028}',
            '\u{3000}',
            '\u{e000}',
            '\u{feff}',
            '\u{fffe}',
            '\u{1000c}',
            '\u{e0001}',
            '\u{10ffff}',
            // Assigned after Unicode 13, so not printable for Go 1.19.
            '\u{16133}',
            '\u{1e6d5}',
            '\u{1fae0}',
        ] {
            assert!(!go_is_print(c), "{c:?}");
        }
    }

    #[test]
    fn large_body() {
        let mut body = String::new();
        body.push_str("# HELP big A big family.\n# TYPE big gauge\n");
        for i in 0..20_000 {
            body.push_str(&format!(
                "big{{instance=\"i{i}\",path=\"/a/b\\\\c\"}} {i}.5\n"
            ));
        }
        body.push_str("# TYPE h histogram\n");
        for i in 0..2_000 {
            body.push_str(&format!(
                "h_bucket{{x=\"{i}\",le=\"1\"}} 1\nh_sum{{x=\"{i}\"}} 2\n"
            ));
        }
        let fams = parse_ok(body.as_bytes());
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].metric.len(), 20_000);
        assert_eq!(
            fams[0].metric[7].label,
            vec![lp("instance", "i7"), lp("path", "/a/b\\c")]
        );
        assert_eq!(fams[1].metric.len(), 2_000);
    }
}
