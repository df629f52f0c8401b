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
//! * `TYPE` values are matched after Go's `strings.ToUpper`; `GAUGE_HISTOGRAM` is accepted and
//!   parsed like a histogram (as prometheus/common v0.67, used by Pushgateway 1.11, does).
//!   Backslashes are silently dropped from the type token and from whatever follows a
//!   timestamp (Go's `readTokenUntilNewline(false)`).
//! * Summaries and histograms are assembled from `_sum`, `_count`, `_bucket` and the base name
//!   whenever a family of that base name with that type already exists, also when the lines
//!   are not contiguous; `quantile`/`le` labels are consumed, must be Go floats, and a `NaN`
//!   one drops the sample. Counts are converted from float with Go's amd64 `uint64(f)`.
//! * Duplicate label names within one sample are rejected, as Go does at parse time.
//!
//! Where Pushgateway 1.11 (prometheus/common v0.67) differs, we follow it: quoted names
//! (`{"my.metric","my.label"="v"}`, see [`parse_text_names`]), histogram counts that are not
//! whole numbers kept as float counts (the histogram then becomes all-float), negative ones
//! refused.
//!
//! The only intentional difference: a HELP text that is not valid UTF-8 (Go keeps the raw
//! bytes) is stored with U+FFFD replacements, because `MetricFamily.help` is a Rust `String`.
//! Invalid UTF-8 in label values is an error in Go as well (`invalid label value "\xff"`).

use std::borrow::Cow;
use std::collections::HashMap;

use gocompat::quote::{quote as go_quote, quote_byte as go_quote_byte};
/// Go's `strconv.ParseFloat` as expfmt uses it: moved to [`gocompat::strconv::parse_float`].
pub use gocompat::strconv::parse_float as parse_go_float;
use gocompat::strconv::{
    f64_to_u64 as go_f64_to_u64, parse_float_bytes as parse_go_float_bytes,
    parse_int_bytes as parse_go_int,
};

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
    parse_text_names(body, false)
}

