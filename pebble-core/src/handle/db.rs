//! [`Db`]: the handle on a connection pool, for shared models and as the
//! starting point of tenant handles.

use std::fmt;
use std::sync::Arc;

use crate::conn::client::Pool;
use crate::conn::options::TransactionOptions;
use crate::conn::pool::{IntoConfig, PoolOptions, SharedPool};
use crate::conn::send::StatementMode;
use crate::conn::table_check::TableChecks;
use crate::conn::Conn;
use crate::error::Result;
use crate::model::{Model, SharedModel, SingleTableModel, Target};
use crate::query::ddl::create_table_sql;
use crate::scope::{Scope, Strategy};
use crate::sql_type::TenantKey;

use super::cross::CrossTenant;
use super::schema::SchemaDb;
use super::tenant::TenantDb;
use super::transaction::Transaction;
use super::{private::Sealed, unscoped_queries, Executor};

/// A cheap-to-clone handle on a PostgreSQL connection pool.
///
/// `Db` queries **shared** models (`#[pebble(shared)]`, one table for all
/// tenants) only. Models with a `#[tenant_id]` field are reached through
/// [`Db::tenant`], which confines every statement to one tenant;
/// `#[pebble(per_tenant)]` models through the tenant's own handle: a
/// [`TenantDatabase`](crate::TenantDatabase) from
/// [`TenantManager::db`](crate::TenantManager::db) (a database per
/// tenant) or [`Db::schema_tenant`] (a schema per tenant). Asking `Db`
/// for either directly does not compile: on the application's database a
/// per-tenant model's table is no tenant's.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] #[pebble(shared)] struct Plan { #[pebble(primary_key)] id: i32, name: String }
/// # async fn demo() -> pebble::Result<()> {
/// let db = Db::connect("postgres://app@localhost/app").await?;
/// db.create_table::<Plan>().await?;
/// let plans = db.select::<Plan>().order_by(Plan::NAME.asc()).all().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    // An `Arc` of our own (the pool is one too), the same one builders'
    // `Conn::Pool` holds, so that the handles and builders still out can be
    // counted: see `Db::handles`.
    shared: Arc<SharedPool>,
}

impl Db {
    /// Connects with default [`PoolOptions`], opening one connection to
    /// check the server is reachable.
    pub async fn connect(config: impl IntoConfig) -> Result<Db> {
        Db::connect_with(config, PoolOptions::default()).await
    }

    /// Connects with the given pool size and timeouts, opening one
    /// connection to check the server is reachable.
    pub async fn connect_with(config: impl IntoConfig, options: PoolOptions) -> Result<Db> {
        let db = Db::connect_lazy(config, options)?;
        drop(db.pool().get().await?);
        Ok(db)
    }

    /// A handle whose pool opens connections only when statements need them.
    pub fn connect_lazy(config: impl IntoConfig, options: PoolOptions) -> Result<Db> {
        Ok(Db::with_options(
            options.build(config.into_connect()?)?,
            &options,
        ))
    }

