//! Running a built statement on a pooled connection or inside a transaction,
//! with the statement prepared once per connection.

use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use sea_query::PostgresQueryBuilder;
use sea_query_postgres::{PostgresBinder, PostgresValues};
use tokio_postgres::Row;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::scope::Scope;
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

impl Conn {
    pub(crate) async fn rows(&self, stmt: &Statement, scope: &Scope) -> Result<Vec<Row>> {
        scope.check()?;
        scope.trace(&stmt.sql);
        match self {
            Conn::Pool(db) => query(&*db.pool().get().await?, stmt).await,
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = query(entered.client(), stmt).await;
                entered.finish(result)
            }
        }
    }

    pub(crate) async fn execute(&self, stmt: &Statement, scope: &Scope) -> Result<u64> {
        scope.check()?;
        scope.trace(&stmt.sql);
        match self {
            Conn::Pool(db) => execute(&*db.pool().get().await?, stmt).await,
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = execute(entered.client(), stmt).await;
                entered.finish(result)
            }
        }
    }

    /// Runs SQL text with no parameters (DDL, several statements at once).
    pub(crate) async fn batch(&self, sql: &str) -> Result<()> {
        tracing::debug!(target: "pebble::sql", sql);
        match self {
            Conn::Pool(db) => Ok(db.pool().get().await?.batch_execute(sql).await?),
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
}

async fn query(client: &ClientWrapper, stmt: &Statement) -> Result<Vec<Row>> {
    tracing::debug!(target: "pebble::sql", sql = %stmt.sql);
    let prepared = client.prepare_cached(&stmt.sql).await?;
    Ok(client.query(&prepared, &stmt.values.as_params()).await?)
}

async fn execute(client: &ClientWrapper, stmt: &Statement) -> Result<u64> {
    tracing::debug!(target: "pebble::sql", sql = %stmt.sql);
    let prepared = client.prepare_cached(&stmt.sql).await?;
    Ok(client.execute(&prepared, &stmt.values.as_params()).await?)
}
