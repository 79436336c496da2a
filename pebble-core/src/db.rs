//! [`Db`]: the handle on a connection pool, for global models and as the
//! starting point of tenant handles.

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::cross::CrossTenant;
use crate::ddl::create_table_sql;
use crate::error::Result;
use crate::exec::Conn;
use crate::handle::{private::Sealed, unscoped_queries, Executor};
use crate::model::{GlobalModel, Model};
use crate::pool::{IntoConfig, PoolOptions};
use crate::scope::Scope;
use crate::sql_type::TenantKey;
use crate::tenant::TenantDb;
use crate::transaction::Transaction;

/// A cheap-to-clone handle on a PostgreSQL connection pool.
///
/// `Db` queries **global** models (no `#[tenant_id]` field). Tenant models
/// are reached through [`Db::tenant`], which confines every statement to one
/// tenant; asking `Db` for one directly does not compile.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] #[pebble(global)] struct Plan { #[pebble(primary_key)] id: i32, name: String }
/// # async fn demo() -> pebble::Result<()> {
/// let db = Db::connect("postgres://app@localhost/app").await?;
/// db.create_table::<Plan>().await?;
/// let plans = db.select::<Plan>().order_by(Plan::NAME.asc()).all().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    // An `Arc` of our own (the pool is one too) so that the handles and
    // builders still out can be counted: see `Db::handles`.
    pool: Arc<Pool>,
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
        drop(db.pool.get().await?);
        Ok(db)
    }

    /// A handle whose pool opens connections only when statements need them.
    pub fn connect_lazy(config: impl IntoConfig, options: PoolOptions) -> Result<Db> {
        Ok(Db::from_pool(options.build(config.into_config()?)?))
    }

    /// Wraps an existing deadpool-postgres pool.
    pub fn from_pool(pool: Pool) -> Db {
        Db {
            pool: Arc::new(pool),
        }
    }

    /// How many handles on this pool exist, counting builders made from it.
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.pool)
    }

    /// The underlying pool (for its status or to resize it).
    pub fn pool(&self) -> &Pool {
        &self.pool
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

    /// The explicit escape hatch: statements on any model, across all
    /// tenants. Every statement is logged through `tracing` (target
    /// `pebble::cross_tenant`), and the call is easy to grep for.
    pub fn cross_tenant(&self) -> CrossTenant {
        CrossTenant::new(self.clone())
    }

    /// Starts a transaction on one pooled connection.
    pub async fn begin(&self) -> Result<Transaction> {
        Transaction::begin(&self.pool).await
    }

    /// Creates `M`'s table and indexes if they do not exist (see [`create_table_sql`]).
    pub async fn create_table<M: Model>(&self) -> Result<()> {
        self.conn().batch(&create_table_sql::<M>()).await
    }

    /// Runs SQL text as is, for DDL and migrations. It is **not** scoped to
    /// any tenant and takes no parameters; never build it from user input.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.conn().batch(sql).await
    }

    /// Closes the pool: new statements fail, connections in use finish.
    pub fn close(&self) {
        self.pool.close();
    }

    unscoped_queries!(GlobalModel, Scope::global::<M>());
}

impl Executor for Db {}

impl Sealed for Db {
    fn conn(&self) -> Conn {
        Conn::Pool(self.clone())
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool.status())
            .finish()
    }
}
