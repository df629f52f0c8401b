//! The HTTP side of the gateway: routing, push and delete handlers, the scrape, API v1, the web
//! UI and the gateway's own telemetry. It owns no metric state: every handler works on the
//! [`store::Store`] handed in, and readers work on one immutable [`store::Snapshot`] each.
//!
//! * [`router`]: the official routing quirks (path cleaning, trailing slashes, 405/OPTIONS).
//! * [`push`]: grouping keys from the URL, body decoding, PUT/POST/DELETE.
//! * [`scrape`]: the merged exposition, text or protobuf, plain or gzip.
//! * [`api`]: `/api/v1/status` and `/api/v1/metrics` JSON.
//! * [`lifecycle`]: push TTLs, the expiry loop, group listing and bulk deletes.
//! * [`conns`]: open connections; idle ones are shed when file descriptors run out.
//! * [`cpu`]: long CPU work (big push bodies) kept off the runtime's worker threads.
//! * [`limits`]: request limits, the per-client push rate, and the rejection counters.
//! * [`otlp`]: the OTLP/HTTP metrics receiver (groups per resource, then the push path).
//! * [`ui`]: the server-rendered web UI with embedded assets.
//! * [`telemetry`]: `pushgateway_*` and `process_*` metrics.
//! * [`error`]: the single mapping from errors to HTTP responses.

pub mod api;
// unsafe: getrlimit/setrlimit(RLIMIT_NOFILE) (SAFETY comments at the calls).
#[allow(unsafe_code)]
pub mod conns;
pub mod cpu;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod otlp;
pub mod push;
pub mod router;
pub mod scrape;
pub mod telemetry;
pub mod ui;

use crate::error::HttpError;
use crate::http::{empty, method_not_allowed, redirect, text_response, Resp};
use crate::router::{Dispatch, Route, Routes};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Build information shown in `pushgateway_build_info`, `/api/v1/status` and the UI.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

/// Server settings derived from the flags.
#[derive(Clone, Debug)]
pub struct Config {
    pub routes: Routes,
    /// Path of `--web.external-url` (or `.`), used for the UI's asset links.
    pub external_path: String,
    pub enable_lifecycle: bool,
    pub enable_admin_api: bool,
    /// Every flag with its value, as `/api/v1/status` reports them.
    pub flags: BTreeMap<String, String>,
    pub build: BuildInfo,
    /// Offset of the local time zone, for RFC 3339 timestamps (read once at start-up).
    pub utc_offset: time::UtcOffset,
    /// Which TTL each push gives its group (`--push.ttl-rules`, `--push.default-ttl`,
    /// `--push.max-ttl`).
    pub ttl: store::ttl::TtlPolicy,
    /// Groups not pushed for this long are marked in the web UI (zero: never).
    pub stale_warning_age: std::time::Duration,
    /// How often expired groups are looked for.
    pub expiry_period: std::time::Duration,
    pub limits: limits::Limits,
    /// `--web.config.file`: TLS, users and scoped access, re-read when the file changes.
    pub web: Option<Arc<webconfig::ReloadingWebConfig>>,
    /// Name rules and optional exposition formats (`--push.enable-utf8-names`,
    /// `--push.enable-openmetrics`, `--web.enable-openmetrics`).
    pub formats: Formats,
    /// `--web.enable-otlp-receiver` and the `--otlp.*` flags (`None`: no OTLP receiver).
    pub otlp: Option<::otlp::Settings>,
}

/// Name rules and the optional exposition formats; all off by default, as upstream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Formats {
    /// `--push.enable-utf8-names`: UTF-8 metric and label names in text pushes, and `U__`
    /// escaped label names in the push path.
    pub utf8_names: bool,
    /// `--push.enable-openmetrics`: `application/openmetrics-text` pushes parsed as
    /// OpenMetrics 1.0 (else as text 0.0.4, as upstream).
    pub openmetrics_push: bool,
    /// `--web.enable-openmetrics`: a scrape that prefers OpenMetrics gets OpenMetrics 1.0.
    pub openmetrics_scrape: bool,
}

