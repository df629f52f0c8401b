//! Grouping labels stored once per group instead of once per series.
//!
//! Every series of a group carries the group's labels (its grouping key, plus `instance=""`
//! when the key has no `instance`). Repeating them in both encodings of every series was
//! about half of the bytes a stored series cost. An entry built for a group therefore stores
//! its encodings *cut*: each grouping label that a line or a metric carries with the group's
//! value is replaced by a two-byte marker, and the group's [`Splices`] (the labels
//! pre-encoded once, for both formats, cached in the [`GroupKey`]) put them back at output.
//!
//! * Text: the stored text is the literal runs between the group's labels, each behind its
//!   length (a varint), with a one-byte splice code between two runs: label `k`, or all of
//!   the group's labels in a row (`a="1",b="2"`, the usual case). Writing it back copies
//!   runs and pre-encoded labels, without scanning for anything.
//! * Protobuf: the `label` field (tag 1) becomes field 15 (varint) = the label's index, or
//!   field 14 = 0 for all of them in a row, fields `Metric` does not have; each metric's
//!   length prefix is its stored length, so the stored bytes stay valid protobuf.
//!
//! Cutting is exact by construction: only bytes equal to a label's pre-encoded form are
//! replaced, so writing the markers back reproduces the encoder's bytes whatever the labels
//! are. Identities, decoding, persistence and replication see the real labels.
//!
//! The persisted record keeps its format: an entry is written back in full, except that
//! grouping values of at least [`SHARE_MIN`] bytes are written the way earlier versions
//! stored them ([`SharedLabels`]: a `"\0"` placeholder value, holes in the text at recorded
//! offsets), which [`Spliced`] reads back.

use crate::group::next_field;
use crate::key::GroupKey;
use std::sync::Arc;

/// Grouping label values at least this long are persisted once per group (and hashed into
/// series identities as a digest).
pub const SHARE_MIN: usize = 64;

/// The value that stands for a long grouping label in a persisted metric.
pub const PLACEHOLDER: &str = "\0";

/// The long grouping labels of one group as persisted records hold them (placeholders in
/// the metrics, holes in the text).
#[derive(Debug)]
pub struct SharedLabels {
    /// Label names, sorted (as in the key).
    pub names: Box<[Box<str>]>,
    /// The raw values.
    pub values: Box<[Box<str>]>,
    /// Their digests, as series identities hash them (`group::write_value`).
    pub digests: Box<[u64]>,
    /// The values escaped for the text format (without the quotes).
    text: Box<[Box<[u8]>]>,
    /// Complete `label` fields (tag 1) of a `Metric` message holding the real pairs.
    proto: Box<[Box<[u8]>]>,
    /// The same fields with the placeholder value, as stored.
    proto_stored: Box<[Box<[u8]>]>,
}

impl SharedLabels {
    /// The labels of `key` that are long enough to share (`None` if there are none).
    pub fn of_key(key: &GroupKey) -> Option<Arc<SharedLabels>> {
        Self::with_names(key, |_, v| v.len() >= SHARE_MIN)
    }

    /// The labels of `key` picked by `pick` (`None` if none is picked).
    pub fn with_names(
        key: &GroupKey,
        pick: impl Fn(&str, &str) -> bool,
    ) -> Option<Arc<SharedLabels>> {
        let picked: Vec<(&str, &str)> = key
            .labels()
            .iter()
            .map(|(n, v)| (&**n, &**v))
            .filter(|(n, v)| pick(n, v))
            .collect();
        if picked.is_empty() {
            return None;
        }
        let field = |n: &str, v: &str| {
            let mut out = Vec::new();
            prost::encoding::message::encode(1, &exposition::pb::LabelPair::new(n, v), &mut out);
            out.into_boxed_slice()
        };
        Some(Arc::new(SharedLabels {
            names: picked.iter().map(|(n, _)| Box::from(*n)).collect(),
            values: picked.iter().map(|(_, v)| Box::from(*v)).collect(),
            digests: picked
                .iter()
                .map(|(_, v)| crate::group::value_digest(v.as_bytes()))
                .collect(),
            text: picked
                .iter()
                .map(|(_, v)| {
                    let mut s = String::new();
                    exposition::text_encode::escape_into(&mut s, v, true);
                    s.into_bytes().into_boxed_slice()
                })
                .collect(),
            proto: picked.iter().map(|(n, v)| field(n, v)).collect(),
            proto_stored: picked.iter().map(|(n, _)| field(n, PLACEHOLDER)).collect(),
        }))
    }

    /// Which shared label `name` is.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// Which shared label a stored `LabelPair` message body stands for, if it is a placeholder.
    fn placeholder_index(&self, pair: &[u8]) -> Option<usize> {
        self.proto_stored.iter().position(|f| {
            // `f` is key + length + body; compare the body.
            let mut b = &f[..];
            let _ = prost::encoding::decode_varint(&mut b);
            let _ = prost::encoding::decode_varint(&mut b);
            b == pair
        })
    }
}

