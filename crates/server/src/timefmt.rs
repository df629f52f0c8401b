//! Times as the API, the group listing and the web UI print them: Go's `time.RFC3339Nano` in
//! the local offset read at start-up, and a cache for the push times a group's families share.

use std::time::SystemTime;

/// RFC 3339 with nanoseconds (trailing zeros trimmed) in the given offset, as Go's
/// `time.RFC3339Nano` (in [`gocompat::time`], with its test).
pub use gocompat::time::rfc3339_nano;

/// Nanoseconds since the Unix epoch (0 before it).
pub fn system_time_nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The families of a group share their push time: format each distinct time once.
pub struct TimeCache {
    offset: time::UtcOffset,
    last: Option<(i64, String)>,
}

impl TimeCache {
    pub fn new(offset: time::UtcOffset) -> TimeCache {
        TimeCache { offset, last: None }
    }

    pub fn get(&mut self, ns: i64) -> &str {
        if self.last.as_ref().is_none_or(|(t, _)| *t != ns) {
            self.last = Some((ns, rfc3339_nano(ns, self.offset)));
        }
        &self.last.as_ref().expect("just set").1
    }
}

/// [`rfc3339_nano`] as a JSON string (quoted), written without formatting machinery: the
/// date, hour and minute of the last minute seen are kept, so a time in the same minute
/// (the usual case: push times of a store cluster within minutes) costs its seconds and
/// fraction only. Byte for byte what `json_bytes(rfc3339_nano(ns, offset))` writes.
pub struct QuotedTimes {
    offset: time::UtcOffset,
    /// The local minute (minutes since the epoch, in the offset) the parts are for.
    minute: Option<i64>,
    /// `"YYYY-MM-DDTHH:MM:` of that minute.
    head: Vec<u8>,
    /// `Z"` or `+hh:mm"`.
    tail: Vec<u8>,
}

impl QuotedTimes {
    pub fn new(offset: time::UtcOffset) -> QuotedTimes {
        QuotedTimes {
            offset,
            minute: None,
            head: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Appends the time `ns` (Unix nanoseconds) as a quoted RFC 3339 string.
    pub fn write(&mut self, out: &mut Vec<u8>, ns: i64) {
        const MINUTE: i128 = 60_000_000_000;
        let local = i128::from(ns) + i128::from(self.offset.whole_seconds()) * 1_000_000_000;
        let (minute, within) = (local.div_euclid(MINUTE), local.rem_euclid(MINUTE));
        let minute = minute as i64;
        if self.minute != Some(minute) && !self.set_minute(minute, ns, within as i64) {
            // Not of the usual shape: the general formatter.
            out.push(b'"');
            out.extend_from_slice(rfc3339_nano(ns, self.offset).as_bytes());
            out.push(b'"');
            return;
        }
        let within = within as u64;
        let (sec, mut frac) = ((within / 1_000_000_000) as u8, within % 1_000_000_000);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&[b'0' + sec / 10, b'0' + sec % 10]);
        if frac != 0 {
            let mut digits = [b'0'; 10];
            digits[0] = b'.';
            for d in digits[1..].iter_mut().rev() {
                *d = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            let mut n = digits.len();
            while digits[n - 1] == b'0' {
                n -= 1;
            }
            out.extend_from_slice(&digits[..n]);
        }
        out.extend_from_slice(&self.tail);
    }

    /// Takes the head and tail of the minute of `ns` (`within` nanoseconds into it) from the
    /// general formatter; false if its text is not of the expected shape.
    fn set_minute(&mut self, minute: i64, ns: i64, within: i64) -> bool {
        self.minute = None;
        let Some(start) = ns.checked_sub(within) else {
            return false;
        };
        let s = rfc3339_nano(start, self.offset);
        let b = s.as_bytes();
        // `YYYY-MM-DDTHH:MM:00` then the zone.
        if b.len() < 20 || b[10] != b'T' || &b[16..19] != b":00" {
            return false;
        }
        self.head.clear();
        self.head.push(b'"');
        self.head.extend_from_slice(&b[..17]);
        self.tail.clear();
        self.tail.extend_from_slice(&b[19..]);
        self.tail.push(b'"');
        self.minute = Some(minute);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minute-cached writer writes what the general formatter does, in any offset, for
    /// times in one minute and across minutes, days, years and the epoch.
    #[test]
    fn quoted_times_equal_rfc3339_nano() {
        let offsets = [
            time::UtcOffset::UTC,
            time::UtcOffset::from_hms(5, 30, 0).unwrap(),
            time::UtcOffset::from_hms(-9, -30, 0).unwrap(),
            time::UtcOffset::from_hms(0, 17, 30).unwrap(),
            time::UtcOffset::from_hms(-1, -2, -3).unwrap(),
        ];
        let mut times = vec![
            0,
            1,
            -1,
            999_999_999,
            1_000_000_000,
            59_999_999_999,
            60_000_000_000,
            -60_000_000_000,
            -59_999_999_999,
            1_700_000_000_123_456_789,
            1_700_000_000_100_000_000,
            1_700_000_059_000_000_000,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX - 59_000_000_000,
        ];
        // A walk through minutes and days in uneven steps, and back.
        let mut t: i64 = 1_764_800_000_000_000_000;
        for i in 0..3000i64 {
            t += (i * 7_919_000_000_013) % 97_000_000_000_000 - 30_000_000_000_000;
            times.push(t);
            times.push(t / 1_000_000 * 1_000_000);
            times.push(t / 1_000_000_000 * 1_000_000_000);
        }
        for offset in offsets {
            let mut q = QuotedTimes::new(offset);
            for &ns in &times {
                let mut got = Vec::new();
                q.write(&mut got, ns);
                let want = format!("\"{}\"", rfc3339_nano(ns, offset));
                assert_eq!(String::from_utf8(got).unwrap(), want, "{ns} in {offset}");
            }
        }
    }
}
