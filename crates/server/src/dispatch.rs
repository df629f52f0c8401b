//! The path of one request, socket aside: path decoding, authentication and authorization
//! against `--web.config.file`, the route table's answer (redirects, 404, 405 + `Allow`,
//! OPTIONS), body limits and draining, and the call of the route's handler, counted in the
//! request telemetry. [`App::handle`] is generic over the request body, so tests drive it
//! with an in-memory body and no socket.

use crate::error::HttpError;
use crate::http::{empty, method_not_allowed, redirect, text_response, Resp};
use crate::reqline::Target;
use crate::router::{Dispatch, Route};
use crate::{api, groups, http, json, limits, otlp, push, scrape, telemetry, ui, App};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

/// The error type a request body's errors convert into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl App {
    /// Answers one request from `remote` (`peer`: the verified client certificate of its TLS
    /// connection). Any body type will do: hyper's `Incoming` on a connection, `Full<Bytes>`
    /// in tests.
    pub async fn handle<B>(
        self: &Arc<Self>,
        req: Request<B>,
        remote: SocketAddr,
        peer: Option<&webconfig::ClientIdentity>,
    ) -> Resp
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let web = self.cfg.web.as_ref().map(|w| w.current());
        let resp = handle_inner(self, req, remote, peer, web.as_deref()).await;
        with_config_headers(web.as_deref(), resp)
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
pub(crate) fn authorize(
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

/// Percent-decodes a request path strictly (as Go's URL parser does): `Err(None)` for an
/// invalid escape, `Err(Some(bytes))` for a path that is not UTF-8. A path without escapes
/// is borrowed.
fn decode_path(b: &[u8]) -> Result<Cow<'_, str>, Option<Vec<u8>>> {
    if !b.contains(&b'%') {
        return match std::str::from_utf8(b) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => Err(Some(b.to_vec())),
        };
    }
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
                _ => return Err(None),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|e| Some(e.into_bytes()))
}

/// The route of a path that is not UTF-8: Go's router matches its bytes, so it is a 404 (or
/// 405, OPTIONS) unless a push takes it, which refuses it (label values are UTF-8).
fn dispatch_not_utf8(app: &App, method: &Method, path: &[u8]) -> Dispatch {
    match app
        .cfg
        .routes
        .dispatch(method, &String::from_utf8_lossy(path))
    {
        d @ Dispatch::Handle(Route::Push { .. }) => d,
        Dispatch::Handle(_) | Dispatch::Redirect(..) => Dispatch::NotFound,
        d => d,
    }
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

/// Authenticates and authorizes, then answers: pushes and OTLP exports with their body,
/// everything else from the route table with the body drained.
async fn handle_inner<B>(
    app: &Arc<App>,
    req: Request<B>,
    remote: SocketAddr,
    peer: Option<&webconfig::ClientIdentity>,
    web: Option<&webconfig::WebConfig>,
) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let method = req.method().clone();
    // The route, and whether the path is refused (an invalid escape, or not UTF-8 on a route
    // with a handler).
    let (dispatch, bad_path) = {
        let path = decode_path(Target::of(req.uri(), req.extensions()).path);
        let dispatch = match &path {
            Ok(p) => app.cfg.routes.dispatch(&method, p),
            Err(Some(bytes)) => dispatch_not_utf8(app, &method, bytes),
            Err(None) => Dispatch::NotFound,
        };
        let bad = matches!(
            (&path, &dispatch),
            (Err(None), _) | (Err(Some(_)), Dispatch::Handle(_))
        );
        (dispatch, bad)
    };
    let mut client = None;
    let mut req = req;
    if let Some(web) = web {
        match authenticate(app, web, req, peer, &dispatch).await {
            Ok((r, name)) => (req, client) = (r, name),
            Err(refusal) => return refusal,
        }
    }
    if bad_path {
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
        let (resp, size) = handle_push(app, route, req, remote, client).await;
        // Counted as `push` (a DELETE as `delete`); a PUT's or POST's duration and size
        // observed unless it was refused by the rate limit.
        app.telemetry
            .finish_push(started, &method, resp.status().as_u16(), size);
        return resp;
    }
    if let Dispatch::Handle(Route::OtlpMetrics) = dispatch {
        let resp = otlp::handle(app, req, remote, client, peer).await;
        app.telemetry
            .count_request("api/v1/otlp/v1/metrics", resp.status().as_u16(), &method);
        return resp;
    }
    // Every other endpoint ignores the body: read it anyway (up to a limit), so the
    // connection stays usable for the client's next request.
    let req = drain_body(req).await;
    answer(app, dispatch, req, method).await
}

