//! Row streams: a statement's rows handed out as they arrive (tokio-postgres
//! `query_raw`), for results too large to collect. The hard part is where
//! the rows come from:
//!
//! - a pooled connection is held until the stream ends, and goes back to
//!   the pool only when nothing of the stream is left on it;
//! - under row-level security the rows are read inside `BEGIN`,
//!   `SET LOCAL` (pipelined with the statement, one round trip), and the
//!   transaction is committed when the stream ends. A stream dropped or
//!   failed before that hands its connection to a `ROLLBACK` first (see
//!   `roll_back_in_background`): no pooled connection ever carries an open
//!   transaction with a tenant in it;
//! - in a transaction, the transaction refuses its other statements while
//!   the stream is open ([`Error::StreamOpen`]): they would queue behind
//!   rows nobody reads.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use super::client::{Object, PooledClient};
use futures_util::stream::{self, Stream};
use tokio_postgres::{Row, RowStream};

use super::send::{self, StatementMode};
use super::tx::{roll_back_in_background, TxConn};
use super::{check_table, Conn, Statement};
use crate::error::{Error, Result};
use crate::scope::Scope;

/// The rows of a statement, as they arrive.
pub(crate) type Rows = Pin<Box<dyn Stream<Item = Result<Row>> + Send>>;

impl Conn {
    /// Streams `stmt`'s rows. Nothing is sent until the stream is first polled.
    pub(crate) fn stream(self, stmt: Statement, scope: Scope) -> Rows {
        let start = State::Start {
            conn: self,
            stmt,
            scope,
        };
        Box::pin(stream::unfold(start, |state| async move {
            match state {
                State::Start { conn, stmt, scope } => match open(&conn, &stmt, &scope).await {
                    Ok(running) => next(running).await,
                    Err(e) => Some((Err(e), State::Done)),
                },
                State::Running(running) => next(running).await,
                State::Done => None,
            }
        }))
    }
}

enum State {
    Start {
        conn: Conn,
        stmt: Statement,
        scope: Scope,
    },
    Running(Running),
    Done,
}

/// A stream under way: the driver's rows, and what they come through.
struct Running {
    rows: Pin<Box<RowStream>>,
    holder: Holder,
}

/// What a stream holds while rows arrive; its drop (the stream dropped
/// early) leaves the connection clean.
// One per stream, never moved per row: the size of a pooled connection does not matter.
#[allow(clippy::large_enum_variant)]
enum Holder {
    /// A pooled connection; `open_tx` while it is inside the tenant's
    /// transaction (row-level security).
    Pool {
        client: Option<Object>,
        open_tx: bool,
    },
    /// A transaction's connection; `complete` once the statement's outcome is known.
    Transaction { tx: Arc<TxConn>, complete: bool },
}

impl Holder {
    fn client(&self) -> Result<&PooledClient> {
        match self {
            Holder::Pool {
                client: Some(client),
                ..
            } => Ok(client),
            _ => Err(Error::TransactionEnded),
        }
    }

    /// The rows ended: commit the tenant's transaction (which ran only a
    /// select) and free the connection.
    async fn finish(&mut self) -> Result<()> {
        match self {
            Holder::Pool { client, open_tx } => {
                if *open_tx {
                    if let Some(conn) = client.as_ref() {
                        conn.batch_execute("COMMIT").await?;
                    }
                    *open_tx = false;
                }
                drop(client.take());
            }
            Holder::Transaction { tx, complete } => {
                *complete = true;
                tx.stream_ended();
            }
        }
        Ok(())
    }

    /// The statement failed on the server.
    fn failed(&mut self) {
        if let Holder::Transaction { tx, complete } = self {
            tx.mark_aborted();
            *complete = true;
            tx.stream_ended();
        }
        // A pooled connection inside the tenant's transaction is rolled back by the drop.
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        match self {
            Holder::Pool { client, open_tx } => {
                if let Some(client) = client.take() {
                    if *open_tx {
                        roll_back_in_background(client);
                    }
                    // Otherwise back to the pool: rows still in flight are
                    // discarded by the driver before its next statement.
                }
            }
            Holder::Transaction { tx, complete } => {
                // Once complete, the flag was cleared then, and may belong
                // to the transaction's next stream by now.
                if !*complete {
                    // Dropped early: the rest of the statement may yet fail.
                    tx.mark_uncertain();
                    tx.stream_ended();
                }
            }
        }
    }
}

