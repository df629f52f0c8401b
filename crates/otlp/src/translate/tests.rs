use super::*;
use crate::common::{AnyValue, InstrumentationScope, KeyValue};
use crate::proto::{
    self as p, metric::Data, AggregationTemporality as T, ResourceMetrics, ScopeMetrics,
};
use crate::{decode, Encoding, Strategy};
use opentelemetry_proto::tonic::resource::v1::Resource;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        ..KeyValue::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs.iter().map(|(k, v)| kv(k, v)).collect()
}

fn metric(name: &str, unit: &str, data: Data) -> p::Metric {
    p::Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("help of {name}"),
        data: Some(data),
        ..p::Metric::default()
    }
}

fn num(v: f64, a: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(a),
        start_time_unix_nano: 1_700_000_000_123_000_000,
        time_unix_nano: 1_700_000_010_000_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..NumberDataPoint::default()
    }
}

fn gauge(points: Vec<NumberDataPoint>) -> Data {
    Data::Gauge(p::Gauge {
        data_points: points,
    })
}

fn sum(monotonic: bool, t: T, points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(p::Sum {
        data_points: points,
        aggregation_temporality: t as i32,
        is_monotonic: monotonic,
    })
}

fn request(resource: &[(&str, &str)], metrics: Vec<p::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![resource_metrics(resource, metrics)],
    }
}

fn resource_metrics(resource: &[(&str, &str)], metrics: Vec<p::Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs(resource),
            ..Resource::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: "my.lib".into(),
                version: "1.2".into(),
                ..InstrumentationScope::default()
            }),
            metrics,
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    }
}

fn family<'a>(g: &'a Group, name: &str) -> &'a MetricFamily {
    g.cumulative
        .iter()
        .chain(&g.delta)
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no family {name} in {:?}", names(g)))
}

fn names(g: &Group) -> Vec<String> {
    g.cumulative
        .iter()
        .chain(&g.delta)
        .map(|f| f.name().to_string())
        .collect()
}

fn labels(m: &Metric) -> Vec<(String, String)> {
    m.label
        .iter()
        .map(|l| (l.name().to_string(), l.value().to_string()))
        .collect()
}

fn kvs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn resource_becomes_group_key_and_target_info() {
    let req = request(
        &[
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("service.instance.id", "pod-7"),
            ("host.name", "h1"),
            ("deployment.environment", "prod"),
        ],
        vec![metric(
            "jobs",
            "",
            sum(true, T::Cumulative, vec![num(3.0, &[])]),
        )],
    );
    let t = translate(req, &Settings::default());
    assert_eq!(t.rejected, 0, "{:?}", t.messages);
    assert_eq!(t.groups.len(), 1);
    let g = &t.groups[0];
    assert_eq!(
        g.key,
        kvs(&[("instance", "pod-7"), ("job", "shop/checkout")])
    );
    assert_eq!(g.points, 1);
    let ti = family(g, "target_info");
    assert_eq!(ti.metric_type(), MetricType::Gauge);
    assert_eq!(ti.help(), "Target metadata");
    // Identifying attributes are not repeated on target_info; job/instance come from the key.
    assert_eq!(
        labels(&ti.metric[0]),
        kvs(&[("deployment_environment", "prod"), ("host_name", "h1")])
    );
    assert_eq!(ti.metric[0].gauge.unwrap().value, Some(1.0));

    // Only identifying attributes: no target_info (it would say nothing).
    let req = request(
        &[("service.name", "a")],
        vec![metric("g", "", gauge(vec![num(1.0, &[])]))],
    );
    let t = translate(req, &Settings::default());
    assert_eq!(t.groups[0].key, kvs(&[("job", "a")]));
    assert_eq!(names(&t.groups[0]), ["g"]);

    // keep_identifying_resource_attributes.
    let req = request(
        &[
            ("service.name", "a"),
            ("service.instance.id", "i"),
            ("x", "1"),
        ],
        vec![metric("g", "", gauge(vec![num(1.0, &[])]))],
    );
    let settings = Settings {
        keep_identifying_resource_attributes: true,
        ..Settings::default()
    };
    let t = translate(req, &settings);
    assert_eq!(
        labels(&family(&t.groups[0], "target_info").metric[0]),
        kvs(&[
            ("service_instance_id", "i"),
            ("service_name", "a"),
            ("x", "1")
        ])
    );
}

