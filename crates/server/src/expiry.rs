//! Push TTLs and their expiry: the TTL a push asks for (`Pushgateway-TTL` header or `?ttl=`),
//! the gateway's [`Clock`], and the loop that deletes groups whose TTL has run out.
//!
//! Time comes from [`Clock`], which tests can move forward, so expiry is testable without
//! waiting for real time to pass.

use crate::error::HttpError;
use crate::http::query_pairs;
use crate::App;
use hyper::http::request::Parts;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::ttl::parse_duration;

/// The gateway's clock: the system clock plus an offset that only tests change.
#[derive(Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> SystemTime {
        let off = self.offset_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if off >= 0 {
            now + Duration::from_millis(off as u64)
        } else {
            now - Duration::from_millis(off.unsigned_abs())
        }
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, d: Duration) {
        self.offset_ms
            .fetch_add(d.as_millis() as i64, Ordering::Relaxed);
    }

    pub fn now_seconds(&self) -> f64 {
        unix_seconds(self.now())
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The request header that carries a push's TTL.
pub const TTL_HEADER: &str = "pushgateway-ttl";

/// [`TTL_HEADER`] as a header name (looked up without parsing the name per request).
const TTL_HEADER_NAME: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static(TTL_HEADER);

/// The TTL a push asks for: the `Pushgateway-TTL` header, else the `ttl` query parameter.
pub fn requested_ttl(parts: &Parts) -> Result<Option<Duration>, HttpError> {
    let raw = match parts.headers.get(&TTL_HEADER_NAME) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| HttpError::BadRequest("invalid Pushgateway-TTL header".into()))?
                .to_string(),
        ),
        None => crate::reqline::Target::of(&parts.uri, &parts.extensions)
            .query_str()
            .and_then(|q| query_pairs(&q).into_iter().find(|(k, _)| k == "ttl"))
            .map(|(_, v)| v),
    };
    match raw {
        None => Ok(None),
        Some(s) => parse_duration(&s)
            .map(Some)
            .map_err(|e| HttpError::BadRequest(format!("invalid TTL: {e}"))),
    }
}

/// Runs until shutdown: every `period`, deletes the groups whose TTL has run out.
pub async fn expiry_loop(app: Arc<App>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown_requested() => break,
            _ = tick.tick() => {
                if let Err(e) = app.writer.expire_due(app.clock.now()).await {
                    tracing::error!(err = %e, "expiring groups failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward() {
        let c = Clock::default();
        let a = c.now_seconds();
        c.advance(Duration::from_secs(3600));
        assert!(c.now_seconds() - a >= 3600.0);
    }
}
