//! The group lifecycle beyond the official API: the TTL a push asks for, the expiry loop, and
//! the group listing and bulk deletes (`GET /api/v1/groups`, `DELETE /api/v1/admin/groups`).
//!
//! Time comes from [`Clock`], which tests can move forward, so expiry is testable without
//! waiting for real time to pass.

use crate::api::{cors, json_str, rfc3339_nano};
use crate::error::HttpError;
use crate::http::Resp;
use crate::App;
use hyper::http::request::Parts;
use hyper::StatusCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::matcher::Selector;
use store::ttl::parse_duration;
use store::Group;

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

/// The TTL a push asks for: the `Pushgateway-TTL` header, else the `ttl` query parameter.
pub fn requested_ttl(parts: &Parts) -> Result<Option<Duration>, HttpError> {
    let raw = match parts.headers.get(TTL_HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| HttpError::BadRequest("invalid Pushgateway-TTL header".into()))?
                .to_string(),
        ),
        None => parts
            .uri
            .query()
            .and_then(|q| query_pairs(q).into_iter().find(|(k, _)| k == "ttl"))
            .map(|(_, v)| v),
    };
    match raw {
        None => Ok(None),
        Some(s) => parse_duration(&s)
            .map(Some)
            .map_err(|e| HttpError::BadRequest(format!("invalid TTL: {e}"))),
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string (`+` is a space).
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
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

/// Which groups a listing or bulk delete selects.
struct Filter {
    /// Any of these selectors (none: every group).
    selectors: Vec<Selector>,
    /// Only groups last pushed (successfully or not) before this Unix time.
    pushed_before: Option<f64>,
    dry_run: bool,
}

impl Filter {
    fn from_query(query: Option<&str>, now: f64) -> Result<Filter, HttpError> {
        let mut f = Filter {
            selectors: Vec::new(),
            pushed_before: None,
            dry_run: false,
        };
        for (k, v) in query_pairs(query.unwrap_or("")) {
            match k.as_str() {
                "match[]" => f.selectors.push(
                    Selector::parse(&v)
                        .map_err(|e| HttpError::BadRequest(format!("invalid match[]: {e}")))?,
                ),
                "older_than" => {
                    let d = parse_duration(&v)
                        .map_err(|e| HttpError::BadRequest(format!("invalid older_than: {e}")))?;
                    let t = now - d.as_secs_f64();
                    f.pushed_before = Some(f.pushed_before.map_or(t, |p: f64| p.min(t)));
                }
                "pushed_before" => {
                    let t = parse_time(&v).ok_or_else(|| {
                        HttpError::BadRequest(format!(
                            "invalid pushed_before {v:?}: want Unix seconds or RFC 3339"
                        ))
                    })?;
                    f.pushed_before = Some(f.pushed_before.map_or(t, |p: f64| p.min(t)));
                }
                "dry_run" => {
                    f.dry_run = match v.as_str() {
                        "" | "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(HttpError::BadRequest(format!(
                                "invalid dry_run {v:?}: want true or false"
                            )))
                        }
                    }
                }
                other => {
                    return Err(HttpError::BadRequest(format!(
                        "unknown parameter {other:?} (want match[], older_than, pushed_before, dry_run)"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn is_empty(&self) -> bool {
        self.selectors.is_empty() && self.pushed_before.is_none()
    }

    fn selects(&self, g: &Group) -> bool {
        (self.selectors.is_empty() || self.selectors.iter().any(|s| s.matches(&g.key)))
            && self.pushed_before.is_none_or(|t| g.last_pushed() < t)
    }
}

/// Unix seconds (`1700000000`, `1.7e9`) or RFC 3339 (`2026-11-20T00:00:00Z`).
fn parse_time(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

fn seconds_json(out: &mut String, v: f64) {
    let _ = write!(out, "{}", (v * 1000.0).round() / 1000.0);
}

/// One group as `/api/v1/groups` shows it.
fn group_json(out: &mut String, g: &Group, now: f64, offset: time::UtcOffset) {
    let ts = |t: f64| rfc3339_nano((t * 1e9) as i64, offset);
    out.push_str("{\"labels\":{");
    for (i, (n, v)) in g.key.labels().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, n);
        out.push(':');
        json_str(out, v);
    }
    out.push_str("},\"last_push_successful\":");
    out.push_str(if g.last_push_successful() {
        "true"
    } else {
        "false"
    });
    for (key, t) in [
        ("last_success_time", g.push_time),
        ("last_failure_time", g.push_failure_time),
    ] {
        let _ = write!(out, ",\"{key}\":");
        if t > 0.0 {
            json_str(out, &ts(t));
        } else {
            out.push_str("null");
        }
    }
    out.push_str(",\"age_seconds\":");
    seconds_json(out, (now - g.last_pushed()).max(0.0));
    if g.ttl_ms != 0 {
        out.push_str(",\"ttl_seconds\":");
        seconds_json(out, g.ttl_ms as f64 / 1000.0);
        out.push_str(",\"expires_at\":");
        json_str(out, &ts(g.expires_at));
        out.push_str(",\"expires_in_seconds\":");
        seconds_json(out, (g.expires_at - now).max(0.0));
    } else {
        out.push_str(",\"ttl_seconds\":0,\"expires_at\":null,\"expires_in_seconds\":null");
    }
    out.push('}');
}

fn json_ok(body: String) -> Resp {
    cors(crate::http::with_type(
        StatusCode::OK,
        "application/json",
        body,
    ))
}

/// `GET /api/v1/groups[?match[]=...&older_than=...]`: groups with their ages and TTLs.
pub fn list(app: &Arc<App>, query: Option<&str>) -> Result<Resp, HttpError> {
    let now = app.clock.now_seconds();
    let filter = Filter::from_query(query, now)?;
    if filter.dry_run {
        return Err(HttpError::BadRequest(
            "dry_run only applies to DELETE /api/v1/admin/groups".into(),
        ));
    }
    let snap = app.store.snapshot();
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    let mut first = true;
    for g in snap.groups.values().filter(|g| filter.selects(g)) {
        if !first {
            out.push(',');
        }
        first = false;
        group_json(&mut out, g, now, app.cfg.utc_offset);
    }
    out.push_str("]}");
    Ok(json_ok(out))
}

/// `DELETE /api/v1/admin/groups?match[]=...&older_than=...[&dry_run=true]`.
pub async fn delete(app: &Arc<App>, query: Option<&str>) -> Result<Resp, HttpError> {
    let now = app.clock.now_seconds();
    let filter = Filter::from_query(query, now)?;
    if filter.is_empty() {
        return Err(HttpError::BadRequest(
            "at least one of match[], older_than or pushed_before is required \
             (PUT /api/v1/admin/wipe deletes everything)"
                .into(),
        ));
    }
    let dry_run = filter.dry_run;
    let filter = Arc::new(filter);
    let pick = filter.clone();
    let groups = app
        .writer
        .delete_where(Box::new(move |g| pick.selects(g)), dry_run)
        .await?;
    if !filter.dry_run && !groups.is_empty() {
        tracing::info!(groups = groups.len(), "bulk delete");
    }
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"dry_run\":");
    out.push_str(if filter.dry_run { "true" } else { "false" });
    let _ = write!(
        out,
        ",\"deleted\":{},\"groups\":[",
        if filter.dry_run { 0 } else { groups.len() }
    );
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        group_json(&mut out, g, now, app.cfg.utc_offset);
    }
    out.push_str("]}}");
    Ok(json_ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs("match%5B%5D=%7Bjob%3D%22a%22%7D&dry_run&x=a+b"),
            vec![
                ("match[]".to_string(), "{job=\"a\"}".to_string()),
                ("dry_run".to_string(), String::new()),
                ("x".to_string(), "a b".to_string()),
            ]
        );
    }

    #[test]
    fn filters_and_their_errors() {
        let f = Filter::from_query(Some("older_than=1h&match[]={job=\"a\"}"), 10_000.0).unwrap();
        assert_eq!(f.pushed_before, Some(6400.0));
        assert_eq!(f.selectors.len(), 1);
        let err = |q: &str| match Filter::from_query(Some(q), 0.0) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{q} accepted"),
        };
        assert!(err("match[]={job=").contains("invalid match[]"));
        assert!(err("older_than=soon").contains("invalid older_than"));
        assert!(err("pushed_before=yesterday").contains("invalid pushed_before"));
        assert!(err("dry_run=maybe").contains("invalid dry_run"));
        assert!(err("bogus=1").contains("unknown parameter"));
        assert_eq!(parse_time("2026-11-20T00:00:00Z"), Some(1_795_132_800.0));
        assert_eq!(parse_time("1700000000"), Some(1.7e9));
    }

    #[test]
    fn clock_moves_forward() {
        let c = Clock::default();
        let a = c.now_seconds();
        c.advance(Duration::from_secs(3600));
        assert!(c.now_seconds() - a >= 3600.0);
    }
}
