//! `GET /api/v1/metrics/job/<job>{/<name>/<value>}` (one group, an extension) on the real
//! binary: byte for byte the matching element of `/api/v1/metrics`, addressed like a push,
//! 404/400 with the API's error object, the same access rules as `/api/v1/metrics`, and the
//! route prefix (`--web.route-prefix`, `--web.external-url`).

use std::time::Duration;
use testkit::gateway::{Gateway, Reply};

/// base64url without padding, plus one `=` so that `""` is `=` (as the web UI writes it).
fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out + "="
}

/// The group path of a label set, every value base64 (as `groupPath()` in pushgateway.js).
fn group_path(labels: &serde_json::Map<String, serde_json::Value>) -> String {
    let job = labels.get("job").and_then(|v| v.as_str()).unwrap_or("");
    let mut p = format!("/metrics/job@base64/{}", b64(job));
    let mut names: Vec<&String> = labels.keys().filter(|k| *k != "job").collect();
    names.sort();
    for n in names {
        p += &format!("/{n}@base64/{}", b64(labels[n].as_str().unwrap()));
    }
    p
}

/// The elements of the top-level `data` array, as the bytes they were sent as.
fn data_elements(body: &str) -> Vec<&str> {
    let start = body.find("\"data\":[").expect("data") + "\"data\":[".len();
    let b = body.as_bytes();
    let (mut out, mut depth, mut in_str, mut esc, mut from) = (Vec::new(), 0, false, false, start);
    for i in start..b.len() {
        let c = b[i];
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b',' if depth == 0 => {
                out.push(&body[from..i]);
                from = i + 1;
            }
            b']' => {
                if i > from {
                    out.push(&body[from..i]);
                }
                return out;
            }
            _ => {}
        }
    }
    panic!("unterminated data array");
}

fn get(gw: &Gateway, path: &str) -> Reply {
    gw.send("GET", path, b"")
}

const PUSH: &str = "# HELP c_total A counter <with> \"quotes\" & \\\\ backslash.\n\
# TYPE c_total counter\nc_total{a=\"x\"} 1\nc_total{a=\"y\"} 2.5e-07\n\
# TYPE g gauge\ng NaN\n# TYPE u untyped\nu{b=\"é\"} -Inf\n\
# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 4\n\
h_sum 2.25\nh_count 4\n\
# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.99\"} 9\ns_sum 12\ns_count 3\n";

