//! The on-disk format, pure: the file header, frames and op encoding and decoding (no I/O).
//! The grammar is in the [module documentation](super).

pub(super) const MAGIC: [u8; 8] = *b"\x89PGWWAL\n";
pub(super) const VERSION: u32 = 1;
pub(super) const FILE_HEADER_LEN: usize = 16;
pub(super) const FRAME_HEADER_LEN: usize = 12;
pub(super) const TAG_PUT: u8 = 1;
pub(super) const TAG_DELETE: u8 = 2;
pub(super) const TAG_CLEAR: u8 = 3;
pub(super) const TAG_APPEND: u8 = 4;
/// Largest payload a single frame can hold (the length field is a u32).
pub(super) const MAX_PAYLOAD: u64 = u32::MAX as u64;

/// One mutation. Keys and values are opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    Clear,
    /// Appends `value` to the key's value (sets it if the key has none).
    Append {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

impl Op {
    pub(super) fn encoded_len(&self) -> u64 {
        match self {
            Op::Put { key, value } | Op::Append { key, value } => {
                9 + key.len() as u64 + value.len() as u64
            }
            Op::Delete { key } => 5 + key.len() as u64,
            Op::Clear => 1,
        }
    }
}

pub(super) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(super) fn frame_header(payload_len: u32, payload_crc: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..4].copy_from_slice(&payload_len.to_le_bytes());
    h[4..8].copy_from_slice(&payload_crc.to_le_bytes());
    let hcrc = crc32fast::hash(&h[..8]);
    h[8..12].copy_from_slice(&hcrc.to_le_bytes());
    h
}

pub(super) fn encode_op(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Put { key, value } | Op::Append { key, value } => {
            buf.push(if matches!(op, Op::Put { .. }) {
                TAG_PUT
            } else {
                TAG_APPEND
            });
            buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
        }
        Op::Delete { key } => {
            buf.push(TAG_DELETE);
            buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buf.extend_from_slice(key);
        }
        Op::Clear => buf.push(TAG_CLEAR),
    }
}

/// Appends the frames for one append call to `buf`. Normally that is one
/// frame; ops whose total exceeds the frame limit are split over several
/// frames. Every single op must fit in a frame (checked by `append`).
pub(super) fn encode_frames(buf: &mut Vec<u8>, ops: &[Op]) {
    let mut i = 0;
    while i < ops.len() {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        let mut plen = 0u64;
        while i < ops.len() {
            let l = ops[i].encoded_len();
            if plen > 0 && plen + l > MAX_PAYLOAD {
                break;
            }
            encode_op(buf, &ops[i]);
            plen += l;
            i += 1;
        }
        let payload = &buf[start + FRAME_HEADER_LEN..];
        let h = frame_header(payload.len() as u32, crc32fast::hash(payload));
        buf[start..start + FRAME_HEADER_LEN].copy_from_slice(&h);
    }
}

pub(super) enum OpRef<'a> {
    Put(&'a [u8], &'a [u8]),
    Append(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    Clear,
}

/// Iterates over the ops of a payload; yields `None` (once) for a malformed op.
pub(super) struct OpIter<'a> {
    pub(super) buf: &'a [u8],
}

pub(super) fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Option<OpRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.buf;
        let (&tag, rest) = buf.split_first()?;
        let parsed = match tag {
            TAG_PUT | TAG_APPEND if rest.len() >= 8 => {
                let klen = read_u32(&rest[0..4]) as usize;
                let vlen = read_u32(&rest[4..8]) as usize;
                let body = &rest[8..];
                (klen <= body.len() && vlen <= body.len() - klen).then(|| {
                    let (k, after) = body.split_at(klen);
                    let (v, after) = after.split_at(vlen);
                    let op = if tag == TAG_PUT {
                        OpRef::Put(k, v)
                    } else {
                        OpRef::Append(k, v)
                    };
                    (op, after)
                })
            }
            TAG_DELETE if rest.len() >= 4 => {
                let klen = read_u32(&rest[0..4]) as usize;
                let body = &rest[4..];
                (klen <= body.len()).then(|| {
                    let (k, after) = body.split_at(klen);
                    (OpRef::Delete(k), after)
                })
            }
            TAG_CLEAR => Some((OpRef::Clear, rest)),
            _ => None,
        };
        match parsed {
            Some((op, after)) => {
                self.buf = after;
                Some(Some(op))
            }
            None => {
                self.buf = &[];
                Some(None)
            }
        }
    }
}

pub(super) fn payload_valid(payload: &[u8]) -> bool {
    !payload.is_empty() && OpIter { buf: payload }.all(|op| op.is_some())
}

/// Returns (payload length, payload crc) if the frame header is intact.
pub(super) fn parse_frame_header(h: &[u8]) -> Option<(usize, u32)> {
    let plen = read_u32(&h[0..4]);
    let pcrc = read_u32(&h[4..8]);
    let hcrc = read_u32(&h[8..12]);
    (plen != 0 && crc32fast::hash(&h[..8]) == hcrc).then_some((plen as usize, pcrc))
}

/// If a complete, intact frame starts at `buf[0]`, returns its payload and
/// total length.
pub(super) fn frame_at(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.len() < FRAME_HEADER_LEN {
        return None;
    }
    let (plen, pcrc) = parse_frame_header(&buf[..FRAME_HEADER_LEN])?;
    if plen > buf.len() - FRAME_HEADER_LEN {
        return None;
    }
    let payload = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + plen];
    (crc32fast::hash(payload) == pcrc && payload_valid(payload))
        .then_some((payload, FRAME_HEADER_LEN + plen))
}

/// Offset of the next intact frame at or after `from`.
pub(super) fn find_next_frame(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + FRAME_HEADER_LEN <= buf.len() {
        // Cheap filter before computing any CRC.
        let plen = read_u32(&buf[i..i + 4]) as usize;
        if plen != 0 && plen <= buf.len() - i - FRAME_HEADER_LEN && frame_at(&buf[i..]).is_some() {
            return Some(i);
        }
        i += 1;
    }
    None
}