/// Like [`parse_text`], with the name rules of prometheus/common v0.67's `TextParser`: names
/// may be quoted (`{"my.metric", "my.label"="v"}`, `# TYPE "my.metric" gauge`); with `utf8`
/// (`--push.enable-utf8-names`) any non-empty UTF-8 name is accepted, without it a quoted name
/// must still be a legacy name (`invalid metric name "my.metric"`). Quoted names with
/// backslash escapes are refused.
pub fn parse_text_names(body: &[u8], utf8: bool) -> Result<Vec<MetricFamily>, TextParseError> {
    let mut parser = Parser::new(body);
    parser.utf8 = utf8;
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
/// `utf8`: the name rules of [`parse_text_names`].
pub fn parse_text_limited(
    body: &[u8],
    limits: ParseLimits,
    utf8: bool,
) -> Result<Vec<MetricFamily>, LimitedParseError> {
    let mut parser = Parser::new(body);
    parser.limits = limits;
    parser.utf8 = utf8;
    match parser.run() {
        Ok(()) => Ok(parser.finish()),
        Err(e) => Err(match parser.limit_hit.take() {
            Some(l) => LimitedParseError::Limit(l),
            None => LimitedParseError::Syntax(e),
        }),
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
    /// UTF-8 names allowed (else quoted names must be legacy names).
    utf8: bool,
    /// Some histogram got a float count: make each such histogram all-float at the end.
    float_histograms: bool,
}

/// A label as read from the line: the name, and the value (borrowed unless it had escapes).
type RawLabel<'a> = (&'a str, Cow<'a, str>);

/// The label names of a long label set, for the duplicate check.
type SeenNames<'a> = std::collections::HashSet<&'a [u8], ahash::RandomState>;

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
            utf8: false,
            float_histograms: false,
        }
    }

    /// Stops the parse because a limit was crossed (`parse_text_limited` reports `hit`).
    #[cold]
    fn limit(&mut self, hit: LimitExceeded) -> TextParseError {
        self.limit_hit = Some(hit);
        self.error("limit exceeded".to_owned())
    }

    fn finish(mut self) -> Vec<MetricFamily> {
        if self.float_histograms {
            for f in &mut self.families {
                for m in &mut f.metrics {
                    if let Some(h) = m.histogram.as_deref_mut() {
                        normalize_histogram(h);
                    }
                }
            }
        }
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
        if self.cur == b'"' {
            let name = self.quoted_name("metric")?;
            let ok = std::str::from_utf8(name)
                .is_ok_and(|n| !n.is_empty() && (self.utf8 || crate::names::is_legacy_name(n)));
            if !ok {
                return Err(self.error(format!("invalid metric name {}", go_quote(name))));
            }
            return Ok(name);
        }
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
        if self.cur == b'"' {
            let name = self.quoted_name("label")?;
            let ok = std::str::from_utf8(name).is_ok_and(|n| {
                !n.is_empty() && (self.utf8 || crate::names::is_legacy_label_name(n))
            });
            if !ok {
                return Err(self.error(format!("invalid label name {}", go_quote(name))));
            }
            return Ok(name);
        }
        if !is_label_name_start(self.cur) {
            return Ok(&self.buf[start..start]);
        }
        self.scan_while(start, &LABEL_NAME_CONT)
    }

    /// A quoted name; `cur` is the opening '"'. Returns the bytes between the quotes and
    /// leaves the byte after the closing quote in `cur`.
    fn quoted_name(&mut self, what: &str) -> PResult<&'a [u8]> {
        let start = self.pos;
        loop {
            match self.read()? {
                b'"' => break,
                b'\n' => {
                    return Err(self.error(format!(
                        "{what} name {} contains unescaped new-line",
                        go_quote(&self.buf[start..self.pos - 1])
                    )))
                }
                b'\\' => {
                    return Err(self.error(format!(
                    "invalid {what} name {}: escape sequences in quoted names are not supported",
                    go_quote(&self.buf[start..self.pos - 1])
                )))
                }
                _ => {}
            }
        }
        let buf: &'a [u8] = self.buf;
        let name = &buf[start..self.pos - 1];
        self.read()?;
        Ok(name)
    }

    /// The parse loop: Go's `startOfLine` (skip blanks, then a comment, a sample or nothing)
    /// for every line.
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
                    Some(MetricType::Histogram | MetricType::GaugeHistogram) => return (i, role),
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

    /// Go's `startComment`: a line whose first non-blank byte, in `cur`, is '#'.
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

    /// Go's `readingHelp`: the docstring of a HELP line, starting at `cur`.
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

    /// Go's `readingType`: the type of a TYPE line, starting at `cur`.
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

    /// Go's `readingMetricName` (and the dispatch to `readingLabels`): a sample line whose
    /// first non-blank byte is in `cur`.
    fn sample(&mut self) -> PResult<()> {
        // The name may come first inside the braces: `{"my.metric",a="b"} 1`.
        let braced = self.cur == b'{';
        if braced {
            self.skip_blanks()?;
        }
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
        if braced {
            match self.cur {
                b',' => self.labels(fi, typ, &mut labels, &mut special)?,
                b'}' => self.skip_blanks()?,
                // `{a="b"} 1`: a label where the name should be.
                b'=' => return Err(self.error("invalid metric name".to_owned())),
                b => {
                    return Err(self.error(format!(
                        "unexpected end of metric name {}",
                        go_quote_byte(b)
                    )))
                }
            }
        } else if self.cur == b'{' {
            self.labels(fi, typ, &mut labels, &mut special)?;
        }
        self.value(fi, typ, role, labels, special)
    }

    /// The label set; `cur` is '{'. Leaves the first byte of the value in `cur`.
    /// Go's `readingLabels`, looping over `startLabelName` and `startLabelValue`.
    fn labels(
        &mut self,
        fi: usize,
        typ: MetricType,
        labels: &mut Vec<RawLabel<'a>>,
        special: &mut f64,
    ) -> PResult<()> {
        // Names seen so far, once a line has enough labels that scanning them for the
        // duplicate check would make a long label set quadratic.
        let mut seen: Option<SeenNames<'a>> = None;
        loop {
            self.skip_blanks()?;
            if self.cur == b'}' {
                return self.skip_blanks();
            }
            let (name, is_special) = self.start_label_name(fi, typ, labels, &seen)?;
            let (value, end) = self.start_label_value(typ, name, is_special, special)?;
            if !is_special {
                self.push_label(fi, labels, &mut seen, name, value)?;
            }
            if end {
                return self.skip_blanks();
            }
        }
    }

    /// Go's `startLabelName`: a label name (first byte in `cur`), up to and including the
    /// '=' (left in `cur`). Returns the name and whether it is the `quantile` (summary) or `le`
    /// (histogram) label, which is consumed rather than kept.
    #[inline]
    fn start_label_name(
        &mut self,
        fi: usize,
        typ: MetricType,
        labels: &[RawLabel<'a>],
        seen: &Option<SeenNames<'a>>,
    ) -> PResult<(&'a [u8], bool)> {
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
            MetricType::Histogram | MetricType::GaugeHistogram => name == b"le",
            _ => false,
        };
        self.skip_blanks_if_blank()?;
        if self.cur != b'=' {
            return Err(self.error(format!(
                "expected '=' after label name, found {}",
                go_quote_byte(self.cur)
            )));
        }
        let duplicate = match seen {
            Some(set) => set.contains(name),
            None => labels.iter().any(|l| l.0.as_bytes() == name),
        };
        if !is_special && duplicate {
            return Err(self.error(format!(
                "duplicate label names for metric {}",
                go_quote(self.families[fi].name.as_bytes())
            )));
        }
        Ok((name, is_special))
    }

    /// Go's `startLabelValue`: after the '=' in `cur`, the quoted value and the ',' or '}'
    /// after it (left in `cur`; returns whether it was '}'). The value of a `quantile`/`le`
    /// label is parsed into `special`.
    #[inline]
    fn start_label_value(
        &mut self,
        typ: MetricType,
        name: &'a [u8],
        is_special: bool,
        special: &mut f64,
    ) -> PResult<(Cow<'a, str>, bool)> {
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
        Ok((value, end))
    }

    /// Keeps a label of the current sample (the end of Go's `startLabelValue`), checking the
    /// labels-per-series limit.
    #[inline]
    fn push_label(
        &mut self,
        fi: usize,
        labels: &mut Vec<RawLabel<'a>>,
        seen: &mut Option<SeenNames<'a>>,
        name: &'a [u8],
        value: Cow<'a, str>,
    ) -> PResult<()> {
        // Label names are ASCII by construction.
        labels.push((std::str::from_utf8(name).unwrap_or_default(), value));
        if self.limits.too_many_labels(labels.len()) {
            let hit = LimitExceeded::LabelsPerSeries {
                family: self.families[fi].name.to_owned(),
                max: self.limits.max_labels_per_series,
            };
            return Err(self.limit(hit));
        }
        match seen {
            Some(set) => {
                set.insert(name);
            }
            None if labels.len() >= 16 => {
                *seen = Some(labels.iter().map(|l| l.0.as_bytes()).collect());
            }
            None => {}
        }
        Ok(())
    }

    /// The quoted string of Go's `startLabelValue`; `cur` is the opening '"'. Leaves the
    /// closing '"' in `cur`.
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

    /// Go's `readingValue`: the value (first byte in `cur`) of the sample, stored into the
    /// metric its labels select; then Go's `startTimestamp` if the line goes on.
    fn value(
        &mut self,
        fi: usize,
        typ: MetricType,
        role: Role,
        labels: Vec<RawLabel<'a>>,
        special: f64,
    ) -> PResult<()> {
        let mi = if matches!(
            typ,
            MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram
        ) {
            self.grouped_metric(fi, &labels)
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
        self.set_value(fi, mi, typ, role, v, special)?;
        if self.cur == b'\n' {
            return Ok(());
        }
        self.start_timestamp(fi, mi)
    }

    /// The summary/histogram metric that a line with these labels (apart from quantile/le)
    /// belongs to, created with the labels of its first line: Go's `summaries`/`histograms`
    /// maps keyed by the label signature (in `readingValue`).
    #[inline]
    fn grouped_metric(&mut self, fi: usize, labels: &[RawLabel<'a>]) -> usize {
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
                    label: owned_labels(labels),
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
    }

    /// The `switch` on the family's type in Go's `readingValue`: stores `v` into metric `mi`
    /// as its role (value, `_count`, `_sum`, quantile or bucket) says.
    #[inline]
    fn set_value(
        &mut self,
        fi: usize,
        mi: usize,
        typ: MetricType,
        role: Role,
        v: f64,
        special: f64,
    ) -> PResult<()> {
        let (mut float, mut negative) = (false, None);
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
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let histogram = metric.histogram.get_or_insert_with(Default::default);
                (float, negative) = set_histogram_value(histogram, role, v, special);
            }
        }
        if let Some(what) = negative {
            let name = self.families[fi].name;
            return Err(self.error(format!(
                "negative {what} for histogram {}",
                go_quote(name.as_bytes())
            )));
        }
        self.float_histograms |= float;
        Ok(())
    }

    /// Go's `startTimestamp`: the timestamp after the value (`cur` is the blank before it)
    /// and the end of the line.
    fn start_timestamp(&mut self, fi: usize, mi: usize) -> PResult<()> {
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

/// A histogram line's value in Go's `readingValue`: `_count`, `_sum` or a bucket. Counts that
/// are not whole numbers make a float histogram (common v0.67): returns whether this one did,
/// and what was negative if a count was (an error).
#[inline]
fn set_histogram_value(
    histogram: &mut crate::pb::Histogram,
    role: Role,
    v: f64,
    special: f64,
) -> (bool, Option<&'static str>) {
    let (mut float, mut negative) = (false, None);
    let whole = go_f64_to_u64(v);
    let is_whole = whole as f64 == v;
    match role {
        Role::Count if is_whole => histogram.sample_count = Some(whole),
        Role::Plain if is_whole && !special.is_nan() => histogram.bucket.push(Bucket {
            cumulative_count: Some(whole),
            upper_bound: Some(special),
            ..Default::default()
        }),
        Role::Count | Role::Plain if v < 0.0 && (role == Role::Count || !special.is_nan()) => {
            negative = Some(if role == Role::Count {
                "count"
            } else {
                "bucket population"
            });
        }
        Role::Count => {
            histogram.sample_count_float = Some(v);
            float = true;
        }
        Role::Plain if !special.is_nan() => {
            histogram.bucket.push(Bucket {
                cumulative_count_float: Some(v),
                upper_bound: Some(special),
                ..Default::default()
            });
            float = true;
        }
        Role::Sum => histogram.sample_sum = Some(v),
        Role::Plain => {}
    }
    (float, negative)
}

/// Makes a histogram all-float once any of its counts is a float (common v0.67's
/// `normalizeHistogram`).
fn normalize_histogram(h: &mut crate::pb::Histogram) {
    let any_float = h.sample_count_float.unwrap_or(0.0) != 0.0
        || h.bucket
            .iter()
            .any(|b| b.cumulative_count_float.unwrap_or(0.0) != 0.0);
    if !any_float {
        return;
    }
    if h.sample_count_float.unwrap_or(0.0) == 0.0 {
        h.sample_count_float = Some(h.sample_count.take().unwrap_or(0) as f64);
    }
    for b in &mut h.bucket {
        if b.cumulative_count_float.unwrap_or(0.0) == 0.0 {
            b.cumulative_count_float = Some(b.cumulative_count.take().unwrap_or(0) as f64);
        }
    }
}

#[inline]
fn memchr_newline(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

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
    fn gauge_histograms_are_parsed_like_histograms() {
        // common v0.67 expfmt/text_parse.go treats GAUGE_HISTOGRAM as HISTOGRAM.
        let fams = parse_ok(
            b"# TYPE foo gauge_histogram\nfoo_bucket{le=\"1\"} 1\nfoo_bucket{le=\"+Inf\"} 2\nfoo_sum 3\nfoo_count 2\n",
        );
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].r#type, Some(MetricType::GaugeHistogram as i32));
        let h = fams[0].metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.bucket.len(), 2);
        assert_eq!(h.sample_count, Some(2));
        assert_eq!(h.sample_sum, Some(3.0));
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
    fn quoted_names() {
        // common v0.67 expfmt/text_parse.go: quoted names in braces and in HELP/TYPE lines;
        // held to the legacy rules unless UTF-8 names are enabled.
        let body = b"# HELP \"my.metric\" help\n# TYPE \"my.metric\" gauge\n{\"my.metric\", \"my.label\"=\"v\",a=\"b\"} 1\n";
        let fams = parse_text_names(body, true).unwrap();
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name.as_deref(), Some("my.metric"));
        assert_eq!(fams[0].help.as_deref(), Some("help"));
        assert_eq!(fams[0].r#type, Some(MetricType::Gauge as i32));
        assert_eq!(
            fams[0].metric[0].label,
            vec![lp("my.label", "v"), lp("a", "b")]
        );
        let e = parse_text_names(body, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "text format parsing error in line 1: invalid metric name \"my.metric\""
        );
        // Quoted legacy names are fine without the flag.
        let fams = parse_text(b"{\"ok_name\", \"a\"=\"1\"} 2\nok_name{\"b\"=\"2\"} 3\n").unwrap();
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].metric.len(), 2);
        assert_eq!(fams[0].metric[1].label, vec![lp("b", "2")]);
        let e = parse_text(b"x{\"a.b\"=\"1\"} 2\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "text format parsing error in line 1: invalid label name \"a.b\""
        );
        let fams = parse_text_names(b"{\"h.x_bucket\",le=\"1\"} 1\n", true).unwrap();
        assert_eq!(fams[0].name.as_deref(), Some("h.x_bucket"));
        assert!(parse_text_names(b"{\"\"} 1\n", true).is_err());
        assert!(parse_text_names(b"{\"a\\\"b\"} 1\n", true).is_err());
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
        // Histogram counts that are not whole numbers make a float histogram (common v0.67,
        // expfmt/text_parse.go readingValue and normalizeHistogram).
        let f =
            one("# TYPE h histogram\nh_bucket{le=\"1\"} 2.9\nh_bucket{le=\"2\"} 3\nh_count 4\n");
        let h = f.metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.bucket[0].cumulative_count, None);
        assert_eq!(h.bucket[0].cumulative_count_float, Some(2.9));
        assert_eq!(h.bucket[1].cumulative_count_float, Some(3.0));
        assert_eq!(h.sample_count_float, Some(4.0));
        assert_eq!(h.sample_count, None);
        let f = one("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 3\n");
        let h = f.metric[0].histogram.as_ref().unwrap();
        assert_eq!(h.bucket[0].cumulative_count, Some(2));
        assert_eq!(h.sample_count, Some(3));
        assert_err(
            "# TYPE h histogram\nh_bucket{le=\"1\"} -1\n",
            2,
            "negative bucket population for histogram \"h\"",
        );
        assert_err(
            "# TYPE h histogram\nh_count -1\n",
            2,
            "negative count for histogram \"h\"",
        );
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
        assert_err(
            "{\"quoted.name\"} 1\n",
            1,
            "invalid metric name \"quoted.name\"",
        );
        assert_err("1foo 1\n", 1, "invalid metric name");
        assert_err("\"foo.x\" 1\n", 1, "invalid metric name \"foo.x\"");
        assert_err("foo{\"a.b\"=\"b\"} 1\n", 1, "invalid label name \"a.b\"");
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
