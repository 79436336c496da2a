//! [`Transaction`]: one pooled connection inside `BEGIN` ... `COMMIT`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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
    state: AtomicU8,
    /// A statement failed on the server, which aborts the whole transaction.
    aborted: AtomicBool,
}

const OPEN: u8 = 0;
/// `COMMIT` / `ROLLBACK` is under way: no new statement may start.
const ENDING: u8 = 1;
/// Ended cleanly: the connection can go back to the pool as is.
const ENDED: u8 = 2;

impl TxConn {
    /// The connection, if the transaction is still open.
    pub(crate) fn client(&self) -> Result<&ClientWrapper> {
        match (&self.client, self.state.load(Ordering::Acquire)) {
            (Some(client), OPEN) => Ok(client),
            _ => Err(Error::InvalidQuery("the transaction has already ended")),
        }
    }

    /// Notes a statement's outcome: a server-side error aborts the transaction.
    pub(crate) fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::Database { .. } | Error::Connection(_)) = &result {
            self.aborted.store(true, Ordering::Release);
        }
        result
    }
}

impl Transaction {
    pub(crate) async fn begin(pool: &Pool) -> Result<Transaction> {
        let client = pool.get().await?;
        client.batch_execute("BEGIN").await?;
        Ok(Transaction {
            conn: Arc::new(TxConn {
                client: Some(client),
                state: AtomicU8::new(OPEN),
                aborted: AtomicBool::new(false),
            }),
        })
    }

    /// Commits. If the commit fails the server has rolled back.
    ///
    /// If a statement of this transaction failed on the server, PostgreSQL
    /// has aborted it and would turn `COMMIT` into a silent rollback; pebble
    /// rolls back and returns [`Error::TransactionAborted`] instead.
    pub async fn commit(self) -> Result<()> {
        if self.conn.aborted.load(Ordering::Acquire) {
            self.finish("ROLLBACK").await?;
            return Err(Error::TransactionAborted);
        }
        self.finish("COMMIT").await
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn finish(self, sql: &str) -> Result<()> {
        let client = self.conn.client()?;
        // Builders still holding this transaction must not start a statement
        // that would run after it, outside any transaction.
        self.conn.state.store(ENDING, Ordering::Release);
        let result = client.batch_execute(sql).await;
        if result.is_ok() {
            // If the future is dropped or fails before this, `Drop` rolls back
            // before the connection is reused.
            self.conn.state.store(ENDED, Ordering::Release);
        }
        Ok(result?)
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

    unscoped_queries!(GlobalModel, Scope::Global);
}

impl Drop for TxConn {
    fn drop(&mut self) {
        if *self.state.get_mut() != ENDED {
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
            .field("open", &(self.conn.state.load(Ordering::Relaxed) == OPEN))
            .finish()
    }
}
