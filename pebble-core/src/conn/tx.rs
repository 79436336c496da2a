//! The connection a transaction holds, and its state machine: statements
//! are admitted while it is open, `COMMIT` / `ROLLBACK` wait for them, and a
//! transaction dropped without either is rolled back before its connection
//! is reused. The user-facing `Transaction` is a thin handle on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object};
use tokio::sync::RwLockReadGuard;
use tokio_postgres::SimpleQueryMessage;

use crate::error::{Error, Result};

use super::pool::SharedPool;
use super::send::{self, StatementMode};
use super::table_check::TableChecks;
use super::trace;

/// The connection of a transaction, shared by the builders made from it.
/// Public only inside this private module, to appear in `Conn`.
pub struct TxConn {
    /// Statements hold it shared while they run; `commit`, `rollback` and
    /// the owner's drop take it exclusively, so no statement can straddle
    /// the end of the transaction.
    gate: tokio::sync::RwLock<Slot>,
    /// The `Transaction` was dropped: no statement may start any more,
    /// even before the rollback has taken the gate.
    closed: AtomicBool,
    /// The pool's table checks (see `table_check`).
    tables: Arc<TableChecks>,
    /// How the pool sends statements.
    mode: StatementMode,
    /// Trace bound values (see `PoolOptions::log_values`).
    log_values: bool,
    /// A statement failed on the server, which aborts the whole transaction.
    aborted: AtomicBool,
    /// A statement was dropped before its outcome was known: it may have
    /// failed (and aborted the transaction) on the server.
    uncertain: AtomicBool,
    /// Raw SQL text ran in the transaction: it may have changed session
    /// settings that outlive the transaction, so the session is reset at its end.
    raw_used: AtomicBool,
    /// Set as `pebble.tx` inside the transaction (see `still_ours`).
    marker: String,
}

/// The transaction's state and its connection, while it has one.
struct Slot {
    state: State,
    /// Taken out when the transaction ends, to go back to the pool at once
    /// rather than when the last builder holding the transaction is dropped.
    client: Option<Object>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// `COMMIT` / `ROLLBACK` was sent but not confirmed.
    Ending,
    /// Ended; its connection has been handed back (or to a rollback).
    Ended,
}

impl TxConn {
    /// Admission of one statement: waits while the transaction is ending and
    /// refuses once it has.
    pub(crate) async fn enter(&self) -> Result<Entered<'_>> {
        let gate = self.gate.read().await;
        if gate.state != State::Open || self.closed.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded);
        }
        let client = RwLockReadGuard::try_map(gate, |slot| slot.client.as_ref())
            .map_err(|_| Error::TransactionEnded)?;
        Ok(Entered {
            tx: self,
            client,
            done: false,
        })
    }

    /// A statement of this transaction is known to have failed on the server.
    pub(crate) fn is_known_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    pub(crate) fn tables(&self) -> &TableChecks {
        &self.tables
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.mode
    }

    pub(crate) fn log_values(&self) -> bool {
        self.log_values
    }

    /// Runs a user's SQL text inside the transaction, then makes sure the
    /// text did not end the transaction (`COMMIT`, `ROLLBACK`): the
    /// builders' statements after it would otherwise each commit on their
    /// own, and a later `rollback()` would undo nothing.
    pub(crate) async fn raw_batch(&self, sql: &str) -> Result<()> {
        self.raw_used.store(true, Ordering::Release);
        let entered = self.enter().await?;
        let result = entered
            .client()
            .batch_execute(sql)
            .await
            .map_err(Error::from);
        let result = match result {
            Ok(()) => self.still_ours(entered.client()).await,
            Err(e) => Err(e),
        };
        entered.finish(result)
    }

    /// Raw SQL ran in this transaction: its session settings are reset at
    /// the end, and it must not have ended or replaced the transaction.
    pub(crate) fn mark_raw(&self) {
        self.raw_used.store(true, Ordering::Release);
    }

    /// Whether the connection is still inside *this* transaction: `BEGIN`
    /// set `pebble.tx` to this transaction's random marker, transaction
    /// locally, so after raw text that committed or rolled back (even
    /// `COMMIT; BEGIN`, which leaves *a* transaction open) it reads
    /// otherwise. Whatever runs next on the connection would then be
    /// outside the transaction: everything is refused, and the connection
    /// is discarded.
    pub(crate) async fn still_ours(&self, client: &ClientWrapper) -> Result<()> {
        let messages = client
            .simple_query("SELECT pg_catalog.current_setting('pebble.tx', true)")
            .await?;
        let current = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        if current.as_deref() == Some(self.marker.as_str()) {
            Ok(())
        } else {
            self.closed.store(true, Ordering::Release);
            Err(Error::TransactionEnded)
        }
    }

    /// The statement that starts this transaction (after `BEGIN` and what
    /// else `begin` says, in the same message): its marker (see `still_ours`).
    fn marker_sql(&self) -> String {
        format!(
            "SELECT pg_catalog.set_config('pebble.tx', '{}', true)",
            self.marker
        )
    }

    /// `BEGIN`, with the transaction's marker, in one message.
    pub(crate) async fn begin(&self) -> Result<()> {
        let entered = self.enter().await?;
        let sql = format!("BEGIN; {}", self.marker_sql());
        let result = trace::text("BEGIN", "transaction", None, async {
            entered
                .client()
                .batch_execute(&sql)
                .await
                .map_err(Error::from)
        })
        .await;
        entered.finish(result)
    }
}

