//! The gateway's own metrics: `pushgateway_build_info`, `pushgateway_http_requests_total`,
//! the push size and duration summaries, and `process_*` from `/proc`.

use crate::router::Route;
use crate::BuildInfo;
use exposition::pb::{Counter, Gauge, LabelPair, Metric, MetricType, Quantile, Summary};
use hyper::Method;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One of the gateway's own families, built fresh for each scrape.
#[derive(Clone)]
pub struct OwnFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub mtype: MetricType,
    pub metrics: Vec<Metric>,
}

/// Names, types and help of every own family (also given to the store's consistency check).
pub const OWN_FAMILIES: &[(&str, MetricType, &str)] = &[
    ("process_cpu_seconds_total", MetricType::Counter, "Total user and system CPU time spent in seconds."),
    ("process_max_fds", MetricType::Gauge, "Maximum number of open file descriptors."),
    ("process_open_fds", MetricType::Gauge, "Number of open file descriptors."),
    ("process_resident_memory_bytes", MetricType::Gauge, "Resident memory size in bytes."),
    ("process_start_time_seconds", MetricType::Gauge, "Start time of the process since unix epoch in seconds."),
    ("process_virtual_memory_bytes", MetricType::Gauge, "Virtual memory size in bytes."),
    ("process_virtual_memory_max_bytes", MetricType::Gauge, "Maximum amount of virtual memory available in bytes."),
    ("pushgateway_build_info", MetricType::Gauge, "A metric with a constant '1' value labeled by version, revision, branch, goversion from which pushgateway was built, and the goos and goarch for the build."),
    ("pushgateway_http_push_duration_seconds", MetricType::Summary, "HTTP request duration for pushes to the Pushgateway."),
    ("pushgateway_http_push_size_bytes", MetricType::Summary, "HTTP request size for pushes to the Pushgateway."),
    ("pushgateway_http_requests_total", MetricType::Counter, "Total HTTP requests processed by the Pushgateway, excluding scrapes."),
];

/// Own families that appear only when in use, so that a drop-in scrape is unchanged: the
/// lifecycle ones once a TTL flag is set, a group has a TTL or a group has expired; the
/// rejection counter once a request was refused by a limit.
#[rustfmt::skip]
pub const EXTRA_FAMILIES: &[(&str, MetricType, &str)] = &[
    ("pushgateway_groups", MetricType::Gauge, "Number of groups in the Pushgateway."),
    ("pushgateway_groups_expired_total", MetricType::Counter, "Total number of groups deleted because their TTL ran out."),
    ("pushgateway_pushes_rejected_total", MetricType::Counter, "Total number of pushes refused by a limit, by reason."),
    ("pushgateway_accumulate_dropped_quantiles_total", MetricType::Counter, "Total number of summary quantiles dropped from accumulating pushes (quantiles cannot be added)."),
];

/// `pushgateway_accumulate_dropped_quantiles_total`, shown once a quantile was dropped.
pub fn dropped_quantiles_family(n: u64) -> OwnFamily {
    let name = "pushgateway_accumulate_dropped_quantiles_total";
    OwnFamily {
        name,
        help: own_help(name).unwrap_or_default(),
        mtype: MetricType::Counter,
        metrics: vec![Metric {
            counter: Some(Box::new(Counter {
                value: Some(n as f64),
                ..Default::default()
            })),
            ..Default::default()
        }],
    }
}

/// The help string of an own family, if `name` is one.
pub fn own_help(name: &str) -> Option<&'static str> {
    OWN_FAMILIES
        .iter()
        .chain(EXTRA_FAMILIES)
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, h)| *h)
}

/// Lifecycle figures for [`Telemetry::gather`].
pub struct LifecycleStats {
    pub groups: usize,
    pub expired_total: u64,
}

/// The `handler` label of an instrumented route (scrapes and `/-/quit` are not counted).
pub fn handler_label(route: &Route) -> Option<&'static str> {
    Some(match route {
        Route::Push { .. } => "push", // DELETE is relabelled in count_request
        Route::Healthy => "healthy",
        Route::Ready => "ready",
        Route::Static(_) => "static",
        Route::Ui => "status",
        Route::ApiStatus => "api/v1/status",
        Route::ApiMetrics => "api/v1/metrics",
        Route::ApiGroup { .. } => "api/v1/metrics/job",
        Route::ApiOptions => "api/v1/options",
        Route::ApiWipe => "wipe",
        Route::ApiGroups => "api/v1/groups",
        Route::ApiAdminGroups => "api/v1/admin/groups",
        Route::OtlpMetrics => "api/v1/otlp/v1/metrics",
        Route::Scrape | Route::Quit | Route::QuitGet => return None,
    })
}

