//! Bulk writes: several statements that must land together (an insert
//! split under PostgreSQL's 65,535 bind parameters), and `COPY ... FROM
//! STDIN BINARY`.

use std::pin::pin;
use std::sync::Arc;

use super::client::PooledClient;
use sea_query::Value;
use sea_query_postgres::PostgresValue;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::tx::TxConn;
use super::{check_table, Conn, Statement};
use crate::error::Result;
use crate::scope::Scope;

impl Conn {
    /// Runs `stmts` all or nothing: in a transaction of their own on a pool
    /// (under row-level security, with the tenant set at its `BEGIN`), or
    /// in the transaction this connection is: there a failure aborts it,
    /// as a single failing statement would. The rows they return, in order.
    pub(crate) async fn rows_atomically(
        &self,
        stmts: &[Statement],
        scope: &Scope,
    ) -> Result<Vec<Row>> {
        let mut all = Vec::new();
        self.atomically(scope, async |conn| {
            for stmt in stmts {
                all.extend(conn.rows(stmt, scope).await?);
            }
            Ok(())
        })
        .await?;
        Ok(all)
    }

    /// [`Conn::rows_atomically`], counting the rows written.
    pub(crate) async fn execute_atomically(
        &self,
        stmts: &[Statement],
        scope: &Scope,
    ) -> Result<u64> {
        let mut written = 0;
        self.atomically(scope, async |conn| {
            for stmt in stmts {
                written += conn.execute(stmt, scope).await?;
            }
            Ok(())
        })
        .await?;
        Ok(written)
    }

    async fn atomically(
        &self,
        scope: &Scope,
        run: impl AsyncFnOnce(&Conn) -> Result<()>,
    ) -> Result<()> {
        scope.check()?;
        let Conn::Pool(pool) = self else {
            return run(self).await;
        };
        let tx = TxConn::on(pool).await?;
        match scope.tenant_context() {
            Some(tenant) => tx.begin_in_tenant_context("BEGIN", tenant.as_str()).await?,
            None => tx.begin("BEGIN").await?,
        }
        let conn = Conn::Transaction(Arc::clone(&tx));
        // Dropped before the end, the transaction rolls back (see `tx`).
        match run(&conn).await {
            Ok(()) => tx.finish(true).await,
            Err(e) => {
                // The statement's error says more than the rollback's.
                let _ = tx.finish(false).await;
                Err(e)
            }
        }
    }

    /// `COPY "table" (columns) FROM STDIN (FORMAT binary)` of `rows` (row
    /// after row, `columns.len()` values each, in column order): one
    /// statement, so all or nothing. Not under row-level security (PostgreSQL refuses `COPY
    /// FROM` to a role subject to it); the caller checks.
    pub(crate) async fn copy_in(
        &self,
        scope: &Scope,
        table: &str,
        columns: &[&str],
        types: &[Type],
        rows: Vec<Value>,
    ) -> Result<u64> {
        scope.check()?;
        scope.trace(table);
        match self {
            Conn::Pool(pool) => {
                let client = pool.pool().get().await?;
                check_table(pool.tables(), &client, pool.mode(), scope, &[]).await?;
                copy(&client, scope, table, columns, types, rows).await
            }
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = async {
                    check_table(tx.tables(), entered.client(), tx.mode(), scope, &[]).await?;
                    copy(entered.client(), scope, table, columns, types, rows).await
                }
                .await;
                entered.finish(result)
            }
        }
    }
}

/// `types` are the columns' types (checked against the table before the
/// first statement, see `table_check`): the binary format must match them
/// exactly. No statement is prepared to learn them, which behind a pooler
/// in transaction mode could not be kept (see `StatementMode::Unnamed`).
async fn copy(
    client: &PooledClient,
    scope: &Scope,
    table: &str,
    columns: &[&str],
    types: &[Type],
    rows: Vec<Value>,
) -> Result<u64> {
    let list = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    // Named like every other statement of the scope: in the tenant's
    // schema under a schema handle, never found through `search_path`.
    let table = match scope.schema_arc() {
        Some(schema) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(table),
    };
    let sql = format!("COPY {table} ({list}) FROM STDIN (FORMAT binary)");
    tracing::debug!(target: "pebble::sql", sql = %sql, rows = rows.len());
    let sink = client.copy_in(&sql).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
    let width = columns.len().max(1);
    let mut values: Vec<PostgresValue> = Vec::with_capacity(width);
    let mut rows = rows.into_iter();
    while rows.len() > 0 {
        values.clear();
        values.extend(rows.by_ref().take(width).map(PostgresValue));
        // `write_raw` takes the values as an iterator: no `Vec` of
        // references per row. A failure drops the writer, which aborts the
        // COPY: nothing is written.
        writer
            .as_mut()
            .write_raw(values.iter().map(as_param))
            .await?;
    }
    Ok(writer.as_mut().finish().await?)
}

/// A value as a parameter. A function, not a closure: a closure's
/// inferred lifetimes would make the future that awaits the write not
/// `Send` for every lifetime, as spawned tasks need.
fn as_param(value: &PostgresValue) -> &(dyn ToSql + Sync) {
    value
}

/// A quoted identifier. Model names are validated by the derive; quoting
/// (with `"` doubled) keeps a hand-written `Model` from injecting text.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
