//! The OTLP/HTTP metrics receiver end to end: the real server on a loopback port, requests
//! built with the `opentelemetry-proto` types, answers decoded as an OTLP client would.

use otlp::common::{any_value, AnyValue, KeyValue};
use otlp::proto::{self as p, metric::Data, AggregationTemporality as T};
use otlp::{ExportMetricsServiceRequest, ExportMetricsServiceResponse, Status};
use prost::Message;
use server::router::Routes;
use server::Config;
use std::io::Write;
use testkit::server::InProcess;

const PATH: &str = "/api/v1/otlp/v1/metrics";

struct Gw(InProcess);

impl std::ops::Deref for Gw {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.0
    }
}

/// A gateway with the receiver on (unless `otlp` is `None`), the given limits and web config.
async fn start(
    otlp: Option<otlp::Settings>,
    limits: server::limits::Limits,
    web: Option<&std::path::Path>,
) -> Gw {
    start_with(otlp, limits, web, None).await
}

async fn start_with(
    otlp: Option<otlp::Settings>,
    limits: server::limits::Limits,
    web: Option<&std::path::Path>,
    persist: Option<&std::path::Path>,
) -> Gw {
    let base = testkit::server::config();
    let cfg = Config {
        routes: Routes {
            otlp: otlp.is_some(),
            ..base.routes
        },
        limits,
        web: web.map(|p| webconfig::ReloadingWebConfig::start(p).unwrap()),
        otlp,
        ..base
    };
    let mut store = testkit::server::store_builder();
    if let Some(p) = persist {
        store = store.persist(p);
    }
    Gw(InProcess::start(cfg, store.build()).await)
}

struct Answer {
    code: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn partial(&self) -> (i64, String) {
        assert_eq!(self.code, 200, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type, "application/x-protobuf");
        let r = ExportMetricsServiceResponse::decode(&self.body[..]).unwrap();
        r.partial_success
            .map(|p| (p.rejected_data_points, p.error_message))
            .unwrap_or_default()
    }

    fn status(&self) -> Status {
        assert_eq!(self.content_type, "application/x-protobuf");
        Status::decode(&self.body[..]).unwrap()
    }
}

impl Gw {
    async fn stop(self) {
        self.0.stop().await;
    }

