//! The group listing and bulk deletes beyond the official API: `GET /api/v1/groups` (groups
//! with their ages and TTLs) and `DELETE /api/v1/admin/groups` (by selector and age, with a
//! dry run).

use crate::error::HttpError;
use crate::http::{query_pairs, Resp};
use crate::json::{json_response, json_str};
use crate::timefmt::rfc3339_nano;
use crate::App;
use std::fmt::Write;
use std::sync::Arc;
use store::matcher::Selector;
use store::ttl::parse_duration;
use store::Group;

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
    Ok(json_response(out))
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
    Ok(json_response(out))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
