//! Connection settings and pool construction, shared by [`Db`](crate::Db)
//! and the [`TenantManager`](crate::TenantManager), and the pool state every
//! handle and builder on one pool shares.

use std::sync::Arc;
use std::time::Duration;

use super::client::{Object, PgManager, Pool};
use super::send::StatementMode;
use super::table_check::TableChecks;
use super::tls::{ConnectConfig, TlsOptions};
use crate::error::{Error, Result};
use deadpool_postgres::{
    Manager, ManagerConfig, PoolError, QueueMode, RecyclingMethod, Runtime, TimeoutType, Timeouts,
};

/// Where to connect: a URL (`postgres://user@host:5432/db?sslmode=verify-full`),
/// a key-value string (`host=... dbname=...`), a ready
/// [`tokio_postgres::Config`] or a [`ConnectConfig`].
///
/// In strings, `sslmode` may be `disable`, `prefer`, `require`, `verify-ca`
/// or `verify-full`, and `sslrootcert` names a PEM file of CAs to trust (or
/// `system`); see [`SslMode`](crate::SslMode).
pub trait IntoConfig {
    /// The parsed tokio-postgres configuration, or [`Error::Config`].
    ///
    /// tokio-postgres cannot carry `verify-ca`, `verify-full` or
    /// `sslrootcert`: a string with them is refused here rather than
    /// connect unverified. [`IntoConfig::into_connect`] keeps them.
    fn into_config(self) -> Result<tokio_postgres::Config>;

    /// The configuration with its TLS settings, which pebble connects with.
    fn into_connect(self) -> Result<ConnectConfig>
    where
        Self: Sized,
    {
        self.into_config().map(ConnectConfig::from)
    }
}

impl IntoConfig for tokio_postgres::Config {
    fn into_config(self) -> Result<tokio_postgres::Config> {
        Ok(self)
    }
}

impl IntoConfig for ConnectConfig {
    fn into_config(self) -> Result<tokio_postgres::Config> {
        if !self.fits_pg() {
            return Err(Error::Config(format!(
                "sslmode={} with its CA certificates cannot be expressed as a \
                 tokio_postgres::Config (it would connect unverified); use into_connect",
                self.ssl_mode()
            )));
        }
        self.prepare().map(|(pg, _)| pg)
    }

    fn into_connect(self) -> Result<ConnectConfig> {
        Ok(self)
    }
}

impl IntoConfig for &str {
    fn into_config(self) -> Result<tokio_postgres::Config> {
        self.into_connect()?.into_config()
    }

    fn into_connect(self) -> Result<ConnectConfig> {
        super::tls::parse(self)
    }
}

impl IntoConfig for &String {
    fn into_config(self) -> Result<tokio_postgres::Config> {
        self.as_str().into_config()
    }

    fn into_connect(self) -> Result<ConnectConfig> {
        self.as_str().into_connect()
    }
}

impl IntoConfig for String {
    fn into_config(self) -> Result<tokio_postgres::Config> {
        self.as_str().into_config()
    }

    fn into_connect(self) -> Result<ConnectConfig> {
        self.as_str().into_connect()
    }
}

/// Size and timeouts of a connection pool.
///
/// The defaults: 10 connections, wait up to 30 s for a free one, 10 s to
/// open one. With no wait timeout an exhausted pool would make callers wait
/// forever; with one they get [`Error::Pool`] and can shed load.
///
/// ```
/// # use std::time::Duration;
/// let options = pebble_core::PoolOptions::default()
///     .max_size(32)
///     .wait_timeout(Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub(crate) max_size: usize,
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) create_timeout: Option<Duration>,
    pub(crate) statement_mode: StatementMode,
    pub(crate) tls: TlsOptions,
    pub(crate) log_values: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            wait_timeout: Some(Duration::from_secs(30)),
            create_timeout: Some(Duration::from_secs(10)),
            statement_mode: StatementMode::Prepared,
            tls: TlsOptions::default(),
            log_values: false,
        }
    }
}

impl PoolOptions {
    /// The most connections the pool opens (at least 1).
    pub fn max_size(mut self, connections: usize) -> Self {
        self.max_size = connections.max(1);
        self
    }

