//! [`TenantDatabase`]: the handle on one tenant's own database (the
//! database per tenant pattern), from a [`TenantManager`](crate::TenantManager).
//!
//! A thin wrapper over the tenant's pool rather than a plain [`Db`]: the
//! type is what tells the compiler that this pool is a tenant's database,
//! so that `#[pebble(per_tenant)]` models are accepted here and refused on
//! a plain `Db` (where their table would be no tenant's). Each method
//! delegates explicitly (no `Deref` to `Db`, which would let a plain `Db`'s
//! API leak back in).

use std::fmt;
use std::sync::Arc;

use crate::conn::options::TransactionOptions;
use crate::conn::Conn;
use crate::error::{Refusal, Result};
use crate::model::GlobalModel;
use crate::query::CopyIn;
use crate::scope::{Scope, Strategy};

use super::db::Db;
use super::private::Sealed;
use super::savepoint::Savepoint;
use super::transaction::Transaction;
use super::unscoped_queries;

/// The handle on one tenant's own database, from
/// [`TenantManager::db`](crate::TenantManager::db) (and what the manager's
/// `setup` hook receives).
///
/// Its statements run on the tenant's database, so it queries
/// `#[pebble(per_tenant)]` models (the tenant's tables) and
/// `#[pebble(shared)]` ones (tables every tenant database has, such as
/// settings). A plain [`Db`] refuses per-tenant models at compile time;
/// this handle is the one that knows which tenant's database it is on.
/// Models with a `#[tenant_id]` field do not compile here.
///
/// Everything a `Db` offers for those models is here: select, find,
/// insert, insert_many, copy_in, update, update_model, delete (and through
/// the builders: count, exists, aggregates, joins, projections, streams,
/// locks), transactions with savepoints, `create_table`, `verify` and raw
/// `batch_execute`. Cheap to clone; ask the manager per request rather than
/// keeping one (a held handle keeps its pool busy).
///
/// ```no_run
/// # use pebble::{Model, TenantDatabase, TenantManager};
/// # #[derive(Model, Debug)] #[pebble(table = "notes", per_tenant)] struct Note { #[pebble(primary_key, default)] id: i64, body: String }
/// # async fn demo(manager: TenantManager) -> pebble::Result<()> {
/// let acme: TenantDatabase = manager.db("acme").await?;
/// assert_eq!(acme.id(), "acme");
/// acme.insert(Note { id: 0, body: "only in tenant_acme".into() }).exec().await?;
/// let tx = acme.begin().await?;
/// tx.update::<Note>().set(Note::BODY, "edited").exec().await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantDatabase {
    db: Db,
    id: Arc<str>,
}

impl TenantDatabase {
    /// The handle of tenant `id` on `db`, a pool on that tenant's database.
    pub(crate) fn new(db: Db, id: &str) -> TenantDatabase {
        TenantDatabase { db, id: id.into() }
    }

    /// The tenant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pool this handle is on, for crate code that needs the plain
    /// pool (verification, the manager's own bookkeeping).
    pub(crate) fn pool_db(&self) -> &Db {
        &self.db
    }

    fn conn(&self) -> Conn {
        self.db.conn()
    }

    /// Starts a transaction on one of the tenant's pooled connections.
    pub async fn begin(&self) -> Result<TenantDatabaseTransaction> {
        Ok(TenantDatabaseTransaction {
            tx: self.db.begin().await?,
            id: Arc::clone(&self.id),
        })
    }

    /// Starts a transaction with an isolation level and access mode (see
    /// [`Db::begin_with`]).
    pub async fn begin_with(
        &self,
        options: TransactionOptions,
    ) -> Result<TenantDatabaseTransaction> {
        Ok(TenantDatabaseTransaction {
            tx: self.db.begin_with(options).await?,
            id: Arc::clone(&self.id),
        })
    }

    /// Creates `M`'s table and indexes in this tenant's database if they
    /// do not exist (see [`Db::create_table`]): what a manager's `setup`
    /// hook does for each new tenant. For schema changes after that, run
    /// migrations over the fleet (pebble-migrate).
    pub async fn create_table<M: GlobalModel>(&self) -> Result<()> {
        self.db.create_table_of::<M>().await
    }

    /// Runs SQL text as is on the tenant's database, for DDL and
    /// migrations (see [`Db::batch_execute`]: takes no parameters; never
    /// build it from user input).
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.db.batch_execute(sql).await
    }

    /// A bulk load of rows with binary `COPY` into this tenant's database
    /// (see [`CopyIn`]).
    pub fn copy_in<M: GlobalModel>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        CopyIn::new(
            self.conn(),
            Scope::plain::<M>(),
            rows.into_iter().map(Ok::<M, Refusal>),
        )
    }

    /// The tenant pool's size and use: connections open, idle, and callers
    /// waiting. (The manager opens, evicts and closes the pool: see
    /// [`TenantManager::close_tenant`](crate::TenantManager::close_tenant).)
    pub fn status(&self) -> deadpool_postgres::Status {
        self.db.status()
    }

    /// Closes the tenant pool's idle connections now (see
    /// [`Db::close_idle`]); the pool stays open and opens connections on
    /// demand.
    pub fn close_idle(&self) {
        self.db.close_idle();
    }

    unscoped_queries!(GlobalModel, Scope::plain::<M>());
}

impl fmt::Debug for TenantDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDatabase")
            .field("tenant", &self.id)
            .field("status", &self.db.status())
            .finish()
    }
}

/// A transaction on one tenant's own database, from
/// [`TenantDatabase::begin`]: per-tenant and shared models, as on the
/// handle. Rolled back if dropped without [`commit`](Self::commit) (see
/// [`Transaction`]).
pub struct TenantDatabaseTransaction {
    tx: Transaction,
    id: Arc<str>,
}

impl TenantDatabaseTransaction {
    /// The tenant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn conn(&self) -> Conn {
        self.tx.conn()
    }

    /// Commits (see [`Transaction::commit`]).
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await
    }

    /// Begins a savepoint inside this transaction (see
    /// [`Transaction::begin`]); it queries the same models.
    pub async fn begin(&mut self) -> Result<Savepoint<'_, TenantDatabaseTransaction>> {
        Savepoint::open(self.tx.tx_conn(), Strategy::Row).await
    }

    /// Runs SQL text as is inside the transaction (see
    /// [`Transaction::batch_execute`]).
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.tx.batch_execute(sql).await
    }

    /// A bulk load inside this transaction (see [`TenantDatabase::copy_in`]).
    pub fn copy_in<M: GlobalModel>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        CopyIn::new(
            self.conn(),
            Scope::plain::<M>(),
            rows.into_iter().map(Ok::<M, Refusal>),
        )
    }

    unscoped_queries!(GlobalModel, Scope::plain::<M>());
}

impl fmt::Debug for TenantDatabaseTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDatabaseTransaction")
            .field("tenant", &self.id)
            .field("tx", &self.tx)
            .finish()
    }
}

impl Savepoint<'_, TenantDatabaseTransaction> {
    unscoped_queries!(GlobalModel, Scope::plain::<M>());
}
