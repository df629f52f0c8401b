//! The group lifecycle (issue: stale metrics) end to end: the real server on a loopback port,
//! with the gateway's clock moved forward by the test instead of waiting.

use server::router::Routes;
use server::Config;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use store::ttl::{rules_from_entries, TtlPolicy};
use testkit::server::InProcess;

struct Gw(InProcess);

impl std::ops::Deref for Gw {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.0
    }
}

fn config(ttl: TtlPolicy, admin: bool) -> Config {
    let base = testkit::server::config();
    Config {
        routes: Routes {
            admin_api: admin,
            ..base.routes
        },
        enable_admin_api: admin,
        ttl,
        stale_warning_age: Duration::from_secs(3600),
        expiry_period: Duration::from_millis(20),
        ..base
    }
}

async fn start(ttl: TtlPolicy, admin: bool, persist: Option<PathBuf>) -> Gw {
    let mut store = testkit::server::store_builder();
    if let Some(path) = persist {
        store = store.persist(path);
    }
    Gw(InProcess::start(config(ttl, admin), store.build()).await)
}

impl Gw {
    async fn stop(self) {
        self.0.stop().await;
    }

    async fn push(&self, path: &str, ttl_header: Option<&str>, body: &str) -> (u16, String) {
        let mut req = self
            .client
            .put(format!("{}{path}", self.base))
            .body(body.to_string());
        if let Some(t) = ttl_header {
            req = req.header("Pushgateway-TTL", t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn delete(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn groups(&self) -> Vec<serde_json::Value> {
        let (code, body) = self.get("/api/v1/groups").await;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"].as_array().unwrap().clone()
    }

    async fn ttl_of(&self, job: &str) -> Option<f64> {
        self.groups()
            .await
            .iter()
            .find(|g| g["labels"]["job"] == job)
            .map(|g| g["ttl_seconds"].as_f64().unwrap())
    }

    /// Waits (bounded) until the expiry loop has removed `job`, or it is clear it won't.
    async fn wait_gone(&self, job: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ttl_of(job).await.is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Lets the expiry loop run a few times (so a group that should stay had its chance to go).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
}

fn policy(rules: &[(&str, &str)], default: u64, max: u64) -> TtlPolicy {
    TtlPolicy {
        rules: rules_from_entries(
            &rules
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        default: Duration::from_secs(default),
        max: Duration::from_secs(max),
        accumulate: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_comes_from_header_query_rule_default_and_is_capped() {
    let gw = start(
        policy(&[(r#"{job=~"backup-.*"}"#, "25h")], 3600, 48 * 3600),
        false,
        None,
    )
    .await;
    assert_eq!(gw.push("/metrics/job/h", Some("90m"), "x 1\n").await.0, 200);
    assert_eq!(gw.push("/metrics/job/q?ttl=2h", None, "x 1\n").await.0, 200);
    assert_eq!(
        gw.push("/metrics/job/backup-db", None, "x 1\n").await.0,
        200
    );
    assert_eq!(gw.push("/metrics/job/plain", None, "x 1\n").await.0, 200);
    assert_eq!(
        gw.push("/metrics/job/big", Some("100h"), "x 1\n").await.0,
        200
    );
    assert_eq!(
        gw.push("/metrics/job/zero", Some("0"), "x 1\n").await.0,
        200
    );
    // The header wins over the rule.
    assert_eq!(
        gw.push("/metrics/job/backup-x", Some("1h"), "x 1\n")
            .await
            .0,
        200
    );
    assert_eq!(gw.ttl_of("h").await, Some(5400.0));
    assert_eq!(gw.ttl_of("q").await, Some(7200.0));
    assert_eq!(gw.ttl_of("backup-db").await, Some(90000.0));
    assert_eq!(gw.ttl_of("plain").await, Some(3600.0));
    assert_eq!(gw.ttl_of("big").await, Some(172800.0), "capped by max");
    assert_eq!(
        gw.ttl_of("zero").await,
        Some(172800.0),
        "0 means the max when one is set"
    );
    assert_eq!(gw.ttl_of("backup-x").await, Some(3600.0));

    // The scrape shows when each group expires; the API shows TTL and expiry.
    let (_, scrape) = gw.get("/metrics").await;
    assert!(
        scrape.contains("# TYPE push_expiry_time_seconds gauge"),
        "{scrape}"
    );
    assert!(scrape.contains("push_expiry_time_seconds{instance=\"\",job=\"h\"} "));
    assert!(scrape.contains("pushgateway_groups 7\n"), "{scrape}");
    assert!(scrape.contains("pushgateway_groups_expired_total 0\n"));
    let (_, api) = gw.get("/api/v1/metrics").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let h = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["job"] == "h")
        .unwrap();
    assert_eq!(h["ttl_seconds"], "5400");
    assert!(h["expires_at"].as_str().unwrap().ends_with('Z'));

    // Bad TTLs: 400 with the reason, nothing stored.
    let (code, body) = gw.push("/metrics/job/bad", Some("soon"), "x 1\n").await;
    assert_eq!(code, 400);
    assert!(
        body.contains("invalid TTL") && body.contains("soon"),
        "{body}"
    );
    let (code, body) = gw.push("/metrics/job/bad?ttl=-5m", None, "x 1\n").await;
    assert_eq!(code, 400);
    assert!(body.contains("negative"), "{body}");
    assert_eq!(gw.ttl_of("bad").await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_expires_when_not_pushed_for_its_ttl_and_push_rearms() {
    let gw = start(TtlPolicy::default(), false, None).await;
    assert_eq!(gw.push("/metrics/job/a", Some("1h"), "x 1\n").await.0, 200);
    assert_eq!(gw.push("/metrics/job/keep", None, "y 1\n").await.0, 200);
    gw.app.clock.advance(Duration::from_secs(50 * 60));
    gw.settle().await;
    assert!(gw.ttl_of("a").await.is_some(), "not yet expired");
    // Re-armed: another hour from now.
    assert_eq!(gw.push("/metrics/job/a", Some("1h"), "x 2\n").await.0, 200);
    gw.app.clock.advance(Duration::from_secs(50 * 60));
    gw.settle().await;
    assert!(
        gw.ttl_of("a").await.is_some(),
        "the push re-armed the expiry"
    );
    gw.app.clock.advance(Duration::from_secs(11 * 60));
    assert!(gw.wait_gone("a").await, "expired after its TTL");
    let (_, scrape) = gw.get("/metrics").await;
    assert!(!scrape.contains("job=\"a\""), "{scrape}");
    assert!(
        scrape.contains("pushgateway_groups_expired_total 1\n"),
        "{scrape}"
    );
    assert!(scrape.contains("pushgateway_groups 1\n"));
    assert_eq!(
        gw.ttl_of("keep").await,
        Some(0.0),
        "groups without TTL never expire"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_and_expiry_survive_restart_with_persistence_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgw.db");
    let gw = start(TtlPolicy::default(), false, Some(file.clone())).await;
    assert_eq!(gw.push("/metrics/job/a", Some("2h"), "x 1\n").await.0, 200);
    gw.stop().await;

    let gw = start(TtlPolicy::default(), false, Some(file.clone())).await;
    assert_eq!(
        gw.ttl_of("a").await,
        Some(7200.0),
        "TTL kept across the restart"
    );
    gw.app.clock.advance(Duration::from_secs(7300));
    assert!(gw.wait_gone("a").await);
    gw.stop().await;

    // The expiry was durable: the group does not come back.
    let gw = start(TtlPolicy::default(), false, Some(file)).await;
    assert!(gw.groups().await.is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_by_matcher_and_age_with_dry_run() {
    let gw = start(TtlPolicy::default(), true, None).await;
    for p in [
        "/metrics/job/etl/env/dev",
        "/metrics/job/etl/env/test",
        "/metrics/job/etl/env/prod",
        "/metrics/job/other/env/dev",
    ] {
        assert_eq!(gw.push(p, None, "x 1\n").await.0, 200);
    }
    let sel = "match[]=%7Bjob%3D%22etl%22%2Cenv%3D~%22dev%7Ctest%22%7D";
    let (code, body) = gw
        .delete(&format!("/api/v1/admin/groups?{sel}&dry_run=true"))
        .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["dry_run"], true);
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 2);
    assert_eq!(gw.groups().await.len(), 4, "dry run deletes nothing");
    // The listing takes the same filters.
    let (_, listed) = gw.get(&format!("/api/v1/groups?{sel}")).await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    let (code, body) = gw.delete(&format!("/api/v1/admin/groups?{sel}")).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["deleted"], 2);
    let left: Vec<String> = gw
        .groups()
        .await
        .iter()
        .map(|g| format!("{}/{}", g["labels"]["job"], g["labels"]["env"]))
        .collect();
    // Listed in group order (by canonical key: env sorts before job).
    assert_eq!(left, ["\"other\"/\"dev\"", "\"etl\"/\"prod\""]);

    // By age: push one group again after two hours; only the other is older than 1h.
    gw.app.clock.advance(Duration::from_secs(7200));
    assert_eq!(
        gw.push("/metrics/job/other/env/dev", None, "x 2\n").await.0,
        200
    );
    let (code, body) = gw.delete("/api/v1/admin/groups?older_than=1h").await;
    assert_eq!(code, 200, "{body}");
    let left = gw.groups().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["labels"]["job"], "other");
    assert!(left[0]["age_seconds"].as_f64().unwrap() < 60.0);

    // Bad input: 400 with the reason, nothing deleted.
    for (q, why) in [
        ("match[]=%7Bjob%3D", "invalid match[]"),
        ("older_than=yesterday", "invalid older_than"),
        ("", "at least one of"),
        ("match[]=%7B%7D&dry_run=perhaps", "invalid dry_run"),
    ] {
        let (code, body) = gw.delete(&format!("/api/v1/admin/groups?{q}")).await;
        assert_eq!(code, 400, "{q}: {body}");
        assert!(body.contains(why), "{q}: {body}");
    }
    assert_eq!(gw.groups().await.len(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bulk_delete_needs_the_admin_api_flag() {
    let gw = start(TtlPolicy::default(), false, None).await;
    assert_eq!(gw.push("/metrics/job/a", None, "x 1\n").await.0, 200);
    let (code, _) = gw.delete("/api/v1/admin/groups?match[]=%7B%7D").await;
    assert_eq!(code, 404);
    assert_eq!(gw.groups().await.len(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_without_ttls_has_no_lifecycle_metrics() {
    let gw = start(TtlPolicy::default(), false, None).await;
    assert_eq!(gw.push("/metrics/job/a", None, "x 1\n").await.0, 200);
    let (_, scrape) = gw.get("/metrics").await;
    assert!(!scrape.contains("push_expiry_time_seconds"), "{scrape}");
    assert!(!scrape.contains("pushgateway_groups"), "{scrape}");
    let (_, api) = gw.get("/api/v1/metrics").await;
    assert!(
        !api.contains("ttl_seconds") && !api.contains("expires_at"),
        "{api}"
    );
    gw.stop().await;
}
