//! The execution layer: running a built statement where its handle says (a
//! pooled connection, or a transaction), inside the tenant's context when
//! its scope is under row-level security. How it goes on the wire is
//! [`send`]'s concern, the transaction's state machine [`tx`]'s.

pub(crate) mod bulk;
pub(crate) mod client;
pub(crate) mod options;
pub(crate) mod pool;
pub(crate) mod send;
mod statement;
pub(crate) mod stream;
pub(crate) mod table_check;
pub(crate) mod tls;
mod trace;
pub(crate) mod tx;

use std::sync::Arc;

use client::{Object, PooledClient};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::{Error, Result, SqlState};
use crate::model::Target;
use crate::scope::{Scope, TenantContext};

use pool::SharedPool;
use send::{InFlight, Output, StatementMode, Want};
pub use statement::Statement;
use table_check::TableChecks;
use tx::TxConn;

/// Where a statement runs: a fresh pooled connection, or the one a
/// transaction holds. How it is confined (and whether its transaction sets
/// the tenant for row-level security) is the statement's [`Scope`], not
/// the connection's. Public only inside this private module, to appear in
/// the sealed [`Executor`](crate::Executor) trait.
///
/// Builders own one (a pool is an `Arc`), so a builder can be kept in a
/// variable and extended conditionally, independent of the handle that made it.
#[derive(Clone)]
pub enum Conn {
    /// A pooled connection per statement. The `Arc` is the one `Db` wraps:
    /// a builder holding it counts as a handle in use (see `Db::handles`).
    Pool(Arc<SharedPool>),
    /// The connection of a transaction.
    Transaction(Arc<TxConn>),
}

impl Conn {
    pub(crate) async fn rows(&self, stmt: &Statement, scope: &Scope) -> Result<Vec<Row>> {
        Ok(self.run(stmt, scope, &[], Want::Rows).await?.into_rows())
    }

    /// Rows of a join: `scope` is the base model's (its strategy and
    /// tenant context confine the statement), and each joined model is
    /// checked against its table like the base.
    pub(crate) async fn rows_joined(
        &self,
        stmt: &Statement,
        scope: &Scope,
        joined: &[Target],
    ) -> Result<Vec<Row>> {
        Ok(self.run(stmt, scope, joined, Want::Rows).await?.into_rows())
    }

    /// The first row of a statement that returns at most one (`LIMIT 1`).
    pub(crate) async fn first(&self, stmt: &Statement, scope: &Scope) -> Result<Option<Row>> {
        Ok(self.run(stmt, scope, &[], Want::First).await?.into_first())
    }

    pub(crate) async fn execute(&self, stmt: &Statement, scope: &Scope) -> Result<u64> {
        Ok(self.run(stmt, scope, &[], Want::Count).await?.into_count())
    }

    /// Whether the pool opted in to tracing bound values.
    fn log_values(&self) -> bool {
        match self {
            Conn::Pool(pool) => pool.log_values(),
            Conn::Transaction(tx) => tx.log_values(),
        }
    }

    async fn run(
        &self,
        stmt: &Statement,
        scope: &Scope,
        joined: &[Target],
        want: Want,
    ) -> Result<Output> {
        scope.check()?;
        stmt.check_size(scope)?;
        scope.trace(stmt.sql());
        trace::statement(stmt, scope, self.log_values(), Output::rows, || {
            self.run_untraced(stmt, scope, joined, want)
        })
        .await
    }

    async fn run_untraced(
        &self,
        stmt: &Statement,
        scope: &Scope,
        joined: &[Target],
        want: Want,
    ) -> Result<Output> {
        match self {
            Conn::Pool(pool) => {
                let client = pool.get().await?;
                check_table(pool.tables(), &client, pool.mode(), scope, joined).await?;
                match scope.tenant_context() {
                    // Boxed: its pipelined transaction's futures would
                    // triple the size of every statement's future, and
                    // each move of one copies all of it.
                    Some(tenant) => {
                        Box::pin(async {
                            let flight = InFlight::new(client);
                            let output = send::in_tenant_context(
                                flight.client()?,
                                pool.mode(),
                                tenant.as_str(),
                                stmt,
                                want,
                            )
                            .await;
                            flight.done();
                            output
                        })
                        .await
                    }
                    None => plain(&client, pool.mode(), stmt, want, send::Retry::Once).await,
                }
            }
            // Under row-level security the transaction's tenant was set
            // right after its BEGIN.
            Conn::Transaction(tx) => {
                let entered = tx.enter().await?;
                let result = async {
                    check_table(tx.tables(), entered.client(), tx.mode(), scope, joined).await?;
                    plain(entered.client(), tx.mode(), stmt, want, send::Retry::No).await
                }
                .await;
                entered.finish(result)
            }
        }
    }

