//! The manager's connection budget. Every connection the manager opens (its
//! tenant pools, detached or not, setup's staging pools and its maintenance
//! statements) holds a permit of one semaphore of `max_open_pools × max_size`
//! from before it connects until the server has closed it, so the server
//! never sees more connections from one manager than that.
//!
//! "Until the server has closed it" matters: dropping a client only closes
//! our end, and the backend lingers in `pg_stat_activity` until it has read
//! that. So pebble opens the socket itself and, when the connection ends,
//! reads it to end-of-file (the backend exits before its socket closes)
//! before giving the permit back.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, NoTls, SimpleQueryMessage};

use crate::conn::tls::MakeTls;
use crate::error::{Error, SqlState};

use super::Inner;

/// How often a caller waiting for a permit looks for an idle connection to
/// close. Nothing signals when a checked-out connection goes back to its
/// pool (it keeps its permit there), so waiting callers look again.
const RECLAIM_PERIOD: Duration = Duration::from_millis(10);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The permits of one manager.
pub(crate) struct Budget {
    semaphore: Arc<Semaphore>,
    limit: usize,
    /// Callers waiting for a permit.
    waiting: AtomicUsize,
    /// Connections closed whose permit is not back yet.
    closing: Arc<AtomicUsize>,
    /// Connections opened (or attempted) since the manager was built.
    opened: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Budget {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            waiting: AtomicUsize::new(0),
            closing: Arc::new(AtomicUsize::new(0)),
            opened: AtomicU64::new(0),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Connections open (or opening, or closing) right now.
    pub(crate) fn in_use(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }

    /// Callers waiting for a permit right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A permit, waiting at most `wait` (forever with `None`). While it
    /// waits it closes idle connections of the manager's pools, least
    /// recently used first, but only as many as there are waiters beyond
    /// the connections already closing.
    async fn acquire(
        &self,
        manager: &Weak<Inner>,
        wait: Option<Duration>,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() {
            return Ok(permit);
        }
        let deadline = wait.map(|wait| Instant::now() + wait);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Decrement(&self.waiting);
        // One acquire future throughout keeps our place in the semaphore's
        // FIFO queue.
        let mut acquire = pin!(Arc::clone(&self.semaphore).acquire_owned());
        loop {
            if self.closing.load(Ordering::Relaxed) < self.waiting.load(Ordering::Relaxed) {
                if let Some(manager) = manager.upgrade() {
                    manager.reclaim_idle_connection();
                }
            }
            let mut step = Instant::now() + RECLAIM_PERIOD;
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Err(Refusal::AtCapacity);
                }
                step = step.min(deadline);
            }
            tokio::select! {
                permit = &mut acquire => {
                    // The semaphore is never closed.
                    return permit.map_err(|_| Refusal::AtCapacity);
                }
                () = tokio::time::sleep_until(step) => {}
            }
        }
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a manager pool's connections need to know about their pool.
pub(crate) struct PoolState {
    pub(crate) id: String,
    /// Set by `drop_tenant`: the pool hands out no connection any more.
    dropped: AtomicBool,
    /// Set once the pool left the registry (evicted, closed, dropped).
    detached: AtomicBool,
}

impl PoolState {
    pub(crate) fn new(id: &str) -> Arc<PoolState> {
        Arc::new(PoolState {
            id: id.to_owned(),
            dropped: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        })
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::SeqCst);
        self.mark_detached();
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_detached(&self) {
        self.detached.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Relaxed)
    }
}

/// Opens connections within a manager's budget.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) budget: Arc<Budget>,
    pub(crate) manager: Weak<Inner>,
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) create_timeout: Option<Duration>,
    pub(crate) tls: MakeTls,
}

/// A manager connection's stream: TLS over the socket when the
/// configuration asks for it.
pub(crate) type ManagedStream = <MakeTls as MakeTlsConnect<ClosingStream>>::Stream;

impl Connector {
    /// A connection to `config`'s database holding one permit. Refused
    /// (see [`refusal`]) when no permit came within the wait timeout or the
    /// connect took longer than the create timeout.
    pub(crate) async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, Connection<ClosingStream, ManagedStream>), tokio_postgres::Error> {
        let permit = match self.budget.acquire(&self.manager, self.wait_timeout).await {
            Ok(permit) => permit,
            Err(refusal) => return Err(smuggle(refusal.into()).await),
        };
        self.budget.opened.fetch_add(1, Ordering::Relaxed);
        let connecting = async {
            let (stream, host) = match open_socket(config).await {
                Ok(opened) => opened,
                Err(e) => return Err(smuggle(e).await),
            };
            let tls = match self.tls.for_host(&host) {
                Ok(tls) => tls,
                Err(e) => return Err(smuggle(io::Error::other(e)).await),
            };
            let stream = ClosingStream {
                stream: Some(stream),
                permit: Some(permit),
                closing: Arc::clone(&self.budget.closing),
            };
            config.connect_raw(stream, tls).await
        };
        match self.create_timeout {
            Some(limit) => match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(smuggle(Refusal::CreateTimeout.into()).await),
            },
            None => connecting.await,
        }
    }
}

