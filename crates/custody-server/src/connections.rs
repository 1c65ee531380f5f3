//! The accept loop of `custody serve`, with the discipline a service on the open network
//! needs: one client that opens connections and sends nothing, stops mid-headers or sits
//! idle on keep-alive must not take the service down.
//!
//! axum's own `serve` keeps every connection for as long as the client likes; this loop
//! serves each connection with hyper's HTTP/1 server (as axum does) and adds:
//! - a deadline on every connection with no request in flight: `header_read_timeout` from
//!   when it opened until its first request's headers are in, then `idle_timeout` after
//!   each answer (hyper's own header-read timeout also bounds a request's headers);
//! - a cap on open connections, kept below the process's open-file limit with room for
//!   the database and files: when it is full, the connection idle longest is closed to
//!   make room (a connection with a request in flight is never closed for room), so a flood
//!   of idle sockets cannot lock out the health checks and the deploy gate;
//! - a cap on open connections per client address (0: none, e.g. behind a proxy): at it,
//!   the client's own connection idle longest is closed to make room, and only a client
//!   whose every connection is busy is refused;
//! - graceful shutdown: no new connections, then each finishes its request in flight.
//!
//! A connection counts as busy from the moment a request's headers are in until its
//! response body has been sent, so a long stream (the log's entries, an export) is never
//! cut as idle.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

use crate::settings::ConnectionLimits;

/// File descriptors kept free beside connections: the database's files and sockets, the
/// checkpoint file, key files, the log.
const RESERVED_FILES: u64 = 128;

/// How long a stop waits for connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The connection cap for `limits` in this process: the configured one, lowered to stay
/// below the open-file limit.
pub(crate) fn max_connections(limits: &ConnectionLimits) -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES).max(16)).unwrap_or(usize::MAX);
    limits.max_connections.min(room)
}

/// One open connection, as the loop and its task share it.
struct Conn {
    client: IpAddr,
    /// Requests in flight (headers in, response body not yet sent).
    busy: AtomicUsize,
    /// When it last became idle, in milliseconds since the loop started.
    idle_since: AtomicU64,
    /// Whether it has answered a request (then `idle_timeout` applies, else
    /// `header_read_timeout`).
    answered: AtomicBool,
    /// Chosen to be closed to make room (not counted against the cap any more).
    closing: AtomicBool,
    /// Wakes its task: to close it, or because it went idle.
    wake: Notify,
}

/// Every open connection.
struct Registry {
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled when the last connection closed.
    drained: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a connection from `client` may open now, making room if needed: at the
    /// client's cap, by closing that client's connection idle longest (so a browser or a
    /// proxy's keep-alive pool recycles its own sockets and never locks itself out); at the
    /// server's cap, anyone's. Refused only when every connection in the way is busy.
    fn admit(&self, client: IpAddr, max: usize, per_client: usize) -> bool {
        let open = self.lock();
        let live = || open.values().filter(|c| !c.closing.load(Ordering::Acquire));
        let close_idlest = |mine: bool| {
            let idlest = live()
                .filter(|c| !mine || c.client == client)
                .filter(|c| c.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
            idlest
                .inspect(|c| {
                    c.closing.store(true, Ordering::Release);
                    c.wake.notify_one();
                })
                .is_some()
        };
        if per_client > 0 && live().filter(|c| c.client == client).count() >= per_client {
            // Room made among the client's own is room under the server's cap too.
            return close_idlest(true);
        }
        live().count() < max || close_idlest(false)
    }

    /// Closes the connection idle longest (the process ran out of files).
    fn close_idlest(&self) {
        let open = self.lock();
        if let Some(c) = open
            .values()
            .filter(|c| !c.closing.load(Ordering::Acquire) && c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire))
        {
            c.closing.store(true, Ordering::Release);
            c.wake.notify_one();
        }
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        if open.is_empty() {
            self.drained.notify_waiters();
        }
    }
}

/// Marks a connection busy while it lives (from a request's headers to the end of its
/// response body).
struct Busy {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Busy {
    fn new(conn: Arc<Conn>, registry: Arc<Registry>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy { conn, registry }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.registry.now_ms(), Ordering::Release);
        self.conn.answered.store(true, Ordering::Release);
        if self.conn.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.wake.notify_one(); // its idle deadline starts now
        }
    }
}

/// A response body that keeps its connection busy until it has been sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting and lets open connections finish (at most [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        open: Mutex::new(HashMap::new()),
        drained: Notify::new(),
    });
    let max = max_connections(&limits);
    tracing::info!(
        max_connections = max,
        per_client = limits.max_connections_per_client,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "accepting connections"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files (EMFILE/ENFILE) despite the cap: make room and breathe;
                    // other errors concern one connection only.
                    if matches!(e.raw_os_error(), Some(23 | 24)) {
                        tracing::warn!(error = %e, "out of open files; closing the idlest connection");
                        registry.close_idlest();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            },
        };
        if !registry.admit(remote.ip(), max, limits.max_connections_per_client) {
            tracing::debug!(%remote, "connection refused: too many open");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = Arc::new(Conn {
            client: remote.ip(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(registry.now_ms()),
            answered: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            wake: Notify::new(),
        });
        registry.lock().insert(next_id, conn.clone());
        tokio::spawn(connection(
            next_id,
            stream,
            remote,
            conn,
            registry.clone(),
            router.clone(),
            limits,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = registry.drained.notified();
    if !registry.lock().is_empty() {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
    }
    Ok(())
}

/// Serves one connection until it closes, times out, is closed for room, or the server
/// stops.
#[allow(clippy::too_many_arguments, reason = "one task's whole context")]
async fn connection(
    id: u64,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let service = {
        let (conn, registry) = (conn.clone(), registry.clone());
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let busy = Busy::new(conn.clone(), registry.clone());
            request.extensions_mut().insert(ConnectInfo(remote));
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await;
                Ok::<_, Infallible>(response.map_or_else(
                    |never| match never {},
                    |r| r.map(|inner| Tracked { inner, _busy: busy }),
                ))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // Half-closes kept: a client may send its whole request, then shut its side and wait
    // for the answer (hyper would otherwise drop the connection on that end of input, and
    // a change made for the request would never be answered).
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .half_close(true)
        .keep_alive(true);
    let served = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        let deadline = deadline(&conn, &registry, &limits);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended");
                }
                break;
            }
            () = conn.wake.notified() => {
                if conn.closing.load(Ordering::Acquire) {
                    break; // closed for room: dropping it closes the socket
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)), if !stopping => {
                if conn.busy.load(Ordering::Acquire) == 0 && Instant::now() >= deadline {
                    break; // idle past its deadline
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
    registry.remove(id);
}

/// When an idle connection is closed: `header_read_timeout` after it opened if it has not
/// answered yet, else `idle_timeout` after its last answer; far off while it is busy (its
/// request's own timeout bounds it, and going idle wakes the task).
fn deadline(conn: &Conn, registry: &Registry, limits: &ConnectionLimits) -> Instant {
    let timeout = if conn.answered.load(Ordering::Acquire) {
        limits.idle_timeout
    } else {
        limits.header_read_timeout
    };
    if conn.busy.load(Ordering::Acquire) > 0 {
        return Instant::now() + timeout;
    }
    let since = Duration::from_millis(conn.idle_since.load(Ordering::Acquire));
    registry.epoch + since + timeout
}