/// Shared state of the server.
pub struct App {
    pub cfg: Config,
    /// Reads: snapshots of the local store (in replicated mode, the mirror of the shared log).
    pub store: Arc<Store>,
    /// Writes: the local store itself, or the replicated log.
    pub writer: Arc<dyn store::Writer>,
    pub telemetry: telemetry::Telemetry,
    pub start_time: SystemTime,
    pub clock: lifecycle::Clock,
    pub rejections: limits::Rejections,
    pub rate: limits::RateLimiter,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(cfg: Config, store: Arc<Store>) -> Arc<App> {
        let writer: Arc<dyn store::Writer> = store.clone();
        App::with_writer(cfg, store, writer)
    }

    /// An app whose changes go through `writer` (replicated mode) while reads use `store`.
    pub fn with_writer(cfg: Config, store: Arc<Store>, writer: Arc<dyn store::Writer>) -> Arc<App> {
        let (shutdown, _) = watch::channel(false);
        let telemetry = telemetry::Telemetry::new(&cfg.build);
        let rate = limits::RateLimiter::new(cfg.limits.push_rate, cfg.limits.push_burst);
        Arc::new(App {
            writer,
            rejections: limits::Rejections::default(),
            rate,
            cfg,
            store,
            telemetry,
            start_time: SystemTime::now(),
            clock: lifecycle::Clock::default(),
            shutdown,
        })
    }

    /// Asks the server to shut down gracefully (SIGTERM, SIGINT, `/-/quit`).
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves once a shutdown was requested.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Serves HTTP on every listener until a shutdown is requested, then drains the open
/// connections (in-flight requests finish; idle keep-alive connections are closed).
pub async fn serve(app: Arc<App>, listeners: Vec<TcpListener>) {
    let expiry = tokio::spawn(lifecycle::expiry_loop(
        app.clone(),
        app.cfg
            .expiry_period
            .max(std::time::Duration::from_millis(10)),
    ));
    let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
    // `--limits.max-connections`: a connection holds a permit until it closes; without one,
    // the next connection waits in the kernel's listen backlog.
    let max_conns = match app.cfg.limits.max_connections {
        0 => tokio::sync::Semaphore::MAX_PERMITS,
        n => n,
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(max_conns));
    let conns = conns::Conns::new(conns::fd_soft_limit());
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let app = app.clone();
        let graceful = graceful.clone();
        let permits = permits.clone();
        let conns = conns.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = app.shutdown_requested() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                conns.make_room();
                tokio::select! {
                    _ = app.shutdown_requested() => break,
                    res = listener.accept() => {
                        let (stream, remote) = match res {
                            Ok(x) => x,
                            Err(e) => {
                                // Out of descriptors: idle connections are shed and the
                                // accept retried; otherwise wait a little.
                                if conns.accept_failed(&e) {
                                    tokio::task::yield_now().await;
                                } else {
                                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                                }
                                continue;
                            }
                        };
                        let conn = conns.register();
                        let _ = stream.set_nodelay(true);
                        let tls = app.cfg.web.as_ref().and_then(|w| w.current().tls());
                        let app = app.clone();
                        // A watcher, not the shutdown handle, goes with the connection, so
                        // that the handle is ours alone again once the listeners stop.
                        let graceful = graceful.watcher();
                        tokio::spawn(async move {
                            match tls {
                                None => serve_connection(app, graceful, stream, remote, None, conn).await,
                                Some(tls) => {
                                    // Certificates are taken per connection, so a rotated
                                    // certificate applies to the next handshake.
                                    let acceptor = webconfig::tokio_rustls::TlsAcceptor::from(tls);
                                    let limit = handshake_timeout(&app);
                                    let handshake = tokio::time::timeout(limit, acceptor.accept(stream));
                                    let stream = match tokio::select! {
                                        r = handshake => r,
                                        _ = conn.shed.notified() => return,
                                    } {
                                        Ok(Ok(s)) => s,
                                        Ok(Err(e)) => {
                                            tracing::debug!(%remote, err = %e, "TLS handshake failed");
                                            return;
                                        }
                                        Err(_) => {
                                            tracing::debug!(%remote, "TLS handshake timed out");
                                            return;
                                        }
                                    };
                                    let peer = stream
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .and_then(|c| webconfig::ClientIdentity::from_der(c.as_ref()).ok())
                                        .map(Arc::new);
                                    serve_connection(app, graceful, stream, remote, peer, conn).await
                                }
                            }
                            drop(permit);
                        });
                    }
                }
            }
        }));
    }
    for t in accept_tasks {
        let _ = t.await;
    }
    let _ = expiry.await;
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), g.shutdown()).await;
        }
        Err(_) => tracing::warn!("connections still referenced at shutdown"),
    }
}