#[test]
fn promoted_resource_attributes_join_the_key() {
    let req = request(
        &[
            ("service.name", "a"),
            ("deployment.environment", "dev"),
            ("k8s.pod.name", ""),
        ],
        vec![metric("g", "", gauge(vec![num(1.0, &[])]))],
    );
    let settings = Settings {
        promote_resource_attributes: vec![
            "deployment.environment".into(),
            "k8s.pod.name".into(),
            "absent".into(),
        ],
        ..Settings::default()
    };
    let t = translate(req, &settings);
    assert_eq!(
        t.groups[0].key,
        kvs(&[("deployment_environment", "dev"), ("job", "a")])
    );
}

#[test]
fn resource_without_service_name_is_rejected() {
    let req = request(
        &[("host.name", "h")],
        vec![metric(
            "g",
            "",
            gauge(vec![num(1.0, &[]), num(2.0, &[("a", "b")])]),
        )],
    );
    let t = translate(req, &Settings::default());
    assert!(t.groups.is_empty());
    assert_eq!(t.rejected, 2);
    assert!(t.message().contains("service.name"), "{}", t.message());
}

#[test]
fn names_types_and_values() {
    let int_point = NumberDataPoint {
        value: Some(number_data_point::Value::AsInt(-7)),
        ..num(0.0, &[])
    };
    let req = request(
        &[("service.name", "svc")],
        vec![
            metric(
                "http.requests",
                "{request}",
                sum(
                    true,
                    T::Cumulative,
                    vec![num(5.0, &[("http.method", "GET")])],
                ),
            ),
            metric(
                "queue.size",
                "By",
                sum(false, T::Cumulative, vec![int_point]),
            ),
            metric("cpu.utilization", "1", gauge(vec![num(0.5, &[])])),
            metric("temperature", "Cel", gauge(vec![num(21.5, &[])])),
        ],
    );
    let t = translate(req, &Settings::default());
    assert_eq!(t.rejected, 0, "{:?}", t.messages);
    let g = &t.groups[0];
    let c = family(g, "http_requests_total");
    assert_eq!(c.metric_type(), MetricType::Counter);
    assert_eq!(c.help(), "help of http.requests");
    let m = &c.metric[0];
    assert_eq!(labels(m), kvs(&[("http_method", "GET")]));
    let counter = m.counter.as_ref().unwrap();
    assert_eq!(counter.value, Some(5.0));
    assert_eq!(
        counter.created_timestamp,
        Some(pb::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_000_000
        })
    );
    assert_eq!(m.timestamp_ms, None, "points carry no timestamp");
    let q = family(g, "queue_size_bytes");
    assert_eq!(q.metric_type(), MetricType::Gauge);
    assert_eq!(q.metric[0].gauge.unwrap().value, Some(-7.0));
    assert_eq!(
        family(g, "cpu_utilization_ratio").metric[0]
            .gauge
            .unwrap()
            .value,
        Some(0.5)
    );
    assert!(family(g, "temperature_celsius").metric[0].gauge.is_some());

    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![metric(
                "http.requests",
                "{request}",
                sum(true, T::Cumulative, vec![num(5.0, &[])]),
            )],
        ),
        &Settings {
            strategy: Strategy::UnderscoreEscapingWithoutSuffixes,
            ..Settings::default()
        },
    );
    assert_eq!(names(&t.groups[0]), ["http_requests"]);
}

#[test]
fn attribute_names_values_and_collisions() {
    let mut point = num(
        1.0,
        &[
            ("b.c", "2"),
            ("b_c", "1"),
            ("empty", ""),
            ("_x", "u"),
            ("9lives", "c"),
            ("__name__", "x"),
            ("__y", "z"),
        ],
    );
    point.attributes.push(KeyValue {
        key: "n".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(42)),
        }),
        ..KeyValue::default()
    });
    point.attributes.push(KeyValue {
        key: "f".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(1e21)),
        }),
        ..KeyValue::default()
    });
    point.attributes.push(KeyValue {
        key: "t".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        }),
        ..KeyValue::default()
    });
    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![metric("g", "", gauge(vec![point]))],
        ),
        &Settings::default(),
    );
    assert_eq!(
        labels(&family(&t.groups[0], "g").metric[0]),
        kvs(&[
            // "b.c" and "b_c" both become b_c: values joined in attribute-key order.
            ("b_c", "2;1"),
            ("f", "1e+21"),
            ("key_9lives", "c"),
            ("key_x", "u"),
            ("n", "42"),
            ("t", "true"),
        ])
    );
}

