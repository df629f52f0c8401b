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
//!
//! Speed: the body is validated as UTF-8 once and names and values are borrowed from it. A
//! sample line whose first bytes repeat those of a recent line of the same name (a histogram's
//! buckets, one label set after another) resumes at that line's last label boundary within the
//! common bytes, taking over its family, labels and metric (`LineRecord`); values that are
//! short plain decimals skip the exact float parser (`fast_float`).
//! [`parse_text_reference`] is the same parser without these shortcuts, the oracle that
//! `tests/text_parse_shortcuts.rs` and the `text_parse` fuzz target compare it with.

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

/// [`parse_text_names`] without the parser's shortcuts (resuming a line where it repeats the
/// previous one, the float fast path): the oracle the tests and the `text_parse` fuzz target
/// compare the parser with. Same results, only slower.
#[doc(hidden)]
pub fn parse_text_reference(body: &[u8], utf8: bool) -> Result<Vec<MetricFamily>, TextParseError> {
    let mut parser = Parser::new(body);
    parser.utf8 = utf8;
    parser.shortcuts = false;
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

/// [`lookup_type`] for an ASCII token (no copy, no allocation); `None` also for any token
/// it does not know, which [`lookup_type`] then refuses with the error.
fn lookup_ascii_type(token: &[u8]) -> Option<MetricType> {
    const TYPES: [(&[u8], MetricType); 6] = [
        (b"COUNTER", MetricType::Counter),
        (b"GAUGE", MetricType::Gauge),
        (b"SUMMARY", MetricType::Summary),
        (b"UNTYPED", MetricType::Untyped),
        (b"HISTOGRAM", MetricType::Histogram),
        (b"GAUGE_HISTOGRAM", MetricType::GaugeHistogram),
    ];
    TYPES
        .iter()
        .find(|(name, _)| token.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t)
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

/// The bytes of a value or timestamp token: all but the blanks and '\n'.
static TOKEN_CONT: [bool; 256] = {
    let mut t = [true; 256];
    t[b' ' as usize] = false;
    t[b'\t' as usize] = false;
    t[b'\n' as usize] = false;
    t
};

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
    /// `buf` as text when the whole body is valid UTF-8 (checked once): label values and
    /// names are then sliced from it instead of being validated one by one.
    text: Option<&'a str>,
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
    /// The metric of the last summary/histogram line looked up, and its key with the labels
    /// in line order (the same fixed mapping as `grouped`, without the sort).
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
    /// `le`/`quantile` values parsed so far (their text and value): the lines of a family
    /// repeat the same few bounds, so each is parsed once per body.
    bounds: Vec<(&'a [u8], f64)>,
    /// Where in `bounds` the previous bound was found (the next line usually has the next).
    last_bound: usize,
    /// The last metric name read unquoted ([`Parser::metric_name_token`]).
    last_scanned_name: &'a [u8],
    /// The sample line being read: where it starts, its resume points and the
    /// summary/histogram metric it went to (set by [`Parser::value`]).
    line_start: usize,
    points: Vec<Resume>,
    line_grouped: Option<usize>,
    /// Recent sample lines with labels, one per name (the first `live` entries; the others
    /// are free slots keeping their allocations), for [`Parser::resume_point`]. Forgotten at
    /// every comment line, which can create families or fix types.
    recent: Vec<LineRecord<'a>>,
    live: usize,
    /// The entry of `recent` that the previous sample line left, if any.
    last_entry: Option<usize>,
    /// Counts sample lines, for evicting the least recently used entry of `recent`.
    stamp: u64,
    /// Resume lines and parse floats on the fast path (off: [`parse_text_reference`]).
    shortcuts: bool,
    /// How many buckets the histogram that got the last bucket has: the capacity a new
    /// histogram starts with.
    bucket_hint: usize,
}

/// A state of the label loop of a sample line ([`Parser::labels`], at the top of its loop),
/// recorded so that the next line can resume there when its bytes up to `end` are the same.
/// The parse is a function of the bytes read, so the same bytes give the same state: the
/// family and type (fixed by the name), the labels kept so far and the `le`/`quantile` value.
#[derive(Clone, Copy)]
struct Resume {
    /// Offset from the line's start of the first byte not yet read (the byte before it, a
    /// `{` or `,`, is `cur`).
    end: usize,
    /// How many labels were kept so far.
    labels: usize,
    /// The `le`/`quantile` value read so far (NaN if none).
    special: f64,
}

/// What a later sample line may reuse of an earlier one. Within a run of sample lines (no
/// comment line between), a name always maps to the same family, role and type.
struct LineRecord<'a> {
    /// Where the line started (its first non-blank byte).
    start: usize,
    /// Its family, role and type.
    fi: usize,
    role: Role,
    typ: MetricType,
    /// Its resume points, in order (at least one).
    points: Vec<Resume>,
    /// The labels it kept, and the summary/histogram metric it went to.
    labels: Vec<RawLabel<'a>>,
    grouped: Option<usize>,
    /// When it was last used (`Parser::stamp`).
    used: u64,
}

/// How many recent lines (distinct names) [`Parser::recent`] keeps: a histogram's
/// `_bucket`, `_sum` and `_count` lines and one more.
const RECENT_LINES: usize = 4;

/// How many distinct `le`/`quantile` texts [`Parser::bounds`] remembers.
const MAX_CACHED_BOUNDS: usize = 64;

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
            text: std::str::from_utf8(buf).ok(),
            pos: 0,
            cur: 0,
            line: 0,
            families: Vec::with_capacity(8),
            by_name: HashMap::with_capacity_and_hasher(8, Default::default()),
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
            bounds: Vec::new(),
            last_bound: 0,
            last_scanned_name: &[],
            line_start: 0,
            points: Vec::new(),
            line_grouped: None,
            recent: Vec::new(),
            live: 0,
            last_entry: None,
            stamp: 0,
            shortcuts: true,
            bucket_hint: 0,
        }
    }

    /// `bytes` (a slice of `buf`) as text, if it is valid UTF-8.
    #[inline]
    fn str_of(&self, bytes: &'a [u8]) -> Option<&'a str> {
        match self.text {
            Some(text) => {
                let start = bytes.as_ptr() as usize - self.buf.as_ptr() as usize;
                debug_assert!(start + bytes.len() <= self.buf.len(), "a slice of `buf`");
                text.get(start..start + bytes.len())
            }
            None => std::str::from_utf8(bytes).ok(),
        }
    }

    /// A `le`/`quantile` value: Go's `ParseFloat`, remembered per text.
    #[inline]
    fn bound(&mut self, text: &'a [u8]) -> Option<f64> {
        let next = self.last_bound + 1;
        let at = match self.bounds.get(next) {
            Some((t, _)) if *t == text => Some(next),
            _ => self.bounds.iter().position(|(t, _)| *t == text),
        };
        if let Some(i) = at {
            self.last_bound = i;
            return Some(self.bounds[i].1);
        }
        let v = self.float(text)?;
        if self.bounds.len() < MAX_CACHED_BOUNDS {
            self.last_bound = self.bounds.len();
            self.bounds.push((text, v));
        }
        Some(v)
    }

    /// Go's `ParseFloat`: on the fast path unless the shortcuts are off.
    #[inline]
    fn float(&self, text: &[u8]) -> Option<f64> {
        if self.shortcuts {
            crate::fast_float::parse_float(text)
        } else {
            parse_go_float_bytes(text)
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
        if !TOKEN_CONT[self.cur as usize] {
            return Ok(&self.buf[start..start]);
        }
        self.scan_while(start, &TOKEN_CONT)
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
        // Consecutive lines mostly repeat the name: compare it as a whole (one `memcmp`)
        // instead of classifying it byte by byte. Same result as the scan: the same bytes,
        // then a byte that cannot continue a name.
        let buf: &'a [u8] = self.buf;
        let last = self.last_scanned_name;
        let end = start + last.len();
        if !last.is_empty() {
            if let Some(&next) = buf.get(end) {
                if !METRIC_NAME_CONT[next as usize] && buf[start..end] == *last {
                    self.pos = end + 1;
                    self.cur = next;
                    return Ok(&buf[start..end]);
                }
            }
        }
        let name = self.scan_while(start, &METRIC_NAME_CONT)?;
        self.last_scanned_name = name;
        Ok(name)
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
            name: self.str_of(name).unwrap_or_default(),
            help: None,
            typ: None,
            metrics: Vec::new(),
        });
        self.by_name.insert(name, i);
        (i, Role::Plain)
    }

    /// Go's `startComment`: a line whose first non-blank byte, in `cur`, is '#'.
    fn comment(&mut self) -> PResult<()> {
        // HELP/TYPE lines can create families or fix types: forget the cached lookup, and
        // the previous sample line as a resume point.
        self.last_family = None;
        self.live = 0;
        self.last_entry = None;
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
        // Usually the rest of the line, as it is: no escapes to undo.
        let start = self.pos - 1;
        if let Some(n) = memchr::memchr2(b'\n', b'\\', &self.buf[start..])
            .filter(|&n| self.buf[start + n] == b'\n')
        {
            let buf: &'a [u8] = self.buf;
            let raw = &buf[start..start + n];
            let help = match self.str_of(raw) {
                Some(s) => s.to_owned(),
                None => String::from_utf8_lossy(raw).into_owned(),
            };
            self.pos = start + n + 1;
            self.cur = b'\n';
            self.families[fi].help = Some(help);
            return Ok(());
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
        // Usually the rest of the line is an ASCII type name: compared without copying it.
        let start = self.pos - 1;
        if let Some(n) = self.buf[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\\' || !b.is_ascii())
            .filter(|&n| self.buf[start + n] == b'\n')
        {
            if let Some(t) = lookup_ascii_type(&self.buf[start..start + n]) {
                self.pos = start + n + 1;
                self.cur = b'\n';
                self.families[fi].typ = Some(t);
                return Ok(());
            }
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
        let start = self.pos - 1;
        self.line_start = start;
        self.points.clear();
        self.stamp += 1;
        let resumed = if self.shortcuts {
            self.resume_point(start)
        } else {
            None
        };
        let (fi, role, typ, entry) = match resumed {
            Some((entry, at)) => {
                let (fi, role, typ) = self.resumed_sample(start, entry, at)?;
                (fi, role, typ, Some(entry))
            }
            None => {
                let (fi, role, typ) = self.full_sample()?;
                (fi, role, typ, None)
            }
        };
        self.remember_line(start, fi, role, typ, entry);
        Ok(())
    }

    /// A sample line read from its start (in `cur`); returns its family, role and type.
    fn full_sample(&mut self) -> PResult<(usize, Role, MetricType)> {
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
                b',' => {
                    self.record_point(0, special);
                    self.labels(fi, typ, &mut labels, &mut special)?
                }
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
            self.record_point(0, special);
            self.labels(fi, typ, &mut labels, &mut special)?;
        }
        self.value(fi, typ, role, labels, special, None)?;
        Ok((fi, role, typ))
    }

    /// The recent line and its last resume point up to which this line, starting at `start`,
    /// has the same bytes (the latest such point over all recent lines).
    #[inline]
    fn resume_point(&self, start: usize) -> Option<(usize, usize)> {
        let line = &self.buf[start..];
        let reach = |e: &LineRecord| {
            let last = e.points.last().map_or(0, |p| p.end);
            let same = common_prefix(&self.buf[e.start..], line, last);
            e.points.iter().rposition(|p| p.end <= same)
        };
        // Usually the previous line's record, as far as it goes.
        let mut best = None;
        if let Some(i) = self.last_entry {
            let e = &self.recent[i];
            if let Some(at) = reach(e) {
                if at + 1 == e.points.len() {
                    return Some((i, at));
                }
                best = Some((i, at, e.points[at].end));
            }
        }
        for (i, e) in self.recent[..self.live].iter().enumerate() {
            if Some(i) == self.last_entry {
                continue;
            }
            if let Some(at) = reach(e) {
                if best.is_none_or(|(_, _, end)| e.points[at].end > end) {
                    best = Some((i, at, e.points[at].end));
                }
            }
        }
        best.map(|(i, at, _)| (i, at))
    }

    /// A sample line read from resume point `at` of recent line `entry` on: the name, the
    /// family and the labels before the point are that line's (the same bytes). Returns its
    /// family, role and type.
    fn resumed_sample(
        &mut self,
        start: usize,
        entry: usize,
        at: usize,
    ) -> PResult<(usize, Role, MetricType)> {
        // The line takes over the record's points and labels up to the point (the record
        // is this line's once it is read): no copies.
        let e = &mut self.recent[entry];
        let point = e.points[at];
        let (fi, role, typ, grouped) = (e.fi, e.role, e.typ, e.grouped);
        // The same labels as the record's line (all before the point on both lines): the
        // same summary/histogram metric (its key is the same), without building the key.
        let same_before = e.labels.len() == point.labels;
        e.points.truncate(at + 1);
        e.labels.truncate(point.labels);
        std::mem::swap(&mut self.points, &mut e.points);
        let mut labels = std::mem::take(&mut e.labels);
        std::mem::swap(&mut e.labels, &mut self.scratch_labels);
        self.pos = start + point.end;
        self.cur = self.buf[self.pos - 1];
        let mut special = point.special;
        self.labels(fi, typ, &mut labels, &mut special)?;
        let known = if same_before && labels.len() == point.labels {
            grouped
        } else {
            None
        };
        self.value(fi, typ, role, labels, special, known)?;
        Ok((fi, role, typ))
    }

    /// Keeps the sample line just read (starting at `start`, resumed from recent line
    /// `entry` if any) as the recent line of its name, if it has resume points.
    fn remember_line(
        &mut self,
        start: usize,
        fi: usize,
        role: Role,
        typ: MetricType,
        entry: Option<usize>,
    ) {
        if self.points.is_empty() {
            self.last_entry = None;
            return;
        }
        let slot = match entry {
            Some(i) => i,
            None if self.live < RECENT_LINES => {
                if self.live == self.recent.len() {
                    self.recent.push(LineRecord {
                        start,
                        fi,
                        role,
                        typ,
                        points: Vec::new(),
                        labels: Vec::new(),
                        grouped: None,
                        used: 0,
                    });
                }
                self.live += 1;
                self.live - 1
            }
            None => (0..self.live)
                .min_by_key(|&i| self.recent[i].used)
                .unwrap_or(0),
        };
        let e = &mut self.recent[slot];
        (e.start, e.fi, e.role, e.typ) = (start, fi, role, typ);
        e.grouped = self.line_grouped;
        e.used = self.stamp;
        std::mem::swap(&mut e.points, &mut self.points);
        std::mem::swap(&mut e.labels, &mut self.scratch_labels);
        self.last_entry = Some(slot);
    }

    /// Records a resume point of the current line: the label loop is about to read the
    /// byte at `pos`, with `labels` labels kept and `special` read.
    #[inline]
    fn record_point(&mut self, labels: usize, special: f64) {
        self.points.push(Resume {
            end: self.pos - self.line_start,
            labels,
            special,
        });
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
            if seen.is_none() {
                self.record_point(labels.len(), *special);
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
            let parsed = match &value {
                Cow::Borrowed(text) => self.bound(text.as_bytes()),
                Cow::Owned(text) => self.float(text.as_bytes()),
            };
            *special = match parsed {
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
        labels.push((self.str_of(name).unwrap_or_default(), value));
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
                return self
                    .str_of(&buf[start..start + i])
                    .map(Cow::Borrowed)
                    .ok_or_else(|| {
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
        known: Option<usize>,
    ) -> PResult<()> {
        let mi = if matches!(
            typ,
            MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram
        ) {
            let mi = match known {
                Some(mi) => mi,
                None => self.grouped_metric(fi, &labels),
            };
            self.line_grouped = Some(mi);
            mi
        } else {
            let metrics = &mut self.families[fi].metrics;
            metrics.push(Metric {
                label: owned_labels(&labels),
                ..Default::default()
            });
            self.line_grouped = None;
            metrics.len() - 1
        };
        self.scratch_labels = labels;

        let token = self.token_until_blank()?;
        let Some(v) = self.float(token) else {
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
        // First the labels in line order: the same list as the previous summary/histogram
        // line (its `_sum` after its buckets) is the same metric, without sorting.
        self.key.clear();
        self.key.extend_from_slice(&(fi as u64).to_le_bytes());
        for l in labels {
            push_key_label(&mut self.key, l);
        }
        if let Some(mi) = self.last_grouped.filter(|_| self.last_key == self.key) {
            return mi;
        }
        std::mem::swap(&mut self.last_key, &mut self.key);
        // The map's key has the labels sorted by name (Go's signature).
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
            push_key_label(&mut self.key, l);
        }
        let mi = match self.grouped.get(self.key.as_slice()) {
            Some(&mi) => mi,
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
        self.last_grouped = Some(mi);
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
                // Room for as many buckets as the previous histogram got (the histograms of
                // a body usually share their bounds): no regrowth of the vector.
                if histogram.bucket.capacity() == 0 && self.bucket_hint > 0 {
                    histogram.bucket.reserve_exact(self.bucket_hint);
                }
                (float, negative) = set_histogram_value(histogram, role, v, special);
                if role == Role::Plain {
                    self.bucket_hint = histogram.bucket.len();
                }
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

/// Appends a label to a summary/histogram key: name and value, each ended by 0xFF (which
/// never occurs in UTF-8, so the key is unambiguous).
#[inline]
fn push_key_label(key: &mut Vec<u8>, (name, value): &RawLabel) {
    key.extend_from_slice(name.as_bytes());
    key.push(0xFF);
    key.extend_from_slice(value.as_bytes());
    key.push(0xFF);
}

/// The length of the common prefix of `a` and `b`, counted up to `max` at most.
#[inline]
fn common_prefix(a: &[u8], b: &[u8], max: usize) -> usize {
    let n = a.len().min(b.len()).min(max);
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

#[inline]
fn memchr_newline(s: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', s)
}

#[cfg(test)]
mod tests {
    //! The parser's cases are data: `tests/text_parse_cases.rs` runs the inputs under
    //! `testdata/text_parse/` against their expected families or Go error lines. What stays
    //! here is what a case file cannot hold.
    use super::*;

    fn lp(name: &str, value: &str) -> LabelPair {
        LabelPair::new(name, value)
    }

    fn parse_ok(body: &[u8]) -> Vec<MetricFamily> {
        parse_text(body).unwrap_or_else(|e| panic!("unexpected error for {body:?}: {e}"))
    }

    /// More distinct `le` texts than the parser remembers, in another order for each label
    /// set: every bucket still gets the bound its own text says.
    #[test]
    fn many_distinct_bounds_each_parsed_from_their_own_text() {
        let texts: Vec<String> = (0..150).map(|i| format!("{}.{i}", i % 7)).collect();
        let mut body = String::from("# TYPE h histogram\n");
        for set in 0..3 {
            let mut order: Vec<&String> = texts.iter().collect();
            if set == 1 {
                order.reverse();
            }
            for t in order {
                body.push_str(&format!("h_bucket{{s=\"{set}\",le=\"{t}\"}} 1\n"));
            }
        }
        let families = parse_ok(body.as_bytes());
        assert_eq!(families[0].metric.len(), 3);
        for (set, m) in families[0].metric.iter().enumerate() {
            let got: Vec<f64> = m
                .histogram
                .as_ref()
                .unwrap()
                .bucket
                .iter()
                .map(|b| b.upper_bound())
                .collect();
            let mut want: Vec<f64> = texts.iter().map(|t| t.parse().unwrap()).collect();
            if set == 1 {
                want.reverse();
            }
            assert_eq!(got, want, "label set {set}");
        }
    }

    /// A large generated body (too big for a case file): many series, many histogram groups.
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
