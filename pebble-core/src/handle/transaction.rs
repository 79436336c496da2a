//! [`Transaction`]: one pooled connection inside `BEGIN` ... `COMMIT`.

use std::fmt;
use std::sync::Arc;

use crate::conn::pool::SharedPool;
use crate::conn::tx::TxConn;
use crate::conn::Conn;
use crate::error::Result;
use crate::model::SharedModel;
use crate::scope::{Scope, Strategy};
use crate::sql_type::TenantKey;

use super::cross::CrossTenant;
use super::savepoint::Savepoint;
use super::schema::SchemaDb;
use super::tenant::TenantDb;
use super::{private::Sealed, unscoped_queries, Executor};

/// A transaction on one pooled connection, from [`Db::begin`](crate::Db::begin).
///
/// Dropped without [`commit`](Transaction::commit), it is rolled back: the
/// connection goes back to the pool only once `ROLLBACK` has succeeded, and
/// is discarded otherwise, so no pooled connection ever carries an open
/// transaction. Builders made from it and still held elsewhere do not keep
/// it open: once the transaction has ended (committed, rolled back or
/// dropped), each of their statements fails with
/// [`Error::TransactionEnded`](crate::Error::TransactionEnded) and sends nothing.
///
/// For a tenant-scoped transaction use
/// [`TenantDb::begin`](crate::TenantDb::begin) or [`Transaction::tenant`].
pub struct Transaction {
    conn: Arc<TxConn>,
}

impl Transaction {
    /// A transaction begun with `begin` (`BEGIN`, or `BEGIN ISOLATION LEVEL
    /// ...` from [`TransactionOptions::begin_sql`]).
    pub(crate) async fn start(pool: &SharedPool, begin: &str) -> Result<Transaction> {
        let tx = Transaction {
            conn: TxConn::on(pool).await?,
        };
        // From here on, dropping this future (or a failed BEGIN) drops `tx`,
        // which rolls back before the connection can be reused.
        tx.conn.begin(begin).await?;
        Ok(tx)
    }

    /// A transaction whose tenant (for row-level security) is set once,
    /// right after `begin` (as for [`Transaction::start`]), in the same round trip.
    pub(crate) async fn begin_in_tenant_context(
        pool: &SharedPool,
        begin: &str,
        tenant: &str,
    ) -> Result<Transaction> {
        let tx = Transaction {
            conn: TxConn::on(pool).await?,
        };
        tx.conn.begin_in_tenant_context(begin, tenant).await?;
        Ok(tx)
    }

    /// Begins a savepoint inside this transaction (`SAVEPOINT`): a nested
    /// transaction whose [`commit`](Savepoint::commit) is `RELEASE
    /// SAVEPOINT` and whose [`rollback`](Savepoint::rollback) (or drop)
    /// undoes only what ran inside it. The transaction is borrowed while
    /// the savepoint is open, so it cannot be used (or committed) around it.
    ///
    /// ```no_run
    /// # use pebble::{Db, Model};
    /// # #[derive(Model)] #[pebble(shared)] struct Plan { #[pebble(primary_key)] code: String, seats: i32 }
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// let mut tx = db.begin().await?;
    /// tx.insert(Plan { code: "team".into(), seats: 10 }).exec().await?;
    /// let attempt = tx.begin().await?;
    /// if attempt.insert(Plan { code: "team".into(), seats: 5 }).exec().await.is_err() {
    ///     attempt.rollback().await?; // the duplicate is undone; "team" with 10 seats stays
    /// } else {
    ///     attempt.commit().await?;
    /// }
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&mut self) -> Result<Savepoint<'_>> {
        Savepoint::open(&self.conn, Strategy::Row).await
    }

    /// Commits. If the commit fails the server has rolled back.
    ///
    /// If a statement of this transaction failed on the server, PostgreSQL
    /// has aborted it and would turn `COMMIT` into a silent rollback; pebble
    /// rolls back and returns [`Error::TransactionAborted`](crate::Error::TransactionAborted) instead. Waits
    /// for statements still running on the transaction.
    ///
    /// A `commit()` future dropped after it was first polled may or may not
    /// have committed: once `COMMIT` is on the wire, only the server knows.
    /// The connection is then rolled back (a no-op after a commit) before
    /// it is reused, so it never carries the transaction further.
    pub async fn commit(self) -> Result<()> {
        self.conn.finish(true).await
    }

    /// Rolls back. Waits for statements still running on the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.conn.finish(false).await
    }

    /// This transaction, confined to tenant `key` (see [`Db::tenant`](crate::Db::tenant)).
    pub fn tenant<K: TenantKey>(&self, key: K) -> TenantDb<K, &Transaction> {
        TenantDb::new(self, key)
    }

    /// This transaction, confined to tenant `id`'s schema (see
    /// [`Db::schema_tenant`](crate::Db::schema_tenant)).
    pub fn schema_tenant(&self, id: &str) -> Result<SchemaDb<&Transaction>> {
        SchemaDb::new(self, id)
    }

    /// This transaction, unconfined and traced (see [`Db::cross_tenant`](crate::Db::cross_tenant)).
    pub fn cross_tenant(&self) -> CrossTenant<&Transaction> {
        CrossTenant::new(self)
    }

    /// Runs SQL text as is inside the transaction; **not** scoped to any
    /// tenant. Text that ends the transaction (`COMMIT`, `ROLLBACK`) is
    /// refused after the fact: the call and every later statement fail with
    /// [`Error::TransactionEnded`](crate::Error::TransactionEnded) and the connection is discarded. Session
    /// settings the text changes (`SET`, not `SET LOCAL`) are reset when the
    /// transaction ends.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.conn().raw_batch(sql).await
    }

    unscoped_queries!(SharedModel, Scope::plain::<M>());
}

impl Transaction {
    /// The transaction's connection, for savepoints inside it.
    pub(crate) fn tx_conn(&self) -> &TxConn {
        &self.conn
    }
}

impl Drop for Transaction {
    /// Ends the transaction even while builders made from it are still
    /// held: their statements then fail with [`Error::TransactionEnded`](crate::Error::TransactionEnded).
    fn drop(&mut self) {
        self.conn.close();
    }
}

impl Executor for Transaction {}

impl Sealed for Transaction {
    fn conn(&self) -> Conn {
        Conn::Transaction(Arc::clone(&self.conn))
    }

    fn strategy(&self) -> Strategy {
        Strategy::Row
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("aborted", &self.conn.is_known_aborted())
            .finish_non_exhaustive()
    }
}
