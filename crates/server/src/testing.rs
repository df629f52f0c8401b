//! Test-only builders for the unit tests: a server config with official defaults and an app
//! on an in-memory store.

use crate::router::Routes;
use crate::{telemetry, App, BuildInfo, Config};
use std::sync::Arc;
use store::{Store, StoreConfig};

/// Defaults as the flags give them (no admin API, no web config), fixed build information.
pub fn config() -> Config {
    Config {
        routes: Routes {
            prefix: String::new(),
            telemetry: "/metrics".into(),
            admin_api: false,
            otlp: false,
        },
        external_path: ".".into(),
        enable_lifecycle: false,
        enable_admin_api: false,
        flags: Default::default(),
        build: BuildInfo {
            version: "1.2.3".into(),
            revision: "abc".into(),
            branch: "main".into(),
            build_user: "me@host".into(),
            build_date: "20240101".into(),
            go_version: "rust".into(),
        },
        utc_offset: time::UtcOffset::UTC,
        ttl: Default::default(),
        stale_warning_age: std::time::Duration::from_secs(3600),
        expiry_period: std::time::Duration::from_secs(1),
        limits: Default::default(),
        web: None,
        formats: Default::default(),
        otlp: None,
    }
}

/// An app on an empty, checked, in-memory store.
pub fn app(cfg: Config) -> Arc<App> {
    let own_families = telemetry::OWN_FAMILIES
        .iter()
        .map(|(n, t, _)| (n.to_string(), *t))
        .collect();
    let store = Store::open(StoreConfig {
        checked: true,
        own_families,
        persistence: None,
        quotas: Default::default(),
    })
    .unwrap();
    App::new(cfg, Arc::new(store))
}

/// A native histogram family (not expressible in the text format), optionally with float
/// counts.
fn native_family(name: &str, i: usize, float: bool) -> exposition::pb::MetricFamily {
    use exposition::pb::{BucketSpan, Histogram, LabelPair, Metric, MetricFamily, MetricType};
    let mut h = Histogram {
        schema: Some(1),
        zero_threshold: Some(0.001),
        sample_sum: Some(12.5 + i as f64),
        positive_span: vec![
            BucketSpan {
                offset: Some(-1),
                length: Some(2),
            },
            BucketSpan {
                offset: Some(3),
                length: Some(1),
            },
        ],
        negative_span: vec![BucketSpan {
            offset: Some(0),
            length: Some(1),
        }],
        ..Default::default()
    };
    if float {
        h.sample_count_float = Some(7.5);
        h.zero_count_float = Some(0.5);
        h.positive_count = vec![1.0, 2.5, 3.0];
        h.negative_count = vec![0.5];
    } else {
        h.sample_count = Some(9);
        h.zero_count = Some(1);
        h.positive_delta = vec![2, 1, -2];
        h.negative_delta = vec![3];
    }
    MetricFamily {
        name: Some(name.into()),
        help: Some("native \"help\" <&>".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("n", i.to_string())],
            histogram: Some(Box::new(h)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A counter with an exemplar and a created timestamp.
fn exemplar_family(i: usize) -> exposition::pb::MetricFamily {
    use exposition::pb::{Counter, Exemplar, LabelPair, Metric, MetricFamily, MetricType};
    MetricFamily {
        name: Some("exemplar_total".into()),
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("e", "1")],
            counter: Some(Box::new(Counter {
                value: Some(i as f64 + 0.25),
                exemplar: Some(Exemplar {
                    label: vec![LabelPair::new("trace_id", format!("abc{i}"))],
                    value: Some(1.0),
                    timestamp: None,
                }),
                created_timestamp: None,
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Pushes `groups` groups of varied families into the app's store: counters (with and
/// without exemplars), gauges with NaN/±Inf, untyped, summaries, classic, float, gauge and
/// native histograms, UTF-8 family names, escaped label values, and every fourth group
/// with a long grouping value (stored once per group, [`store::shared`]).
pub async fn fill_varied(app: &App, groups: usize) {
    for i in 0..groups {
        let mut key = vec![("job".to_string(), format!("job{}", i % 7))];
        key.push(("instance".into(), format!("i{i}")));
        if i % 4 == 0 {
            key.push(("long".into(), format!("{}-{i}", "v".repeat(80))));
        }
        let key = store::GroupKey::new(key);
        let text = format!(
            "# HELP a_counter_total A counter.\n# TYPE a_counter_total counter\n\
             a_counter_total{{x=\"1\"}} {i}\na_counter_total{{x=\"2\"}} 1.5e+300\n\
             # TYPE g gauge\ng{{v=\"quo\\\"te\\\\back\\nline\"}} NaN\ng{{v=\"inf\"}} +Inf\n\
             g{{v=\"-inf\"}} -Inf\ng{{v=\"small\"}} 1e-07\n\
             # HELP h A histogram <html> & \"quotes\" \u{2028}.\n# TYPE h histogram\n\
             h_bucket{{le=\"0.5\"}} 1\nh_bucket{{le=\"1\"}} 3\nh_bucket{{le=\"+Inf\"}} 4\n\
             h_sum 2.25\nh_count 4\n\
             # TYPE hf histogram\nhf_bucket{{le=\"1\"}} 1.5\nhf_bucket{{le=\"+Inf\"}} 2.5\n\
             hf_sum 3\nhf_count 2.5\n\
             # TYPE gh histogram\ngh_bucket{{le=\"10\"}} 2\ngh_bucket{{le=\"+Inf\"}} 5\n\
             gh_sum 7\ngh_count 5\n\
             # TYPE s summary\ns{{quantile=\"0.5\"}} NaN\ns{{quantile=\"0.99\"}} 3\n\
             s_sum +Inf\ns_count 3\n\
             {{\"ü.utf8\",unicode_label=\"wert ü\"}} 42\n\
             untyped_thing{{a=\"{i}\",b=\"x\"}} -0.0\n\
             # TYPE zz_last counter\nzz_last_total 1\n",
        );
        let mut families = match exposition::text_parse::parse_text_names(text.as_bytes(), true) {
            Ok(f) => f,
            Err(e) => panic!("fixture does not parse: {e}\n{text}"),
        };
        for f in families.iter_mut().filter(|f| f.name() == "gh") {
            f.r#type = Some(exposition::pb::MetricType::GaugeHistogram as i32);
        }
        families.push(native_family("native_h", i, false));
        families.push(native_family("native_hf", i, true));
        families.push(exemplar_family(i));
        app.store
            .push(store::Push {
                key,
                families,
                replace: true,
                time: std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(1_700_000_000_123 + i as u64),
                ttl_ms: 0,
                accumulate: None,
                idempotency_key: None,
            })
            .await
            .unwrap_or_else(|e| panic!("fixture push {i}: {e}"));
    }
}
