//! Accumulating groups, end to end through the real binary: the `/accumulate` route prefix,
//! the per-type rules, resets, idempotency keys (also across a restart) and the rules file.

use exposition::pb::{BucketSpan, Histogram, Metric, MetricFamily, MetricType, Timestamp};
use prost::Message;
use std::time::{Duration, Instant};
use testkit::gateway::{Gateway, Reply};

/// The kit's gateway with this file's helpers.
struct Gw(Gateway);

impl Gw {
    fn start(args: &[&str]) -> Gw {
        Gw(Gateway::start(args))
    }

    /// Starts a gateway whose routes are under `prefix` (`--web.route-prefix`).
    fn start_at(args: &[&str], prefix: &str) -> Gw {
        Gw(Gateway::builder().args(args).route_prefix(prefix).start())
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.0.req(method, path, headers, body.as_bytes())
    }

    /// Pushes protobuf families.
    fn push_pb(&self, method: &str, path: &str, families: &[MetricFamily]) -> Reply {
        let mut body = Vec::new();
        for f in families {
            f.encode_length_delimited(&mut body).unwrap();
        }
        self.0.req(
            method,
            path,
            &[("Content-Type", exposition::delimited::CONTENT_TYPE)],
            &body,
        )
    }

    /// Scrapes in protobuf and returns the family `name`'s metrics.
    fn scrape_pb(&self, name: &str) -> Vec<Metric> {
        let r = self.0.req(
            "GET",
            "/metrics",
            &[("Accept", exposition::delimited::CONTENT_TYPE)],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        exposition::delimited::parse_delimited(&r.raw_body)
            .unwrap()
            .into_iter()
            .find(|f| f.name() == name)
            .map(|f| f.metric)
            .unwrap_or_default()
    }

    fn ok(&self, method: &str, path: &str, body: &str) {
        let r = self.req(method, path, &[], body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    }

    fn scrape(&self) -> String {
        self.0.scrape()
    }

    /// The value of the one scraped line that starts with `series` (name and labels).
    fn value(&self, series: &str) -> Option<f64> {
        let s = self.scrape();
        s.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    fn kill(&mut self) {
        self.0.kill();
    }
}

const NO_PERSIST: &[&str] = &["--persistence.file="];

#[test]
fn counter_pushes_under_the_accumulate_prefix_add_up() {
    let gw = Gw::start(NO_PERSIST);
    let c = "# TYPE runs_total counter\nruns_total{kind=\"a\"} 2\n";
    gw.ok("POST", "/accumulate/metrics/job/lambda", c);
    gw.ok("PUT", "/accumulate/metrics/job/lambda", c);
    gw.ok(
        "POST",
        "/accumulate/metrics/job/lambda",
        "# TYPE runs_total counter\nruns_total{kind=\"a\"} 0.5\n",
    );
    assert_eq!(
        gw.value("runs_total{instance=\"\",job=\"lambda\",kind=\"a\"}"),
        Some(4.5)
    );
}

#[test]
fn put_on_the_normal_route_resets_and_delete_under_the_prefix_removes() {
    let gw = Gw::start(NO_PERSIST);
    let c = |v: u32| format!("# TYPE n_total counter\nn_total {v}\n");
    let series = "n_total{instance=\"\",job=\"j\"}";
    gw.ok("POST", "/accumulate/metrics/job/j", &c(3));
    gw.ok("POST", "/accumulate/metrics/job/j", &c(4));
    assert_eq!(gw.value(series), Some(7.0));
    gw.ok("PUT", "/metrics/job/j", &c(1));
    assert_eq!(gw.value(series), Some(1.0), "PUT replaced the sum");
    gw.ok("POST", "/accumulate/metrics/job/j", &c(2));
    assert_eq!(gw.value(series), Some(3.0));
    let r = gw.req("DELETE", "/accumulate/metrics/job/j", &[], "");
    assert_eq!(r.status, 202);
    assert_eq!(gw.value(series), None);
    gw.ok("POST", "/accumulate/metrics/job/j", &c(5));
    assert_eq!(gw.value(series), Some(5.0), "starts over after DELETE");
}

#[test]
fn idempotency_key_is_applied_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let arg = format!("--persistence.file={}", file.display());
    let series = "n_total{instance=\"\",job=\"j\"}";
    let body = "# TYPE n_total counter\nn_total 2\n";
    let mut gw = Gw::start(&[&arg]);
    for _ in 0..3 {
        let r = gw.req(
            "POST",
            "/accumulate/metrics/job/j",
            &[("Idempotency-Key", "run-1")],
            body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(gw.value(series), Some(2.0), "retries did not add");
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "run-2")],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(gw.value(series), Some(4.0));
    gw.kill();
    let gw = Gw::start(&[&arg]);
    assert_eq!(gw.value(series), Some(4.0), "sum restored");
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "run-1")],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        gw.value(series),
        Some(4.0),
        "key remembered across the restart"
    );
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/j",
        &[("Idempotency-Key", "")],
        body,
    );
    assert_eq!(r.status, 400, "empty key refused");
}