/// The [`deadpool_postgres::Connect`] of one tenant pool.
pub(crate) struct PoolConnect {
    pub(crate) connector: Connector,
    /// Shared by every pool opened for one slot of the manager (an open
    /// that failed and the retry after it).
    pub(crate) state: Arc<PoolState>,
    /// Set once this pool has connected to its database.
    connected: AtomicBool,
    /// Set when the database this pool had connected to no longer exists:
    /// it hands out no connection any more.
    gone: AtomicBool,
    /// The oid of the database this pool first connected to (0 before).
    /// A database dropped and created again under the same name (on the
    /// same server, by another process) has another: the pool's handles
    /// must not reach it, as they would a missing one.
    database: AtomicI64,
}

impl PoolConnect {
    pub(crate) fn new(connector: Connector, state: Arc<PoolState>) -> PoolConnect {
        PoolConnect {
            connector,
            state,
            connected: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            database: AtomicI64::new(0),
        }
    }
}

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        let config = config.clone();
        Box::pin(async move {
            if self.state.is_dropped() {
                let refusal = Refusal::TenantDropped(self.state.id.clone());
                return Err(smuggle(refusal.into()).await);
            }
            if self.gone.load(Ordering::SeqCst) {
                let refusal = Refusal::DatabaseGone(self.state.id.clone());
                return Err(smuggle(refusal.into()).await);
            }
            let (client, connection) = match self.connector.connect(&config).await {
                Ok(connected) => connected,
                // The database this pool reached before no longer exists:
                // dropped by another process (perhaps re-created on another
                // server). Only a pool that connected before: a first
                // connect to a missing database is how `create_missing`
                // finds out it must create it.
                Err(e)
                    if e.code() == Some(&SqlState::INVALID_CATALOG_NAME)
                        && self.connected.load(Ordering::SeqCst) =>
                {
                    self.database_gone();
                    let refusal = Refusal::DatabaseGone(self.state.id.clone());
                    return Err(smuggle(refusal.into()).await);
                }
                Err(e) => return Err(e),
            };
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(target: "pebble::manager", error = %e, "connection ended");
                }
            });
            // A simple query: one message, no named statement (a pooler in
            // transaction mode could send a Bind to another server).
            let reply = client
                .simple_query(
                    "SELECT oid FROM pg_catalog.pg_database \
                     WHERE datname = pg_catalog.current_database()",
                )
                .await?;
            let oid = reply
                .iter()
                .find_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0)?.parse::<i64>().ok(),
                    _ => None,
                })
                .unwrap_or(-1);
            match self
                .database
                .compare_exchange(0, oid, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {}
                Err(first) if first == oid => {}
                // Dropping `client` closes the connection.
                Err(_) => {
                    self.database_gone();
                    let refusal = Refusal::DatabaseGone(self.state.id.clone());
                    return Err(smuggle(refusal.into()).await);
                }
            }
            self.connected.store(true, Ordering::SeqCst);
            Ok((client, task))
        })
    }
}

impl PoolConnect {
    /// Marks the pool's database gone, and makes the manager forget the
    /// pool if it is still the tenant's open one, so that the next
    /// `db(id)` reads the registry again instead of finding this pool.
    fn database_gone(&self) {
        if self.gone.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(target: "pebble::manager", tenant = %self.state.id, "the tenant's database is gone; forgetting its pool");
        if let Some(manager) = self.connector.manager.upgrade() {
            manager.forget_pool(&self.state);
        }
    }
}

/// Why the manager refused to open a connection, carried through deadpool
/// and tokio-postgres (whose errors only pebble can build from an I/O error)
/// and turned back into an [`Error`] by [`refusal`].
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    TenantDropped(String),
    DatabaseGone(String),
    AtCapacity,
    CreateTimeout,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TenantDropped(id) => write!(f, "tenant {id:?} was dropped"),
            Refusal::DatabaseGone(id) => write!(f, "tenant {id:?}'s database no longer exists"),
            Refusal::AtCapacity => f.write_str("the tenant manager's connection limit was reached"),
            Refusal::CreateTimeout => f.write_str("opening a connection timed out"),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for io::Error {
    fn from(refusal: Refusal) -> io::Error {
        io::Error::other(refusal)
    }
}

/// The [`Error`] a manager refusal stands for, if `e` is one.
pub(crate) fn refusal(e: &tokio_postgres::Error) -> Option<Error> {
    let io = std::error::Error::source(e)?.downcast_ref::<io::Error>()?;
    Some(match io.get_ref()?.downcast_ref::<Refusal>()? {
        Refusal::TenantDropped(id) => Error::TenantDropped { id: id.clone() },
        Refusal::DatabaseGone(id) => Error::TenantDatabaseGone { id: id.clone() },
        Refusal::AtCapacity => Error::Timeout(
            "the tenant manager's connection limit (max_open_pools × pool max_size) was \
             reached and no connection was freed within the pool's wait timeout",
        ),
        Refusal::CreateTimeout => Error::Pool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Create,
        )),
    })
}