async fn next(mut running: Running) -> Option<(Result<Row>, State)> {
    let rows = &mut running.rows;
    match poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
        Some(Ok(row)) => Some((Ok(row), State::Running(running))),
        Some(Err(e)) => {
            running.holder.failed();
            Some((Err(e.into()), State::Done))
        }
        None => match running.holder.finish().await {
            Ok(()) => None,
            Err(e) => Some((Err(e), State::Done)),
        },
    }
}

async fn open(conn: &Conn, stmt: &Statement, scope: &Scope) -> Result<Running> {
    scope.check()?;
    stmt.check_size(scope)?;
    scope.trace(stmt.sql());
    tracing::debug!(target: "pebble::sql", sql = %stmt.sql(), "stream");
    match conn {
        Conn::Pool(pool) => {
            let client = pool.pool().get().await?;
            check_table(pool.tables(), &client, pool.mode(), scope, &[]).await?;
            let tenant = scope.tenant_context();
            let holder = Holder::Pool {
                client: Some(client),
                // Set before BEGIN is sent: a drop from here on rolls back.
                open_tx: tenant.is_some(),
            };
            let client = holder.client()?;
            let rows = match tenant {
                Some(tenant) => {
                    let begin = send::begin_text(tenant.as_str());
                    // BEGIN with set_config and the statement written
                    // together; the statement must go out as one message
                    // (prepared beforehand, or typed), or it would run
                    // before the tenant is set. Both are awaited: on an
                    // error the drop rolls back.
                    match pool.mode() {
                        // A stale statement is prepared again on the next
                        // use, not retried: this transaction is aborted
                        // (the drop of `holder` rolls it back).
                        StatementMode::Prepared => {
                            let begin = &begin;
                            send::with_prepared(
                                client,
                                stmt.sql(),
                                send::Retry::No,
                                |prepared| async move {
                                    let (begun, rows) = tokio::join!(
                                        client.batch_execute(begin),
                                        client.query_raw(&prepared, stmt.params())
                                    );
                                    begun?;
                                    Ok(rows?)
                                },
                            )
                            .await?
                        }
                        StatementMode::Unnamed => {
                            let (begun, rows) = tokio::join!(
                                client.batch_execute(&begin),
                                client.query_typed_raw(stmt.sql(), stmt.typed_params())
                            );
                            begun?;
                            rows?
                        }
                    }
                }
                None => start(client, pool.mode(), stmt, send::Retry::Once).await?,
            };
            Ok(Running {
                rows: Box::pin(rows),
                holder,
            })
        }
        Conn::Transaction(tx) => {
            let entered = tx.enter().await?;
            let result = async {
                check_table(tx.tables(), entered.client(), tx.mode(), scope, &[]).await?;
                tx.stream_started()?;
                // From here on a drop (of this future too) or an error
                // frees the transaction for other statements.
                let holder = Holder::Transaction {
                    tx: Arc::clone(tx),
                    complete: false,
                };
                let rows = start(entered.client(), tx.mode(), stmt, send::Retry::No).await?;
                Ok((rows, holder))
            }
            .await;
            let (rows, holder) = entered.finish(result)?;
            Ok(Running {
                rows: Box::pin(rows),
                holder,
            })
        }
    }
}

/// Sends `stmt`; its rows as they arrive. A stale statement (see
/// [`send::stale_statement`]) is forgotten, and sent once more prepared
/// afresh when `retry` (no transaction held: the server refused it before
/// any row).
async fn start(
    client: &PooledClient,
    mode: StatementMode,
    stmt: &Statement,
    retry: send::Retry,
) -> Result<RowStream> {
    Ok(match mode {
        StatementMode::Prepared => {
            send::with_prepared(client, stmt.sql(), retry, |prepared| async move {
                Ok(client.query_raw(&prepared, stmt.params()).await?)
            })
            .await?
        }
        StatementMode::Unnamed => {
            client
                .query_typed_raw(stmt.sql(), stmt.typed_params())
                .await?
        }
    })
}