    /// How long to wait for a free connection; `None` waits forever.
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long opening a connection may take; `None` waits forever.
    pub fn create_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.create_timeout = timeout;
        self
    }

    /// How statements are sent: prepared once per connection (the default),
    /// or unnamed with their parameter types, for a pooler in transaction
    /// mode that does not keep named statements (PgBouncer before 1.21).
    /// Either way a statement is one network round trip.
    ///
    /// ```
    /// use pebble_core::{PoolOptions, StatementMode};
    /// let behind_pgbouncer = PoolOptions::default().statement_mode(StatementMode::Unnamed);
    /// ```
    pub fn statement_mode(mut self, mode: StatementMode) -> Self {
        self.statement_mode = mode;
        self
    }

    /// TLS settings laid over the connection string's (its mode replaces
    /// `sslmode`; its CAs are trusted besides `sslrootcert`). Needs the
    /// cargo feature `tls` for any mode that encrypts.
    ///
    /// ```
    /// use pebble_core::{PoolOptions, SslMode, TlsOptions};
    /// let options = PoolOptions::default()
    ///     .tls(TlsOptions::new().mode(SslMode::VerifyFull).ca_file("/etc/ssl/pg-ca.pem"));
    /// ```
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Records each statement's bound values in a TRACE event (target
    /// `pebble::sql`) besides the DEBUG event every statement gets. Off by
    /// default: values are user data (emails, tokens) that logs should not
    /// collect unless someone asked for it while debugging.
    ///
    /// ```
    /// let debugging = pebble_core::PoolOptions::default().log_values(true);
    /// ```
    pub fn log_values(mut self, log: bool) -> Self {
        self.log_values = log;
        self
    }

    /// A pool on `config`. Opens no connection until one is needed.
    pub(crate) fn build(&self, config: ConnectConfig) -> Result<Pool> {
        let (config, tls) = config.with_tls(&self.tls).prepare()?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                // Statements stay prepared across checkouts; a closed
                // connection is still detected and replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        self.build_on(manager)
    }

    /// A pool of connections `manager` opens (its own TLS and `Connect`;
    /// this pool's size and timeouts).
    pub(crate) fn build_on(&self, manager: Manager) -> Result<Pool> {
        Pool::builder(PgManager::new(manager))
            // The most recently returned connection first: one client
            // keeps reusing one warm connection (its socket, its task, its
            // statements in the CPU's caches) instead of cycling through
            // every idle one, as a pool of one connection per client would.
            .queue_mode(QueueMode::Lifo)
            .max_size(self.max_size)
            .wait_timeout(self.wait_timeout)
            .create_timeout(self.create_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the connection pool: {e}")))
    }
}

/// What every handle and builder on one pool shares: the pool, how it sends
/// statements, and which models were checked against their tables.
///
/// Held in an `Arc` by `Db` and by each builder's `Conn`, so that the
/// strong count says how many handles and builders are still out (the
/// manager closes a pool only when none is: see `Db::handles`). Public only
/// inside this private module, to appear in `Conn`.
pub struct SharedPool {
    pool: Pool,
    mode: StatementMode,
    /// Trace bound values (see `PoolOptions::log_values`).
    log_values: bool,
    /// Shared with every `SharedPool` over the same pool (see
    /// `Db::statement_mode`): a model checked once is checked for all.
    tables: Arc<TableChecks>,
}

impl SharedPool {
    pub(crate) fn new(pool: Pool) -> Arc<SharedPool> {
        Arc::new(SharedPool {
            pool,
            mode: StatementMode::default(),
            log_values: false,
            tables: Arc::new(TableChecks::default()),
        })
    }

    /// The same pool and table checks, sending statements as `mode` says.
    pub(crate) fn with_mode(&self, mode: StatementMode) -> Arc<SharedPool> {
        Arc::new(SharedPool {
            pool: self.pool.clone(),
            mode,
            log_values: self.log_values,
            tables: Arc::clone(&self.tables),
        })
    }

    /// The same pool and table checks, tracing bound values when `log`.
    pub(crate) fn with_log_values(&self, log: bool) -> Arc<SharedPool> {
        Arc::new(SharedPool {
            pool: self.pool.clone(),
            mode: self.mode,
            log_values: log,
            tables: Arc::clone(&self.tables),
        })
    }

    pub(crate) fn log_values(&self) -> bool {
        self.log_values
    }

    /// Crate-private on purpose: a raw client taken from it would be
    /// unscoped and unlogged, and could go back to the pool inside a
    /// transaction or with changed session settings.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A connection for one statement. Most checkouts find one idle: they
    /// take it without arming the wait timeout's timer (which reads the
    /// clock and registers with the runtime's timer wheel on every
    /// checkout); only a checkout that has to wait pays for it.
    ///
    /// Boxed: deadpool's checkout future holds the whole of opening a
    /// connection (about 2 KB), which would otherwise be part of every
    /// statement's future and copied each time that future moves. One
    /// small allocation costs less than those copies.
    pub(crate) async fn get(&self) -> std::result::Result<Object, PoolError> {
        Box::pin(async {
            let configured = self.pool.timeouts();
            let at_once = Timeouts {
                wait: Some(Duration::ZERO),
                ..configured
            };
            match self.pool.timeout_get(&at_once).await {
                Err(PoolError::Timeout(TimeoutType::Wait)) => self.pool.get().await,
                other => other,
            }
        })
        .await
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.mode
    }

    pub(crate) fn tables(&self) -> &Arc<TableChecks> {
        &self.tables
    }
}
