//! Times as the API, the group listing and the web UI print them: Go's `time.RFC3339Nano` in
//! the local offset read at start-up, and a cache for the push times a group's families share.

use std::fmt::Write;
use std::time::SystemTime;

/// RFC 3339 with nanoseconds (trailing zeros trimmed) in the given offset, as Go's
/// `time.RFC3339Nano`.
pub fn rfc3339_nano(unix_nanos: i64, offset: time::UtcOffset) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(
            rfc3339_nano(1_583_781_848_025_744_841, time::UtcOffset::UTC),
            "2020-03-09T19:24:08.025744841Z"
        );
        assert_eq!(
            rfc3339_nano(1_583_781_848_000_000_000, time::UtcOffset::UTC),
            "2020-03-09T19:24:08Z"
        );
        let ist = time::UtcOffset::from_hms(5, 30, 0).unwrap();
        assert_eq!(
            rfc3339_nano(1_583_781_848_100_000_000, ist),
            "2020-03-10T00:54:08.1+05:30"
        );
    }
}
