//! Idempotency keys: the `Idempotency-Key`s of the pushes a group has accepted, so that a
//! client's retry of a push that did land (its answer was lost) is answered again without
//! being applied twice.
//!
//! A group remembers the SHA-256 prefix (128 bits) of each key with the time it was seen,
//! for the group's TTL (24 hours for groups without one), at most [`MAX_KEYS_PER_GROUP`] of
//! them (the oldest are forgotten first). The set is part of the group's record, so it is
//! persisted with the group, replicated with it (compare-and-set included), and gone with
//! it (DELETE, wipe, expiry).

use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How many keys a group remembers at most.
pub const MAX_KEYS_PER_GROUP: usize = 1024;

/// How long keys are remembered in groups without a TTL.
pub const DEFAULT_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The digest a key is remembered by.
pub type KeyDigest = [u8; 16];

pub fn digest(key: &str) -> KeyDigest {
    let d = Sha256::digest(key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The keys a group has seen, oldest first, with the Unix milliseconds they were seen at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenKeys(Arc<Vec<(KeyDigest, i64)>>);

const ENTRY_LEN: usize = 24;

impl SeenKeys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `key` was seen at or after `since_ms`.
    pub fn contains(&self, key: &KeyDigest, since_ms: i64) -> bool {
        self.0.iter().any(|(k, t)| k == key && *t >= since_ms)
    }

    /// Records `key` as seen at `now_ms`, forgetting keys seen before `since_ms` and the
    /// oldest ones beyond the per-group bound.
    pub fn record(&mut self, key: KeyDigest, now_ms: i64, since_ms: i64) {
        let v = Arc::make_mut(&mut self.0);
        v.retain(|(k, t)| *t >= since_ms && *k != key);
        v.push((key, now_ms));
        if v.len() > MAX_KEYS_PER_GROUP {
            let excess = v.len() - MAX_KEYS_PER_GROUP;
            v.drain(..excess);
        }
    }

    /// The persisted form: 24 bytes per key (digest, then the time as little-endian i64).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * ENTRY_LEN);
        for (k, t) in self.0.iter() {
            out.extend_from_slice(k);
            out.extend_from_slice(&t.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SeenKeys, String> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return Err(format!(
                "idempotency keys: {} bytes is not a multiple of {ENTRY_LEN}",
                bytes.len()
            ));
        }
        let v = bytes
            .chunks_exact(ENTRY_LEN)
            .map(|c| {
                let mut k = [0u8; 16];
                k.copy_from_slice(&c[..16]);
                let mut t = [0u8; 8];
                t.copy_from_slice(&c[16..]);
                (k, i64::from_le_bytes(t))
            })
            .collect();
        Ok(SeenKeys(Arc::new(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bound_and_round_trip() {
        let mut s = SeenKeys::default();
        s.record(digest("a"), 1000, 0);
        s.record(digest("b"), 2000, 0);
        assert!(s.contains(&digest("a"), 1000));
        assert!(!s.contains(&digest("a"), 1001), "outside the window");
        assert!(!s.contains(&digest("c"), 0));
        // Recording prunes keys older than the window.
        s.record(digest("c"), 5000, 1500);
        assert!(!s.contains(&digest("a"), 0));
        assert_eq!(s.len(), 2);
        let back = SeenKeys::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert!(SeenKeys::decode(&[1, 2, 3]).is_err());
        for i in 0..(MAX_KEYS_PER_GROUP + 10) {
            s.record(digest(&i.to_string()), 6000, 0);
        }
        assert_eq!(s.len(), MAX_KEYS_PER_GROUP);
        assert!(!s.contains(&digest("0"), 0), "oldest forgotten first");
        assert!(s.contains(&digest(&(MAX_KEYS_PER_GROUP + 9).to_string()), 0));
    }
}