fn handshake_timeout(app: &App) -> std::time::Duration {
    match app.cfg.limits.read_header_timeout {
        d if d.is_zero() => std::time::Duration::from_secs(120),
        d => d,
    }
}

/// Serves HTTP/1.1 on one (plain or TLS) connection until it closes.
async fn serve_connection<I>(
    app: Arc<App>,
    graceful: hyper_util::server::graceful::Watcher,
    io: I,
    remote: SocketAddr,
    peer: Option<Arc<webconfig::ClientIdentity>>,
    conn: conns::ConnHandle,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = app.cfg.limits.read_header_timeout;
    let conn = Arc::new(conn);
    let shed = conn.shed.clone();
    let svc = hyper::service::service_fn(move |req| {
        let app = app.clone();
        let peer = peer.clone();
        // Not shed while a request is in flight.
        let in_flight = conn.request();
        async move {
            let resp = handle(app, req, remote, peer.as_deref()).await;
            drop(in_flight);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new());
    // hyper applies this to every request head, keep-alive idle included.
    builder.header_read_timeout((!header_timeout.is_zero()).then_some(header_timeout));
    // A client may send a whole request and then shut down its write side (half-close):
    // the request is still processed and answered, as Go's server does.
    builder.half_close(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    // Dropping the connection when it is shed closes it.
    tokio::select! {
        _ = graceful.watch(conn) => {}
        _ = shed.notified() => {}
    }
}

/// What a route asks of the caller's role (`--web.config.file` access section).
fn action_of<'a>(dispatch: &Dispatch, key: Option<&'a store::GroupKey>) -> webconfig::Action<'a> {
    match dispatch {
        Dispatch::Handle(Route::Push { .. } | Route::OtlpMetrics) => match key {
            Some(k) => webconfig::Action::Push(k),
            None => webconfig::Action::Read,
        },
        Dispatch::Handle(Route::Quit | Route::QuitGet | Route::ApiWipe | Route::ApiAdminGroups) => {
            webconfig::Action::Admin
        }
        _ => webconfig::Action::Read,
    }
}

/// Authenticates and authorizes a request against the web config. `Ok(Some(name))` names
/// the caller (a user or certificate) for per-client limits. Routes that only answer with a
/// redirect or an error need authentication, not a role.
fn authorize(
    web: &webconfig::WebConfig,
    parts: &hyper::http::request::Parts,
    peer: Option<&webconfig::ClientIdentity>,
    dispatch: &Dispatch,
    key: Option<&store::GroupKey>,
) -> Result<Option<String>, HttpError> {
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let req = webconfig::AuthRequest {
        authorization,
        client_cert: peer,
        action: action_of(dispatch, key),
    };
    // A bcrypt check takes tens of milliseconds on a cache miss: keep it off the reactor.
    let verdict = if authorization.is_some() && web.has_users() {
        tokio::task::block_in_place(|| web.authorize(&req))
    } else {
        web.authorize(&req)
    };
    match verdict {
        Ok(webconfig::Principal::Anonymous) => Ok(None),
        Ok(p) => Ok(Some(p.to_string())),
        Err(webconfig::Denial::Forbidden(_)) if !matches!(dispatch, Dispatch::Handle(_)) => {
            Ok(None)
        }
        Err(webconfig::Denial::Unauthorized) => Err(HttpError::Unauthorized),
        Err(webconfig::Denial::Forbidden(why)) => Err(HttpError::Forbidden(why)),
    }
}

/// Adds the `http_server_config.headers` of the web config to a response.
fn with_config_headers(web: Option<&webconfig::WebConfig>, mut resp: Resp) -> Resp {
    if let Some(w) = web {
        for (k, v) in w.headers() {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

/// Percent-decodes a request path strictly (as Go's URL parser does); `None` if invalid.
fn decode_path(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (h, l) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            );
            match (h, l) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return None,
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Re-escapes a decoded path for a `Location` header.
fn escape_path(p: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(p, SET).to_string()
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    remote: SocketAddr,
    peer: Option<&webconfig::ClientIdentity>,
) -> Resp {
    let web = app.cfg.web.as_ref().map(|w| w.current());
    let resp = handle_inner(&app, req, remote, peer, web.as_deref()).await;
    with_config_headers(web.as_deref(), resp)
}

async fn handle_inner(
    app: &Arc<App>,
    req: Request<Incoming>,
    remote: SocketAddr,
    peer: Option<&webconfig::ClientIdentity>,
    web: Option<&webconfig::WebConfig>,
) -> Resp {
    let app = app.clone();
    let started = Instant::now();
    let method = req.method().clone();
    let path = decode_path(req.uri().path());
    let dispatch = match &path {
        Some(p) => app.cfg.routes.dispatch(&method, p),
        None => Dispatch::NotFound,
    };
    let mut client = None;
    let mut req = req;
    if let Some(web) = web {
        // As exporter-toolkit does, authentication comes before everything else.
        let (parts, body) = req.into_parts();
        let key = match &dispatch {
            Dispatch::Handle(Route::Push { base64, rest, .. }) => {
                push::parse_grouping_key_names(*base64, rest, app.cfg.formats.utf8_names).ok()
            }
            _ => None,
        };
        // A push path whose grouping key is invalid only needs authentication: its answer
        // is the 400 below, whatever the caller's role. An OTLP export's grouping keys come
        // from its body: authenticated here, authorized per key once it is decoded.
        let for_auth = match (&dispatch, &key) {
            (Dispatch::Handle(Route::Push { .. } | Route::OtlpMetrics), None) => {
                &Dispatch::NotFound
            }
            _ => &dispatch,
        };
        match authorize(web, &parts, peer, for_auth, key.as_ref()) {
            Ok(name) => client = name,
            Err(e) => {
                // Read a small body anyway, so the client can retry on this connection.
                drain_body(Request::from_parts(parts, body)).await;
                return e.into_response();
            }
        }
        req = Request::from_parts(parts, body);
    }
    if path.is_none() {
        return text_response(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid URL escape or non-UTF-8 path\n",
        );
    }
    if let Dispatch::Handle(Route::Push {
        base64,
        rest,
        accumulate,
    }) = dispatch
    {
        let route = push::PushRoute {
            base64,
            rest: &rest,
            accumulate,
        };
        let resp = handle_push(&app, route, req, remote, client, started).await;
        // `count_request` labels a DELETE on the push route as the `delete` handler.
        app.telemetry
            .count_request("push", resp.status().as_u16(), &method);
        return resp;
    }
    if let Dispatch::Handle(Route::OtlpMetrics) = dispatch {
        let resp = otlp::handle(&app, req, remote, client, peer).await;
        app.telemetry
            .count_request("api/v1/otlp/v1/metrics", resp.status().as_u16(), &method);
        return resp;
    }
    // Every other endpoint ignores the body: read it anyway (up to a limit), so the
    // connection stays usable for the client's next request.
    let req = drain_body(req).await;
    match dispatch {
        Dispatch::Redirect(code, to) => {
            let mut loc = escape_path(&to);
            if let Some(q) = req.uri().query() {
                loc.push('?');
                loc.push_str(q);
            }
            redirect(code, &loc, method == Method::GET)
        }
        Dispatch::NotFound => HttpError::NotFound.into_response(),
        Dispatch::MethodNotAllowed(allow) => method_not_allowed(&allow),
        Dispatch::Options(allow) => {
            let mut r = empty(StatusCode::OK);
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                r.headers_mut().insert(hyper::header::ALLOW, v);
            }
            r
        }
        Dispatch::Handle(route) => {
            let handler = telemetry::handler_label(&route);
            let resp = route_request(&app, route, req).await;
            if let Some(h) = handler {
                app.telemetry
                    .count_request(h, resp.status().as_u16(), &method);
            }
            resp
        }
    }
}

/// Reads a push body within `--limits.max-body-size` and `--web.read-timeout`.
async fn read_body(
    app: &App,
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), HttpError> {
    let l = &app.cfg.limits;
    let (parts, body) = req.into_parts();
    let max = if l.max_body_bytes == 0 {
        usize::MAX
    } else {
        l.max_body_bytes
    };
    let too_large = || {
        app.rejections.count(limits::Reason::BodySize);
        HttpError::TooLarge(format!(
            "limit exceeded: request body larger than {max} bytes (--limits.max-body-size)"
        ))
    };
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let collect = http_body_util::Limited::new(body, max).collect();
    let collected = if l.read_body_timeout.is_zero() {
        collect.await
    } else {
        match tokio::time::timeout(l.read_body_timeout, collect).await {
            Ok(r) => r,
            Err(_) => {
                app.rejections.count(limits::Reason::Timeout);
                return Err(HttpError::Timeout(l.read_body_timeout));
            }
        }
    };
    match collected {
        Ok(c) => Ok((parts, c.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::BadRequest(format!("reading request body: {e}"))),
    }
}

/// Reads and discards a request body of up to 1 MiB (as Go's server drains up to 256 KiB);
/// a larger one is left unread and hyper closes the connection after the response.
async fn drain_body(req: Request<Incoming>) -> Request<()> {
    let (parts, body) = req.into_parts();
    let _ = http_body_util::Limited::new(body, 1 << 20).collect().await;
    Request::from_parts(parts, ())
}

#[allow(clippy::too_many_arguments)]
async fn handle_push(
    app: &Arc<App>,
    route: push::PushRoute<'_>,
    req: Request<Incoming>,
    remote: SocketAddr,
    client: Option<String>,
    started: Instant,
) -> Resp {
    let approx_size = telemetry::approximate_request_size(&req);
    let method = req.method().clone();
    let limited = app.rate.enabled().then(|| {
        let client = client.unwrap_or_else(|| remote.ip().to_string());
        app.rate.take(&client, Instant::now())
    });
    if let Some(Err(retry_after)) = limited {
        app.rejections.count(limits::Reason::Rate);
        return HttpError::RateLimited {
            rate: app.cfg.limits.push_rate,
            retry_after,
        }
        .into_response();
    }
    let result = match read_body(app, req).await {
        Ok((parts, body)) => push::handle(app, &parts, route, body, remote).await,
        Err(e) => Err(e),
    };
    let resp = result.unwrap_or_else(HttpError::into_response);
    if method == Method::PUT || method == Method::POST {
        app.telemetry
            .observe_push(&method, started.elapsed().as_secs_f64(), approx_size as f64);
    }
    resp
}

async fn route_request(app: &Arc<App>, route: Route, req: Request<()>) -> Resp {
    match route {
        // Pushes never get here (`handle` sends them to `handle_push` with their body).
        Route::Push { .. } | Route::OtlpMetrics => {
            HttpError::Internal("push routed without its body".into()).into_response()
        }
        Route::Scrape => scrape::handle(app, req.headers()),
        Route::Healthy => with_sniffed_text(StatusCode::OK, "OK"),
        Route::Ready => match app.writer.ready() {
            Ok(()) => with_sniffed_text(StatusCode::OK, "OK"),
            Err(why) => HttpError::Unavailable(format!("not ready: {why}")).into_response(),
        },
        Route::Quit => {
            if app.cfg.enable_lifecycle {
                tracing::warn!(
                    "received termination request via web service, exiting gracefully..."
                );
                app.request_shutdown();
                with_sniffed_text(StatusCode::OK, "Requesting termination... Goodbye!")
            } else {
                with_sniffed_text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
            }
        }
        Route::QuitGet => with_sniffed_text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST or PUT requests allowed.",
        ),
        Route::Static(file) => ui::static_file(&file),
        Route::Ui => ui::page(app),
        Route::ApiStatus => api::status(app),
        Route::ApiMetrics => api::metrics(app),
        Route::ApiOptions => api::cors(empty(StatusCode::OK)),
        Route::ApiWipe => match app.writer.wipe().await {
            Ok(()) => empty(StatusCode::ACCEPTED),
            Err(e) => HttpError::from(e).into_response(),
        },
        Route::ApiGroups => {
            lifecycle::list(app, req.uri().query()).unwrap_or_else(|e| api::cors(e.into_response()))
        }
        Route::ApiAdminGroups => lifecycle::delete(app, req.uri().query())
            .await
            .unwrap_or_else(|e| api::cors(e.into_response())),
    }
}

/// A plain-text body without `nosniff`, as Go writes it with `w.Write` (type sniffed).
fn with_sniffed_text(status: StatusCode, body: &'static str) -> Resp {
    http::with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}
