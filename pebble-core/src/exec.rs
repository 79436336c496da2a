//! Running a built statement where its handle says: a pooled connection,
//! a pooled connection under row-level security (inside the tenant's
//! context), or a transaction. How it goes on the wire is `send`'s concern.

use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object};
use sea_query::PostgresQueryBuilder;
use sea_query_postgres::{PostgresBinder, PostgresValues};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::db::Db;
use crate::error::{Error, Result, SqlState};
use crate::scope::Scope;
use crate::send::{self, InFlight, Output, StatementMode, Want};
use crate::table_check::TableChecks;
use crate::transaction::TxConn;

/// Where a statement runs: a fresh pooled connection, or the one a transaction holds.
/// Public only inside this private module, to appear in the sealed [`Executor`](crate::Executor) trait.
///
/// Builders own one (a pool is an `Arc`), so a builder can be kept in a
/// variable and extended conditionally, independent of the handle that made it.
#[derive(Clone)]
pub enum Conn {
    /// A builder holds a `Db` (an `Arc` clone), which counts as a handle in use.
    Pool(Db),
    /// A pool under row-level security: a tenant statement runs in a
    /// transaction that first sets the tenant (see `send::in_tenant_context`).
    Rls(Db),
    Transaction(Arc<TxConn>),
}

/// A statement rendered to SQL text (with `$n` placeholders) and its bind
/// values: exactly what a builder sends. From a builder's `build()`.
///
/// ```
/// # use pebble::{Db, Model, PoolOptions};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, age: i32 }
/// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
/// let stmt = db.tenant(7_i64).select::<User>().filter(User::AGE.gt(30)).build()?;
/// assert_eq!(stmt.sql(), r#"SELECT "id", "org", "age" FROM "user" WHERE "org" = $1 AND "age" > $2"#);
/// assert_eq!(stmt.params().len(), 2);
/// # Ok::<(), pebble::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    values: PostgresValues,
}

impl Statement {
    pub(crate) fn new(stmt: &impl PostgresBinder) -> Self {
        let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
        Statement { sql, values }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bind values, in placeholder order, ready for `tokio_postgres`.
    pub fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.values.as_params()
    }
}

/// PostgreSQL's wire protocol counts bind parameters in 16 bits.
const MAX_PARAMETERS: usize = u16::MAX as usize;

impl Statement {
    /// Refuses a statement the server could not even parse off the wire.
    fn check_size(&self, scope: &Scope) -> Result<()> {
        let parameters = self.values.0.len();
        if parameters > MAX_PARAMETERS {
            return Err(Error::TooManyParameters {
                table: scope.table(),
                parameters,
            });
        }
        Ok(())
    }
}

impl Statement {
    /// The bind values with their PostgreSQL types, for unnamed statements.
    pub(crate) fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values
            .0
            .iter()
            .zip(self.values.as_types())
            .map(|(value, ty)| (value as &(dyn ToSql + Sync), ty))
            .collect()
    }
}

impl Conn {
    pub(crate) async fn rows(&self, stmt: &Statement, scope: &Scope) -> Result<Vec<Row>> {
        Ok(self.run(stmt, scope, Want::Rows).await?.into_rows())
    }

    pub(crate) async fn execute(&self, stmt: &Statement, scope: &Scope) -> Result<u64> {
        Ok(self.run(stmt, scope, Want::Count).await?.into_count())
    }

