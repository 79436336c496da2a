//! [`Savepoint`]: a nested transaction inside a transaction (`SAVEPOINT`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::conn::tx::TxConn;
use crate::conn::Conn;
use crate::error::Result;
use crate::model::SharedModel;
use crate::scope::{Scope, Strategy};
use crate::sql_type::TenantKey;

use super::rls::RlsTransaction;
use super::tenant::TenantDb;
use super::transaction::Transaction;
use super::{private::Sealed, unscoped_queries, Executor};

/// A savepoint inside a transaction, from `begin()` on a
/// [`Transaction`](crate::Transaction), a tenant transaction, an
/// [`RlsTenantTransaction`](crate::RlsTenantTransaction) or another savepoint.
///
/// Its statements run in the transaction; [`commit`](Savepoint::commit)
/// keeps them (`RELEASE SAVEPOINT`), [`rollback`](Savepoint::rollback)
/// undoes them and nothing before them (`ROLLBACK TO SAVEPOINT`), and so
/// does dropping it without either. A statement that fails inside a
/// savepoint aborts only the savepoint: roll it back and the transaction
/// goes on (its `commit()` rolls back and returns
/// [`Error::SavepointAborted`](crate::Error::SavepointAborted)).
///
/// It borrows its parent mutably, so the parent can neither run statements
/// nor end while it is open, and it cannot outlive the parent. Builders
/// made from it and kept after it ended send nothing
/// ([`Error::TransactionEnded`](crate::Error::TransactionEnded)); a
/// parent's builder made before it began, run while it is open, sends
/// nothing either ([`Error::SavepointOpen`](crate::Error::SavepointOpen)).
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] struct Doc { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, title: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let mut tx = db.tenant(7_i64).begin().await?;
/// tx.insert(Doc { id: 1, org: 0, title: "kept".into() }).exec().await?;
/// let mut inner = tx.begin().await?;            // SAVEPOINT, same tenant
/// inner.insert(Doc { id: 2, org: 0, title: "undone".into() }).exec().await?;
/// let deeper = inner.begin().await?;             // nested again
/// deeper.commit().await?;                        // RELEASE SAVEPOINT
/// inner.rollback().await?;                       // ROLLBACK TO SAVEPOINT: doc 2 is gone
/// tx.commit().await?;                            // doc 1 is stored
/// # Ok(()) }
/// ```
///
/// `T` is the kind of transaction it is in: [`Transaction`], or
/// [`RlsTransaction`](crate::RlsTransaction) (where, as on the transaction, parameterised raw SQL
/// is offered on its tenant handle: the database confines it).
pub struct Savepoint<'a, T = Transaction> {
    conn: Arc<TxConn>,
    strategy: Strategy,
    /// Borrows the parent mutably: the savepoint cannot outlive it, and
    /// the parent cannot be used while the savepoint is open.
    _parent: PhantomData<&'a mut ()>,
    _kind: PhantomData<fn() -> T>,
}

impl<'a, T> Savepoint<'a, T> {
    /// `SAVEPOINT` inside `parent`, whose tenant handles confine by `strategy`.
    pub(crate) async fn open(parent: &'a TxConn, strategy: Strategy) -> Result<Savepoint<'a, T>> {
        Ok(Savepoint {
            conn: Arc::new(parent.savepoint().await?),
            strategy,
            _parent: PhantomData,
            _kind: PhantomData,
        })
    }

    /// Keeps what ran in the savepoint (`RELEASE SAVEPOINT`); it is
    /// committed or rolled back with the transaction. If a statement in it
    /// failed, rolls back to the savepoint instead and returns
    /// [`Error::SavepointAborted`](crate::Error::SavepointAborted).
    pub async fn commit(self) -> Result<()> {
        self.conn.end_savepoint(true).await
    }

    /// Undoes what ran in the savepoint (`ROLLBACK TO SAVEPOINT`), and
    /// only that; the transaction goes on.
    pub async fn rollback(self) -> Result<()> {
        self.conn.end_savepoint(false).await
    }

    /// Begins a savepoint inside this one.
    pub async fn begin(&mut self) -> Result<Savepoint<'_, T>> {
        Savepoint::open(&self.conn, self.strategy).await
    }

    /// This savepoint, confined to tenant `key` (see [`Db::tenant`](crate::Db::tenant)).
    pub fn tenant<K: TenantKey>(&self, key: K) -> TenantDb<K, &Savepoint<'a, T>> {
        TenantDb::new(self, key)
    }
}

// The models a savepoint queries without a tenant are those of its
// transaction: shared ones in a plain transaction (per-tenant ones only in
// a tenant database's, see `handle::database`).
impl Savepoint<'_, Transaction> {
    unscoped_queries!(SharedModel, Scope::plain::<M>());
}

impl Savepoint<'_, RlsTransaction> {
    unscoped_queries!(SharedModel, Scope::plain::<M>());
}

impl<T> Drop for Savepoint<'_, T> {
    /// A savepoint neither committed nor rolled back is rolled back before
    /// anything else runs on its transaction (or with the transaction).
    fn drop(&mut self) {
        self.conn.drop_savepoint();
    }
}

impl<T> Executor for Savepoint<'_, T> {}

impl<T> Sealed for Savepoint<'_, T> {
    fn conn(&self) -> Conn {
        Conn::Transaction(Arc::clone(&self.conn))
    }

    fn strategy(&self) -> Strategy {
        self.strategy
    }
}

impl<T> fmt::Debug for Savepoint<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Savepoint")
            .field("aborted", &self.conn.is_known_aborted())
            .finish_non_exhaustive()
    }
}

impl<'a, K: TenantKey, T> TenantDb<K, Savepoint<'a, T>> {
    /// Keeps what ran in the savepoint (see [`Savepoint::commit`]).
    pub async fn commit(self) -> Result<()> {
        self.into_executor().commit().await
    }

    /// Undoes what ran in the savepoint (see [`Savepoint::rollback`]).
    pub async fn rollback(self) -> Result<()> {
        self.into_executor().rollback().await
    }

    /// Begins a savepoint inside this one, confined to the same tenant.
    pub async fn begin(&mut self) -> Result<TenantDb<K, Savepoint<'_, T>>> {
        let key = self.key().clone();
        let strategy = self.executor().strategy;
        let savepoint = Savepoint::open(&self.executor().conn, strategy).await?;
        Ok(TenantDb::new(savepoint, key))
    }
}
