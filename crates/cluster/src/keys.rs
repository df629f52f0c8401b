//! How groups are named and stored in the bucket: the key of a group (base64url of its
//! grouping key, or a hash for very long ones) and the value (the snappy-compressed group
//! record).

use base64::Engine;
use store::GroupKey;

/// Longest bucket key spelled out; longer grouping keys are named by their hash (NATS
/// subjects must stay well below the server's control-line limit).
const MAX_PLAIN_KEY: usize = 512;

/// The bucket key of a group: its canonical bytes, base64url without padding, or for very
/// long grouping keys `=` and the hex SHA-256 of them (base64url never contains `=`).
pub fn kv_key(key: &GroupKey) -> String {
    let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.canonical());
    if plain.len() <= MAX_PLAIN_KEY {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.canonical());
    let mut out = String::with_capacity(65);
    out.push('=');
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The group key of a spelled-out bucket key (`None` for hashed keys and foreign keys).
pub fn group_key(kv_key: &str) -> Option<GroupKey> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(kv_key)
        .ok()?;
    let mut parts = bytes.split(|b| *b == 0xff);
    let mut labels = Vec::new();
    while let Some(name) = parts.next() {
        let value = parts.next()?;
        labels.push((
            String::from_utf8(name.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        ));
    }
    if labels.is_empty() {
        return None;
    }
    Some(GroupKey::new(labels))
}

/// First byte of a bucket value holding a snappy-compressed group record.
const SNAPPY: u8 = b'S';

/// A group record as stored in the bucket: snappy-compressed (records repeat label names and
/// values in both encodings, so this typically shrinks them several times).
pub fn encode_value(record: &[u8]) -> Vec<u8> {
    let mut out = vec![SNAPPY];
    out.extend(
        snap::raw::Encoder::new()
            .compress_vec(record)
            .unwrap_or_else(|_| record.to_vec()),
    );
    out
}

/// The group record of a bucket value.
pub fn decode_value(value: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match value.split_first() {
        Some((&SNAPPY, rest)) => snap::raw::Decoder::new()
            .decompress_vec(rest)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("snappy: {e}")),
        _ => Ok(std::borrow::Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_compressed_and_plain() {
        let rec = [1u8, 10, 3, b'j', b'o', b'b'].repeat(50);
        let v = encode_value(&rec);
        assert!(v.len() < rec.len());
        assert_eq!(&*decode_value(&v).unwrap(), &rec[..]);
        assert_eq!(
            &*decode_value(&rec).unwrap(),
            &rec[..],
            "uncompressed records still read"
        );
        assert!(decode_value(b"S\xff\xff").is_err());
    }

    #[test]
    fn kv_keys_round_trip_and_are_valid_nats_keys() {
        for k in [
            GroupKey::new([("job", "a")]),
            GroupKey::new([("job", "a/b"), ("instance", ""), ("x", "Προμηθεύς")]),
        ] {
            assert!(kv_key(&k).len() <= MAX_PLAIN_KEY);
            let s = kv_key(&k);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(group_key(&s), Some(k));
        }
        let long = GroupKey::new([("job", "j".repeat(8000))]);
        let h = kv_key(&long);
        assert_eq!(h.len(), 65);
        assert!(h.starts_with('='));
        assert_eq!(
            group_key(&h),
            None,
            "hashed keys are resolved from their values"
        );
        assert_eq!(group_key("!!"), None);
        assert_eq!(group_key(""), None);
    }
}
