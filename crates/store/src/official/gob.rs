//! A decoder for Go's `encoding/gob` streams, as far as the official Pushgateway's
//! persistence file needs it: type definitions (arrays, slices, structs, maps, `GobEncoder`
//! types) and values of the basic types. Values are decoded generically into [`Value`], driven
//! by the type definitions found in the stream, so field order and type ids are never assumed.
//!
//! Wire format (see Go's `encoding/gob` package documentation):
//!
//! * `uint`: a byte < 128 is the value; otherwise the byte is the negated count (1–8) of
//!   big-endian bytes that follow.
//! * `int`: an `uint` whose low bit is the sign: `v >> 1`, complemented when the bit is set.
//! * `float64`: the IEEE bits byte-reversed, sent as an `uint`.
//! * strings and byte slices: `uint` length, then the bytes.
//! * message: `uint` length, then an `int` type id; a negative id `-t` defines type `t` (the
//!   body is a `wireType` struct), a positive id is a value of that type. A value whose type is
//!   not a struct is preceded by a zero `uint` (the field delta of a one-field struct).
//! * struct: (field delta `uint`, field value)*, then `0`; field numbers start at -1, fields
//!   with zero values are omitted.
//! * slices and arrays: `uint` count, elements; maps: `uint` count, key/value pairs; pointers
//!   are sent as the value pointed to; `GobEncoder`/`BinaryMarshaler` values as a byte slice.

use std::collections::HashMap;
use std::rc::Rc;

