//! The admission port's accept loop: a bounded number of connections, each
//! with a TLS handshake timeout, a header timeout, an idle timeout and
//! HTTP/2 limits, served by hyper and drained gracefully at shutdown.
//!
//! The only client of this port is the API server, which keeps a few
//! connections open and sends whole requests at once, so the limits are
//! tight for anything else:
//! - at most `max_connections` are open; more wait in the kernel's backlog
//!   until one closes (an attacker holding connections cannot starve the
//!   ones that come after it for longer than the timeouts below);
//! - a TLS handshake must finish within `handshake_timeout`;
//! - a request's header (and then its body) must arrive within
//!   `header_timeout` of its first byte (slow-header "slowloris" clients);
//! - a connection with no request in flight is closed after `idle_timeout`,
//!   measured from the end of the last response. The default is longer than
//!   the API server's own idle timeout for webhook connections (Go's 90 s),
//!   so it is the client that closes, never a race with a request it is
//!   about to send;
//! - HTTP/2: at most `max_concurrent_streams` streams per connection, and
//!   hyper's bounds on streams reset by the client before they were accepted
//!   and on streams reset for local errors, which stop the "rapid reset"
//!   (CVE-2023-44487) and "MadeYouReset" (CVE-2025-8671) floods.
//!
//! Every close for a limit is counted in
//! `regent_connections_closed_total{reason}`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::metrics::Metrics;

/// The connection limits of the admission port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time from a request's first byte to its whole header, and
    /// then to its whole body.
    pub header_timeout: Duration,
    /// Longest time a connection stays open with no request in flight.
    pub idle_timeout: Duration,
    /// HTTP/2: most concurrent streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_concurrent_streams: 100,
        }
    }
}

/// HTTP/2: streams the client may reset before the server accepted them,
/// per connection (hyper's default; the rapid-reset bound).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// HTTP/2: streams the server may reset for the client's protocol errors
/// before it closes the connection (the "MadeYouReset" bound).
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// HTTP/2: the largest header list accepted.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// What one connection is doing, shared by its I/O, its service and its
/// watchdog.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// [`IDLE`], [`READING`] or [`BUSY`].
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `origin`.
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// HTTP/2 connections have no "header being read" phase of their own:
    /// frames (pings, settings) arrive while idle.
    h2: bool,
    /// Wakes the watchdog when the phase changes.
    changed: tokio::sync::Notify,
}

const IDLE: u8 = 0;
const READING: u8 = 1;
const BUSY: u8 = 2;

impl Activity {
    fn new(h2: bool) -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            h2,
            changed: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn set(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle HTTP/1.1 connection, a request has begun.
    fn on_read(&self) {
        if !self.h2 && self.phase.load(Ordering::Acquire) == IDLE {
            self.set(READING);
        }
    }

    fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set(BUSY);
    }

    fn end_request(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set(IDLE);
        }
    }

    /// When the current phase runs out, and why.
    fn deadline(&self, limits: &ConnectionLimits) -> (Instant, Expiry) {
        let phase = self.phase.load(Ordering::Acquire);
        let since = self.origin + Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        match phase {
            READING => (since + limits.header_timeout, Expiry::Header),
            IDLE => (since + limits.idle_timeout, Expiry::Idle),
            // A request in flight is bounded by the evaluation limits; look
            // again later.
            _ => (Instant::now() + limits.header_timeout, Expiry::None),
        }
    }
}

/// Why a connection's watchdog fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
    None,
}

/// Waits until the connection has been reading one request's header for
/// longer than allowed, or idle for longer than allowed.
async fn watchdog(activity: &Activity, limits: &ConnectionLimits) -> Expiry {
    loop {
        let before = activity.since_ms.load(Ordering::Relaxed);
        let (at, why) = activity.deadline(limits);
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {
                let unchanged = activity.since_ms.load(Ordering::Relaxed) == before;
                if unchanged && why != Expiry::None {
                    return why;
                }
            }
            // A new phase: a new deadline.
            _ = activity.changed.notified() => {}
        }
    }
}

/// The TLS stream, telling the connection's [`Activity`] when bytes arrive.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router as a hyper service that tells the connection's [`Activity`]
/// when a request is in flight.
#[derive(Clone)]
struct Service {
    router: axum::Router,
    activity: Arc<Activity>,
}

/// Ends a request in the connection's activity, also when the response is
/// dropped unfinished.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        use tower::ServiceExt as _;
        self.activity.begin_request();
        let guard = InFlight(self.activity.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            drop(guard);
            response
        })
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true, then
/// stops accepting and lets open connections finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Option<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Our own header timeout (from a request's first byte) replaces
        // hyper's, which also counts the idle time before it.
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let builder = Arc::new(builder);
    loop {
        // A free slot first, then accept: at the cap, connections wait in
        // the kernel's backlog rather than being refused.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut shutdown) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let metrics = metrics.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let open = metrics.as_ref().map(|m| m.connections_open.clone());
            if let Some(g) = &open {
                g.inc();
            }
            let reason = serve_one(tcp, acceptor, router, &builder, &limits, &mut stop).await;
            if let Some(g) = &open {
                g.dec();
            }
            if let (Some(m), Some(reason)) = (&metrics, reason) {
                m.connections_closed.with_label_values(&[reason]).inc();
                tracing::debug!(%peer, reason, "connection closed by a limit");
            }
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing remaining connections"),
    }
}

/// Serves one connection; the limit that closed it, if one did.
async fn serve_one(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    limits: &ConnectionLimits,
    stop: &mut watch::Receiver<bool>,
) -> Option<&'static str> {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return Some("handshake_failed");
        }
        Err(_) => return Some("handshake_timeout"),
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let activity = Activity::new(h2);
    let io = Tracked {
        inner: tls,
        activity: activity.clone(),
    };
    let service = Service {
        router,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // Once closing, the client gets this long to finish what is in flight.
    let mut closing: Option<Instant> = None;
    let mut reason = None;
    loop {
        let close_by = closing.unwrap_or_else(Instant::now);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return reason;
            }
            why = watchdog(&activity, limits), if closing.is_none() => match why {
                // A request that never finished arriving: drop it.
                Expiry::Header => return Some("header_timeout"),
                _ => {
                    reason = Some("idle_timeout");
                    closing = Some(Instant::now() + limits.header_timeout);
                    conn.as_mut().graceful_shutdown();
                }
            },
            _ = stopped(stop), if closing.is_none() => {
                closing = Some(Instant::now() + limits.header_timeout);
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(close_by.into()), if closing.is_some() => return reason,
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    // A closed channel also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}