/// Where an entry's shared labels go.
#[derive(Debug)]
pub struct Spliced {
    pub labels: Arc<SharedLabels>,
    /// Offsets in the stored text where the escaped values go, in order; the `i`-th one is
    /// label `i % labels.names.len()` (every line holds every shared label, in name order).
    pub text_at: Box<[u32]>,
    /// Length of the written text.
    pub text_len: usize,
    /// Length of the written protobuf.
    pub proto_len: usize,
}

impl Spliced {
    /// Describes stored text and protobuf for `labels`.
    pub fn new(labels: Arc<SharedLabels>, text: &[u8], text_at: Vec<u32>, proto: &[u8]) -> Spliced {
        let k = labels.names.len();
        let text_len = text.len()
            + text_at
                .iter()
                .enumerate()
                .map(|(i, _)| labels.text[i % k].len())
                .sum::<usize>();
        let mut s = Spliced {
            labels,
            text_at: text_at.into_boxed_slice(),
            text_len,
            proto_len: 0,
        };
        s.proto_len = s.walk_proto(proto, None).unwrap_or(0);
        s
    }

    /// Appends the text with the shared values in place.
    pub fn write_text(&self, text: &[u8], out: &mut Vec<u8>) {
        let k = self.labels.names.len();
        out.reserve(self.text_len);
        let mut from = 0;
        for (i, &at) in self.text_at.iter().enumerate() {
            let at = at as usize;
            out.extend_from_slice(&text[from..at]);
            out.extend_from_slice(&self.labels.text[i % k]);
            from = at;
        }
        out.extend_from_slice(&text[from..]);
    }

    /// Appends the `metric` fields with the shared pairs in place.
    pub fn write_proto(&self, proto: &[u8], out: &mut Vec<u8>) {
        out.reserve(self.proto_len);
        let _ = self.walk_proto(proto, Some(out));
    }

    fn walk_proto(
        &self,
        mut proto: &[u8],
        mut sink: Option<&mut Vec<u8>>,
    ) -> Result<usize, String> {
        let mut total = 0;
        while !proto.is_empty() {
            let (tag, body) = crate::group::next_field(&mut proto)?;
            // Pass 1: the metric's length with the real pairs.
            let mut len = body.len();
            let mut b = body;
            while !b.is_empty() {
                let (t, pair) = crate::group::next_field(&mut b)?;
                if t == 1 {
                    if let Some(i) = self.labels.placeholder_index(pair) {
                        len = len + self.labels.proto[i].len() - self.labels.proto_stored[i].len();
                    }
                }
            }
            let mut head = Vec::with_capacity(10);
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut head);
            prost::encoding::encode_varint(len as u64, &mut head);
            total += head.len() + len;
            if let Some(out) = sink.as_deref_mut() {
                out.extend_from_slice(&head);
                let mut b = body;
                let mut from = 0;
                while !b.is_empty() {
                    let start = body.len() - b.len();
                    let (t, pair) = crate::group::next_field(&mut b)?;
                    if t == 1 {
                        if let Some(i) = self.labels.placeholder_index(pair) {
                            out.extend_from_slice(&body[from..start]);
                            out.extend_from_slice(&self.labels.proto[i]);
                            from = body.len() - b.len();
                        }
                    }
                }
                out.extend_from_slice(&body[from..]);
            }
        }
        Ok(total)
    }
}

/// Text splice code of all the group's labels in a row (`a="1",b="2"`).
const TEXT_ALL: u8 = 0xfe;
/// Text splice code of the family name that starts a line.
const TEXT_NAME: u8 = 0xfd;
/// Text splice code followed by a LEB128 label index (indexes from [`TEXT_NAME`] on).
const TEXT_LONG: u8 = 0xff;
/// The splice index standing for the family name (text only).
const NAME: usize = usize::MAX - 1;
/// Key of a protobuf splice: field 15, varint (the label index).
pub(crate) const PROTO_MARK: u8 = 15 << 3;
/// Key of a protobuf splice of all the group's labels in a row: field 14, varint (0).
pub(crate) const PROTO_ALL: u8 = 14 << 3;
/// Key of a `Metric`'s `label` field (tag 1, length-delimited).
pub(crate) const LABEL_KEY: u8 = 0x0a;
/// Key of a `MetricFamily`'s `metric` field (tag 4, length-delimited).
const METRIC_KEY: u8 = 0x22;
/// The splice index standing for all labels.
pub(crate) const ALL: usize = usize::MAX;