/// Why a gob stream could not be decoded; `offset` is the byte where it went wrong.
#[derive(Debug, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct GobError {
    pub offset: usize,
    pub reason: String,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Bytes(&'a [u8]),
    String(&'a [u8]),
    /// Arrays and slices.
    List(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// The fields that were sent (zero-valued fields are not), with their names.
    Struct(Vec<(Rc<str>, Value<'a>)>),
    /// The bytes of a `GobEncoder`, `BinaryMarshaler` or `TextMarshaler` value.
    Encoded(&'a [u8]),
}

impl<'a> Value<'a> {
    /// A struct field by name (`None` if not sent, i.e. zero, or not a struct).
    pub fn field(&self, name: &str) -> Option<&Value<'a>> {
        match self {
            Value::Struct(fs) => fs.iter().find(|(n, _)| &**n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Type {
    Array { elem: i64, len: u64 },
    Slice { elem: i64 },
    Struct { fields: Vec<(Rc<str>, i64)> },
    Map { key: i64, elem: i64 },
    Encoder,
}

const T_BOOL: i64 = 1;
const T_INT: i64 = 2;
const T_UINT: i64 = 3;
const T_FLOAT: i64 = 4;
const T_BYTES: i64 = 5;
const T_STRING: i64 = 6;
const T_COMPLEX: i64 = 7;
const T_INTERFACE: i64 = 8;
/// Nesting deeper than this is refused (a hostile file cannot overflow the stack).
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole stream, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, GobError> {
        Err(GobError {
            offset: self.base + self.pos,
            reason: reason.into(),
        })
    }

    fn byte(&mut self) -> Result<u8, GobError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("unexpected end of data"),
        }
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        let b = self.byte()?;
        if b < 0x80 {
            return Ok(u64::from(b));
        }
        let n = (!b).wrapping_add(1) as usize; // -b as a count
        if n == 0 || n > 8 {
            return self.err(format!("invalid uint length byte {b:#04x}"));
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 8) | u64::from(self.byte()?);
        }
        Ok(v)
    }

    fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    fn float(&mut self) -> Result<f64, GobError> {
        Ok(f64::from_bits(self.uint()?.swap_bytes()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], GobError> {
        let n = self.uint()?;
        let rest = self.buf.len() - self.pos;
        if n > rest as u64 {
            return self.err(format!("length {n} exceeds the {rest} bytes left"));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn string(&mut self) -> Result<String, GobError> {
        let b = self.bytes()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("type or field name is not UTF-8"),
        }
    }

    /// A count of elements that follow: each takes at least one byte.
    fn count(&mut self) -> Result<usize, GobError> {
        let n = self.uint()?;
        let rest = self.buf.len() - self.pos;
        if n > rest as u64 {
            return self.err(format!("count {n} exceeds the {rest} bytes left"));
        }
        Ok(n as usize)
    }

    /// Walks a struct's fields, calling `f` with each field number.
    fn fields(
        &mut self,
        mut f: impl FnMut(&mut Self, usize) -> Result<(), GobError>,
    ) -> Result<(), GobError> {
        let mut field: i64 = -1;
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            field = match i64::try_from(delta).ok().and_then(|d| field.checked_add(d)) {
                Some(x) if x < 1 << 20 => x,
                _ => return self.err(format!("invalid field delta {delta}")),
            };
            f(self, field as usize)?;
        }
    }
}

/// The name and id every type definition starts with (`CommonType`).
fn common(r: &mut Reader) -> Result<i64, GobError> {
    let mut id = 0;
    r.fields(|r, f| match f {
        0 => r.string().map(drop),
        1 => {
            id = r.int()?;
            Ok(())
        }
        _ => r.err(format!("unknown CommonType field {f}")),
    })?;
    Ok(id)
}

/// A `wireType` struct: exactly one of its fields is set.
fn wire_type(r: &mut Reader) -> Result<Type, GobError> {
    let mut out = None;
    r.fields(|r, f| {
        let t = match f {
            0 => {
                let (mut elem, mut len) = (0, 0);
                r.fields(|r, g| {
                    match g {
                        0 => drop(common(r)?),
                        1 => elem = r.int()?,
                        2 => len = r.int()?,
                        _ => return r.err(format!("unknown arrayType field {g}")),
                    }
                    Ok(())
                })?;
                Type::Array {
                    elem,
                    len: u64::try_from(len).unwrap_or(0),
                }
            }
            1 => {
                let mut elem = 0;
                r.fields(|r, g| {
                    match g {
                        0 => drop(common(r)?),
                        1 => elem = r.int()?,
                        _ => return r.err(format!("unknown sliceType field {g}")),
                    }
                    Ok(())
                })?;
                Type::Slice { elem }
            }
            2 => {
                let mut fields = Vec::new();
                r.fields(|r, g| {
                    match g {
                        0 => drop(common(r)?),
                        1 => {
                            for _ in 0..r.count()? {
                                let (mut name, mut id) = (String::new(), 0);
                                r.fields(|r, h| {
                                    match h {
                                        0 => name = r.string()?,
                                        1 => id = r.int()?,
                                        _ => return r.err(format!("unknown fieldType field {h}")),
                                    }
                                    Ok(())
                                })?;
                                fields.push((Rc::from(name), id));
                            }
                        }
                        _ => return r.err(format!("unknown structType field {g}")),
                    }
                    Ok(())
                })?;
                Type::Struct { fields }
            }
            3 => {
                let (mut key, mut elem) = (0, 0);
                r.fields(|r, g| {
                    match g {
                        0 => drop(common(r)?),
                        1 => key = r.int()?,
                        2 => elem = r.int()?,
                        _ => return r.err(format!("unknown mapType field {g}")),
                    }
                    Ok(())
                })?;
                Type::Map { key, elem }
            }
            4..=6 => {
                r.fields(|r, g| match g {
                    0 => common(r).map(drop),
                    _ => r.err(format!("unknown gobEncoderType field {g}")),
                })?;
                Type::Encoder
            }
            _ => return r.err(format!("unknown wireType field {f}")),
        };
        if out.replace(t).is_some() {
            return r.err("type definition with more than one kind");
        }
        Ok(())
    })?;
    match out {
        Some(t) => Ok(t),
        None => r.err("empty type definition"),
    }
}

/// Decodes gob streams: type definitions are remembered across messages.
#[derive(Default)]
pub struct Decoder {
    types: HashMap<i64, Type>,
}

impl Decoder {
    /// Decodes the first value of the stream in `data` (type definitions before it are read
    /// and remembered). Returns the value and the number of bytes consumed.
    pub fn decode<'a>(&mut self, data: &'a [u8]) -> Result<(Value<'a>, usize), GobError> {
        let mut pos = 0;
        loop {
            let mut head = Reader {
                buf: data,
                pos,
                base: 0,
            };
            let len = head.uint()?;
            let start = head.pos;
            let rest = data.len() - start;
            if len == 0 || len > rest as u64 {
                return head.err(format!(
                    "message length {len} does not fit the {rest} bytes left"
                ));
            }
            let end = start + len as usize;
            let mut r = Reader {
                buf: &data[start..end],
                pos: 0,
                base: start,
            };
            let id = r.int()?;
            if id < 0 {
                let t = wire_type(&mut r)?;
                let id = -id;
                if id < 64 {
                    return r.err(format!("redefinition of predefined type {id}"));
                }
                self.types.insert(id, t);
            } else {
                if !matches!(self.types.get(&id), Some(Type::Struct { .. })) {
                    let delta = r.uint()?;
                    if delta != 0 {
                        return r.err(format!("non-zero delta {delta} before a singleton value"));
                    }
                }
                let v = self.value(&mut r, id, 0)?;
                if r.pos != r.buf.len() {
                    return r.err(format!(
                        "{} bytes left over after the value",
                        r.buf.len() - r.pos
                    ));
                }
                return Ok((v, end));
            }
            pos = end;
        }
    }

    fn value<'a>(&self, r: &mut Reader<'a>, id: i64, depth: usize) -> Result<Value<'a>, GobError> {
        if depth > MAX_DEPTH {
            return r.err("values nested too deeply");
        }
        Ok(match id {
            T_BOOL => Value::Bool(r.uint()? != 0),
            T_INT => Value::Int(r.int()?),
            T_UINT => Value::Uint(r.uint()?),
            T_FLOAT => Value::Float(r.float()?),
            T_COMPLEX => Value::Complex(r.float()?, r.float()?),
            T_BYTES => Value::Bytes(r.bytes()?),
            T_STRING => Value::String(r.bytes()?),
            T_INTERFACE => return r.err("interface values are not supported"),
            _ => match self.types.get(&id) {
                None => return r.err(format!("value of undefined type {id}")),
                Some(Type::Encoder) => Value::Encoded(r.bytes()?),
                Some(Type::Array { elem, len }) => {
                    let n = r.count()?;
                    if n as u64 != *len {
                        return r.err(format!("array of {n} elements, want {len}"));
                    }
                    self.list(r, *elem, n, depth)?
                }
                Some(Type::Slice { elem }) => {
                    let n = r.count()?;
                    self.list(r, *elem, n, depth)?
                }
                Some(Type::Map { key, elem }) => {
                    let n = r.count()?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = self.value(r, *key, depth + 1)?;
                        let v = self.value(r, *elem, depth + 1)?;
                        out.push((k, v));
                    }
                    Value::Map(out)
                }
                Some(Type::Struct { fields }) => {
                    let mut out = Vec::new();
                    r.fields(|r, f| match fields.get(f) {
                        Some((name, t)) => {
                            let v = self.value(r, *t, depth + 1)?;
                            out.push((name.clone(), v));
                            Ok(())
                        }
                        None => r.err(format!("field {f} of a struct with {}", fields.len())),
                    })?;
                    Value::Struct(out)
                }
            },
        })
    }

    fn list<'a>(
        &self,
        r: &mut Reader<'a>,
        elem: i64,
        n: usize,
        depth: usize,
    ) -> Result<Value<'a>, GobError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.value(r, elem, depth + 1)?);
        }
        Ok(Value::List(out))
    }
}