#[test]
fn go_value_formatting() {
    assert_eq!(go_json_float(0.5), "0.5");
    assert_eq!(go_json_float(1e20), "100000000000000000000");
    assert_eq!(go_json_float(1e21), "1e+21");
    assert_eq!(go_json_float(1.5e-7), "1.5e-7");
    assert_eq!(go_json_float(-0.000001), "-0.000001");
    assert_eq!(go_json_float(3.0), "3");
    let arr = AnyValue {
        value: Some(any_value::Value::ArrayValue(crate::common::ArrayValue {
            values: vec![
                s("a").unwrap(),
                AnyValue {
                    value: Some(any_value::Value::IntValue(1)),
                },
            ],
        })),
    };
    assert_eq!(value_string(Some(&arr)), r#"["a",1]"#);
    let bytes = AnyValue {
        value: Some(any_value::Value::BytesValue(vec![1, 2, 3])),
    };
    assert_eq!(value_string(Some(&bytes)), "AQID");
}

#[test]
fn classic_histogram_with_exemplars() {
    let ex = |v: f64| Exemplar {
        value: Some(exemplar::Value::AsDouble(v)),
        time_unix_nano: 1_700_000_005_000_000_000,
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        filtered_attributes: attrs(&[("user", "u1")]),
    };
    let hp = HistogramDataPoint {
        attributes: attrs(&[("route", "/a")]),
        start_time_unix_nano: 1_000_000_000,
        time_unix_nano: 2_000_000_000,
        count: 6,
        sum: Some(12.5),
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![0.5, 1.0],
        exemplars: vec![ex(0.7), ex(0.2), ex(5.0)],
        ..HistogramDataPoint::default()
    };
    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![metric(
                "http.server.duration",
                "s",
                Data::Histogram(p::Histogram {
                    data_points: vec![hp],
                    aggregation_temporality: T::Cumulative as i32,
                }),
            )],
        ),
        &Settings::default(),
    );
    let f = family(&t.groups[0], "http_server_duration_seconds");
    assert_eq!(f.metric_type(), MetricType::Histogram);
    let h = f.metric[0].histogram.as_ref().unwrap();
    assert_eq!(h.sample_count, Some(6));
    assert_eq!(h.sample_sum, Some(12.5));
    assert_eq!(
        h.created_timestamp,
        Some(pb::Timestamp {
            seconds: 1,
            nanos: 0
        })
    );
    let b: Vec<(f64, u64, Option<f64>)> = h
        .bucket
        .iter()
        .map(|b| {
            (
                b.upper_bound.unwrap(),
                b.cumulative_count.unwrap(),
                b.exemplar.as_ref().and_then(|e| e.value),
            )
        })
        .collect();
    assert_eq!(
        b,
        vec![
            (0.5, 1, Some(0.2)),
            (1.0, 3, Some(0.7)),
            (f64::INFINITY, 6, Some(5.0))
        ]
    );
    let e = h.bucket[0].exemplar.as_ref().unwrap();
    let el: Vec<(String, String)> = e
        .label
        .iter()
        .map(|l| (l.name().into(), l.value().into()))
        .collect();
    assert_eq!(
        el,
        kvs(&[
            ("span_id", "0101010101010101"),
            ("trace_id", &"ab".repeat(16)),
            ("user", "u1")
        ])
    );
    assert_eq!(
        e.timestamp,
        Some(pb::Timestamp {
            seconds: 1_700_000_005,
            nanos: 0
        })
    );
}

