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
