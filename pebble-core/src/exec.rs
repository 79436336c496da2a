//! Running a built statement on a pooled connection or inside a transaction,
//! with the statement prepared once per connection.

use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Pool};
use sea_query::PostgresQueryBuilder;
use sea_query_postgres::{PostgresBinder, PostgresValues};
use tokio_postgres::Row;

use crate::error::Result;
use crate::scope::Scope;
use crate::transaction::TxConn;

/// Where a statement runs: a fresh pooled connection, or the one a transaction holds.
/// Public only inside this private module, to appear in the sealed [`Executor`](crate::Executor) trait.
///
/// Builders own one (a pool is an `Arc`), so a builder can be kept in a
/// variable and extended conditionally, independent of the handle that made it.
#[derive(Clone)]
pub enum Conn {
    Pool(Pool),
    Transaction(Arc<TxConn>),
}

/// A statement rendered to SQL text with its bind values.
pub(crate) struct Built {
    pub(crate) sql: String,
    pub(crate) values: PostgresValues,
}

impl Built {
    pub(crate) fn new(stmt: &impl PostgresBinder) -> Self {
        let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
        Built { sql, values }
    }
}

impl Conn {
    pub(crate) async fn rows(&self, stmt: &Built, scope: &Scope) -> Result<Vec<Row>> {
        scope.trace(&stmt.sql);
        match self {
            Conn::Pool(pool) => query(&*pool.get().await?, stmt).await,
            Conn::Transaction(tx) => tx.observe(query(tx.client()?, stmt).await),
        }
    }

    pub(crate) async fn execute(&self, stmt: &Built, scope: &Scope) -> Result<u64> {
        scope.trace(&stmt.sql);
        match self {
            Conn::Pool(pool) => execute(&*pool.get().await?, stmt).await,
            Conn::Transaction(tx) => tx.observe(execute(tx.client()?, stmt).await),
        }
    }

    /// Runs SQL text with no parameters (DDL, several statements at once).
    pub(crate) async fn batch(&self, sql: &str) -> Result<()> {
        tracing::debug!(target: "pebble::sql", sql);
        match self {
            Conn::Pool(pool) => Ok(pool.get().await?.batch_execute(sql).await?),
            Conn::Transaction(tx) => tx.observe(Ok(tx.client()?.batch_execute(sql).await?)),
        }
    }
}

async fn query(client: &ClientWrapper, stmt: &Built) -> Result<Vec<Row>> {
    tracing::debug!(target: "pebble::sql", sql = %stmt.sql);
    let prepared = client.prepare_cached(&stmt.sql).await?;
    Ok(client.query(&prepared, &stmt.values.as_params()).await?)
}

async fn execute(client: &ClientWrapper, stmt: &Built) -> Result<u64> {
    tracing::debug!(target: "pebble::sql", sql = %stmt.sql);
    let prepared = client.prepare_cached(&stmt.sql).await?;
    Ok(client.execute(&prepared, &stmt.values.as_params()).await?)
}
