//! [`Transaction`]: one pooled connection inside `BEGIN` ... `COMMIT`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object, Pool};

use crate::cross::CrossTenant;
use crate::error::{Error, Result};
use crate::exec::Conn;
use crate::handle::{private::Sealed, unscoped_queries, Executor};
use crate::model::GlobalModel;
use crate::scope::Scope;
use crate::sql_type::TenantKey;
use crate::tenant::TenantDb;

/// A transaction on one pooled connection, from [`Db::begin`](crate::Db::begin).
///
/// Dropped without [`commit`](Transaction::commit), it is rolled back: the
/// connection goes back to the pool only once `ROLLBACK` has succeeded, and
/// is discarded otherwise, so no pooled connection ever carries an open
/// transaction. For a tenant-scoped transaction use
/// [`TenantDb::begin`](crate::TenantDb::begin) or [`Transaction::tenant`].
pub struct Transaction {
    conn: Arc<TxConn>,
}

/// The connection of a transaction, shared by the builders made from it.
/// Public only inside this private module.
pub struct TxConn {
    // `None` only while being handed to the background rollback in `drop`.
    client: Option<Object>,
    /// Statements hold it shared while they run; `commit` / `rollback` take
    /// it exclusively, so no statement can straddle the end of the transaction.
    gate: tokio::sync::RwLock<State>,
    /// A statement failed on the server, which aborts the whole transaction.
    aborted: AtomicBool,
    /// A statement was dropped before its outcome was known: it may have
    /// failed (and aborted the transaction) on the server.
    uncertain: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Open,
    /// `COMMIT` / `ROLLBACK` was sent but not confirmed.
    Ending,
    /// Ended cleanly: the connection can go back to the pool as is.
    Ended,
}

impl TxConn {
    /// Admission of one statement: waits while the transaction is ending and
    /// refuses once it has.
    pub(crate) async fn enter(&self) -> Result<Entered<'_>> {
        let gate = self.gate.read().await;
        match (&self.client, *gate) {
            (Some(client), State::Open) => Ok(Entered {
                tx: self,
                client,
                _gate: gate,
                done: false,
            }),
            _ => Err(Error::InvalidQuery("the transaction has already ended")),
        }
    }
}

/// One statement running inside a transaction.
pub(crate) struct Entered<'a> {
    tx: &'a TxConn,
    client: &'a ClientWrapper,
    _gate: tokio::sync::RwLockReadGuard<'a, State>,
    done: bool,
}

impl Entered<'_> {
    pub(crate) fn client(&self) -> &ClientWrapper {
        self.client
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
    pub(crate) async fn begin(pool: &Pool) -> Result<Transaction> {
        let tx = Transaction {
            conn: Arc::new(TxConn {
                client: Some(pool.get().await?),
                gate: tokio::sync::RwLock::new(State::Open),
                aborted: AtomicBool::new(false),
                uncertain: AtomicBool::new(false),
            }),
        };
        // From here on, dropping this future (or a failed BEGIN) drops `tx`,
        // which rolls back before the connection can be reused.
        tx.batch_execute("BEGIN").await?;
        Ok(tx)
    }

    /// Commits. If the commit fails the server has rolled back.
    ///
    /// If a statement of this transaction failed on the server, PostgreSQL
    /// has aborted it and would turn `COMMIT` into a silent rollback; pebble
    /// rolls back and returns [`Error::TransactionAborted`] instead. Waits
    /// for statements still running on the transaction.
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
        let client = match (&tx.client, *gate) {
            (Some(client), State::Open) => client,
            _ => return Err(Error::InvalidQuery("the transaction has already ended")),
        };
        // Builders still holding this transaction must not start a statement
        // that would run after it, outside any transaction.
        *gate = State::Ending;
        let aborted = commit && is_aborted(tx, client).await;
        let sql = if commit && !aborted {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        client.batch_execute(sql).await?;
        // If this future is dropped or fails before here, dropping the
        // connection rolls back before it is reused.
        *gate = State::Ended;
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

    /// Runs SQL text as is inside the transaction; **not** scoped to any tenant.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.conn().batch(sql).await
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

impl Drop for TxConn {
    fn drop(&mut self) {
        if *self.gate.get_mut() != State::Ended {
            if let Some(client) = self.client.take() {
                roll_back_in_background(client);
            }
        }
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
