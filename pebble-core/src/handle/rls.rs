//! [`RlsDb`]: the application's handle under row-level security, and what
//! it alone offers: tenant handles whose statements the database confines
//! too, and parameterised raw SQL on them.

use std::fmt;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::conn::options::TransactionOptions;
use crate::conn::pool::{IntoConfig, PoolOptions};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::model::{Model, SharedModel};
use crate::scope::{Scope, Strategy};
use crate::sql_type::TenantKey;

use super::db::Db;
use super::login::LoginDb;
use super::savepoint::Savepoint;
use super::tenant::TenantDb;
use super::transaction::Transaction;
use super::{private::Sealed, unscoped_queries, Executor};

/// A pool whose tenant statements PostgreSQL confines too, through the
/// row-level security policies [`Db::install_rls`] puts on each tenant
/// table. Connect it as the application role (see
/// [`Db::create_app_role`]): NOSUPERUSER, NOBYPASSRLS and not the owner of
/// the tables, or the policies do not apply to it ([`RlsDb::audit`] says).
///
/// Every statement of [`RlsDb::tenant`]'s handle runs as
/// `BEGIN; SELECT set_config('pebble.tenant_id', <tenant>, true); <statement>; COMMIT`,
/// all four sent before the first reply is read: still one network round
/// trip. The setting is transaction-local, so nothing survives on the
/// pooled connection (safe behind PgBouncer in transaction mode), and the
/// row condition pebble adds stays as a second line of defence. A
/// statement with no tenant set (raw SQL elsewhere, another client as
/// this role) sees no row of a protected table and can write none.
///
/// ```no_run
/// # use pebble::{Model, RlsDb};
/// # use uuid::Uuid;
/// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: Uuid, title: String }
/// # async fn demo(acme: Uuid) -> pebble::Result<()> {
/// let app = RlsDb::connect("postgres://app@db.internal/saas").await?;
/// let tenant = app.tenant(acme);
/// let open = tenant.select::<Task>().count().await?;
/// // Raw SQL is offered here, and only here: the database confines it.
/// let rows = tenant.query("SELECT title FROM task WHERE title ILIKE $1", &[&"%urgent%"]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RlsDb {
    db: Db,
}

impl RlsDb {
    /// Connects with default [`PoolOptions`], checking the server is reachable.
    pub async fn connect(config: impl IntoConfig) -> Result<RlsDb> {
        Ok(RlsDb::from_db(Db::connect(config).await?))
    }

    /// Connects with the given pool options (size, timeouts,
    /// [`StatementMode`](crate::StatementMode) for PgBouncer).
    pub async fn connect_with(config: impl IntoConfig, options: PoolOptions) -> Result<RlsDb> {
        Ok(RlsDb::from_db(Db::connect_with(config, options).await?))
    }

    /// Uses `db`'s pool under row-level security.
    pub fn from_db(db: Db) -> RlsDb {
        RlsDb { db }
    }

    /// The plain handle on the same pool (statements on shared models,
    /// status). Its tenant handles set no tenant: through them, tables
    /// under row-level security show and accept nothing.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A handle confined to tenant `key`, by pebble's row condition and by
    /// the database's policy. A handle keyed by the unset value (nil UUID,
    /// `0`, empty string) runs nothing.
    pub fn tenant<K: TenantKey>(&self, key: K) -> TenantDb<K, RlsDb> {
        TenantDb::new(self.clone(), key)
    }

    unscoped_queries!(SharedModel, Scope::plain::<M>());
}

impl Executor for RlsDb {}

impl Sealed for RlsDb {
    fn conn(&self) -> Conn {
        self.db.conn()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Rls
    }
}

impl fmt::Debug for RlsDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RlsDb").field("db", &self.db).finish()
    }
}

/// A transaction under row-level security whose tenant was set once, right
/// after `BEGIN` (in the same round trip), from [`TenantDb::begin`] on an
/// [`RlsDb`] tenant handle. Rolled back if dropped without commit.
pub struct RlsTransaction {
    tx: Transaction,
}

/// A tenant transaction under row-level security.
pub type RlsTenantTransaction<K> = TenantDb<K, RlsTransaction>;

impl Executor for RlsTransaction {}

impl Sealed for RlsTransaction {
    fn conn(&self) -> Conn {
        self.tx.conn()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Rls
    }
}

impl fmt::Debug for RlsTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RlsTransaction")
            .field("tx", &self.tx)
            .finish()
    }
}

impl<K: TenantKey> TenantDb<K, RlsDb> {
    /// Starts a transaction for this tenant: `BEGIN` and `set_config`, one
    /// round trip; every statement of it is confined by the database.
    pub async fn begin(&self) -> Result<RlsTenantTransaction<K>> {
        self.begin_sql("BEGIN").await
    }