    async fn post(&self, content_type: &str, gzip: bool, body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{PATH}", self.base))
            .header("Content-Type", content_type);
        if gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let r = req.body(body).send().await.unwrap();
        let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        Answer {
            code: r.status().as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            retry_after: header("retry-after"),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    async fn export(&self, req: &ExportMetricsServiceRequest) -> Answer {
        self.post("application/x-protobuf", false, req.encode_to_vec())
            .await
    }

    /// The scrape without the gateway's own families.
    async fn scrape(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let text = r.text().await.unwrap();
        let mut out = String::new();
        let mut keep = true;
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or(line.strip_prefix("# TYPE "))
            {
                let name = rest.split(' ').next().unwrap();
                keep = !["pushgateway_", "process_", "go_", "push_"]
                    .iter()
                    .any(|p| name.starts_with(p));
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: s(v),
            ..KeyValue::default()
        })
        .collect()
}

fn point(v: f64, a: &[(&str, &str)]) -> p::NumberDataPoint {
    p::NumberDataPoint {
        attributes: attrs(a),
        start_time_unix_nano: 1_000_000_000,
        time_unix_nano: 2_000_000_000,
        value: Some(p::number_data_point::Value::AsDouble(v)),
        ..p::NumberDataPoint::default()
    }
}

fn counter(name: &str, unit: &str, t: T, v: f64) -> p::Metric {
    p::Metric {
        name: name.into(),
        unit: unit.into(),
        description: "things done".into(),
        data: Some(Data::Sum(p::Sum {
            data_points: vec![point(v, &[("http.method", "GET")])],
            aggregation_temporality: t as i32,
            is_monotonic: true,
        })),
        ..p::Metric::default()
    }
}

fn request(resource: &[(&str, &str)], metrics: Vec<p::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![p::ResourceMetrics {
            resource: Some(otlp_resource(resource)),
            scope_metrics: vec![p::ScopeMetrics {
                metrics,
                ..p::ScopeMetrics::default()
            }],
            ..p::ResourceMetrics::default()
        }],
    }
}

fn otlp_resource(a: &[(&str, &str)]) -> otlp::resource::Resource {
    otlp::resource::Resource {
        attributes: attrs(a),
        ..Default::default()
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn protobuf_json_and_gzip_exports_are_stored_per_resource() {
    let gw = start(Some(otlp::Settings::default()), Default::default(), None).await;
    let req = request(
        &[
            ("service.name", "billing"),
            ("service.namespace", "shop"),
            ("service.instance.id", "i-1"),
            ("host.name", "h1"),
        ],
        vec![counter("invoices", "{invoice}", T::Cumulative, 3.0)],
    );
    let a = gw.export(&req).await;
    assert_eq!(a.partial(), (0, String::new()));
    assert!(a.body.is_empty(), "full success: no partial_success");
    let scrape = gw.scrape().await;
    assert!(
        scrape.contains(
            "# HELP invoices_total things done\n# TYPE invoices_total counter\n\
             invoices_total{http_method=\"GET\",instance=\"i-1\",job=\"shop/billing\"} 3\n"
        ),
        "{scrape}"
    );
    assert!(
        scrape.contains(
            "# HELP target_info Target metadata\n# TYPE target_info gauge\n\
             target_info{host_name=\"h1\",instance=\"i-1\",job=\"shop/billing\"} 1\n"
        ),
        "{scrape}"
    );

    // The same resource again, gzipped: cumulative points replace.
    let req = request(
        &[
            ("service.name", "billing"),
            ("service.namespace", "shop"),
            ("service.instance.id", "i-1"),
        ],
        vec![counter("invoices", "{invoice}", T::Cumulative, 5.0)],
    );
    let a = gw
        .post("application/x-protobuf", true, gzip(&req.encode_to_vec()))
        .await;
    assert_eq!(a.partial(), (0, String::new()));
    let scrape = gw.scrape().await;
    assert!(
        scrape.contains(
            "invoices_total{http_method=\"GET\",instance=\"i-1\",job=\"shop/billing\"} 5\n"
        ),
        "{scrape}"
    );
    // POST semantics: target_info of the first export is still there.
    assert!(scrape.contains("target_info{host_name=\"h1\""), "{scrape}");

    // OTLP/JSON, answered in JSON.
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"json-job"}}]},
        "scopeMetrics":[{"metrics":[{"name":"queue.depth","unit":"1","gauge":{"dataPoints":[{"asInt":"4"}]}}]}]}]}"#;
    let a = gw.post("application/json", false, json.to_vec()).await;
    assert_eq!((a.code, a.content_type.as_str()), (200, "application/json"));
    assert_eq!(a.body, b"{}");
    let scrape = gw.scrape().await;
    assert!(
        scrape.contains("queue_depth_ratio{instance=\"\",job=\"json-job\"} 4\n"),
        "{scrape}"
    );

    // The API shows the derived groups.
    let r = gw
        .client
        .get(format!("{}/api/v1/metrics", gw.base))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let mut keys: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["labels"].to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            r#"{"instance":"i-1","job":"shop/billing"}"#,
            r#"{"job":"json-job"}"#
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_spec_errors_and_change_nothing() {
    let limits = server::limits::Limits {
        max_body_bytes: 64 << 10,
        ..Default::default()
    };
    let gw = start(Some(otlp::Settings::default()), limits, None).await;
    let good = request(
        &[("service.name", "j")],
        vec![counter("c", "", T::Cumulative, 1.0)],
    );
    assert_eq!(gw.export(&good).await.partial(), (0, String::new()));
    let before = gw.scrape().await;

    let bytes = good.encode_to_vec();
    // Not protobuf.
    let a = gw
        .post(
            "application/x-protobuf",
            false,
            b"this is not protobuf\xff".to_vec(),
        )
        .await;
    assert_eq!(a.code, 400);
    assert!(
        a.status().message.contains("invalid OTLP protobuf payload"),
        "{:?}",
        a.status()
    );
    // Truncated.
    let a = gw
        .post(
            "application/x-protobuf",
            false,
            bytes[..bytes.len() - 3].to_vec(),
        )
        .await;
    assert_eq!(a.code, 400);
    assert_eq!(a.status().code, 3);
    // Broken JSON, answered in JSON.
    let a = gw
        .post(
            "application/json",
            false,
            b"{\"resourceMetrics\": [".to_vec(),
        )
        .await;
    assert_eq!((a.code, a.content_type.as_str()), (400, "application/json"));
    let j: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("invalid OTLP JSON payload"),
        "{j}"
    );
    // Wrong content type.
    let a = gw.post("text/plain", false, bytes.clone()).await;
    assert_eq!(a.code, 415);
    assert!(a.status().message.contains("application/x-protobuf"));
    // Huge, and a gzip bomb that is small on the wire.
    let a = gw
        .post("application/x-protobuf", false, vec![0u8; 100 << 10])
        .await;
    assert_eq!(a.code, 413);
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 << 10);
    let a = gw.post("application/x-protobuf", true, bomb).await;
    assert_eq!(a.code, 413);
    assert!(
        a.status().message.contains("decompressed"),
        "{:?}",
        a.status()
    );
    // An encoding OTLP does not use.
    let r = gw
        .client
        .post(format!("{}{PATH}", gw.base))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "zstd")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // Not gzip although it says so.
    let a = gw.post("application/x-protobuf", true, bytes.clone()).await;
    assert_eq!(a.code, 400);

    assert_eq!(
        gw.scrape().await,
        before,
        "a refused request changes nothing"
    );
    gw.stop().await;
}