/// The labels every series of a group carries (its grouping key, plus `instance=""` when
/// the key has none), sorted by name, pre-encoded for both formats; also all of them in a
/// row, the way most lines and metrics carry them. One allocation that entries point to
/// directly: a scrape reaches the labels with one memory access more per entry, not two.
///
/// Layout (little-endian `u32`s): `n`, the ranges of all labels' text and protobuf, the
/// offset of the label table; the text and protobuf of all labels in a row (in the first
/// cache line for usual keys); then per label the ranges of its text and `label` field
/// (inside the former), of its raw name and value (inside the field) and its value's digest
/// (`u64`).
#[derive(Debug, Clone)]
pub struct Splices(Arc<[u8]>);

const HEAD: usize = 6 * 4;
const ENTRY: usize = 8 * 4 + 8;

fn put_u32(buf: &mut [u8], at: usize, v: usize) {
    buf[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
}

impl Splices {
    /// The splices of `key` (use [`GroupKey::splices`], which caches them).
    pub(crate) fn of_key(key: &GroupKey) -> Splices {
        Splices::of_labels(key, false)
    }

    /// The splices a push's metrics carry when their long grouping values were replaced by
    /// [`PLACEHOLDER`] ([`crate::group::sanitize_labels_placeholders`]): used only to find
    /// the labels in freshly encoded bytes (same label order and indexes as [`Splices::of_key`]),
    /// so that a push never encodes a long grouping value once per series.
    pub(crate) fn placeholders_of_key(key: &GroupKey) -> Splices {
        Splices::of_labels(key, true)
    }

    fn of_labels(key: &GroupKey, placeholders: bool) -> Splices {
        let mut labels: Vec<(&str, &str)> = key
            .labels()
            .iter()
            .map(|(n, v)| {
                let v: &str = if placeholders && v.len() >= SHARE_MIN {
                    PLACEHOLDER
                } else {
                    v
                };
                (&**n, v)
            })
            .collect();
        if key.get("instance").is_none() {
            labels.push(("instance", ""));
            labels.sort_by(|a, b| a.0.cmp(b.0));
        }
        let mut buf = vec![0u8; HEAD];
        let mut ranges = Vec::with_capacity(labels.len());
        let t0 = buf.len();
        let mut text = String::new();
        for (i, (n, v)) in labels.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            text.clear();
            exposition::names::write_text_name(&mut text, n);
            text.push_str("=\"");
            exposition::text_encode::escape_into(&mut text, v, true);
            text.push('"');
            let at = buf.len();
            buf.extend_from_slice(text.as_bytes());
            ranges.push([at, buf.len(), 0, 0, 0, 0, 0, 0]);
        }
        let t1 = buf.len();
        for (i, (n, v)) in labels.iter().enumerate() {
            let at = buf.len();
            let pair = exposition::pb::LabelPair::new(*n, *v);
            prost::encoding::message::encode(1, &pair, &mut buf);
            // The raw name and value end the field's two parts.
            let end = buf.len();
            let name_at =
                end - v.len() - 1 - prost::encoding::encoded_len_varint(v.len() as u64) - n.len();
            ranges[i][2..].copy_from_slice(&[
                at,
                end,
                name_at,
                name_at + n.len(),
                end - v.len(),
                end,
            ]);
        }
        let p1 = buf.len();
        let table = buf.len();
        buf.resize(table + labels.len() * ENTRY, 0);
        for (i, (_, v)) in labels.iter().enumerate() {
            let e = table + i * ENTRY;
            for (j, r) in ranges[i].iter().enumerate() {
                put_u32(&mut buf, e + j * 4, *r);
            }
            let d = crate::group::value_digest(v.as_bytes()).to_le_bytes();
            buf[e + 32..e + 40].copy_from_slice(&d);
        }
        for (i, v) in [labels.len(), t0, t1, t1, p1, table]
            .into_iter()
            .enumerate()
        {
            put_u32(&mut buf, i * 4, v);
        }
        Splices(Arc::from(buf))
    }

    #[inline]
    fn u32_at(&self, at: usize) -> usize {
        let b = &self.0[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Bytes `[u32 at a, u32 at a + 4)` of the buffer.
    #[inline]
    fn range_at(&self, a: usize) -> &[u8] {
        &self.0[self.u32_at(a)..self.u32_at(a + 4)]
    }

    pub(crate) fn len(&self) -> usize {
        self.u32_at(0)
    }

    /// Where the pre-encoded labels are (for a prefetch hint).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    fn entry(&self, k: usize) -> usize {
        self.u32_at(20) + k * ENTRY
    }

    /// Label `k`'s text (all of them for [`ALL`]; nothing for an unknown index).
    #[inline]
    fn text(&self, k: usize) -> &[u8] {
        match k {
            ALL => self.range_at(4),
            k if k < self.len() => self.range_at(self.entry(k)),
            _ => &[],
        }
    }

    /// Label `k`'s `label` field (all of them for [`ALL`]; nothing for an unknown index).
    #[inline]
    fn proto(&self, k: usize) -> &[u8] {
        match k {
            ALL => self.range_at(12),
            k if k < self.len() => self.range_at(self.entry(k) + 8),
            _ => &[],
        }
    }

    /// Label `k`'s raw name.
    pub(crate) fn name(&self, k: usize) -> &[u8] {
        self.range_at(self.entry(k) + 16)
    }

    /// Label `k`'s raw value.
    pub(crate) fn value(&self, k: usize) -> &[u8] {
        self.range_at(self.entry(k) + 24)
    }

    /// Label `k`'s value digest.
    pub(crate) fn digest(&self, k: usize) -> u64 {
        let e = self.entry(k) + 32;
        let mut d = [0u8; 8];
        d.copy_from_slice(&self.0[e..e + 8]);
        u64::from_le_bytes(d)
    }

    /// How many labels there are (the key's, plus `instance` if the key has none).
    pub fn label_count(&self) -> usize {
        self.len()
    }

    /// Label `k`'s raw name and value (`k` < [`Splices::label_count`]), sorted by name.
    pub fn label(&self, k: usize) -> (&[u8], &[u8]) {
        (self.name(k), self.value(k))
    }

    /// Whether `self` and `other` are the same splices (one allocation).
    pub fn same(&self, other: &Splices) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn is_long(&self, k: usize) -> bool {
        self.value(k).len() >= SHARE_MIN
    }

    /// Whether any label is persisted the long way ([`SharedLabels`]).
    fn has_long(&self) -> bool {
        (0..self.len()).any(|k| self.is_long(k))
    }
}

/// Appends a literal of the stored text: its length, then its bytes.
fn text_literal(out: &mut Vec<u8>, lit: &[u8]) {
    prost::encoding::encode_varint(lit.len() as u64, out);
    out.extend_from_slice(lit);
}

/// Appends the code of text splice `k`.
fn text_splice(out: &mut Vec<u8>, k: usize) {
    if k == ALL {
        out.push(TEXT_ALL);
    } else if k == NAME {
        out.push(TEXT_NAME);
    } else if k < TEXT_NAME as usize {
        out.push(k as u8);
    } else {
        out.push(TEXT_LONG);
        prost::encoding::encode_varint(k as u64, out);
    }
}

/// The parts of stored text: literals and the splices between them, in order.
enum Part<'a> {
    Literal(&'a [u8]),
    Splice(usize),
}

/// Walks stored text (`literal (splice literal)*`), calling `f` with each part.
#[inline]
fn text_parts<'a>(stored: &'a [u8], mut f: impl FnMut(Part<'a>)) {
    let mut i = 0;
    loop {
        let Some(n) = varint(stored, &mut i) else {
            return;
        };
        let end = (i + n).min(stored.len());
        f(Part::Literal(&stored[i..end]));
        i = end;
        let Some(&code) = stored.get(i) else {
            return;
        };
        i += 1;
        let k = match code {
            TEXT_ALL => ALL,
            TEXT_NAME => NAME,
            TEXT_LONG => match varint(stored, &mut i) {
                Some(k) => k,
                None => return,
            },
            k => k as usize,
        };
        f(Part::Splice(k));
    }
}

/// Where the last literal of stored text (`literal (splice literal)*`) starts: the offset of
/// its length varint and of its bytes. `None` if the text is not well formed.
pub(crate) fn last_literal(stored: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    loop {
        let start = i;
        let n = varint(stored, &mut i)?;
        let bytes = i;
        i = i.checked_add(n).filter(|end| *end <= stored.len())?;
        let Some(&code) = stored.get(i) else {
            return Some((start, bytes));
        };
        i += 1;
        if code == TEXT_LONG {
            varint(stored, &mut i)?;
        }
    }
}

/// A varint at `b[*i..]` (1-byte fast path), advancing `i`.
#[inline]
fn varint(b: &[u8], i: &mut usize) -> Option<usize> {
    let first = *b.get(*i)?;
    if first < 0x80 {
        *i += 1;
        return Some(first as usize);
    }
    let mut s = &b[*i..];
    let v = prost::encoding::decode_varint(&mut s).ok()?;
    *i = b.len() - s.len();
    Some(v as usize)
}

/// Cuts the group's labels out of freshly encoded text lines into `out`: the stored text is
/// the literals between the labels, each behind its length, and a splice code per label
/// (or per run of all of them), so that writing it back needs no scanning.
pub(crate) fn cut_text(text: &[u8], sp: &Splices, name: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(text.len() / 2);
    let n = text.len();
    let all = sp.text(ALL);
    let (mut from, mut next) = (0, 0);
    let ends = |rest: &[u8], len: usize| matches!(rest.get(len), Some(b',' | b'}'));
    // A line that starts with the family name (a legacy name, as written bare).
    let cut_name = |i: usize, from: &mut usize, out: &mut Vec<u8>| -> usize {
        if name.is_empty() || !text[i..].starts_with(name) {
            return i;
        }
        text_literal(out, &text[*from..i]);
        text_splice(out, NAME);
        *from = i + name.len();
        *from
    };
    let mut i = cut_name(0, &mut from, out);
    while i < n {
        match text[i] {
            b'\n' => {
                next = 0;
                i += 1;
                if i < n {
                    i = cut_name(i, &mut from, out);
                }
            }
            b'{' | b',' if next < sp.len() => {
                let p = i + 1;
                let rest = &text[p..];
                let hit = if next == 0 && rest.starts_with(all) && ends(rest, all.len()) {
                    Some(ALL)
                } else {
                    (next..sp.len()).find(|&k| {
                        let f = sp.text(k);
                        rest.starts_with(f) && ends(rest, f.len())
                    })
                };
                match hit {
                    Some(k) => {
                        text_literal(out, &text[from..p]);
                        text_splice(out, k);
                        from = p + sp.text(k).len();
                        i = from;
                        next = if k == ALL { sp.len() } else { k + 1 };
                    }
                    None => i += 1,
                }
            }
            _ if next >= sp.len() => {
                // Every label of the group is placed on this line: on to its end.
                match memchr::memchr(b'\n', &text[i..]) {
                    Some(p) => i += p,
                    None => i = n,
                }
            }
            _ => i += 1,
        }
    }
    text_literal(out, &text[from..]);
    true
}

/// Appends stored text with the labels written back.
pub(crate) fn write_text(stored: &[u8], sp: &Splices, name: &[u8], out: &mut Vec<u8>) {
    text_parts(stored, |part| match part {
        // Often the `{` between the name and the labels.
        Part::Literal([b]) => out.push(*b),
        Part::Literal(l) => out.extend_from_slice(l),
        Part::Splice(NAME) => out.extend_from_slice(name),
        Part::Splice(k) => out.extend_from_slice(sp.text(k)),
    });
}

/// The length of [`write_text`]'s output.
pub(crate) fn text_len(stored: &[u8], sp: &Splices, name: &[u8]) -> usize {
    let mut len = 0;
    text_parts(stored, |part| match part {
        Part::Literal(l) => len += l.len(),
        Part::Splice(NAME) => len += name.len(),
        Part::Splice(k) => len += sp.text(k).len(),
    });
    len
}

/// Cuts the group's labels out of encoded `metric` fields into `out`; `false` if they are
/// not the writer's (then the entry is stored uncut).
pub(crate) fn cut_proto(mut proto: &[u8], sp: &Splices, out: &mut Vec<u8>) -> bool {
    out.reserve(proto.len());
    let all = sp.proto(ALL);
    let mut body = Vec::new();
    while !proto.is_empty() {
        if proto[0] != METRIC_KEY {
            return false;
        }
        let Ok((_, metric)) = next_field(&mut proto) else {
            return false;
        };
        body.clear();
        let mut b = metric;
        let mut next = 0;
        while b.first() == Some(&LABEL_KEY) {
            if next == 0 && b.starts_with(all) {
                body.extend_from_slice(&[PROTO_ALL, 0]);
                b = &b[all.len()..];
                next = sp.len();
                continue;
            }
            let start = b;
            if next_field(&mut b).is_err() {
                return false;
            }
            let field = &start[..start.len() - b.len()];
            match (next..sp.len()).find(|&k| sp.proto(k) == field) {
                Some(k) => {
                    body.push(PROTO_MARK);
                    prost::encoding::encode_varint(k as u64, &mut body);
                    next = k + 1;
                }
                None => body.extend_from_slice(field),
            }
        }
        if matches!(b.first(), Some(&(PROTO_MARK | PROTO_ALL))) {
            return false;
        }
        body.extend_from_slice(b);
        out.push(METRIC_KEY);
        prost::encoding::encode_varint(body.len() as u64, out);
        out.extend_from_slice(&body);
    }
    true
}

/// The splice at `b[*i]` if there is one (`i` then past it), `None` at a stored label.
#[inline]
fn splice_at(b: &[u8], i: &mut usize) -> Option<usize> {
    match b[*i] {
        PROTO_ALL => {
            *i += 1;
            varint(b, i)?;
            Some(ALL)
        }
        PROTO_MARK => {
            *i += 1;
            varint(b, i)
        }
        _ => None,
    }
}

/// Walks the label fields and splices that lead a stored metric body (`stored[body..end]`),
/// calling `f(splice start, splice end, label index)` for each splice.
fn for_each_splice(stored: &[u8], body: usize, end: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut j = body;
    while j < end {
        match stored[j] {
            LABEL_KEY => {
                j += 1;
                match varint(stored, &mut j) {
                    Some(l) => j += l,
                    None => break,
                }
            }
            PROTO_MARK | PROTO_ALL => {
                let m = j;
                match splice_at(stored, &mut j) {
                    Some(k) => f(m, j, k),
                    None => break,
                }
            }
            _ => break,
        }
    }
}

/// One stored `metric` field at `stored[i..]`: its body's range, its stored length and the
/// length with the labels written back (`None` when it is not a `metric` field).
fn stored_metric(
    stored: &[u8],
    i: &mut usize,
    sp: &Splices,
) -> Option<(usize, usize, usize, usize)> {
    let start = *i;
    *i += 1;
    let len = varint(stored, i)?;
    if stored[start] != METRIC_KEY {
        return None;
    }
    let (body, end) = (*i, (*i + len).min(stored.len()));
    let mut out_len = len;
    for_each_splice(stored, body, end, |m, j, k| {
        out_len = out_len + sp.proto(k).len() - (j - m)
    });
    Some((body, end, len, out_len))
}

/// The length of [`write_proto`]'s output.
pub(crate) fn written_proto_len(stored: &[u8], sp: &Splices) -> usize {
    let (n, mut i, mut total) = (stored.len(), 0, 0);
    while i < n {
        let start = i;
        let Some((_, end, _, out_len)) = stored_metric(stored, &mut i, sp) else {
            return total + n - start;
        };
        total += 1 + prost::encoding::encoded_len_varint(out_len as u64) + out_len;
        i = end;
    }
    total
}

/// Appends stored `metric` fields with the labels written back.
pub(crate) fn write_proto(stored: &[u8], sp: &Splices, out: &mut Vec<u8>) {
    let n = stored.len();
    let mut i = 0;
    while i < n {
        let start = i;
        let Some((body, end, len, out_len)) = stored_metric(stored, &mut i, sp) else {
            out.extend_from_slice(&stored[start..]);
            return;
        };
        if out_len == len {
            out.extend_from_slice(&stored[start..end]);
            i = end;
            continue;
        }
        // Copy, the splices replaced.
        out.push(METRIC_KEY);
        prost::encoding::encode_varint(out_len as u64, out);
        let mut from = body;
        for_each_splice(stored, body, end, |m, j, k| {
            out.extend_from_slice(&stored[from..m]);
            out.extend_from_slice(sp.proto(k));
            from = j;
        });
        out.extend_from_slice(&stored[from.min(end)..end]);
        i = end;
    }
}

/// Writes cut text and metrics back the way records hold them: in full, except that long
/// grouping values are left out as [`SharedLabels`] does (holes at `at` in the text,
/// placeholder values in the metrics). Returns the names of those labels, or `None` (and
/// nothing written) when the group has no long value or a line does not hold each of them
/// once, in order (then the caller writes the entry in full).
pub(crate) fn write_record_form(
    text: &[u8],
    proto: &[u8],
    sp: &Splices,
    name: &[u8],
    text_out: &mut Vec<u8>,
    at: &mut Vec<u32>,
    proto_out: &mut Vec<u8>,
) -> Option<Vec<usize>> {
    if !sp.has_long() {
        return None;
    }
    let long: Vec<usize> = (0..sp.len()).filter(|&k| sp.is_long(k)).collect();
    // Text: per line, the long labels must come once each, in order.
    let (mut seen, mut lines) = (0, 0);
    let mut ok = true;
    text_parts(text, |part| match part {
        Part::Literal(l) => {
            let mut from = 0;
            for p in memchr::memchr_iter(b'\n', l) {
                ok &= seen == (lines + 1) * long.len();
                lines += 1;
                text_out.extend_from_slice(&l[from..=p]);
                from = p + 1;
            }
            text_out.extend_from_slice(&l[from..]);
        }
        Part::Splice(NAME) => text_out.extend_from_slice(name),
        Part::Splice(k) => {
            let ks = match k {
                ALL => 0..sp.len(),
                k if k < sp.len() => k..k + 1,
                _ => {
                    ok = false;
                    0..0
                }
            };
            for k in ks.clone() {
                if k > ks.start {
                    text_out.push(b',');
                }
                if !sp.is_long(k) {
                    text_out.extend_from_slice(sp.text(k));
                    continue;
                }
                ok &= long.get(seen % long.len()) == Some(&k);
                seen += 1;
                let f = sp.text(k);
                let eq = f.windows(2).position(|w| w == b"=\"").map_or(0, |p| p + 2);
                text_out.extend_from_slice(&f[..eq]);
                at.push(u32::try_from(text_out.len()).unwrap_or(u32::MAX));
                text_out.push(b'"');
            }
        }
    });
    if !ok {
        return None;
    }
    if seen != lines * long.len() {
        return None;
    }
    // Metrics: long labels as placeholder pairs. One metric is written back at a time, so
    // that a long value is never held once per series (issue 15 item 1).
    let mut stored = proto;
    let mut full = Vec::new();
    let mut body = Vec::new();
    while !stored.is_empty() {
        let start = stored;
        next_field(&mut stored).ok()?;
        full.clear();
        write_proto(&start[..start.len() - stored.len()], sp, &mut full);
        let mut rest = &full[..];
        let (_, metric) = next_field(&mut rest).ok()?;
        if !rest.is_empty() {
            return None;
        }
        body.clear();
        let mut b = metric;
        while b.first() == Some(&LABEL_KEY) {
            let s = b;
            next_field(&mut b).ok()?;
            let field = &s[..s.len() - b.len()];
            match long.iter().find(|&&k| sp.proto(k) == field) {
                Some(&k) => prost::encoding::message::encode(
                    1,
                    &exposition::pb::LabelPair::new(
                        String::from_utf8_lossy(sp.name(k)),
                        PLACEHOLDER,
                    ),
                    &mut body,
                ),
                None => body.extend_from_slice(field),
            }
        }
        body.extend_from_slice(b);
        proto_out.push(METRIC_KEY);
        prost::encoding::encode_varint(body.len() as u64, proto_out);
        proto_out.extend_from_slice(&body);
    }
    Some(long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{sanitize_labels, EntryRecord, FamilyEntry, Group};
    use prost::Message;

    /// Entries of `body` for group `key`, built plain (labels in every series) and cut.
    fn entries(key: &GroupKey, body: &str) -> Vec<(FamilyEntry, FamilyEntry)> {
        let families = exposition::text_parse::parse_text(body.as_bytes()).unwrap();
        families
            .into_iter()
            .map(|mut mf| {
                for m in mf.metric.iter_mut() {
                    sanitize_labels(m, key);
                }
                let name: Arc<str> = mf.name().into();
                let t = mf.metric_type();
                let a = FamilyEntry::build(name.clone(), None, t, &mf.metric, 1);
                let b = FamilyEntry::build_shared(name, None, t, &mf.metric, 1, Some(key));
                (a, b)
            })
            .collect()
    }

    const BODY: &str = "# TYPE h histogram\nh_bucket{le=\"1\",q=\"\\\"\"} 1\nh_bucket{le=\"+Inf\",q=\"\\\"\"} 2\nh_sum{q=\"\\\"\"} 3\nh_count{q=\"\\\"\"} 2\n\
                        # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n\
                        # TYPE g gauge\ng{z=\"pushed\",b=\"\\n\"} 1\ng{b=\"2\",instance=\"own\"} 2\ng{b=\"x,job=\\\"j\\\"\",job=\"other\"} 3\n\
                        # TYPE u untyped\nu 1\n";

    /// Regression (issue 15 item 1 after issue 19 item 4): a push's metrics carry placeholders
    /// for long grouping values, so that no encoding holds the value once per series; the
    /// entry built from them reads exactly like one built from the real values, and its
    /// stored bytes and persisted record hold the value once.
    #[test]
    fn placeholder_metrics_build_the_same_entry_without_a_copy_per_series() {
        let long = "v".repeat(60 * 1024);
        let key = GroupKey::new([("job", "hostile"), ("big", long.as_str())]);
        let mut body = String::from("# TYPE m gauge\n");
        for i in 0..3_000 {
            body.push_str(&format!("m{{i=\"{i}\"}} 1\n"));
        }
        let mf = exposition::text_parse::parse_text(body.as_bytes())
            .unwrap()
            .remove(0);
        let (mut real, mut ph) = (mf.metric.clone(), mf.metric.clone());
        real.iter_mut().for_each(|m| sanitize_labels(m, &key));
        ph.iter_mut()
            .for_each(|m| crate::group::sanitize_labels_placeholders(m, &key));
        let name: Arc<str> = "m".into();
        let t = exposition::pb::MetricType::Gauge;
        let a = FamilyEntry::build_shared(name.clone(), None, t, &real, 1, Some(&key));
        let b = FamilyEntry::build_shared(name, None, t, &ph, 1, Some(&key));
        assert!(b.is_spliced());
        assert_eq!(a.text(), b.text());
        assert_eq!(a.proto_metrics(), b.proto_metrics());
        assert_eq!(a.series(), b.series());
        assert_eq!(a.proto_len(), b.proto_len());
        assert_eq!(a.text_len(), b.text_len());
        assert!(b.bytes.len() < 3_000 * 64, "stored {} bytes", b.bytes.len());
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        a.encode_entry_record(&mut ra);
        b.encode_entry_record(&mut rb);
        assert_eq!(ra, rb);
        assert!(
            rb.len() < long.len() + 3_000 * 160,
            "record {} bytes",
            rb.len()
        );
    }

    /// Regression (issue 19 item 4): an entry that stores its group's labels once writes,
    /// decodes, identifies and persists exactly like one that repeats them, whatever the
    /// label values (short, long, escaped, empty, UTF-8 names, many labels).
    #[test]
    fn cut_group_labels_are_invisible_to_readers() {
        let long = format!("v\"\\\n{}", "x".repeat(200));
        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("l{i:02}"), format!("v{i}")))
            .chain([("job".to_string(), "j".to_string())])
            .collect();
        let keys = [
            GroupKey::new([("job", "j")]),
            GroupKey::new([("job", "j"), ("instance", "i3")]),
            GroupKey::new([("job", ""), ("a", "1,b=\"2\""), ("zz", "\n")]),
            GroupKey::new([("job", "j"), ("a_long", long.as_str()), ("z", &*long)]),
            GroupKey::new([("job", "j"), ("instance", long.as_str())]),
            GroupKey::new([("job", "j"), ("my.label", "ä")]),
            GroupKey::new(many),
        ];
        for key in &keys {
            for (a, b) in entries(key, BODY) {
                let name = a.name.clone();
                assert!(b.is_spliced(), "{key:?} {name}");
                assert_eq!(a.text(), b.text(), "{key:?} {name}");
                assert_eq!(a.text_len(), b.text_len());
                assert_eq!(a.proto_metrics(), b.proto_metrics(), "{key:?} {name}");
                assert_eq!(a.proto_len(), b.proto_len());
                assert_eq!(a.metrics(), b.metrics());
                assert_eq!(a.series(), b.series());
                assert_eq!(a.metric_count, b.metric_count);
                assert_eq!(a.needs_escaping, b.needs_escaping);
                assert!(b.stored_bytes() < a.stored_bytes(), "{key:?} {name}");
                let mut g = Group::new(key.clone());
                g.families.insert(name.clone(), Arc::new(b));
                let back = Group::decode_record(&g.encode_record(), &mut |s| Arc::from(s)).unwrap();
                let c = &back.families[&name];
                assert!(c.is_spliced());
                assert_eq!(a.text(), c.text());
                assert_eq!(a.proto_metrics(), c.proto_metrics());
                assert_eq!(a.series(), c.series());
                assert_eq!(c.metric_count, a.metric_count);
                assert_eq!(c.stored_bytes(), g.families[&name].stored_bytes());
            }
        }
    }

    /// Regression (issue 19 item 4): the persisted record of a cut entry is the one earlier
    /// versions wrote: in full when the group has no long value...
    #[test]
    fn records_of_cut_entries_keep_their_format() {
        let key = GroupKey::new([("job", "j"), ("instance", "i3")]);
        for (a, b) in entries(&key, BODY) {
            let (mut ra, mut rb) = (Vec::new(), Vec::new());
            a.encode_entry_record(&mut ra);
            b.encode_entry_record(&mut rb);
            assert_eq!(ra, rb, "{}", a.name);
        }
        // ...and with long values left out (holes at `text_at`, placeholder values) as
        // `SharedLabels` did, which the decoder of those versions reads back.
        let long = "L".repeat(SHARE_MIN);
        let key = GroupKey::new([("job", "j"), ("a", long.as_str()), ("z", &*long)]);
        let shared = SharedLabels::of_key(&key).unwrap();
        for (a, b) in entries(&key, BODY) {
            let mut rb = Vec::new();
            b.encode_entry_record(&mut rb);
            let er = EntryRecord::decode(&rb[..]).unwrap();
            assert_eq!(er.shared, ["a", "z"], "{}", a.name);
            let full = String::from_utf8(a.text().to_vec()).unwrap();
            let holed = String::from_utf8(er.text.to_vec()).unwrap();
            assert_eq!(holed, full.replace(&long, ""), "{}", a.name);
            let at: Vec<u32> = er
                .text_at
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let s = Spliced::new(shared.clone(), &er.text, at.clone(), &er.proto);
            let (mut t, mut p) = (Vec::new(), Vec::new());
            s.write_text(&er.text, &mut t);
            s.write_proto(&er.proto, &mut p);
            assert_eq!(&t[..], &*a.text());
            assert_eq!(&p[..], &*a.proto_metrics());
            assert!(!er.proto.windows(long.len()).any(|w| w == long.as_bytes()));
        }
    }

    #[test]
    fn many_group_labels_are_cut_too() {
        // Splice indexes from 254 on take a varint.
        let labels: Vec<(String, String)> = (0..300)
            .map(|i| (format!("l{i:03}"), format!("{i}")))
            .collect();
        let key = GroupKey::new(labels);
        let sp = key.splices();
        assert_eq!(sp.len(), 301);
        // `l200x` sorts inside the group's labels: they are spliced one by one.
        let body = "# TYPE g gauge\ng{l200x=\"1\"} 1\ng{l200x=\"2\"} 2\n";
        for (a, b) in entries(&key, body) {
            assert_eq!(a.text(), b.text());
            assert_eq!(a.proto_metrics(), b.proto_metrics());
            assert!(b.stored_bytes() * 2 < a.stored_bytes());
        }
    }
}
