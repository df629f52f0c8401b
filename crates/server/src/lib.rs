//! The HTTP side of the gateway: routing, push and delete handlers, the scrape, API v1, the web
//! UI and the gateway's own telemetry. It owns no metric state: every handler works on the
//! [`store::Store`] handed in, and readers work on one immutable [`store::Snapshot`] each.
//!
//! * [`router`]: the official routing quirks (path cleaning, trailing slashes, 405/OPTIONS).
//! * [`push`]: grouping keys from the URL, body decoding, PUT/POST/DELETE.
//! * [`scrape`]: the merged exposition, text or protobuf, plain or gzip.
//! * [`api`]: `/api/v1/status` and `/api/v1/metrics` JSON.
//! * [`lifecycle`]: push TTLs, the expiry loop, group listing and bulk deletes.
//! * [`ui`]: the server-rendered web UI with embedded assets.
//! * [`telemetry`]: `pushgateway_*` and `process_*` metrics.
//! * [`error`]: the single mapping from errors to HTTP responses.

pub mod api;
pub mod error;
pub mod http;
pub mod lifecycle;
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
}

/// Shared state of the server.
pub struct App {
    pub cfg: Config,
    pub store: Arc<Store>,
    pub telemetry: telemetry::Telemetry,
    pub start_time: SystemTime,
    pub clock: lifecycle::Clock,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(cfg: Config, store: Arc<Store>) -> Arc<App> {
        let (shutdown, _) = watch::channel(false);
        let telemetry = telemetry::Telemetry::new(&cfg.build);
        Arc::new(App {
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
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let app = app.clone();
        let graceful = graceful.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = app.shutdown_requested() => break,
                    res = listener.accept() => {
                        let (stream, remote) = match res {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(err = %e, "accept failed");
                                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let app = app.clone();
                        let svc = hyper::service::service_fn(move |req| {
                            let app = app.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(app, req, remote).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc);
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            let _ = conn.await;
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

async fn handle(app: Arc<App>, req: Request<Incoming>, remote: SocketAddr) -> Resp {
    let started = Instant::now();
    let method = req.method().clone();
    let Some(path) = decode_path(req.uri().path()) else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid URL escape or non-UTF-8 path\n",
        );
    };
    let dispatch = app.cfg.routes.dispatch(&method, &path);
    if let Dispatch::Handle(Route::Push { base64, rest }) = dispatch {
        let resp = handle_push(&app, base64, &rest, req, remote, started).await;
        // `count_request` labels a DELETE on the push route as the `delete` handler.
        app.telemetry
            .count_request("push", resp.status().as_u16(), &method);
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

async fn read_body(
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), HttpError> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| HttpError::BadRequest(format!("reading request body: {e}")))?
        .to_bytes();
    Ok((parts, body))
}

/// Reads and discards a request body of up to 1 MiB (as Go's server drains up to 256 KiB);
/// a larger one is left unread and hyper closes the connection after the response.
async fn drain_body(req: Request<Incoming>) -> Request<()> {
    let (parts, body) = req.into_parts();
    let _ = http_body_util::Limited::new(body, 1 << 20).collect().await;
    Request::from_parts(parts, ())
}

async fn handle_push(
    app: &Arc<App>,
    base64: bool,
    rest: &str,
    req: Request<Incoming>,
    remote: SocketAddr,
    started: Instant,
) -> Resp {
    let approx_size = telemetry::approximate_request_size(&req);
    let method = req.method().clone();
    let result = match read_body(req).await {
        Ok((parts, body)) => push::handle(app, &parts, base64, rest, body, remote).await,
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
        Route::Push { .. } => {
            HttpError::Internal("push routed without its body".into()).into_response()
        }
        Route::Scrape => scrape::handle(app, req.headers()),
        Route::Healthy | Route::Ready => with_sniffed_text(StatusCode::OK, "OK"),
        Route::Quit => {
            if app.cfg.enable_lifecycle {
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
        Route::ApiWipe => match app.store.wipe().await {
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