/// Whether `data` starts like a gob stream: a message whose first item defines a type.
pub fn looks_like_gob(data: &[u8]) -> bool {
    let mut r = Reader {
        buf: data,
        pos: 0,
        base: 0,
    };
    let Ok(len) = r.uint() else { return false };
    // The message itself may be longer than the bytes looked at.
    if len < 3 {
        return false;
    }
    matches!(r.int(), Ok(id) if id <= -64) && matches!(r.uint(), Ok(1..=7))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint(v: u64, out: &mut Vec<u8>) {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        let b = v.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count();
        out.push((skip as u8).wrapping_sub(8)); // -(8 - skip)
        out.extend_from_slice(&b[skip..]);
    }

    fn int(v: i64, out: &mut Vec<u8>) {
        let u = if v < 0 {
            ((!v as u64) << 1) | 1
        } else {
            (v as u64) << 1
        };
        uint(u, out);
    }

    fn message(body: &[u8], out: &mut Vec<u8>) {
        uint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    #[test]
    fn numbers_round_trip_the_go_encoding() {
        for v in [0u64, 1, 127, 128, 255, 256, 65535, 1 << 40, u64::MAX] {
            let mut b = Vec::new();
            uint(v, &mut b);
            let mut r = Reader {
                buf: &b,
                pos: 0,
                base: 0,
            };
            assert_eq!(r.uint().unwrap(), v);
        }
        // Examples from the encoding/gob documentation.
        let mut r = Reader {
            buf: &[0xFE, 0x01, 0x00],
            pos: 0,
            base: 0,
        };
        assert_eq!(r.uint().unwrap(), 256);
        for v in [0i64, -1, 1, -129, 1 << 50, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            int(v, &mut b);
            let mut r = Reader {
                buf: &b,
                pos: 0,
                base: 0,
            };
            assert_eq!(r.int().unwrap(), v);
        }
        // 17.0 is sent as FE 31 40 (documentation example).
        let mut r = Reader {
            buf: &[0xFE, 0x31, 0x40],
            pos: 0,
            base: 0,
        };
        assert_eq!(r.float().unwrap(), 17.0);
    }

    /// map[string]struct{A int; B []byte} with one entry, built by hand.
    #[test]
    fn decodes_a_map_of_structs() {
        let mut s = Vec::new();
        // type 65 = struct { A int (2); B bytes (5) }
        let mut body = Vec::new();
        int(-65, &mut body);
        body.extend_from_slice(&[3, 1, 1, 1, b'T', 1]);
        int(65, &mut body);
        body.extend_from_slice(&[0, 1, 2]);
        for (name, id) in [("A", T_INT), ("B", T_BYTES)] {
            body.extend_from_slice(&[1, 1, name.as_bytes()[0], 1]);
            int(id, &mut body);
            body.push(0);
        }
        body.extend_from_slice(&[0, 0]);
        message(&body, &mut s);
        // type 66 = map[string]65
        let mut body = Vec::new();
        int(-66, &mut body);
        body.extend_from_slice(&[4, 1, 2]);
        int(66, &mut body);
        body.extend_from_slice(&[0, 1]);
        int(T_STRING, &mut body);
        body.push(1);
        int(65, &mut body);
        body.extend_from_slice(&[0, 0]);
        message(&body, &mut s);
        // value: {"k": {A: -3, B: "xy"}}
        let mut body = Vec::new();
        int(66, &mut body);
        body.extend_from_slice(&[0, 1, 1, b'k', 1]);
        int(-3, &mut body);
        body.extend_from_slice(&[1, 2, b'x', b'y', 0]);
        message(&body, &mut s);
        assert!(looks_like_gob(&s));
        let (v, used) = Decoder::default().decode(&s).unwrap();
        assert_eq!(used, s.len());
        let Value::Map(m) = v else { panic!("{v:?}") };
        assert_eq!(m[0].0, Value::String(b"k"));
        assert_eq!(m[0].1.field("A"), Some(&Value::Int(-3)));
        assert_eq!(m[0].1.field("B"), Some(&Value::Bytes(b"xy")));
        // Every truncation is an error, never a panic.
        for cut in 0..s.len() {
            assert!(Decoder::default().decode(&s[..cut]).is_err(), "cut {cut}");
        }
        assert!(!looks_like_gob(b"\x89PGWWAL\n"));
        assert!(!looks_like_gob(b"hello world"));
    }
}