/// One statement running inside a transaction.
pub(crate) struct Entered<'a> {
    tx: &'a TxConn,
    client: RwLockReadGuard<'a, Object>,
    done: bool,
}

impl Entered<'_> {
    pub(crate) fn client(&self) -> &ClientWrapper {
        &self.client
    }

    /// Records the statement's outcome: a server-side error aborts the transaction.
    pub(crate) fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        if let Err(Error::Database { .. } | Error::Connection(_)) = &result {
            self.tx.aborted.store(true, Ordering::Release);
        }
        self.done = true;
        result
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tx.uncertain.store(true, Ordering::Release);
        }
    }
}

impl TxConn {
    /// A transaction not yet begun, on a connection of `pool`.
    pub(crate) async fn on(pool: &SharedPool) -> Result<Arc<TxConn>> {
        Ok(Arc::new(TxConn {
            gate: tokio::sync::RwLock::new(Slot {
                state: State::Open,
                client: Some(pool.pool().get().await?),
            }),
            closed: AtomicBool::new(false),
            tables: Arc::clone(pool.tables()),
            mode: pool.mode(),
            log_values: pool.log_values(),
            aborted: AtomicBool::new(false),
            uncertain: AtomicBool::new(false),
            raw_used: AtomicBool::new(false),
            // Random, so raw text cannot forge it (it cannot read it either).
            marker: uuid::Uuid::new_v4().simple().to_string(),
        }))
    }

    /// `BEGIN` and `set_config` of the tenant (row-level security), in
    /// one round trip, on a transaction not yet begun.
    pub(crate) async fn begin_in_tenant_context(&self, tenant: &str) -> Result<()> {
        let entered = self.enter().await?;
        let marker = self.marker_sql();
        let begin = send::begin_in_tenant_context(entered.client(), tenant, &marker);
        let result = trace::text("BEGIN", "transaction", Some(tenant), begin).await;
        entered.finish(result)
    }

