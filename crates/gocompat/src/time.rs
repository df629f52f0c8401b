//! Go's `time.Time`: `Format(time.RFC3339Nano)`, as the API and the web UI print times, and
//! `UnmarshalBinary`, as the official gateway's persistence file stores them.

use std::fmt::Write as _;

/// RFC 3339 with nanoseconds (trailing zeros trimmed) in the given offset, as Go's
/// `time.RFC3339Nano`: `2020-03-09T19:24:08.025744841Z`, `2020-03-10T00:54:08.1+05:30`.
pub fn rfc3339_nano(unix_nanos: i64, offset: ::time::UtcOffset) -> String {
    let t = ::time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos as i128)
        .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ns = t.nanosecond();
    if ns != 0 {
        let frac = format!("{ns:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if offset.is_utc() {
        s.push('Z');
    } else {
        let (h, m, _) = offset.as_hms();
        let _ = write!(
            s,
            "{}{:02}:{:02}",
            if offset.is_negative() { '-' } else { '+' },
            h.unsigned_abs(),
            m.unsigned_abs()
        );
    }
    s
}

/// Seconds from 0001-01-01 (Go's `time.Time` epoch) to 1970-01-01.
const GO_TO_UNIX_SECONDS: i64 = 62_135_596_800;

/// Go's `time.Time.UnmarshalBinary` (versions 1 and 2), as Unix nanoseconds; the zero time
/// is 0. (The official gateway's persistence file stores push times this way.)
pub fn unmarshal_binary_nanos(b: &[u8]) -> Result<i64, String> {
    let want = match b.first() {
        Some(1) => 15,
        Some(2) => 16,
        Some(v) => return Err(format!("unknown time encoding version {v}")),
        None => return Err("empty time".into()),
    };
    if b.len() != want {
        return Err(format!("time of {} bytes, want {want}", b.len()));
    }
    let sec = i64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
    let nsec = i32::from_be_bytes(b[9..13].try_into().expect("4 bytes"));
    if sec == 0 && nsec == 0 {
        return Ok(0);
    }
    (sec - GO_TO_UNIX_SECONDS)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(i64::from(nsec)))
        .ok_or_else(|| "time out of range".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_binary_times() {
        // time.Date(2026, 12, 4, 9, 45, 0, 123, time.UTC).MarshalBinary()
        let sec: i64 = 1_796_377_500 + GO_TO_UNIX_SECONDS;
        let mut b = vec![1];
        b.extend_from_slice(&sec.to_be_bytes());
        b.extend_from_slice(&123i32.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(unmarshal_binary_nanos(&b), Ok(1_796_377_500_000_000_123));
        // The zero time.
        let mut z = vec![1];
        z.extend_from_slice(&[0; 12]);
        z.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(unmarshal_binary_nanos(&z), Ok(0));
        assert!(unmarshal_binary_nanos(&b[..10]).is_err());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(
            rfc3339_nano(1_583_781_848_025_744_841, ::time::UtcOffset::UTC),
            "2020-03-09T19:24:08.025744841Z"
        );
        assert_eq!(
            rfc3339_nano(1_583_781_848_000_000_000, ::time::UtcOffset::UTC),
            "2020-03-09T19:24:08Z"
        );
        let ist = ::time::UtcOffset::from_hms(5, 30, 0).unwrap();
        assert_eq!(
            rfc3339_nano(1_583_781_848_100_000_000, ist),
            "2020-03-10T00:54:08.1+05:30"
        );
    }
}