#[tokio::test]
async fn rejected_points_are_a_partial_success() {
    let gw = start(Some(otlp::Settings::default()), Default::default(), None).await;
    let mut unspecified = counter("odd", "", T::Unspecified, 1.0);
    unspecified.name = "odd".into();
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            request(
                &[("service.name", "ok-job")],
                vec![counter("good", "", T::Cumulative, 1.0), unspecified],
            )
            .resource_metrics
            .remove(0),
            request(
                &[("host.name", "nameless")],
                vec![counter("c", "", T::Cumulative, 1.0)],
            )
            .resource_metrics
            .remove(0),
        ],
    };
    let (rejected, message) = gw.export(&req).await.partial();
    assert_eq!(rejected, 2);
    assert!(message.contains("invalid temporality"), "{message}");
    assert!(message.contains("service.name"), "{message}");
    assert!(gw
        .scrape()
        .await
        .contains("good_total{http_method=\"GET\",instance=\"\",job=\"ok-job\"} 1\n"));

    // A type conflict with what another group holds: the store's consistency check refuses
    // that group (recorded as a failed push), the answer says so.
    let gauge = p::Metric {
        name: "good_total".into(),
        data: Some(Data::Gauge(p::Gauge {
            data_points: vec![point(1.0, &[])],
        })),
        ..p::Metric::default()
    };
    let (rejected, message) = gw
        .export(&request(&[("service.name", "other-job")], vec![gauge]))
        .await
        .partial();
    assert_eq!(rejected, 1);
    assert!(message.contains("inconsistent"), "{message}");
    assert!(gw
        .scrape()
        .await
        .contains("good_total{http_method=\"GET\",instance=\"\",job=\"ok-job\"} 1\n"));
    gw.stop().await;
}

#[tokio::test]
async fn push_matchers_apply_to_the_derived_grouping_key() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "access:\n  anonymous: { roles: [push, read], push_matchers: ['{job=~\"ci-.*\"}'] }\n",
    )
    .unwrap();
    let gw = start(
        Some(otlp::Settings::default()),
        Default::default(),
        Some(&web),
    )
    .await;
    let ok = request(
        &[("service.name", "ci-build")],
        vec![counter("c", "", T::Cumulative, 1.0)],
    );
    assert_eq!(gw.export(&ok).await.partial(), (0, String::new()));
    let before = gw.scrape().await;
    // One allowed and one forbidden resource: refused as a whole, nothing stored.
    let mut mixed = request(
        &[("service.name", "ci-build")],
        vec![counter("c", "", T::Cumulative, 7.0)],
    );
    mixed.resource_metrics.extend(
        request(
            &[("service.name", "prod-db")],
            vec![counter("c", "", T::Cumulative, 1.0)],
        )
        .resource_metrics,
    );
    let a = gw.export(&mixed).await;
    assert_eq!(a.code, 403);
    assert!(
        a.status().message.contains("may not push to group"),
        "{:?}",
        a.status()
    );
    assert_eq!(gw.scrape().await, before);
    gw.stop().await;
}