/// As exporter-toolkit does, authentication comes before everything else: the request back
/// with the caller's name, or the refusal to send (the body read, if small, so the client
/// can retry on this connection).
async fn authenticate<B>(
    app: &App,
    web: &webconfig::WebConfig,
    req: Request<B>,
    peer: Option<&webconfig::ClientIdentity>,
    dispatch: &Dispatch,
) -> Result<(Request<B>, Option<String>), Resp>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let key = match dispatch {
        Dispatch::Handle(Route::Push { base64, rest, .. }) => {
            push::parse_grouping_key_names(*base64, rest, app.cfg.formats.utf8_names).ok()
        }
        _ => None,
    };
    // A push path whose grouping key is invalid only needs authentication: its answer
    // is the 400 below, whatever the caller's role. An OTLP export's grouping keys come
    // from its body: authenticated here, authorized per key once it is decoded.
    let for_auth = match (dispatch, &key) {
        (Dispatch::Handle(Route::Push { .. } | Route::OtlpMetrics), None) => &Dispatch::NotFound,
        _ => dispatch,
    };
    match authorize(web, &parts, peer, for_auth, key.as_ref()) {
        Ok(name) => Ok((Request::from_parts(parts, body), name)),
        Err(e) => {
            drain_body(Request::from_parts(parts, body)).await;
            Err(e.into_response())
        }
    }
}

/// The answer of every route but pushes: redirects, 404, 405, OPTIONS and the handlers.
async fn answer(app: &Arc<App>, dispatch: Dispatch, req: Request<()>, method: Method) -> Resp {
    match dispatch {
        Dispatch::Redirect(code, to) => {
            let mut loc = escape_path(&to);
            if let Some(q) = Target::of(req.uri(), req.extensions()).query {
                loc.push('?');
                // As Go's `http.Redirect`: the query as sent, bytes beyond ASCII escaped.
                for &b in q {
                    if b.is_ascii() {
                        loc.push(b as char);
                    } else {
                        loc.push_str(&format!("%{b:02x}"));
                    }
                }
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
            let resp = route_request(app, route, req).await;
            if let Some(h) = handler {
                app.telemetry
                    .count_request(h, resp.status().as_u16(), &method);
            }
            resp
        }
    }
}

/// Reads a push body within `--limits.max-body-size` and `--web.read-timeout`.
pub(crate) async fn read_body<B>(
    app: &App,
    req: Request<B>,
) -> Result<(hyper::http::request::Parts, Bytes), HttpError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
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
    let mut collect = pin!(collect_body(body, max, declared));
    // A body that has already arrived (the usual small push) needs no timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(r) => r,
        Poll::Pending if l.read_body_timeout.is_zero() => collect.await,
        Poll::Pending => match tokio::time::timeout(l.read_body_timeout, collect).await {
            Ok(r) => r,
            Err(_) => {
                app.rejections.count(limits::Reason::Timeout);
                return Err(HttpError::Timeout(l.read_body_timeout));
            }
        },
    };
    match collected {
        Ok(b) => Ok((parts, b)),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Read(e)) => Err(HttpError::BadRequest(format!("reading request body: {e}"))),
    }
}

/// Why [`collect_body`] stopped.
enum BodyError {
    /// More than the limit arrived.
    TooLarge,
    /// The body could not be read (the client's framing, a reset...).
    Read(BoxError),
}

/// Reads a whole body of at most `max` bytes. A body that arrives in one frame (the usual
/// small push) is returned as it is, without a copy; more frames are gathered into one buffer
/// sized by the declared length (up to a bound).
async fn collect_body<B>(body: B, max: usize, declared: Option<u64>) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut more: Option<Vec<u8>> = None;
    let mut len = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
        // Trailers are read and ignored.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > max {
            return Err(BodyError::TooLarge);
        }
        if data.is_empty() {
            continue;
        }
        match (&mut first, &mut more) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                // The declared length, but never more than a few times what has arrived: a
                // client that declares a large body and stalls holds little memory.
                let declared = declared.map_or(0, |d| usize::try_from(d).unwrap_or(usize::MAX));
                let cap = declared.min(max).min(len.saturating_mul(4).max(64 << 10));
                let mut buf = Vec::with_capacity(cap.max(len));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                first = None;
                more = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, more) {
        (_, Some(buf)) => Bytes::from(buf),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// Reads and discards a request body of up to 1 MiB (as Go's server drains up to 256 KiB);
/// a larger one is left unread and hyper closes the connection after the response.
async fn drain_body<B>(req: Request<B>) -> Request<()>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let _ = http_body_util::Limited::new(body, 1 << 20).collect().await;
    Request::from_parts(parts, ())
}