    /// Raw SQL through a handle under row-level security: the database
    /// confines it to `tenant` (a pool) or to the transaction's tenant,
    /// set when it began.
    pub(crate) async fn raw_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &TenantContext,
    ) -> Result<Vec<Row>> {
        Ok(self.raw(sql, params, tenant, Want::Rows).await?.into_rows())
    }

    pub(crate) async fn raw_execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &TenantContext,
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
        tenant: &TenantContext,
        want: Want,
    ) -> Result<Output> {
        let run = self.raw_untraced(sql, params, tenant, want);
        trace::text(
            sql,
            "raw SQL under row-level security",
            Some(tenant.as_str()),
            run,
        )
        .await
    }

    async fn raw_untraced(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        tenant: &TenantContext,
        want: Want,
    ) -> Result<Output> {
        match self {
            Conn::Pool(pool) => {
                let flight = InFlight::new(pool.pool().get().await?);
                let output = send::raw_in_tenant_context(
                    flight.client()?,
                    pool.mode(),
                    tenant.as_str(),
                    sql,
                    params,
                    want,
                )
                .await;
                // On an error the transaction may still be open, and after
                // raw SQL that touched the session's prepared statements
                // the next tenant's statements could run its text: `flight`
                // closes the connection instead of handing it back.
                if let Ok((_, send::Reuse::Keep)) = &output {
                    flight.done();
                }
                output.map(|(output, _)| output)
            }
            Conn::Transaction(tx) => {
                tx.mark_raw();
                let entered = tx.enter().await?;
                let result = async {
                    let output =
                        send::raw_in_transaction(entered.client(), tx.mode(), sql, params, want)
                            .await?;
                    tx.still_ours(entered.client()).await?;
                    Ok(output)
                }
                .await;
                entered.finish(result)
            }
        }
    }

    /// Runs pebble's own SQL text (DDL it generated, `BEGIN`): text that
    /// leaves no session state behind.
    pub(crate) async fn batch(&self, sql: &str) -> Result<()> {
        trace::text(sql, "SQL text", None, self.batch_untraced(sql)).await
    }

    async fn batch_untraced(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Pool(pool) => Ok(pool.pool().get().await?.batch_execute(sql).await?),
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
        trace::text(sql, "raw SQL text", None, self.raw_batch_untraced(sql)).await
    }

    async fn raw_batch_untraced(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Pool(pool) => {
                let client = pool.pool().get().await?;
                let result = client.batch_execute(sql).await.map_err(Error::from);
                reset_session(client, result).await
            }
            Conn::Transaction(tx) => tx.raw_batch(sql).await,
        }
    }
}

/// A statement outside any tenant context.
async fn plain(
    client: &PooledClient,
    mode: StatementMode,
    stmt: &Statement,
    want: Want,
    retry: send::Retry,
) -> Result<Output> {
    match want {
        Want::Rows => send::query(client, mode, stmt, retry)
            .await
            .map(Output::Rows),
        Want::First => send::query_first(client, mode, stmt, retry)
            .await
            .map(Output::First),
        Want::Count => send::execute(client, mode, stmt, retry)
            .await
            .map(Output::Count),
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
            client.forget_statements();
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

/// Checks the scope's model, and a join's other models, against their
/// live tables, once per model and pool. `cross_tenant()` checks none.
/// Once every model passed (every statement but a pool's first of each
/// model), nothing is awaited: the checks' queries live in a boxed future
/// of their own, so that a statement's future stays the size of what it
/// sends.
async fn check_table(
    tables: &TableChecks,
    client: &PooledClient,
    mode: StatementMode,
    scope: &Scope,
    joined: &[Target],
) -> Result<()> {
    let Some(target) = scope.target() else {
        return Ok(());
    };
    let schema = scope.schema_arc();
    let joined_schema = |target: &Target| schema.filter(|_| target.per_tenant).map(|s| &**s);
    if tables.has_passed(target, schema.map(|s| &**s))
        && joined
            .iter()
            .all(|target| tables.has_passed(target, joined_schema(target)))
    {
        return Ok(());
    }
    Box::pin(async {
        tables.ensure(client, mode, target, schema).await?;
        for target in joined {
            // A joined shared model's table is the shared one, not the schema's.
            let schema = schema.filter(|_| target.per_tenant);
            tables.ensure(client, mode, target, schema).await?;
        }
        Ok(())
    })
    .await
}