    /// A handle whose pool opens its connections with `manager`: for a
    /// connection the other constructors cannot describe (your own
    /// [`deadpool_postgres::Connect`], a TLS connector of your own). The
    /// pool's size, timeouts and statement mode come from `options` (its
    /// TLS settings are not used: the manager connects). Opens no
    /// connection until one is needed.
    ///
    /// pebble pools its own connection type (a client with pebble's
    /// per-connection statement cache), so it takes a manager, not a
    /// `deadpool_postgres::Pool`: connections of a pool of yours would not
    /// have that cache. Where you used pool hooks (`post_create`), connect
    /// with your own [`deadpool_postgres::Connect`] instead. Keep the
    /// manager's recycling method `Fast`, `Verified` or `Clean`: a `Custom`
    /// query that deallocates statements (`DISCARD ALL`) would leave every
    /// cached statement stale at each checkout (each is prepared again when
    /// the server refuses it, but inside a transaction that refusal fails
    /// the transaction).
    ///
    /// ```no_run
    /// # async fn demo() -> pebble_core::Result<()> {
    /// use pebble_core::deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
    /// use pebble_core::{Db, PoolOptions};
    /// use tokio_postgres::NoTls;
    ///
    /// let config: tokio_postgres::Config = "host=localhost dbname=app".parse()?;
    /// let manager = Manager::from_config(
    ///     config,
    ///     NoTls,
    ///     ManagerConfig { recycling_method: RecyclingMethod::Fast },
    /// );
    /// let db = Db::from_manager(manager, PoolOptions::default().max_size(4))?;
    /// # Ok(()) }
    /// ```
    pub fn from_manager(manager: deadpool_postgres::Manager, options: PoolOptions) -> Result<Db> {
        Ok(Db::with_options(options.build_on(manager)?, &options))
    }

    /// A handle on `pool` sending and tracing statements as `options` say.
    fn with_options(pool: Pool, options: &PoolOptions) -> Db {
        let db = Db::from_pool(pool).statement_mode(options.statement_mode);
        Db {
            shared: db.shared.with_log_values(options.log_values),
        }
    }

    /// Wraps a pool of pebble's connections.
    pub(crate) fn from_pool(pool: Pool) -> Db {
        Db {
            shared: SharedPool::new(pool),
        }
    }

    /// This handle's pool with statements sent as `mode` says (see
    /// [`PoolOptions::statement_mode`]). Handles already made keep theirs.
    pub fn statement_mode(self, mode: StatementMode) -> Db {
        Db {
            shared: self.shared.with_mode(mode),
        }
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.shared.mode()
    }