#[test]
fn bucket_layouts_as_prometheus() {
    // TestConvertBucketsLayout in prometheusremotewrite/histograms_test.go.
    let spans = |v: &[(i32, u32)]| -> Vec<pb::BucketSpan> {
        v.iter()
            .map(|(o, l)| pb::BucketSpan {
                offset: Some(*o),
                length: Some(*l),
            })
            .collect()
    };
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 0, 0),
        (spans(&[(1, 4)]), vec![4, -1, -1, -1])
    );
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 0, 1),
        (spans(&[(1, 2)]), vec![7, -4])
    );
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 0, 2),
        (spans(&[(1, 1)]), vec![10])
    );
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 1, 0),
        (spans(&[(2, 4)]), vec![4, -1, -1, -1])
    );
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 1, 1),
        (spans(&[(1, 3)]), vec![4, 1, -4])
    );
    assert_eq!(
        buckets_layout(&[4, 3, 2, 1], 1, 2),
        (spans(&[(1, 2)]), vec![9, -8])
    );
    let c = [4, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        buckets_layout(&c, 4, 0),
        (spans(&[(5, 4), (12, 1)]), vec![4, -2, -2, 2, -1])
    );
    assert_eq!(
        buckets_layout(&c, 4, 1),
        (spans(&[(3, 2), (6, 1)]), vec![6, -4, -1])
    );
    assert_eq!(
        buckets_layout(&c, 4, 2),
        (spans(&[(2, 1), (3, 1)]), vec![8, -7])
    );
    assert_eq!(buckets_layout(&[], 3, 0), (vec![], vec![]));
}

fn exp_point(scale: i32, offset: i32, counts: Vec<u64>) -> ExponentialHistogramDataPoint {
    let n: u64 = counts.iter().sum();
    ExponentialHistogramDataPoint {
        start_time_unix_nano: 5_000_000_000,
        time_unix_nano: 6_000_000_000,
        count: n + 1,
        sum: Some(10.0),
        scale,
        zero_count: 1,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        ..ExponentialHistogramDataPoint::default()
    }
}

fn exp(t: T, points: Vec<ExponentialHistogramDataPoint>) -> Data {
    Data::ExponentialHistogram(p::ExponentialHistogram {
        data_points: points,
        aggregation_temporality: t as i32,
    })
}

#[test]
fn exponential_histogram_becomes_native() {
    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![
                metric(
                    "latency",
                    "ms",
                    exp(T::Cumulative, vec![exp_point(10, 0, vec![4, 3, 2, 1])]),
                ),
                metric(
                    "bad.scale",
                    "",
                    exp(T::Cumulative, vec![exp_point(-5, 0, vec![1])]),
                ),
            ],
        ),
        &Settings::default(),
    );
    assert_eq!(t.rejected, 1);
    assert!(
        t.message().contains("Scale must be >= -4, was -5"),
        "{}",
        t.message()
    );
    let f = family(&t.groups[0], "latency_milliseconds");
    assert_eq!(f.metric_type(), MetricType::Histogram);
    let h = f.metric[0].histogram.as_ref().unwrap();
    // Scale 10 is scaled down to the largest native schema, 8 (4 buckets merge into one).
    assert_eq!(h.schema, Some(8));
    assert_eq!(h.zero_threshold, Some(1e-128));
    assert_eq!(
        (h.zero_count, h.sample_count, h.sample_sum),
        (Some(1), Some(11), Some(10.0))
    );
    assert_eq!(
        h.positive_span,
        vec![pb::BucketSpan {
            offset: Some(1),
            length: Some(1)
        }]
    );
    assert_eq!(h.positive_delta, vec![10]);
    assert!(h.bucket.is_empty());
    assert_eq!(
        h.created_timestamp,
        Some(pb::Timestamp {
            seconds: 5,
            nanos: 0
        })
    );
}