/// A push or delete: the answer and, unless the rate limit refused it, the approximate
/// request size to observe (`None`: not observed).
async fn handle_push<B>(
    app: &Arc<App>,
    route: push::PushRoute<'_>,
    req: Request<B>,
    remote: SocketAddr,
    client: Option<String>,
) -> (Resp, Option<usize>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let approx_size = telemetry::approximate_request_size(&req);
    let limited = app.rate.enabled().then(|| {
        let client = client.unwrap_or_else(|| remote.ip().to_string());
        app.rate.take(&client, Instant::now())
    });
    if let Some(Err(retry_after)) = limited {
        app.rejections.count(limits::Reason::Rate);
        let resp = HttpError::RateLimited {
            rate: app.cfg.limits.push_rate,
            retry_after,
        }
        .into_response();
        return (resp, None);
    }
    let result = match read_body(app, req).await {
        Ok((parts, body)) => push::handle(app, &parts, route, body, remote).await,
        Err(e) => Err(e),
    };
    (
        result.unwrap_or_else(HttpError::into_response),
        Some(approx_size),
    )
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
        Route::ApiGroup { base64, rest } => api::group(app, base64, &rest),
        Route::ApiOptions => json::cors(empty(StatusCode::OK)),
        Route::ApiWipe => match app.writer.wipe().await {
            Ok(()) => empty(StatusCode::ACCEPTED),
            Err(e) => HttpError::from(e).into_response(),
        },
        Route::ApiGroups => groups::list(app, query(&req).as_deref())
            .unwrap_or_else(|e| json::cors(e.into_response())),
        Route::ApiAdminGroups => groups::delete(app, query(&req).as_deref())
            .await
            .unwrap_or_else(|e| json::cors(e.into_response())),
    }
}

/// The query of a request as the client sent it.
fn query<B>(req: &Request<B>) -> Option<std::borrow::Cow<'_, str>> {
    Target::of(req.uri(), req.extensions()).query_str()
}

/// A plain-text body without `nosniff`, as Go writes it with `w.Write` (type sniffed).
fn with_sniffed_text(status: StatusCode, body: &'static str) -> Resp {
    http::with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    //! The request path without a socket: `App::handle` with in-memory bodies.

    use super::*;
    use crate::testing::{app, config};
    use http_body_util::Full;
    use hyper::header::{HeaderMap, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};

    /// One request through `App::handle`: status, headers and body text.
    async fn call(
        app: &Arc<App>,
        method: Method,
        uri: &str,
        body: &'static str,
    ) -> (StatusCode, HeaderMap, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let resp = app.handle(req, "127.0.0.1:9".parse().unwrap(), None).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn push_then_scrape() {
        let app = app(config());
        let push = "# TYPE x gauge\nx 1\n";
        let (status, _, body) = call(&app, Method::PUT, "/metrics/job/j/instance/i", push).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        let (status, headers, body) = call(&app, Method::GET, "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        assert!(
            body.contains("# TYPE x gauge\nx{instance=\"i\",job=\"j\"} 1\n"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn wrong_method_is_405_with_allow() {
        let app = app(config());
        let (status, headers, body) = call(&app, Method::GET, "/metrics/job/j", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[ALLOW], "DELETE, OPTIONS, POST, PUT");
        assert_eq!(body, "Method Not Allowed\n");
        let (status, headers, _) = call(&app, Method::PUT, "/metrics", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[ALLOW], "GET, OPTIONS");
    }

    #[tokio::test]
    async fn unauthenticated_push_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            "basic_auth_users:\n  dave: $2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq\n",
        )
        .unwrap();
        let mut cfg = config();
        cfg.web = Some(webconfig::ReloadingWebConfig::without_watcher(&path).unwrap());
        let app = app(cfg);
        let (status, headers, body) = call(&app, Method::PUT, "/metrics/job/j", "x 1\n").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Basic");
        assert_eq!(body, "Unauthorized\n");
        assert!(app.store.snapshot().groups.is_empty());
        let (status, _, _) = call(&app, Method::GET, "/metrics", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_413_and_changes_nothing() {
        let mut cfg = config();
        cfg.limits.max_body_bytes = 16;
        let app = app(cfg);
        let push = "# TYPE x gauge\nx 1\n";
        let (status, _, body) = call(&app, Method::PUT, "/metrics/job/j", push).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            "limit exceeded: request body larger than 16 bytes (--limits.max-body-size)\n"
        );
        assert!(app.store.snapshot().groups.is_empty());
        let (status, _, _) = call(&app, Method::PUT, "/metrics/job/j", "x 1\n").await;
        assert_eq!(status, StatusCode::OK);
    }
}