    /// Starts a transaction for this tenant with an isolation level and
    /// access mode: still one round trip, the options in its `BEGIN`.
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<RlsTenantTransaction<K>> {
        self.begin_sql(&options.begin_sql()).await
    }

    async fn begin_sql(&self, begin: &str) -> Result<RlsTenantTransaction<K>> {
        begin_rls_transaction(&self.executor().db, begin, self.key()).await
    }
}

/// `begin` (with its options) and the tenant setting for `key` in one
/// message, on a connection of `db`: the transaction of an [`RlsDb`]
/// tenant handle, and of a tenant login's (its login already confines it).
pub(super) async fn begin_rls_transaction<K: TenantKey>(
    db: &Db,
    begin: &str,
    key: &K,
) -> Result<RlsTenantTransaction<K>> {
    let tenant = Strategy::Rls.tenant_context(key)?;
    let tx = Transaction::begin_in_tenant_context(db.shared(), begin, tenant.as_str()).await?;
    Ok(TenantDb::new(RlsTransaction { tx }, key.clone()))
}

impl<K: TenantKey> TenantDb<K, RlsTransaction> {
    /// Commits the transaction (see [`Transaction::commit`]).
    pub async fn commit(self) -> Result<()> {
        self.into_executor().tx.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        self.into_executor().tx.rollback().await
    }
    /// Begins a savepoint in this transaction (see [`Transaction::begin`]);
    /// its statements are confined by the database too, to the same tenant.
    pub async fn begin(&mut self) -> Result<TenantDb<K, Savepoint<'_, RlsTransaction>>> {
        let key = self.key().clone();
        let savepoint = Savepoint::open(self.executor().tx.tx_conn(), Strategy::Rls).await?;
        Ok(TenantDb::new(savepoint, key))
    }
}

/// A handle on which the database itself confines statements to the
/// tenant, so raw SQL can be offered: [`RlsDb`], [`RlsTransaction`] and
/// [`LoginDb`](crate::LoginDb).
#[diagnostic::on_unimplemented(
    message = "raw SQL needs row-level security: nothing would confine it to the tenant on `{Self}`",
    label = "this tenant handle is confined by pebble's builders only",
    note = "connect with `RlsDb` (after `install_rls`) to run parameterised raw SQL on a tenant \
            handle: there the database confines it; the typed builders work on every handle"
)]
pub trait RawSql: Executor + raw::Sealed {}

mod raw {
    pub trait Sealed {}
}

impl RawSql for RlsDb {}
impl raw::Sealed for RlsDb {}
impl RawSql for RlsTransaction {}
impl raw::Sealed for RlsTransaction {}
impl RawSql for Savepoint<'_, RlsTransaction> {}
impl raw::Sealed for Savepoint<'_, RlsTransaction> {}
// A tenant login's pool: the login role confines every statement.
impl RawSql for LoginDb {}
impl raw::Sealed for LoginDb {}

impl<K: TenantKey, E: Executor> TenantDb<K, E> {
    /// Runs parameterised raw SQL (`$1`, `$2`, ...) as this tenant and
    /// returns its rows. Only on handles under row-level security: the
    /// database confines every table with pebble's policy to the tenant,
    /// whatever the text says (a forgotten `WHERE`, a hand-written join).
    ///
    /// The confinement is against mistakes, not against SQL written to
    /// defeat it: text that calls `set_config('pebble.tenant_id', ...)`
    /// itself picks its tenant. Never build the text from user input.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>
    where
        E: RawSql,
    {
        let tenant = self.executor().strategy().tenant_context(self.key())?;
        self.executor().conn().raw_rows(sql, params, &tenant).await
    }

    /// Like [`TenantDb::query`], for exactly one row: [`Error::NotFound`] if none.
    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row>
    where
        E: RawSql,
    {
        self.query_opt(sql, params)
            .await?
            .ok_or(Error::NotFound { table: "(raw SQL)" })
    }

    /// Like [`TenantDb::query`], for at most one row (the first).
    pub async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>>
    where
        E: RawSql,
    {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs parameterised raw SQL as this tenant; the number of rows it wrote.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64>
    where
        E: RawSql,
    {
        let tenant = self.executor().strategy().tenant_context(self.key())?;
        self.executor()
            .conn()
            .raw_execute(sql, params, &tenant)
            .await
    }

    /// Runs parameterised raw SQL as this tenant and decodes each row as a
    /// `M`: the query must return `M`'s columns in `M`'s field order (as
    /// `SELECT *` does on a table pebble created for `M`).
    pub async fn query_as<M: Model>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<M>>
    where
        E: RawSql,
    {
        self.query(sql, params)
            .await?
            .iter()
            .map(M::from_row)
            .collect()
    }
}