    /// `COMMIT` (or `ROLLBACK` if a statement aborted the transaction) when
    /// `commit`, `ROLLBACK` otherwise; waits for statements still running.
    pub(crate) async fn finish(&self, commit: bool) -> Result<()> {
        let tx = self;
        let mut gate = tx.gate.write().await;
        if gate.state != State::Open || tx.closed.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded);
        }
        let Some(client) = gate.client.as_ref() else {
            return Err(Error::TransactionEnded);
        };
        let aborted = commit && is_aborted(tx, client).await;
        let sql = if commit && !aborted {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        // Builders still holding this transaction must not start a statement
        // that would run after it, outside any transaction.
        gate.state = State::Ending;
        let Some(client) = gate.client.as_ref() else {
            return Err(Error::TransactionEnded);
        };
        trace::text(sql, "transaction", None, async {
            client.batch_execute(sql).await.map_err(Error::from)
        })
        .await?;
        // If this future is dropped or fails before here, dropping the
        // transaction rolls back before the connection is reused.
        let client = gate.client.take();
        gate.state = State::Ended;
        drop(gate);
        if let Some(client) = client {
            if tx.raw_used.load(Ordering::Acquire) {
                // A `SET` (not `SET LOCAL`) in raw text outlives the transaction.
                reset_after_raw(client).await;
            }
        }
        if aborted {
            return Err(Error::TransactionAborted);
        }
        Ok(())
    }

    /// Ends the transaction even while builders made from it are still
    /// held: their statements then fail with [`Error::TransactionEnded`].
    /// Called when the `Transaction` is dropped.
    pub(crate) fn close(self: &Arc<Self>) {
        self.closed.store(true, Ordering::Release);
        match self.gate.try_write() {
            Ok(mut gate) => end_dropped(&mut gate, &self.raw_used),
            Err(_) => {
                // A statement (from a builder on another task) holds the
                // gate: roll back once it is done. Without a runtime, the
                // last holder's drop of `TxConn` rolls back instead.
                let conn = Arc::clone(self);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let mut gate = conn.gate.write().await;
                        end_dropped(&mut gate, &conn.raw_used);
                    });
                }
            }
        }
    }
}

/// Whether the server has aborted the transaction. Known from the outcomes
/// of its statements, unless one was dropped before its outcome arrived:
/// then a probe statement asks (it fails in an aborted transaction).
async fn is_aborted(tx: &TxConn, client: &ClientWrapper) -> bool {
    if tx.aborted.load(Ordering::Acquire) {
        return true;
    }
    tx.uncertain.load(Ordering::Acquire) && client.batch_execute("SELECT 1").await.is_err()
}

/// Resets a session raw text may have changed, or closes the connection.
async fn reset_after_raw(client: Object) {
    match client.batch_execute("DISCARD ALL").await {
        Ok(()) => client.statement_cache.clear(),
        Err(_) => drop(Object::take(client)),
    }
}

/// Rolls back a transaction that was not ended by `commit` or `rollback`.
/// After raw SQL text the session may carry settings, so the connection is
/// closed instead, which rolls back on the server.
fn end_dropped(slot: &mut Slot, raw_used: &AtomicBool) {
    if slot.state != State::Ended {
        slot.state = State::Ended;
        if let Some(client) = slot.client.take() {
            let close = raw_used.load(Ordering::Acquire);
            trace::dropped_transaction(close);
            if close {
                drop(Object::take(client));
            } else {
                roll_back_in_background(client);
            }
        }
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        end_dropped(self.gate.get_mut(), &self.raw_used);
    }
}

/// Sends `ROLLBACK` without blocking `drop`. The connection returns to the
/// pool only after the server confirmed; if that cannot happen (no runtime,
/// the task is cancelled, the rollback fails) it is detached from the pool
/// and closed, which ends the transaction server-side.
fn roll_back_in_background(client: Object) {
    struct Guard(Option<Object>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(client) = self.0.take() {
                drop(Object::take(client));
            }
        }
    }

    let mut guard = Guard(Some(client));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // `guard` detaches the connection
    };
    runtime.spawn(async move {
        let rolled_back = match &guard.0 {
            Some(client) => client.batch_execute("ROLLBACK").await.is_ok(),
            None => false,
        };
        if rolled_back {
            drop(guard.0.take()); // back to the pool, clean
        }
    });
}
