//! The connection pebble's pools hand out: deadpool-postgres's client and
//! pebble's own cache of the statements prepared on it.
//!
//! deadpool-postgres keeps a statement cache per connection too, but it
//! has no bound, and its size is counted by walking every entry: pebble
//! bounded it by asking for that size before each statement, a walk of up
//! to [`STATEMENT_CACHE_LIMIT`] entries under a lock on every statement. Its
//! lookup also hashes the SQL text with SipHash and goes through an
//! `Arc<OnceCell>` per entry. The cache here is a map from text to
//! statement behind a lock only the task holding the connection (or the
//! statements of the transaction holding it) takes,
//! hashed with FxHash, and bounded by its own length.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Mutex, MutexGuard};

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_postgres::ClientWrapper;
use rustc_hash::FxBuildHasher;
use tokio_postgres::{Error, Statement};

/// How many prepared statements one pooled connection keeps. Statement
/// texts are per query shape, but under schema handles also per tenant
/// (`"tenant_acme"."tasks"`), so without a bound a long-lived connection
/// would keep `shapes × tenants` statements, each holding memory on the
/// server and in the client.
pub(crate) const STATEMENT_CACHE_LIMIT: usize = 512;

/// A pooled connection: the deadpool-postgres client (whose methods it
/// derefs to) and the statements prepared on it.
pub struct PooledClient {
    client: ClientWrapper,
    statements: Mutex<HashMap<Box<str>, Statement, FxBuildHasher>>,
}

impl std::fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledClient")
            .field("statements", &self.statements().len())
            .finish_non_exhaustive()
    }
}

impl Deref for PooledClient {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.client
    }
}

impl PooledClient {
    fn new(client: ClientWrapper) -> Self {
        PooledClient {
            client,
            statements: Mutex::default(),
        }
    }

    /// `sql` prepared on this connection, from its cache when it was
    /// prepared before. A cache at [`STATEMENT_CACHE_LIMIT`] is emptied
    /// before a new statement goes in: the statements it held are closed
    /// on the server as they are dropped, and the hot ones are prepared
    /// again on their next use (one extra round trip each). Cheaper than
    /// least-recently-used bookkeeping on every statement, and only paid
    /// by workloads that cycle through more texts than the limit.
    ///
    /// Named like deadpool-postgres's method it replaces, so that no call
    /// reaches that one through `Deref` by mistake.
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.statements().get(sql) {
            return Ok(statement.clone());
        }
        // Boxed: preparing (a round trip, and type lookups for unknown
        // types) is a large future, and only a miss needs it.
        let statement = Box::pin(self.client.prepare(sql)).await?;
        let mut statements = self.statements();
        if statements.len() >= STATEMENT_CACHE_LIMIT {
            statements.clear();
        }
        // Two statements of one transaction may have prepared the same
        // text at once: either is fine, the other is closed when dropped.
        statements.insert(sql.into(), statement.clone());
        Ok(statement)
    }

    /// Forgets the statement prepared for `sql`: the server no longer has
    /// it, or it can no longer give its result type (see
    /// `send::stale_statement`). The next use prepares it again.
    pub(crate) fn forget_statement(&self, sql: &str) {
        self.statements().remove(sql);
    }

    /// Forgets every prepared statement, after the server forgot them
    /// (`DISCARD ALL`).
    pub(crate) fn forget_statements(&self) {
        self.statements().clear();
    }

    fn statements(&self) -> MutexGuard<'_, HashMap<Box<str>, Statement, FxBuildHasher>> {
        // A panic while the lock was held leaves a map that is still whole:
        // entries are inserted and removed in one call each.
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// deadpool-postgres's manager, making [`PooledClient`]s: it connects and
/// recycles; pebble adds the statement cache.
#[derive(Debug)]
pub struct PgManager(deadpool_postgres::Manager);

impl PgManager {
    pub(crate) fn new(manager: deadpool_postgres::Manager) -> Self {
        PgManager(manager)
    }
}

impl managed::Manager for PgManager {
    type Type = PooledClient;
    type Error = Error;

    async fn create(&self) -> Result<PooledClient, Error> {
        self.0.create().await.map(PooledClient::new)
    }

    async fn recycle(&self, client: &mut PooledClient, metrics: &Metrics) -> RecycleResult<Error> {
        self.0.recycle(&mut client.client, metrics).await
    }

    fn detach(&self, client: &mut PooledClient) {
        self.0.detach(&mut client.client);
    }
}

/// A pool of [`PooledClient`]s.
pub(crate) type Pool = managed::Pool<PgManager>;

/// A [`PooledClient`] checked out of a [`Pool`].
pub(crate) type Object = managed::Object<PgManager>;

/// A weak reference to a [`Pool`].
pub(crate) type WeakPool = managed::WeakPool<PgManager>;

/// A hook run on the pool's connections.
pub(crate) type Hook = managed::Hook<PgManager>;
