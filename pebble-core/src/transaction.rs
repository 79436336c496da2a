//! [`Transaction`]: one pooled connection inside `BEGIN` ... `COMMIT`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object};
use tokio::sync::RwLockReadGuard;

use crate::cross::CrossTenant;
use crate::db::Db;
use crate::error::{Error, Result, SqlState};
use crate::exec::Conn;
use crate::handle::{private::Sealed, unscoped_queries, Executor};
use crate::model::GlobalModel;
use crate::scope::Scope;
use crate::send::{self, StatementMode};
use crate::sql_type::TenantKey;
use crate::table_check::TableChecks;
use crate::tenant::TenantDb;

/// A transaction on one pooled connection, from [`Db::begin`](crate::Db::begin).
///
/// Dropped without [`commit`](Transaction::commit), it is rolled back: the
/// connection goes back to the pool only once `ROLLBACK` has succeeded, and
/// is discarded otherwise, so no pooled connection ever carries an open
/// transaction. Builders made from it and still held elsewhere do not keep
/// it open: once the transaction has ended (committed, rolled back or
/// dropped), each of their statements fails with
/// [`Error::TransactionEnded`] and sends nothing.
///
/// For a tenant-scoped transaction use
/// [`TenantDb::begin`](crate::TenantDb::begin) or [`Transaction::tenant`].
pub struct Transaction {
    conn: Arc<TxConn>,
}

/// The connection of a transaction, shared by the builders made from it.
/// Public only inside this private module.
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
    /// A statement failed on the server, which aborts the whole transaction.
    aborted: AtomicBool,
    /// A statement was dropped before its outcome was known: it may have
    /// failed (and aborted the transaction) on the server.
    uncertain: AtomicBool,
    /// Raw SQL text ran in the transaction: it may have changed session
    /// settings that outlive the transaction, so the session is reset at its end.
    raw_used: AtomicBool,
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

    pub(crate) fn tables(&self) -> &TableChecks {
        &self.tables
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.mode
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
            // SAVEPOINT fails outside a transaction block (SQLSTATE 25P01).
            Ok(()) => match entered
                .client()
                .batch_execute("SAVEPOINT pebble_probe; RELEASE SAVEPOINT pebble_probe")
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::NO_ACTIVE_SQL_TRANSACTION) => {
                    // Whatever happens next on this connection is outside
                    // the transaction: refuse it all, discard the connection.
                    self.closed.store(true, Ordering::Release);
                    Err(Error::TransactionEnded)
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
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

impl Transaction {
    pub(crate) async fn begin(db: &Db) -> Result<Transaction> {
        let tx = Transaction::on(db).await?;
        // From here on, dropping this future (or a failed BEGIN) drops `tx`,
        // which rolls back before the connection can be reused.
        tx.conn().batch("BEGIN").await?;
        Ok(tx)
    }

    /// A transaction whose tenant (for row-level security) is set once,
    /// right after `BEGIN`, in the same round trip.
    pub(crate) async fn begin_in_tenant_context(db: &Db, tenant: &str) -> Result<Transaction> {
        let tx = Transaction::on(db).await?;
        let entered = tx.conn.enter().await?;
        let result = send::begin_in_tenant_context(entered.client(), db.mode(), tenant).await;
        entered.finish(result)?;
        Ok(tx)
    }

    /// A transaction not yet begun on a connection of `db`'s pool.
    async fn on(db: &Db) -> Result<Transaction> {
        Ok(Transaction {
            conn: Arc::new(TxConn {
                gate: tokio::sync::RwLock::new(Slot {
                    state: State::Open,
                    client: Some(db.pool().get().await?),
                }),
                closed: AtomicBool::new(false),
                tables: Arc::clone(db.tables()),
                mode: db.mode(),
                aborted: AtomicBool::new(false),
                uncertain: AtomicBool::new(false),
                raw_used: AtomicBool::new(false),
            }),
        })
    }

    /// Commits. If the commit fails the server has rolled back.
    ///
    /// If a statement of this transaction failed on the server, PostgreSQL
    /// has aborted it and would turn `COMMIT` into a silent rollback; pebble
    /// rolls back and returns [`Error::TransactionAborted`] instead. Waits
    /// for statements still running on the transaction.
    ///
    /// A `commit()` future dropped after it was first polled may or may not
    /// have committed: once `COMMIT` is on the wire, only the server knows.
    /// The connection is then rolled back (a no-op after a commit) before
    /// it is reused, so it never carries the transaction further.
    pub async fn commit(self) -> Result<()> {
        self.finish(true).await
    }

    /// Rolls back. Waits for statements still running on the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.finish(false).await
    }

    async fn finish(self, commit: bool) -> Result<()> {
        let tx = &self.conn;
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
        client.batch_execute(sql).await?;
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

    /// This transaction, confined to tenant `key` (see [`Db::tenant`](crate::Db::tenant)).
    pub fn tenant<K: TenantKey>(&self, key: K) -> TenantDb<K, &Transaction> {
        TenantDb::new(self, key)
    }

    /// This transaction, unconfined and traced (see [`Db::cross_tenant`](crate::Db::cross_tenant)).
    pub fn cross_tenant(&self) -> CrossTenant<&Transaction> {
        CrossTenant::new(self)
    }

    /// Runs SQL text as is inside the transaction; **not** scoped to any
    /// tenant. Text that ends the transaction (`COMMIT`, `ROLLBACK`) is
    /// refused after the fact: the call and every later statement fail with
    /// [`Error::TransactionEnded`] and the connection is discarded. Session
    /// settings the text changes (`SET`, not `SET LOCAL`) are reset when the
    /// transaction ends.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.conn().raw_batch(sql).await
    }

    unscoped_queries!(GlobalModel, Scope::global::<M>());
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

impl Drop for Transaction {
    /// Ends the transaction even while builders made from it are still
    /// held: their statements then fail with [`Error::TransactionEnded`].
    fn drop(&mut self) {
        self.conn.closed.store(true, Ordering::Release);
        match self.conn.gate.try_write() {
            Ok(mut gate) => end_dropped(&mut gate, &self.conn.raw_used),
            Err(_) => {
                // A statement (from a builder on another task) holds the
                // gate: roll back once it is done. Without a runtime, the
                // last holder's drop of `TxConn` rolls back instead.
                let conn = Arc::clone(&self.conn);
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

/// Rolls back a transaction that was not ended by `commit` or `rollback`.
/// After raw SQL text the session may carry settings, so the connection is
/// closed instead, which rolls back on the server.
fn end_dropped(slot: &mut Slot, raw_used: &AtomicBool) {
    if slot.state != State::Ended {
        slot.state = State::Ended;
        if let Some(client) = slot.client.take() {
            if raw_used.load(Ordering::Acquire) {
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

impl Executor for Transaction {}

impl Sealed for Transaction {
    fn conn(&self) -> Conn {
        Conn::Transaction(Arc::clone(&self.conn))
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("aborted", &self.conn.aborted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