    async fn run(&self, stmt: &Statement, scope: &Scope, want: Want) -> Result<Output> {
        scope.check()?;
        stmt.check_size(scope)?;
        scope.trace(&stmt.sql);
        tracing::debug!(target: "pebble::sql", sql = %stmt.sql);
        match self {
            Conn::Pool(db) => {
                let client = db.pool().get().await?;
                check_table(db.tables(), &client, db.mode(), scope).await?;
                plain(&client, db.mode(), stmt, want).await
            }
            Conn::Rls(db) => {
                let client = db.pool().get().await?;
                check_table(db.tables(), &client, db.mode(), scope).await?;
                match scope.tenant_context() {
                    Some(tenant) => {
                        let flight = InFlight::new(client);
                        let output = send::in_tenant_context(
                            flight.client()?,
                            db.mode(),
                            &tenant,
                            stmt,
                            want,
                        )
                        .await;
                        flight.done();
                        output
                    }
                    // A shared model: no tenant to set, and a tenant table
                    // reached without one shows and accepts nothing.
                    None => plain(&client, db.mode(), stmt, want).await,
                }
            }
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = async {
                    check_table(tx.tables(), entered.client(), tx.mode(), scope).await?;
                    plain(entered.client(), tx.mode(), stmt, want).await
                }
                .await;
                entered.finish(result)
            }
        }
    }

    /// Raw SQL through a handle under row-level security: the database
    /// confines it to `tenant` (a pool) or to the transaction's tenant.
    pub(crate) async fn raw_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &str,
    ) -> Result<Vec<Row>> {
        Ok(self.raw(sql, params, tenant, Want::Rows).await?.into_rows())
    }

    pub(crate) async fn raw_execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &str,
    ) -> Result<u64> {
        Ok(self
            .raw(sql, params, tenant, Want::Count)
            .await?
            .into_count())
    }

    async fn raw(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &str,
        want: Want,
    ) -> Result<Output> {
        tracing::debug!(target: "pebble::sql", sql, "raw SQL under row-level security");
        match self {
            Conn::Rls(db) => {
                let flight = InFlight::new(db.pool().get().await?);
                let output = send::raw_in_tenant_context(
                    flight.client()?,
                    db.mode(),
                    tenant,
                    sql,
                    params,
                    want,
                )
                .await;
                if output.is_ok() {
                    flight.done();
                }
                // On an error the transaction may still be open: `flight`
                // closes the connection instead of handing it back.
                output
            }
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result =
                    send::raw_in_transaction(entered.client(), tx.mode(), sql, params, want).await;
                entered.finish(result)
            }
            // Raw SQL is only offered on handles under row-level security.
            Conn::Pool(_) => Err(Error::RawSqlNeedsRls),
        }
    }

    /// Runs pebble's own SQL text (DDL it generated, `BEGIN`): text that
    /// leaves no session state behind.
    pub(crate) async fn batch(&self, sql: &str) -> Result<()> {
        tracing::debug!(target: "pebble::sql", sql);
        match self {
            Conn::Pool(db) | Conn::Rls(db) => Ok(db.pool().get().await?.batch_execute(sql).await?),
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = entered
                    .client()
                    .batch_execute(sql)
                    .await
                    .map_err(Error::from);
                entered.finish(result)
            }
        }
    }

    /// Runs a user's SQL text, which may change its session (`SET`,
    /// `BEGIN`, `PREPARE`, temporary tables...): nothing of that may reach
    /// the next statement on the connection.
    pub(crate) async fn raw_batch(&self, sql: &str) -> Result<()> {
        tracing::debug!(target: "pebble::sql", sql, "raw SQL text");
        match self {
            Conn::Pool(db) | Conn::Rls(db) => {
                let client = db.pool().get().await?;
                let result = client.batch_execute(sql).await.map_err(Error::from);
                reset_session(client, result).await
            }
            Conn::Transaction(tx) => tx.raw_batch(sql).await,
        }
    }
}

/// A statement outside any tenant context.
async fn plain(
    client: &ClientWrapper,
    mode: StatementMode,
    stmt: &Statement,
    want: Want,
) -> Result<Output> {
    match want {
        Want::Rows => send::query(client, mode, stmt).await.map(Output::Rows),
        Want::Count => send::execute(client, mode, stmt).await.map(Output::Count),
    }
}

/// Hands a connection back to the pool exactly as a fresh one after raw SQL
/// text ran on it. `DISCARD ALL` resets settings, roles, prepared statements,
/// temporary tables, cursors, listeners and advisory locks, and fails inside
/// a transaction block: then the text left a transaction open, and the
/// connection is closed instead, which rolls that transaction back.
async fn reset_session(client: Object, result: Result<()>) -> Result<()> {
    match client.batch_execute("DISCARD ALL").await {
        Ok(()) => {
            // The server forgot every prepared statement; so must the cache.
            client.statement_cache.clear();
            result
        }
        Err(reset) => {
            drop(Object::take(client));
            let in_transaction = reset.code().is_some_and(|code| {
                *code == SqlState::ACTIVE_SQL_TRANSACTION
                    || *code == SqlState::IN_FAILED_SQL_TRANSACTION
            });
            match result {
                Ok(()) if in_transaction => Err(Error::UnterminatedTransaction),
                // The text's own error says more than the reset's.
                other => other,
            }
        }
    }
}

/// Checks the scope's model against its live table, once per model and pool.
async fn check_table(
    tables: &TableChecks,
    client: &ClientWrapper,
    mode: StatementMode,
    scope: &Scope,
) -> Result<()> {
    match scope.target() {
        Some(target) => tables.ensure(client, mode, target).await,
        None => Ok(()),
    }
}