/// Pushes the groups of the tests: plain, base64-worthy values (`/`, empty instance, UTF-8,
/// HTML characters), a failed push, a TTL.
fn fill(gw: &Gateway, prefix: &str) {
    for path in [
        "/metrics/job/plain".to_string(),
        "/metrics/job/plain/instance/i1".into(),
        format!("/metrics/job@base64/{}/instance@base64/=", b64("a/b")),
        format!(
            "/metrics/job/utf/path@base64/{}/zone/x",
            b64("/var/é<&>\"q\"")
        ),
    ] {
        let r = gw.put(&format!("{prefix}{path}"), PUSH);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // A failed push (inconsistent type) marks the group's last push as failed.
    let r = gw.put(
        &format!("{prefix}/metrics/job/failed"),
        "# TYPE c_total gauge\nc_total 1\n",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = gw.req(
        "PUT",
        &format!("{prefix}/metrics/job/ttl"),
        &[("Pushgateway-TTL", "1h")],
        b"# TYPE t gauge\nt 1\n",
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Every group of `/api/v1/metrics`, fetched alone: the same bytes.
fn check_each_group(gw: &Gateway, prefix: &str, want_groups: usize) {
    let all = get(gw, &format!("{prefix}/api/v1/metrics"));
    assert_eq!(all.status, 200, "{}", all.body);
    let elements = data_elements(&all.body);
    assert_eq!(elements.len(), want_groups, "{}", all.body);
    for e in elements {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        let path = group_path(v["labels"].as_object().unwrap());
        let r = get(gw, &format!("{prefix}/api/v1{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let want = format!("{{\"status\":\"success\",\"data\":[{e}]}}");
        assert_eq!(r.body, want, "{path}");
    }
}

#[test]
fn one_group_is_byte_for_byte_its_element_of_api_v1_metrics() {
    let gw = Gateway::start(&["--persistence.file="]);
    fill(&gw, "");
    check_each_group(&gw, "", 6);

    // The plain URL form (no base64) addresses the same groups.
    let all = get(&gw, "/api/v1/metrics").body;
    let r = get(&gw, "/api/v1/metrics/job/plain/instance/i1");
    assert_eq!(r.status, 200);
    let one = data_elements(&r.body)[0].to_string();
    assert!(data_elements(&all).contains(&one.as_str()));
    assert!(
        one.contains("\"instance\":\"i1\",\"job\":\"plain\""),
        "{one}"
    );
    // Histograms, summaries, HTML escaping, special floats, the failed push and the TTL.
    assert!(
        one.contains("\"buckets\":{\"0.1\":\"1\",\"1\":\"3\",\"+Inf\":\"4\"}"),
        "{one}"
    );
    assert!(
        one.contains("\"quantiles\":{\"0.5\":\"1\",\"0.99\":\"9\"}"),
        "{one}"
    );
    assert!(
        one.contains("\\u003cwith\\u003e \\\"quotes\\\" \\u0026"),
        "{one}"
    );
    let failed = get(&gw, "/api/v1/metrics/job/failed").body;
    assert!(
        failed.contains("\"last_push_successful\":false"),
        "{failed}"
    );
    let ttl = get(&gw, "/api/v1/metrics/job/ttl").body;
    assert!(ttl.contains("\"ttl_seconds\":\"3600\""), "{ttl}");
    // A grouping label in the path twice: the last one wins, as for a push.
    let r = get(&gw, "/api/v1/metrics/job/plain/instance/zz/instance/i1");
    assert_eq!(
        r.body,
        format!("{{\"status\":\"success\",\"data\":[{one}]}}")
    );
}

#[test]
fn unknown_group_is_404_and_bad_path_400_with_the_api_error_object() {
    let gw = Gateway::start(&["--persistence.file="]);
    fill(&gw, "");
    for path in [
        "/api/v1/metrics/job/nope",
        // Same job, other labels: a different group.
        "/api/v1/metrics/job/plain/instance/i2",
        "/api/v1/metrics/job/plain/instance@base64/=",
    ] {
        let r = get(&gw, path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "error", "{}", r.body);
        assert_eq!(v["errorType"], "not_found");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("no group with grouping key {"));
        assert!(v.get("data").is_none());
    }
    // A deleted group is gone from here too.
    assert_eq!(get(&gw, "/api/v1/metrics/job/plain").status, 200);
    assert_eq!(gw.delete("/metrics/job/plain").status, 202);
    assert_eq!(get(&gw, "/api/v1/metrics/job/plain").status, 404);

    for (path, why) in [
        ("/api/v1/metrics/job@base64/!!", "invalid base64"),
        ("/api/v1/metrics/job/a/odd", "odd number of components"),
        ("/api/v1/metrics/job/a/__x/1", "improper label name"),
    ] {
        let r = get(&gw, path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["errorType"].as_str()),
            (Some("error"), Some("bad_data"))
        );
        assert!(v["error"].as_str().unwrap().contains(why), "{}", r.body);
    }
    // Only GET (and the API's OPTIONS); `job` needs a value.
    let r = gw.send("DELETE", "/api/v1/metrics/job/utf", b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, OPTIONS")));
    assert_eq!(get(&gw, "/api/v1/metrics/job/").status, 404);
    assert_eq!(gw.send("OPTIONS", "/api/v1/metrics/job/x", b"").status, 200);
}

#[test]
fn one_group_follows_the_route_prefix_and_external_url() {
    let gw = Gateway::builder()
        .args(&["--persistence.file=", "--web.route-prefix=/pg"])
        .route_prefix("/pg")
        .start();
    fill(&gw, "/pg");
    check_each_group(&gw, "/pg", 6);
    assert_eq!(get(&gw, "/api/v1/metrics/job/plain").status, 404);

    let gw = Gateway::builder()
        .args(&[
            "--persistence.file=",
            "--web.external-url=http://gw.example:9/ext/",
        ])
        .route_prefix("/ext")
        .start();
    fill(&gw, "/ext");
    check_each_group(&gw, "/ext", 6);
    assert_eq!(get(&gw, "/api/v1/metrics/job/plain").status, 404);
}

#[test]
fn one_group_needs_the_read_role_like_api_v1_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.yml");
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "basic_auth_users:\n  ci: {}\n  reader: {}\n\
access:\n  users:\n    ci: {{ roles: [push], push_matchers: ['{{job=~\"ci-.*\"}}'] }}\n    \
reader: {{ roles: [read] }}\n",
            hash("c"),
            hash("r")
        ),
    )
    .unwrap();
    let gw = Gateway::builder()
        .args(&[format!("--web.config.file={}", cfg.display())])
        .ready_on_connect()
        .start();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let send = |m: reqwest::Method, path: &str, user: Option<(&str, &str)>, body: &str| {
        let mut r = client.request(m, gw.url(path)).body(body.to_string());
        if let Some((u, p)) = user {
            r = r.basic_auth(u, Some(p));
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    use reqwest::Method as M;
    let (ci, reader) = (Some(("ci", "c")), Some(("reader", "r")));
    assert_eq!(send(M::PUT, "/metrics/job/ci-a", ci, "x 1\n").0, 200);
    for path in [
        "/api/v1/metrics",
        "/api/v1/metrics/job/ci-a",
        "/api/v1/metrics/job/none",
    ] {
        // The pusher may not read even its own group; nobody anonymous; a reader may.
        assert_eq!(send(M::GET, path, ci, "").0, 403, "{path}");
        assert_eq!(send(M::GET, path, None, "").0, 401, "{path}");
        assert_eq!(
            send(M::GET, path, Some(("reader", "wrong")), "").0,
            401,
            "{path}"
        );
    }
    let (code, body) = send(M::GET, "/api/v1/metrics/job/ci-a", reader, "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"job\":\"ci-a\""), "{body}");
    assert_eq!(send(M::GET, "/api/v1/metrics/job/none", reader, "").0, 404);
}