#[test]
fn summary_count_and_sum_add_and_quantiles_are_dropped_with_a_warning() {
    let gw = Gw::start(NO_PERSIST);
    let body = "# TYPE lat summary\nlat{quantile=\"0.5\"} 0.2\nlat{quantile=\"0.9\"} 0.7\nlat_sum 1.5\nlat_count 3\n";
    for _ in 0..2 {
        let r = gw.req("POST", "/accumulate/metrics/job/s", &[], body);
        assert_eq!(r.status, 200, "{}", r.body);
        let w = r.header("Pushgateway-Warning").expect("warning header");
        assert!(w.contains("dropped 2 summary quantiles"), "{w}");
    }
    let s = gw.scrape();
    assert!(s.contains("lat_sum{instance=\"\",job=\"s\"} 3\n"), "{s}");
    assert!(s.contains("lat_count{instance=\"\",job=\"s\"} 6\n"), "{s}");
    assert!(!s.contains("lat{"), "{s}");
    assert_eq!(
        gw.value("pushgateway_accumulate_dropped_quantiles_total"),
        Some(4.0)
    );
    // A plain push keeps its quantiles and says nothing.
    let r = gw.req("PUT", "/metrics/job/plain", &[], body);
    assert_eq!((r.status, r.header("Pushgateway-Warning")), (200, None));
}

#[test]
fn classic_histogram_buckets_add_by_le_and_other_bounds_are_refused_naming_them() {
    let gw = Gw::start(NO_PERSIST);
    let h = |a: u32, b: u32, c: u32| {
        format!(
            "# TYPE d histogram\nd_bucket{{le=\"0.1\"}} {a}\nd_bucket{{le=\"1\"}} {b}\nd_bucket{{le=\"+Inf\"}} {c}\nd_sum 2.5\nd_count {c}\n"
        )
    };
    gw.ok("POST", "/accumulate/metrics/job/h", &h(1, 2, 3));
    gw.ok("POST", "/accumulate/metrics/job/h", &h(0, 4, 5));
    let s = gw.scrape();
    for line in [
        "d_bucket{instance=\"\",job=\"h\",le=\"0.1\"} 1",
        "d_bucket{instance=\"\",job=\"h\",le=\"1\"} 6",
        "d_bucket{instance=\"\",job=\"h\",le=\"+Inf\"} 8",
        "d_sum{instance=\"\",job=\"h\"} 5",
        "d_count{instance=\"\",job=\"h\"} 8",
    ] {
        assert!(s.lines().any(|l| l == line), "{line} in {s}");
    }
    let other = "# TYPE d histogram\nd_bucket{le=\"0.5\"} 1\nd_bucket{le=\"+Inf\"} 1\nd_sum 0.2\nd_count 1\n";
    let r = gw.req("POST", "/accumulate/metrics/job/h", &[], other);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("[0.5]") && r.body.contains("[0.1, 1]"),
        "names both bounds: {}",
        r.body
    );
    assert_eq!(
        gw.value("d_count{instance=\"\",job=\"h\"}"),
        Some(8.0),
        "refused push changed nothing"
    );
}