#[test]
fn delta_points_are_kept_apart_and_merged() {
    let mut later = num(2.0, &[("k", "v")]);
    later.time_unix_nano += 1;
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            resource_metrics(
                &[("service.name", "svc")],
                vec![
                    metric(
                        "hits",
                        "",
                        sum(true, T::Delta, vec![num(1.5, &[("k", "v")])]),
                    ),
                    metric("lat", "", exp(T::Delta, vec![exp_point(3, 0, vec![1, 1])])),
                    metric("g", "", gauge(vec![later])),
                ],
            ),
            resource_metrics(
                &[("service.name", "svc")],
                vec![
                    metric(
                        "hits",
                        "",
                        sum(true, T::Delta, vec![num(2.0, &[("k", "v")])]),
                    ),
                    metric("lat", "", exp(T::Delta, vec![exp_point(2, 4, vec![5])])),
                    metric("g", "", gauge(vec![num(9.0, &[("k", "v")])])),
                ],
            ),
        ],
    };
    let t = translate(req, &Settings::default());
    assert_eq!(t.rejected, 0, "{:?}", t.messages);
    assert_eq!(t.groups.len(), 1, "both resources have the same key");
    let g = &t.groups[0];
    assert_eq!((g.points, g.delta_points, g.delta_timed), (6, 4, true));
    assert_eq!(
        g.delta.iter().map(|f| f.name()).collect::<Vec<_>>(),
        ["hits_total", "lat"]
    );
    assert_eq!(
        g.cumulative.iter().map(|f| f.name()).collect::<Vec<_>>(),
        ["g"]
    );
    assert_eq!(
        family(g, "hits_total").metric[0]
            .counter
            .as_ref()
            .unwrap()
            .value,
        Some(3.5)
    );
    // The newest cumulative point of a series wins.
    assert_eq!(family(g, "g").metric[0].gauge.unwrap().value, Some(2.0));
    // Scale 3 buckets 0,1 (one each) become scale-2 bucket 0; plus scale-2 bucket 4 (5).
    let h = family(g, "lat").metric[0].histogram.clone().unwrap();
    assert_eq!(h.schema, Some(2));
    assert_eq!(
        (h.sample_count, h.zero_count, h.sample_sum),
        (Some(9), Some(2), Some(20.0))
    );
    assert_eq!(
        h.positive_span,
        vec![
            pb::BucketSpan {
                offset: Some(1),
                length: Some(1)
            },
            pb::BucketSpan {
                offset: Some(3),
                length: Some(1)
            }
        ]
    );
    assert_eq!(h.positive_delta, vec![2, 3]);
}

#[test]
fn rejections_are_partial() {
    let req = request(
        &[("service.name", "svc")],
        vec![
            metric(
                "unspecified",
                "",
                sum(
                    true,
                    T::Unspecified,
                    vec![num(1.0, &[]), num(2.0, &[("a", "b")])],
                ),
            ),
            metric("...", "", gauge(vec![num(1.0, &[])])),
            metric("ok", "", gauge(vec![num(1.0, &[])])),
            metric("ok", "", sum(true, T::Cumulative, vec![num(1.0, &[])])),
            metric("bad.attr", "", gauge(vec![num(1.0, &[("", "v")])])),
            p::Metric {
                name: "nodata".into(),
                ..p::Metric::default()
            },
        ],
    );
    let t = translate(req, &Settings::default());
    // 2 (temporality) + 1 (name) + 1 (bad attribute name).
    assert_eq!(t.rejected, 4, "{:?}", t.messages);
    let msg = t.message();
    assert!(
        msg.contains("invalid temporality and type combination for metric \"unspecified\""),
        "{msg}"
    );
    assert!(msg.contains("resulted in empty name"), "{msg}");
    assert!(msg.contains("label name is empty"), "{msg}");
    // "ok" as a counter is "ok_total": no conflict with the gauge "ok".
    assert_eq!(names(&t.groups[0]), ["ok", "ok_total"]);

    let req = request(
        &[("service.name", "svc")],
        vec![
            metric("x", "", gauge(vec![num(1.0, &[])])),
            metric("x", "", sum(false, T::Delta, vec![num(1.0, &[])])),
        ],
    );
    let t = translate(req, &Settings::default());
    assert_eq!(t.rejected, 1);
    assert!(
        t.message().contains("already has as a gauge metric"),
        "{}",
        t.message()
    );
}

