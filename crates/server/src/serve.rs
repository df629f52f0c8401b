//! The listening side: the accept loop on every listener, connection permits
//! (`--limits.max-connections`), shedding idle connections when descriptors run out, the TLS
//! handshake and the client identity of its certificate, HTTP/1.1 per connection (behind
//! [`reqline`](crate::reqline), which takes request targets as Go does), and the graceful
//! drain at shutdown. Every request goes on to [`App::handle`](crate::App::handle).

use crate::error::HttpError;
use crate::{conns, expiry, reqline, App};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Serves HTTP on every listener until a shutdown is requested, then drains the open
/// connections (in-flight requests finish; idle keep-alive connections are closed).
pub async fn serve(app: Arc<App>, listeners: Vec<TcpListener>) {
    let expiry = tokio::spawn(expiry::expiry_loop(
        app.clone(),
        app.cfg.expiry_period.max(Duration::from_millis(10)),
    ));
    let graceful = Arc::new(GracefulShutdown::new());
    let acceptor = Acceptor {
        permits: Arc::new(Semaphore::new(max_connections(&app))),
        conns: conns::Conns::new(conns::fd_soft_limit()),
        graceful: graceful.clone(),
        app,
    };
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(accept_loop(acceptor.clone(), listener)))
        .collect();
    drop(acceptor);
    for t in accept_tasks {
        let _ = t.await;
    }
    let _ = expiry.await;
    drain(graceful).await;
}

/// `--limits.max-connections`: a connection holds a permit until it closes; without one, the
/// next connection waits in the kernel's listen backlog.
fn max_connections(app: &App) -> usize {
    match app.cfg.limits.max_connections {
        0 => Semaphore::MAX_PERMITS,
        n => n,
    }
}

/// Waits (at most 30 s) for the open connections to finish once the listeners have stopped.
async fn drain(graceful: Arc<GracefulShutdown>) {
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            let _ = tokio::time::timeout(Duration::from_secs(30), g.shutdown()).await;
        }
        Err(_) => tracing::warn!("connections still referenced at shutdown"),
    }
}

/// What every accept loop shares.
#[derive(Clone)]
struct Acceptor {
    app: Arc<App>,
    graceful: Arc<GracefulShutdown>,
    permits: Arc<Semaphore>,
    conns: Arc<conns::Conns>,
}

/// Accepts connections on one listener until a shutdown is requested.
async fn accept_loop(a: Acceptor, listener: TcpListener) {
    loop {
        let permit = tokio::select! {
            _ = a.app.shutdown_requested() => break,
            p = a.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        a.conns.make_room();
        let accepted = tokio::select! {
            _ = a.app.shutdown_requested() => break,
            res = listener.accept() => res,
        };
        match accepted {
            Ok((stream, remote)) => a.spawn_connection(stream, remote, permit),
            Err(e) => {
                // Out of descriptors: idle connections are shed and the accept retried;
                // otherwise wait a little.
                if a.conns.accept_failed(&e) {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

impl Acceptor {
    /// Serves one accepted connection on its own task, which holds `permit` until it ends.
    fn spawn_connection(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let conn = self.conns.register();
        let _ = stream.set_nodelay(true);
        // Certificates are taken per connection, so a rotated certificate applies to the next
        // handshake.
        let tls = self.app.cfg.web.as_ref().and_then(|w| w.current().tls());
        let app = self.app.clone();
        // A watcher, not the shutdown handle, goes with the connection, so that the handle is
        // ours alone again once the listeners stop.
        let graceful = self.graceful.watcher();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(app, graceful, stream, remote, None, conn).await,
                Some(tls) => {
                    if let Some((stream, peer)) =
                        tls_handshake(&app, tls, stream, remote, &conn).await
                    {
                        serve_connection(app, graceful, stream, remote, peer, conn).await
                    }
                }
            }
            drop(permit);
        });
    }
}

/// The TLS handshake within the header timeout, and the identity of the client certificate;
/// `None` if it failed, timed out or the connection was shed meanwhile.
async fn tls_handshake(
    app: &App,
    tls: Arc<webconfig::tokio_rustls::rustls::ServerConfig>,
    stream: TcpStream,
    remote: SocketAddr,
    conn: &conns::ConnHandle,
) -> Option<(
    webconfig::tokio_rustls::server::TlsStream<TcpStream>,
    Option<Arc<webconfig::ClientIdentity>>,
)> {
    let acceptor = webconfig::tokio_rustls::TlsAcceptor::from(tls);
    let handshake = tokio::time::timeout(handshake_timeout(app), acceptor.accept(stream));
    let stream = match tokio::select! {
        r = handshake => r,
        _ = conn.shed.notified() => return None,
    } {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%remote, err = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return None;
        }
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| webconfig::ClientIdentity::from_der(c.as_ref()).ok())
        .map(Arc::new);
    Some((stream, peer))
}

fn handshake_timeout(app: &App) -> Duration {
    match app.cfg.limits.read_header_timeout {
        d if d.is_zero() => Duration::from_secs(120),
        d => d,
    }
}

/// Serves HTTP/1.1 on one (plain or TLS) connection until it closes.
async fn serve_connection<I>(
    app: Arc<App>,
    graceful: Watcher,
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
    let targets = Arc::new(reqline::Targets::default());
    let io = reqline::RequestLines::new(io, targets.clone());
    let svc = hyper::service::service_fn(move |mut req| {
        let app = app.clone();
        let peer = peer.clone();
        // Not shed while a request is in flight.
        let in_flight = conn.request();
        // Taken now, in the order hyper parsed the heads.
        let refused = reqline::resolve(&targets, &mut req).err();
        async move {
            let resp = match refused {
                None => app.handle(req, remote, peer.as_deref()).await,
                Some(reqline::Refusal::HeadTooLarge) => HttpError::HeadTooLarge.into_response(),
                Some(reqline::Refusal::UnknownTarget) => {
                    let mut r =
                        HttpError::BadRequest("unknown request target".into()).into_response();
                    r.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                    r
                }
            };
            drop(in_flight);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One lazily re-armed sleep per connection, not a timer registration per request.
    builder.timer(crate::headtimer::HeadTimer::new());
    // hyper applies this to every request head, keep-alive idle included.
    builder.header_read_timeout((!header_timeout.is_zero()).then_some(header_timeout));
    // A client may send a whole request and then shut down its write side (half-close):
    // the request is still processed and answered, as Go's server does.
    builder.half_close(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    // Dropping the connection when it is shed closes it.
    tokio::select! {
        biased;
        _ = graceful.watch(conn) => {}
        _ = shed.notified() => {}
    }
}