/// Observations of one summary child over a sliding 10-minute window (client_golang's default
/// max age), plus all-time sum and count.
struct Window {
    samples: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

const MAX_AGE: Duration = Duration::from_secs(600);
const MAX_SAMPLES: usize = 4096;

impl Window {
    fn new() -> Window {
        Window {
            samples: VecDeque::new(),
            sum: 0.0,
            count: 0,
        }
    }
    fn observe(&mut self, now: Instant, v: f64) {
        self.samples.push_back((now, v));
        if self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.sum += v;
        self.count += 1;
    }
    fn summary(&mut self, now: Instant) -> Summary {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > MAX_AGE)
        {
            self.samples.pop_front();
        }
        let mut vals: Vec<f64> = self.samples.iter().map(|(_, v)| *v).collect();
        vals.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| -> f64 {
            if vals.is_empty() {
                return f64::NAN;
            }
            let idx = ((p * vals.len() as f64).ceil() as usize).clamp(1, vals.len()) - 1;
            vals[idx]
        };
        Summary {
            sample_count: Some(self.count),
            sample_sum: Some(self.sum),
            quantile: [0.1, 0.5, 0.9]
                .iter()
                .map(|p| Quantile {
                    quantile: Some(*p),
                    value: Some(q(*p)),
                })
                .collect(),
            created_timestamp: None,
        }
    }
}

struct PushStats {
    duration: Window,
    size: Window,
}

pub struct Telemetry {
    /// Request counts and push summaries under one lock, so a push takes it once.
    counts: Mutex<Counts>,
    build_labels: Vec<LabelPair>,
    start_time_seconds: f64,
}

/// `pushgateway_http_requests_total` by (code, handler, method) and the push summaries by
/// method; every key is static, so counting allocates nothing.
#[derive(Default)]
struct Counts {
    requests: BTreeMap<(u16, &'static str, &'static str), u64>,
    pushes: BTreeMap<&'static str, PushStats>,
}

impl Counts {
    fn count_request(&mut self, handler: &'static str, code: u16, method: &Method) {
        let handler = if handler == "push" && method == Method::DELETE {
            "delete"
        } else {
            handler
        };
        *self
            .requests
            .entry((code, handler, method_label(method)))
            .or_insert(0) += 1;
    }

    fn observe_push(&mut self, now: Instant, method: &Method, seconds: f64, size: f64) {
        let s = self
            .pushes
            .entry(method_label(method))
            .or_insert_with(|| PushStats {
                duration: Window::new(),
                size: Window::new(),
            });
        s.duration.observe(now, seconds);
        s.size.observe(now, size);
    }
}

/// The `method` label client_golang's instrumentation gives a request method.
fn method_label(m: &Method) -> &'static str {
    const KNOWN: [&str; 10] = [
        "get", "put", "post", "delete", "connect", "options", "notify", "trace", "patch", "head",
    ];
    let s = m.as_str();
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s))
        .copied()
        .unwrap_or("unknown")
}

impl Telemetry {
    pub fn new(build: &BuildInfo) -> Telemetry {
        let mut build_labels = vec![
            LabelPair::new("branch", build.branch.clone()),
            LabelPair::new(
                "goarch",
                std::env::consts::ARCH
                    .replace("x86_64", "amd64")
                    .replace("aarch64", "arm64"),
            ),
            LabelPair::new("goos", std::env::consts::OS),
            LabelPair::new("goversion", build.go_version.clone()),
            LabelPair::new("revision", build.revision.clone()),
            // client_golang v1.23's version collector: the Go build tags, `unknown` when the
            // binary was built without any (as ours, not being a Go build).
            LabelPair::new("tags", "unknown"),
            LabelPair::new("version", build.version.clone()),
        ];
        build_labels.sort_by(|a, b| a.name().cmp(b.name()));
        Telemetry {
            counts: Mutex::new(Counts::default()),
            build_labels,
            start_time_seconds: process_start_time().unwrap_or(0.0),
        }
    }