    /// How many handles on this pool exist, counting builders made from it.
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.shared)
    }

    /// The pool. Crate-private on purpose: a raw client taken from it would
    /// be unscoped and unlogged, and could go back to the pool inside a
    /// transaction or with changed session settings (see `batch_execute`).
    pub(crate) fn pool(&self) -> &Pool {
        self.shared.pool()
    }

    pub(crate) fn tables(&self) -> &Arc<TableChecks> {
        self.shared.tables()
    }

    /// The state this handle shares with its builders.
    pub(crate) fn shared(&self) -> &SharedPool {
        &self.shared
    }

    /// The pool's size and use: connections open, idle, and callers waiting.
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool().status()
    }

    /// Resizes the pool; connections over the new size close as they come back.
    pub fn resize(&self, max_size: usize) {
        self.pool().resize(max_size.max(1));
    }

    /// A handle confined to tenant `key`: every select, count, exists,
    /// update, delete and upsert on a tenant model gets `tenant_column = key`
    /// AND-ed around its whole condition, and every insert is stamped.
    ///
    /// A handle keyed by the unset value (nil UUID, `0`, empty string) runs
    /// nothing: each statement fails with [`Error::InvalidTenantId`](crate::Error::InvalidTenantId),
    /// so a missing id defaulted by mistake cannot become a shared tenant.
    pub fn tenant<K: TenantKey>(&self, key: K) -> TenantDb<K> {
        TenantDb::new(self.clone(), key)
    }

    /// A handle confined to tenant `id`'s schema, `tenant_<id>`, on this
    /// pool: its statements on `#[pebble(per_tenant)]` models name their
    /// tables `"tenant_<id>"."table"` (see [`SchemaDb`]). `id` is checked by
    /// [`validate_tenant_id`](crate::validate_tenant_id):
    /// [`Error::InvalidTenantId`](crate::Error::InvalidTenantId) otherwise,
    /// and nothing is sent. Whether the schema exists is only known when a
    /// statement runs (provision it with [`SchemaTenants`](crate::SchemaTenants)).
    pub fn schema_tenant(&self, id: &str) -> Result<SchemaDb> {
        SchemaDb::new(self.clone(), id)
    }

    /// The explicit escape hatch: statements on any model, across all
    /// tenants. Every statement is logged through `tracing` (target
    /// `pebble::cross_tenant`), and the call is easy to grep for.
    pub fn cross_tenant(&self) -> CrossTenant {
        CrossTenant::new(self.clone())
    }

    /// Starts a transaction on one pooled connection.
    pub async fn begin(&self) -> Result<Transaction> {
        Transaction::start(&self.shared, "BEGIN").await
    }

    /// Starts a transaction with an isolation level and access mode.
    ///
    /// ```no_run
    /// # use pebble::{Db, IsolationLevel, TransactionOptions};
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// let tx = db
    ///     .begin_with(TransactionOptions::new().isolation(IsolationLevel::Serializable))
    ///     .await?;
    /// // ... on 40001, `err.is_retryable()`: run the whole transaction again.
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<Transaction> {
        Transaction::start(&self.shared, &options.begin_sql()).await
    }

    /// Creates `M`'s table and indexes if they do not exist (see
    /// [`create_table_sql`]), and records on the table which column holds
    /// the tenant (or that none does), so that a later model over the same
    /// table that disagrees is refused.
    ///
    /// If the table already existed and records another tenant column than
    /// `M` declares (or a tenant column of a type that compares keys
    /// inexactly, such as `citext`), this fails with the error `M`'s
    /// statements would get.
    ///
    /// `M` is a model with a `#[tenant_id]` field or a shared one: a
    /// `#[pebble(per_tenant)]` model's table belongs in each tenant's
    /// database or schema, so creating it here does not compile. Create it
    /// with [`TenantDatabase::create_table`](crate::TenantDatabase::create_table)
    /// (in the manager's `setup` hook), [`SchemaTenants`](crate::SchemaTenants)'
    /// `table`, or a tenant migration (pebble-migrate).
    pub async fn create_table<M: SingleTableModel>(&self) -> Result<()> {
        self.create_table_of::<M>().await
    }

    /// [`Db::create_table`] for any model: the tenant database handle's
    /// `create_table` (per-tenant models) goes through it.
    pub(crate) async fn create_table_of<M: Model>(&self) -> Result<()> {
        let client = self.pool().get().await?;
        let sql = create_table_sql::<M>();
        tracing::debug!(target: "pebble::sql", sql);
        client.batch_execute(&sql).await?;
        self.tables()
            .ensure(&client, self.mode(), &Target::of::<M>(), None)
            .await
    }

    /// Runs SQL text as is, for DDL and migrations. It is **not** scoped to
    /// any tenant and takes no parameters; never build it from user input.
    ///
    /// Nothing the text does to its session outlives the call: afterwards
    /// pebble resets the connection (`DISCARD ALL`: settings, prepared
    /// statements, temporary tables, advisory locks) before it goes back to
    /// the pool. Text that leaves a transaction open (`BEGIN` without
    /// `COMMIT`) is rolled back, its connection closed, and the call fails
    /// with [`Error::UnterminatedTransaction`](crate::Error::UnterminatedTransaction):
    /// use [`Db::begin`] for transactions.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.conn().raw_batch(sql).await
    }

    /// Closes the pool's idle connections now; connections in use close
    /// when they come back, and new ones open on demand. For shedding
    /// connections of a pool that stays open.
    pub fn close_idle(&self) {
        self.pool().retain(|_, _| false);
    }

    /// Closes the pool: new statements fail, connections in use finish.
    pub fn close(&self) {
        self.pool().close();
    }

    unscoped_queries!(SharedModel, Scope::plain::<M>());
}

impl Executor for Db {}

impl Sealed for Db {
    fn conn(&self) -> Conn {
        Conn::Pool(Arc::clone(&self.shared))
    }

    fn strategy(&self) -> Strategy {
        Strategy::Row
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool().status())
            .finish()
    }
}