fn native(schema: i32, zero_threshold: f64, zero_count: u64, first: i32, deltas: &[i64]) -> Metric {
    let total: i64 = deltas
        .iter()
        .scan(0i64, |c, d| {
            *c += d;
            Some(*c)
        })
        .sum();
    Metric {
        histogram: Some(Box::new(Histogram {
            schema: Some(schema),
            zero_threshold: Some(zero_threshold),
            zero_count: Some(zero_count),
            sample_count: Some(zero_count + total as u64),
            sample_sum: Some(10.0),
            positive_span: vec![BucketSpan {
                offset: Some(first),
                length: Some(deltas.len() as u32),
            }],
            positive_delta: deltas.to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn family(name: &str, t: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        r#type: Some(t as i32),
        metric: metrics,
        ..Default::default()
    }
}

#[test]
fn native_histograms_merge_to_the_coarser_schema_with_reconciled_zero_buckets() {
    let gw = Gw::start(NO_PERSIST);
    // Schema 1, buckets 1..=4 holding 1 each; zero threshold 0.
    let a = native(1, 0.0, 0, 1, &[1, 0, 0, 0]);
    // Schema 0, zero bucket [−1, 1] holding 2, bucket 2 ((2, 4]) holding 3.
    let b = native(0, 1.0, 2, 2, &[3]);
    for m in [a, b] {
        let r = gw.push_pb(
            "POST",
            "/accumulate/metrics/job/n",
            &[family("lat", MetricType::Histogram, vec![m])],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let got = gw.scrape_pb("lat");
    let h = got[0].histogram.as_ref().unwrap();
    assert_eq!(h.schema(), 0, "the coarser schema wins");
    assert_eq!(h.zero_threshold(), 1.0);
    // Schema-1 bucket 1 ((1, √2]) is inside (1, 2] at schema 0, not in the zero bucket:
    // schema 1 buckets 1,2 → schema 0 bucket 1; 3,4 → bucket 2.
    assert_eq!(h.zero_count(), 2);
    assert_eq!(h.sample_count(), 4 + 5);
    assert_eq!(h.sample_sum(), 20.0);
    assert_eq!(h.positive_span[0].offset(), 1);
    assert_eq!(h.positive_span[0].length(), 2);
    assert_eq!(h.positive_delta, vec![2, 3], "bucket 1: 2, bucket 2: 2+3");
    // A float histogram merges in too; the result is a float histogram.
    let mut f = native(0, 1.0, 0, 1, &[]);
    {
        let fh = f.histogram.as_mut().unwrap();
        fh.sample_count = None;
        fh.sample_count_float = Some(1.5);
        fh.zero_count = None;
        fh.zero_count_float = Some(0.5);
        fh.positive_span[0].length = Some(1);
        fh.positive_count = vec![1.0];
    }
    let r = gw.push_pb(
        "POST",
        "/accumulate/metrics/job/n",
        &[family("lat", MetricType::Histogram, vec![f])],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let h = gw.scrape_pb("lat")[0].histogram.clone().unwrap();
    assert_eq!(h.sample_count_float(), 10.5);
    assert_eq!(h.zero_count_float(), 2.5);
    assert_eq!(h.positive_count, vec![3.0, 5.0]);
}

fn rules_file(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("rules.yml");
    std::fs::write(&p, text).unwrap();
    format!("--push.rules={}", p.display())
}

#[test]
fn gauges_keep_the_last_value_by_default_and_rules_choose_sum_max_min() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(
        &dir,
        "- match: '{job=\"sum\"}'\n  gauges: sum\n- match: '{job=\"max\"}'\n  gauges: max\n- match: '{job=\"min\"}'\n  gauges: min\n",
    );
    let gw = Gw::start(&["--persistence.file=", &rules]);
    for (job, want) in [("last", 2.0), ("sum", 9.0), ("max", 7.0), ("min", 2.0)] {
        for v in [7, 2] {
            let body = format!("# TYPE g gauge\ng {v}\nu {v}\n");
            gw.ok("POST", &format!("/accumulate/metrics/job/{job}"), &body);
        }
        for name in ["g", "u"] {
            assert_eq!(
                gw.value(&format!("{name}{{instance=\"\",job=\"{job}\"}}")),
                Some(want),
                "{name} in {job}"
            );
        }
    }
}

#[test]
fn rules_file_accumulate_true_makes_plain_posts_add_and_a_put_resets() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(
        &dir,
        "- match: '{job=~\"lambda-.*\"}'\n  accumulate: true\n  ttl: 25h\n",
    );
    let gw = Gw::start(&["--persistence.file=", &rules]);
    let c = |v: u32| format!("# TYPE n_total counter\nn_total {v}\n");
    gw.ok("POST", "/metrics/job/lambda-a", &c(1));
    gw.ok("POST", "/metrics/job/lambda-a", &c(2));
    gw.ok("POST", "/metrics/job/other", &c(1));
    gw.ok("POST", "/metrics/job/other", &c(2));
    assert_eq!(
        gw.value("n_total{instance=\"\",job=\"lambda-a\"}"),
        Some(3.0)
    );
    assert_eq!(
        gw.value("n_total{instance=\"\",job=\"other\"}"),
        Some(2.0),
        "no rule: last push wins"
    );
    gw.ok("PUT", "/metrics/job/lambda-a", &c(10));
    assert_eq!(
        gw.value("n_total{instance=\"\",job=\"lambda-a\"}"),
        Some(10.0)
    );
    // The rule's TTL applies as before.
    assert!(gw
        .scrape()
        .contains("push_expiry_time_seconds{instance=\"\",job=\"lambda-a\"}"));
}

fn created(m: &Metric) -> Timestamp {
    m.counter.as_ref().unwrap().created_timestamp.unwrap()
}

#[test]
fn created_timestamp_is_the_first_contribution_and_resets_after_delete_and_expiry() {
    let gw = Gw::start(NO_PERSIST);
    let c = "# TYPE n_total counter\nn_total 1\n";
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    gw.ok("POST", "/accumulate/metrics/job/c", c);
    let first = created(&gw.scrape_pb("n_total")[0]);
    assert!(
        first.seconds >= before && first.seconds <= before + 5,
        "{first:?}"
    );
    std::thread::sleep(Duration::from_millis(20));
    gw.ok("POST", "/accumulate/metrics/job/c", c);
    assert_eq!(created(&gw.scrape_pb("n_total")[0]), first, "kept");
    assert_eq!(gw.req("DELETE", "/metrics/job/c", &[], "").status, 202);
    gw.ok("POST", "/accumulate/metrics/job/c", c);
    let after_delete = created(&gw.scrape_pb("n_total")[0]);
    assert!(after_delete != first, "reset by DELETE");
    // Expiry: a 1 s TTL, then a push after the group is gone starts over.
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/c",
        &[("Pushgateway-TTL", "1s")],
        c,
    );
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.value("n_total{instance=\"\",job=\"c\"}").is_some() {
        assert!(Instant::now() < deadline, "group did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    gw.ok("POST", "/accumulate/metrics/job/c", c);
    let after_expiry = gw.scrape_pb("n_total");
    assert_eq!(after_expiry[0].counter.as_ref().unwrap().value(), 1.0);
    assert!(created(&after_expiry[0]) != after_delete, "reset by expiry");
}

#[test]
fn unmentioned_series_keep_their_values_and_type_conflicts_are_refused() {
    let gw = Gw::start(NO_PERSIST);
    gw.ok(
        "POST",
        "/accumulate/metrics/job/u",
        "# TYPE a_total counter\na_total{k=\"1\"} 1\na_total{k=\"2\"} 1\n# TYPE b gauge\nb 5\n",
    );
    gw.ok(
        "POST",
        "/accumulate/metrics/job/u",
        "# TYPE a_total counter\na_total{k=\"2\"} 3\n",
    );
    assert_eq!(
        gw.value("a_total{instance=\"\",job=\"u\",k=\"1\"}"),
        Some(1.0)
    );
    assert_eq!(
        gw.value("a_total{instance=\"\",job=\"u\",k=\"2\"}"),
        Some(4.0)
    );
    assert_eq!(gw.value("b{instance=\"\",job=\"u\"}"), Some(5.0));
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/u",
        &[],
        "# TYPE a_total gauge\na_total{k=\"2\"} 3\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("stored as COUNTER"), "{}", r.body);
    assert_eq!(
        gw.value("a_total{instance=\"\",job=\"u\",k=\"2\"}"),
        Some(4.0)
    );
    let r = gw.req(
        "POST",
        "/accumulate/metrics/job/u",
        &[],
        "# TYPE a_total counter\na_total{k=\"2\"} -1\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("must not be negative"), "{}", r.body);
    assert_eq!(
        gw.value("a_total{instance=\"\",job=\"u\",k=\"2\"}"),
        Some(4.0)
    );
    assert!(gw
        .scrape()
        .lines()
        .any(|l| l.starts_with("push_failure_time_seconds{instance=\"\",job=\"u\"} 1")));
}

#[test]
fn accumulate_prefix_follows_the_route_prefix_and_base64_keys() {
    let gw = Gw::start_at(&["--persistence.file=", "--web.route-prefix=/gw"], "/gw");
    let c = "# TYPE n_total counter\nn_total 2\n";
    for _ in 0..2 {
        let r = gw.req("POST", "/gw/accumulate/metrics/job@base64/YS9i/x/1", &[], c);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = gw.req("GET", "/gw/metrics", &[], "");
    assert!(
        r.body
            .contains("n_total{instance=\"\",job=\"a/b\",x=\"1\"} 4\n"),
        "{}",
        r.body
    );
    assert_eq!(
        gw.req("POST", "/accumulate/metrics/job/a", &[], c).status,
        404,
        "only under the route prefix"
    );
}

#[test]
fn wipe_resets_accumulated_sums_and_start_times() {
    let gw = Gw::start(&["--persistence.file=", "--web.enable-admin-api"]);
    let c = "# TYPE n_total counter\nn_total 3\n";
    gw.ok("POST", "/accumulate/metrics/job/w", c);
    gw.ok("POST", "/accumulate/metrics/job/w", c);
    let before = created(&gw.scrape_pb("n_total")[0]);
    assert_eq!(gw.req("PUT", "/api/v1/admin/wipe", &[], "").status, 202);
    std::thread::sleep(Duration::from_millis(20));
    gw.ok("POST", "/accumulate/metrics/job/w", c);
    let m = gw.scrape_pb("n_total");
    assert_eq!(m[0].counter.as_ref().unwrap().value(), 3.0);
    assert!(created(&m[0]) != before, "start time reset by the wipe");
}