    pub fn count_request(&self, handler: &'static str, code: u16, method: &Method) {
        self.counts.lock().count_request(handler, code, method);
    }

    pub fn observe_push(&self, method: &Method, seconds: f64, size: f64) {
        self.counts
            .lock()
            .observe_push(Instant::now(), method, seconds, size);
    }

    /// A finished request on the push route (`/metrics/job/...`): counted under `push` (or
    /// `delete`), and, given its approximate `size`, a PUT's or POST's duration since
    /// `started` and size observed; under one lock and with one clock reading.
    pub fn finish_push(&self, started: Instant, method: &Method, code: u16, size: Option<usize>) {
        let now = Instant::now();
        let mut c = self.counts.lock();
        if let Some(size) = size.filter(|_| *method == Method::PUT || *method == Method::POST) {
            let seconds = now.saturating_duration_since(started).as_secs_f64();
            c.observe_push(now, method, seconds, size as f64);
        }
        c.count_request("push", code, method);
    }

    /// Every own family with its current values, sorted by name.
    pub fn gather(
        &self,
        lifecycle: Option<LifecycleStats>,
        rejected: &[(&'static str, u64)],
    ) -> Vec<OwnFamily> {
        let mut out = process_families(self.start_time_seconds);
        out.push(own_family(
            "pushgateway_build_info",
            vec![Metric {
                label: self.build_labels.clone(),
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            }],
        ));
        if let Some(l) = lifecycle {
            out.push(own_family(
                "pushgateway_groups",
                vec![gauge(l.groups as f64)],
            ));
            out.push(own_family(
                "pushgateway_groups_expired_total",
                vec![counter(Vec::new(), l.expired_total as f64)],
            ));
        }
        self.push_families(&mut out);
        let reqs: Vec<Metric> = self
            .counts
            .lock()
            .requests
            .iter()
            .map(|((code, handler, method), n)| {
                let label = vec![
                    LabelPair::new("code", code.to_string()),
                    LabelPair::new("handler", *handler),
                    LabelPair::new("method", *method),
                ];
                counter(label, *n as f64)
            })
            .collect();
        if !reqs.is_empty() {
            out.push(own_family("pushgateway_http_requests_total", reqs));
        }
        if !rejected.is_empty() {
            let metrics = rejected
                .iter()
                .map(|(reason, n)| counter(vec![LabelPair::new("reason", *reason)], *n as f64))
                .collect();
            out.push(own_family("pushgateway_pushes_rejected_total", metrics));
        }
        out
    }

    /// The push duration and size summaries, per method (none before the first push).
    fn push_families(&self, out: &mut Vec<OwnFamily>) {
        let now = Instant::now();
        let mut durations = Vec::new();
        let mut sizes = Vec::new();
        for (method, s) in self.counts.lock().pushes.iter_mut() {
            let label = vec![LabelPair::new("method", *method)];
            durations.push(Metric {
                label: label.clone(),
                summary: Some(Box::new(s.duration.summary(now))),
                ..Default::default()
            });
            sizes.push(Metric {
                label,
                summary: Some(Box::new(s.size.summary(now))),
                ..Default::default()
            });
        }
        if !durations.is_empty() {
            out.push(own_family(
                "pushgateway_http_push_duration_seconds",
                durations,
            ));
            out.push(own_family("pushgateway_http_push_size_bytes", sizes));
        }
    }
}

/// The `process_*` families, sorted by name.
fn process_families(start_time_seconds: f64) -> Vec<OwnFamily> {
    let proc = ProcStats::read();
    vec![
        own_family(
            "process_cpu_seconds_total",
            vec![counter(Vec::new(), proc.cpu_seconds)],
        ),
        own_family("process_max_fds", vec![gauge(proc.max_fds)]),
        own_family("process_open_fds", vec![gauge(proc.open_fds)]),
        own_family("process_resident_memory_bytes", vec![gauge(proc.rss_bytes)]),
        own_family(
            "process_start_time_seconds",
            vec![gauge(start_time_seconds)],
        ),
        own_family(
            "process_virtual_memory_bytes",
            vec![gauge(proc.vsize_bytes)],
        ),
        own_family(
            "process_virtual_memory_max_bytes",
            vec![gauge(proc.max_vsize)],
        ),
    ]
}

/// An own family by name, with its type and help from the tables.
fn own_family(name: &'static str, metrics: Vec<Metric>) -> OwnFamily {
    let (_, mtype, help) = OWN_FAMILIES
        .iter()
        .chain(EXTRA_FAMILIES)
        .find(|(n, _, _)| *n == name)
        .copied()
        .expect("own family");
    OwnFamily {
        name,
        help,
        mtype,
        metrics,
    }
}

fn gauge(v: f64) -> Metric {
    Metric {
        gauge: Some(Gauge { value: Some(v) }),
        ..Default::default()
    }
}

fn counter(label: Vec<LabelPair>, v: f64) -> Metric {
    Metric {
        label,
        counter: Some(Box::new(Counter {
            value: Some(v),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// client_golang's approximate request size: URL, method, protocol, headers, host and
/// declared content length.
pub fn approximate_request_size<B>(req: &hyper::Request<B>) -> usize {
    let mut s = match req.extensions().get::<crate::reqline::RawTarget>() {
        Some(raw) => raw.0.len(),
        None => uri_len(req.uri()),
    };
    s += req.method().as_str().len();
    s += "HTTP/1.1".len();
    for (name, value) in req.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        s += name.as_str().len() + value.len();
    }
    if let Some(h) = req.headers().get(hyper::header::HOST) {
        s += h.len();
    }
    if let Some(cl) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        s += cl;
    }
    s
}

/// The length of `uri` as written by its `Display` (what client_golang measures), without
/// writing it.
fn uri_len(uri: &hyper::Uri) -> usize {
    uri.scheme().map_or(0, |s| s.as_str().len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

#[derive(Default)]
struct ProcStats {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    max_vsize: f64,
}

fn clock_ticks() -> f64 {
    100.0
}

fn page_size() -> f64 {
    4096.0
}

/// Fields after the `(comm)` of `/proc/self/stat`, so that field 3 (state) is index 0.
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn process_start_time() -> Option<f64> {
    let f = stat_fields()?;
    let start_ticks: f64 = f.get(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks / clock_ticks())
}

fn limit(limits: &str, name: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let soft = line[name.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(f64::INFINITY)
    } else {
        soft.parse().ok()
    }
}

impl ProcStats {
    fn read() -> ProcStats {
        let mut p = ProcStats::default();
        if let Some(f) = stat_fields() {
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            p.cpu_seconds = (num(11) + num(12)) / clock_ticks();
            p.vsize_bytes = num(20);
            p.rss_bytes = num(21) * page_size();
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .unwrap_or(0.0);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            p.max_fds = limit(&limits, "Max open files").unwrap_or(0.0);
            p.max_vsize = limit(&limits, "Max address space").unwrap_or(0.0);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request size counts the target as `Uri`'s `Display` writes it.
    #[test]
    fn uri_len_is_the_displayed_length() {
        for u in [
            "/metrics/job/j",
            "/metrics/job/j/instance/i?x=1&y",
            "/?",
            "*",
            "http://example.com:9091/metrics/job/j?a=b",
            "example.com:443",
            "https://[::1]/",
        ] {
            let uri: hyper::Uri = u.parse().unwrap();
            assert_eq!(uri_len(&uri), uri.to_string().len(), "{u}");
        }
    }

    /// Counting allocates no label strings: methods map onto client_golang's lower-case set.
    #[test]
    fn method_labels() {
        assert_eq!(method_label(&Method::PUT), "put");
        assert_eq!(method_label(&Method::from_bytes(b"Get").unwrap()), "get");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap()),
            "unknown"
        );
    }

    #[test]
    fn summary_window_quantiles() {
        let mut w = Window::new();
        let now = Instant::now();
        for v in 1..=10 {
            w.observe(now, v as f64);
        }
        let s = w.summary(now);
        assert_eq!(s.sample_count, Some(10));
        assert_eq!(s.sample_sum, Some(55.0));
        let qs: Vec<f64> = s.quantile.iter().map(|q| q.value.unwrap()).collect();
        assert_eq!(qs, vec![1.0, 5.0, 9.0]);
    }

    #[test]
    fn process_stats_are_read() {
        let p = ProcStats::read();
        assert!(p.rss_bytes > 0.0 && p.open_fds > 0.0 && p.max_fds > 0.0);
        assert!(process_start_time().unwrap() > 1.6e9);
    }
}