#[tokio::test]
async fn limits_rate_and_ttl_apply() {
    let limits = server::limits::Limits {
        max_labels_per_series: 3,
        max_series_per_push: 2,
        push_rate: 0.5,
        push_burst: 3.0,
        ..Default::default()
    };
    let gw = start(Some(otlp::Settings::default()), limits, None).await;
    // Too many labels (http_method and three more).
    let mut c = counter("c", "", T::Cumulative, 1.0);
    if let Some(Data::Sum(s)) = c.data.as_mut() {
        s.data_points[0]
            .attributes
            .extend(attrs(&[("x", "1"), ("y", "1"), ("z", "1")]));
    }
    let a = gw.export(&request(&[("service.name", "j")], vec![c])).await;
    assert_eq!(a.code, 400);
    assert!(a.status().message.contains("max-labels-per-series"));
    // Series per push count over all the request's groups: 3 resources of 1 series each.
    let mut three = request(
        &[("service.name", "a")],
        vec![counter("c", "", T::Cumulative, 1.0)],
    );
    for job in ["b", "c"] {
        three.resource_metrics.extend(
            request(
                &[("service.name", job)],
                vec![counter("c", "", T::Cumulative, 1.0)],
            )
            .resource_metrics,
        );
    }
    let a = gw.export(&three).await;
    assert_eq!(a.code, 413);
    assert!(
        a.status().message.contains("max-series-per-push"),
        "{:?}",
        a.status()
    );
    // With a TTL from the header.
    let r = gw
        .client
        .post(format!("{}{PATH}", gw.base))
        .header("Content-Type", "application/x-protobuf")
        .header("Pushgateway-TTL", "1h")
        .body(
            request(
                &[("service.name", "j")],
                vec![counter("c", "", T::Cumulative, 1.0)],
            )
            .encode_to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let full = gw
        .client
        .get(format!("{}/metrics", gw.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        full.contains("push_expiry_time_seconds{instance=\"\",job=\"j\"}"),
        "{full}"
    );
    // The burst is spent: 429 with Retry-After.
    let a = gw.export(&request(&[("service.name", "j")], vec![])).await;
    assert_eq!(a.code, 429);
    assert!(a.retry_after.is_some());
    assert_eq!(a.status().code, 8);
    gw.stop().await;
}

#[tokio::test]
async fn receiver_is_off_by_default() {
    let gw = start(None, Default::default(), None).await;
    let a = gw.post("application/x-protobuf", false, Vec::new()).await;
    assert_eq!(a.code, 404);
    gw.stop().await;
}

#[tokio::test]
async fn start_timestamps_exemplars_and_native_histograms_reach_the_protobuf_scrape() {
    let gw = start(Some(otlp::Settings::default()), Default::default(), None).await;
    let mut c = counter("orders", "", T::Cumulative, 2.0);
    if let Some(Data::Sum(s)) = c.data.as_mut() {
        s.data_points[0].exemplars.push(p::Exemplar {
            value: Some(p::exemplar::Value::AsInt(2)),
            time_unix_nano: 1_500_000_000,
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            ..p::Exemplar::default()
        });
    }
    let exp = p::Metric {
        name: "latency".into(),
        unit: "s".into(),
        data: Some(Data::ExponentialHistogram(p::ExponentialHistogram {
            data_points: vec![p::ExponentialHistogramDataPoint {
                start_time_unix_nano: 1_000_000_000,
                count: 3,
                sum: Some(0.75),
                scale: 3,
                zero_count: 1,
                positive: Some(p::exponential_histogram_data_point::Buckets {
                    offset: -2,
                    bucket_counts: vec![1, 0, 1],
                }),
                ..Default::default()
            }],
            aggregation_temporality: T::Cumulative as i32,
        })),
        ..p::Metric::default()
    };
    let req = request(&[("service.name", "shop")], vec![c, exp]);
    assert_eq!(gw.export(&req).await.partial(), (0, String::new()));
    let r = gw
        .client
        .get(format!("{}/metrics", gw.base))
        .header(
            "Accept",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
        )
        .send()
        .await
        .unwrap();
    let fams = exposition::delimited::parse_delimited(&r.bytes().await.unwrap()).unwrap();
    let find = |n: &str| fams.iter().find(|f| f.name() == n).unwrap().metric[0].clone();
    let c = find("orders_total").counter.unwrap();
    assert_eq!(c.value, Some(2.0));
    let ct = c.created_timestamp.unwrap();
    assert_eq!((ct.seconds, ct.nanos), (1, 0));
    let ex = c.exemplar.unwrap();
    assert_eq!(ex.value, Some(2.0));
    let labels: Vec<(&str, &str)> = ex.label.iter().map(|l| (l.name(), l.value())).collect();
    assert_eq!(
        labels,
        [
            ("span_id", "2222222222222222"),
            ("trace_id", "11111111111111111111111111111111")
        ]
    );
    let h = find("latency_seconds").histogram.unwrap();
    assert_eq!(
        (h.schema, h.zero_count, h.sample_count),
        (Some(3), Some(1), Some(3))
    );
    // OTel bucket index -2 is Prometheus index -1; -1 is empty, 0 has one.
    let spans: Vec<(i32, u32)> = h
        .positive_span
        .iter()
        .map(|s| (s.offset.unwrap(), s.length.unwrap()))
        .collect();
    assert_eq!(
        (spans, h.positive_delta.clone()),
        (vec![(-1, 3)], vec![1, -1, 1])
    );
    assert!(h.created_timestamp.is_some());
    gw.stop().await;
}

#[tokio::test]
async fn delta_points_accumulate_exactly_once_per_export() {
    let gw = start(Some(otlp::Settings::default()), Default::default(), None).await;
    let export = |v: f64, time: u64| {
        let mut c = counter("events", "", T::Delta, v);
        let mut updown = counter("in.flight", "", T::Delta, -v / 2.0);
        if let Some(Data::Sum(s)) = updown.data.as_mut() {
            s.is_monotonic = false;
        }
        for m in [&mut c, &mut updown] {
            if let Some(Data::Sum(s)) = m.data.as_mut() {
                s.data_points[0].time_unix_nano = time;
            }
        }
        request(&[("service.name", "lambda")], vec![c, updown])
    };
    for (i, v) in [1.0, 2.5, 4.0].into_iter().enumerate() {
        let a = gw.export(&export(v, 10_000_000_000 + i as u64)).await;
        assert_eq!(a.partial(), (0, String::new()));
    }
    // A retry of the second export (the client lost the answer): the same bytes, no effect.
    assert_eq!(
        gw.export(&export(2.5, 10_000_000_001)).await.partial(),
        (0, String::new())
    );
    let scrape = gw.scrape().await;
    assert!(
        scrape.contains("events_total{http_method=\"GET\",instance=\"\",job=\"lambda\"} 7.5\n"),
        "{scrape}"
    );
    // A delta up-down counter (a gauge) adds up too.
    assert!(
        scrape.contains("in_flight{http_method=\"GET\",instance=\"\",job=\"lambda\"} -3.75\n"),
        "{scrape}"
    );
    // Points without a time (hand-written bodies) are separate contributions, unless the
    // client gives an Idempotency-Key.
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"lambda"}}]},
        "scopeMetrics":[{"metrics":[{"name":"events","sum":{"aggregationTemporality":1,
        "isMonotonic":true,"dataPoints":[{"asInt":"1","attributes":[
        {"key":"http.method","value":{"stringValue":"GET"}}]}]}}]}]}]}"#;
    for _ in 0..2 {
        assert_eq!(
            gw.post("application/json", false, json.to_vec()).await.body,
            b"{}"
        );
    }
    for _ in 0..2 {
        let r = gw
            .client
            .post(format!("{}{PATH}", gw.base))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "export-42")
            .body(json.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert!(
        gw.scrape()
            .await
            .contains("events_total{http_method=\"GET\",instance=\"\",job=\"lambda\"} 10.5\n"),
        "7.5 + 1 + 1 + 1"
    );
    gw.stop().await;
}

#[tokio::test]
async fn acknowledged_exports_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgw.wal");
    let gw = start_with(
        Some(otlp::Settings::default()),
        Default::default(),
        None,
        Some(&file),
    )
    .await;
    let req = request(
        &[("service.name", "nightly"), ("host.name", "h")],
        vec![
            counter("files", "", T::Cumulative, 3.0),
            counter("bytes", "By", T::Delta, 10.0),
        ],
    );
    assert_eq!(gw.export(&req).await.partial(), (0, String::new()));
    let before = gw.scrape().await;
    assert!(
        before.contains("bytes_total{http_method=\"GET\",instance=\"\",job=\"nightly\"} 10\n"),
        "{before}"
    );
    gw.stop().await;
    let gw = start_with(
        Some(otlp::Settings::default()),
        Default::default(),
        None,
        Some(&file),
    )
    .await;
    assert_eq!(gw.scrape().await, before);
    // The retry of the delta export is still recognised after the restart: nothing changes.
    assert_eq!(gw.export(&req).await.partial(), (0, String::new()));
    assert_eq!(gw.scrape().await, before);
    gw.stop().await;
}