/// `error` as a [`tokio_postgres::Error`] (of kind I/O), which the driver
/// only builds itself: from a handshake on a stream that fails every I/O.
async fn smuggle(error: io::Error) -> tokio_postgres::Error {
    let kind = error.kind();
    let mut error = Some(error);
    let mut config = tokio_postgres::Config::new();
    config.user("pebble");
    loop {
        let stream = Failing(error.take());
        match config.connect_raw(stream, NoTls).await {
            Err(e) => return e,
            // Unreachable: the handshake cannot succeed without a server.
            // Try again with a plain error rather than panic.
            Ok(_) => error = Some(io::Error::from(kind)),
        }
    }
}

/// A stream whose every read and write fails.
struct Failing(Option<io::Error>);

impl Failing {
    fn error(&mut self) -> io::Error {
        self.0
            .take()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for Failing {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }
}

impl AsyncWrite for Failing {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Opens a socket to the first host of `config` that answers, as
/// tokio-postgres would (hosts and `hostaddr`s in order, one port or one
/// per host, the connect timeout per attempt). Keepalives use the
/// system's timings; `load_balance_hosts` and `target_session_attrs` are
/// not applied.
///
/// Returns the host name (or address) connected to, which TLS checks the
/// server's certificate against.
async fn open_socket(config: &tokio_postgres::Config) -> io::Result<(RawStream, String)> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let count = hosts.len().max(addrs.len());
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no host to connect to");
    for i in 0..count {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let attempt = async {
            match (addrs.get(i), hosts.get(i)) {
                (Some(ip), _) => tcp(std::net::SocketAddr::new(*ip, port), config).await,
                (None, Some(Host::Tcp(host))) => {
                    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                    for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
                        match tcp(addr, config).await {
                            Ok(stream) => return Ok(stream),
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                }
                #[cfg(unix)]
                (None, Some(Host::Unix(dir))) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    Ok(RawStream::Unix(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
                (None, None) => Err(io::Error::new(io::ErrorKind::InvalidInput, "no host")),
            }
        };
        let result = match config.get_connect_timeout() {
            Some(limit) => tokio::time::timeout(*limit, attempt)
                .await
                .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut))),
            None => attempt.await,
        };
        match result {
            Ok(stream) => {
                // As tokio-postgres: the host's name, else its address.
                let name = match (hosts.get(i), addrs.get(i)) {
                    (Some(Host::Tcp(host)), _) => host.clone(),
                    (_, Some(ip)) => ip.to_string(),
                    _ => String::new(),
                };
                return Ok((stream, name));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn tcp(addr: std::net::SocketAddr, config: &tokio_postgres::Config) -> io::Result<RawStream> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_keepalive(config.get_keepalives())?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(RawStream::Tcp(stream))
}

enum RawStream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            RawStream::Tcp($stream) => $call,
            #[cfg(unix)]
            RawStream::Unix($stream) => $call,
        }
    };
}

impl AsyncRead for RawStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for RawStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A connection's socket and its permit: dropped (the connection ended or
/// its task was aborted), it lets the server finish closing, then gives the
/// permit back.
pub(crate) struct ClosingStream {
    stream: Option<RawStream>,
    permit: Option<OwnedSemaphorePermit>,
    closing: Arc<AtomicUsize>,
}

impl ClosingStream {
    fn stream(self: Pin<&mut Self>) -> io::Result<Pin<&mut RawStream>> {
        match self.get_mut().stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl AsyncRead for ClosingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ClosingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for ClosingStream {
    fn drop(&mut self) {
        let (Some(mut stream), Some(permit)) = (self.stream.take(), self.permit.take()) else {
            return;
        };
        // Without a runtime (it is shutting down) there is nothing to wait
        // with; the socket closes and the permit goes back now.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.closing.fetch_add(1, Ordering::Relaxed);
        let closing = Arc::clone(&self.closing);
        // No time limit: as long as the server keeps the backend (say, still
        // running a statement whose caller went away), it is one of our
        // connections and keeps its permit. A broken socket errors out.
        runtime.spawn(async move {
            let _closing = ClosingGuard(closing);
            // Our end first: a backend whose client vanished without a
            // Terminate message exits on this end-of-file.
            let _ = stream.shutdown().await;
            let mut buf = [0_u8; 256];
            while let Ok(1..) = stream.read(&mut buf).await {}
            drop(permit);
        });
    }
}

struct ClosingGuard(Arc<AtomicUsize>);

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_survive_the_trip_through_the_driver() {
        let e = smuggle(Refusal::TenantDropped("acme".into()).into()).await;
        assert!(matches!(refusal(&e), Some(Error::TenantDropped { id }) if id == "acme"));
        let e = smuggle(Refusal::DatabaseGone("acme".into()).into()).await;
        assert!(matches!(refusal(&e), Some(Error::TenantDatabaseGone { id }) if id == "acme"));
        let e = smuggle(Refusal::AtCapacity.into()).await;
        assert!(matches!(refusal(&e), Some(Error::Timeout(_))));
        // A plain I/O error stays a connection error.
        let e = smuggle(io::Error::from(io::ErrorKind::ConnectionRefused)).await;
        assert!(refusal(&e).is_none());
        assert!(matches!(Error::from(e), Error::Connection(_)));
    }
}