#[test]
fn stale_points_and_scope_metadata() {
    let mut stale = num(1.0, &[("a", "1")]);
    stale.flags = 1;
    let req = request(
        &[("service.name", "svc")],
        vec![metric("g", "", gauge(vec![stale, num(2.0, &[("a", "2")])]))],
    );
    let t = translate(req.clone(), &Settings::default());
    let f = family(&t.groups[0], "g");
    assert_eq!(f.metric.len(), 1);
    assert_eq!(labels(&f.metric[0]), kvs(&[("a", "2")]));
    let t = translate(
        req,
        &Settings {
            promote_scope_metadata: true,
            ..Settings::default()
        },
    );
    assert_eq!(
        labels(&family(&t.groups[0], "g").metric[0]),
        kvs(&[
            ("a", "2"),
            ("otel_scope_name", "my.lib"),
            ("otel_scope_version", "1.2")
        ])
    );
}

#[test]
fn json_requests_decode_like_protobuf() {
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"json-svc"}},
        {"key":"service.instance.id","value":{"stringValue":"i-1"}}]},
      "scopeMetrics":[{"scope":{"name":"s"},"metrics":[
        {"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
          "dataPoints":[{"asInt":"7","startTimeUnixNano":"1000000000","timeUnixNano":"2000000000",
            "attributes":[{"key":"code","value":{"intValue":"200"}}]}]}},
        {"name":"temp","gauge":{"dataPoints":[{"asDouble":1.5}]}},
        {"name":"size","histogram":{"aggregationTemporality":2,"dataPoints":[
          {"count":"3","sum":4.5,"bucketCounts":["1","2"],"explicitBounds":[1.0]}]}},
        {"name":"lat","summary":{"dataPoints":[{"count":"2","sum":3,"quantileValues":[{"quantile":0.5,"value":1}]}]}}
      ]}]}]}"#;
    let req = decode(json, Encoding::Json).unwrap();
    let t = translate(req, &Settings::default());
    assert_eq!(t.rejected, 0, "{:?}", t.messages);
    let g = &t.groups[0];
    assert_eq!(g.key, kvs(&[("instance", "i-1"), ("job", "json-svc")]));
    let c = family(g, "requests_total");
    assert_eq!(labels(&c.metric[0]), kvs(&[("code", "200")]));
    assert_eq!(c.metric[0].counter.as_ref().unwrap().value, Some(7.0));
    assert_eq!(family(g, "temp").metric[0].gauge.unwrap().value, Some(1.5));
    let h = family(g, "size").metric[0].histogram.clone().unwrap();
    assert_eq!((h.sample_count, h.bucket.len()), (Some(3), 1));
    let s = family(g, "lat").metric[0].summary.clone().unwrap();
    assert_eq!(
        (s.sample_count, s.sample_sum, s.quantile.len()),
        (Some(2), Some(3.0), 1)
    );
    assert_eq!(g.points, 4);
}

#[test]
fn many_delta_exponential_points_of_one_series_merge_in_one_pass() {
    // 20,000 points of one series spread over 60,000 bucket indices: merged once (a pairwise
    // merge would redo the whole width for every point).
    let points: Vec<_> = (0..20_000)
        .map(|i| {
            exp_point(
                0,
                if i % 2 == 0 { -30_000 } else { 29_999 - i / 2 },
                vec![1],
            )
        })
        .collect();
    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![metric("lat", "", exp(T::Delta, points))],
        ),
        &Settings::default(),
    );
    assert_eq!(t.rejected, 0, "{:?}", t.messages);
    let h = family(&t.groups[0], "lat").metric[0]
        .histogram
        .clone()
        .unwrap();
    assert_eq!((h.sample_count, h.zero_count), (Some(40_000), Some(20_000)));
    let total: i64 = h
        .positive_delta
        .iter()
        .scan(0i64, |c, d| {
            *c += d;
            Some(*c)
        })
        .sum();
    assert_eq!(total, 20_000);

    // Wider than 65,536 buckets at the common scale: the series' points are all rejected.
    let t = translate(
        request(
            &[("service.name", "svc")],
            vec![metric(
                "lat",
                "",
                exp(
                    T::Delta,
                    vec![
                        exp_point(0, -40_000, vec![1]),
                        exp_point(0, 40_000, vec![1]),
                    ],
                ),
            )],
        ),
        &Settings::default(),
    );
    assert_eq!(t.rejected, 2);
    assert!(t.groups.is_empty() || t.groups[0].delta.is_empty());
    assert!(t.message().contains("too far apart"), "{}", t.message());
}
