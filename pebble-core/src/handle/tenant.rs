//! [`TenantDb`]: a handle confined to one tenant (the row / shared-table pattern).

use std::fmt;

use crate::conn::options::TransactionOptions;
use crate::error::{Error, Refusal, Result};
use crate::insertable::Insertable;
use crate::model::{HasPrimaryKey, ScopedBy};
use crate::query::{Delete, Insert, Many, One, Select, Update};
use crate::scope::Scope;
use crate::sql_type::TenantKey;

use super::db::Db;
use super::savepoint::Savepoint;
use super::transaction::Transaction;
use super::Executor;

/// A handle confined to one tenant, from [`Db::tenant`].
///
/// It only queries models whose `#[tenant_id]` field has type `K`, and:
///
/// - every select, count, exists, update and delete runs with
///   `WHERE tenant_column = $1 AND (your filters)`, so no filter (an `OR`
///   included) can reach another tenant's rows;
/// - every inserted row is stamped with the tenant, and a row already
///   carrying another tenant is refused with [`Error::TenantMismatch`]
///   before anything is sent;
/// - an upsert only ever updates (and returns) this tenant's rows;
/// - the tenant column cannot be assigned, so no row changes tenant.
///
/// `E` is what statements run on: [`Db`] by default, or a [`Transaction`]
/// ([`TenantTransaction`]) after [`TenantDb::begin`].
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # use uuid::Uuid;
/// # #[derive(Model, Clone)] struct User { #[pebble(primary_key, default)] id: Uuid, #[tenant_id] tenant_id: Uuid, name: String, age: i32 }
/// # async fn demo(db: Db, acme: Uuid) -> pebble::Result<()> {
/// let tenant = db.tenant(acme);
/// let bob = tenant
///     .insert(User { id: Uuid::nil(), tenant_id: Uuid::nil(), name: "bob".into(), age: 41 })
///     .returning()
///     .await?;
/// assert_eq!(bob.tenant_id, acme); // stamped
/// let n = tenant
///     .select::<User>()
///     .filter(User::AGE.gt(40).or(User::NAME.eq("alice")))
///     .count() // WHERE "tenant_id" = $1 AND ("age" > $2 OR "name" = $3)
///     .await?;
/// # Ok(()) }
/// ```
pub struct TenantDb<K, E = Db> {
    exec: E,
    key: K,
}

/// A transaction confined to one tenant, from [`TenantDb::begin`].
pub type TenantTransaction<K> = TenantDb<K, Transaction>;

impl<K: TenantKey, E: Executor> TenantDb<K, E> {
    pub(crate) fn new(exec: E, key: K) -> Self {
        TenantDb { exec, key }
    }

    /// The tenant this handle is confined to.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// What statements run on.
    pub(crate) fn executor(&self) -> &E {
        &self.exec
    }

    pub(crate) fn into_executor(self) -> E {
        self.exec
    }

    pub(super) fn scope<M: ScopedBy<K>>(&self) -> Scope {
        Scope::tenant::<M>(&self.key, self.exec.strategy())
    }

    /// A `SELECT` on this tenant's rows of `M`.
    pub fn select<M: ScopedBy<K>>(&self) -> Select<M> {
        Select::new(self.exec.conn(), self.scope::<M>())
    }

    /// A `SELECT` of this tenant's row of `M` with primary key `key`:
    /// finish with `.one()` or `.optional()`. Another tenant's row with that
    /// key is not found.
    pub fn find<M: ScopedBy<K> + HasPrimaryKey>(&self, key: M::Key) -> Select<M> {
        Select::new(self.exec.conn(), self.scope::<M>()).by_key(key)
    }

    /// An `INSERT` of one row, stamped with this tenant: a model, or its
    /// generated `New*` value (see [`Insertable`]).
    pub fn insert<I>(&self, row: I) -> Insert<I::Model, One>
    where
        I: Insertable,
        I::Model: ScopedBy<K>,
    {
        let scope = self.scope::<I::Model>();
        Insert::new(self.exec.conn(), scope, [self.stamp(row.into_model())])
    }

    /// An `INSERT` of many rows, each stamped with this tenant: models, or
    /// their generated `New*` values; one statement, or past PostgreSQL's
    /// 65,535 bind parameters several in one transaction (see
    /// [`Insert::statements`]). If any row carries another tenant, none is
    /// written.
    pub fn insert_many<I>(&self, rows: impl IntoIterator<Item = I>) -> Insert<I::Model, Many>
    where
        I: Insertable,
        I::Model: ScopedBy<K>,
    {
        let rows = rows.into_iter().map(|row| self.stamp(row.into_model()));
        Insert::new(self.exec.conn(), self.scope::<I::Model>(), rows)
    }

    /// An `UPDATE` on this tenant's rows of `M`.
    pub fn update<M: ScopedBy<K>>(&self) -> Update<M> {
        Update::new(self.exec.conn(), self.scope::<M>())
    }

    /// Writes every column of `row` (but its key and tenant) to this
    /// tenant's stored row with the same primary key; returns the stored
    /// row. A `row` whose tenant field is unset (nil UUID, `0`, empty
    /// string) is read as this tenant's, as on insert, also when the tenant
    /// column is part of the primary key. [`Error::NotFound`] if this
    /// tenant has no such row (even if another tenant does);
    /// [`Error::TenantMismatch`] if `row` carries another tenant.
    pub async fn update_model<M: ScopedBy<K> + HasPrimaryKey>(&self, row: &M) -> Result<M> {
        self.check(row)?;
        Update::of_row(self.exec.conn(), self.scope::<M>(), row)
            .returning()
            .await?
            .pop()
            .ok_or(Error::NotFound { table: M::TABLE })
    }

    /// A `DELETE` on this tenant's rows of `M`.
    pub fn delete<M: ScopedBy<K>>(&self) -> Delete<M> {
        Delete::new(self.exec.conn(), self.scope::<M>())
    }

    /// Refuses a row that names another tenant.
    fn check<M: ScopedBy<K>>(&self, row: &M) -> Result<(), Refusal> {
        let found = row.tenant_key();
        if found.is_unset() || *found == self.key {
            Ok(())
        } else {
            Err(Refusal::tenant_mismatch(M::TABLE, &self.key, found))
        }
    }

    /// Stamps an unset tenant with this tenant; refuses another tenant.
    pub(super) fn stamp<M: ScopedBy<K>>(&self, mut row: M) -> Result<M, Refusal> {
        self.check(&row)?;
        if row.tenant_key().is_unset() {
            row.set_tenant_key(self.key.clone());
        }
        Ok(row)
    }
}

impl<K: TenantKey> TenantDb<K, Db> {
    /// Starts a transaction confined to this tenant.
    ///
    /// ```no_run
    /// # use pebble::{Db, Model};
    /// # #[derive(Model)] struct Doc { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, title: String }
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// let tx = db.tenant(7_i64).begin().await?;
    /// tx.insert(Doc { id: 1, org: 0, title: "draft".into() }).exec().await?;
    /// tx.update::<Doc>().set(Doc::TITLE, "final").filter(Doc::ID.eq(1)).exec().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> Result<TenantTransaction<K>> {
        Ok(TenantDb::new(self.exec.begin().await?, self.key.clone()))
    }

    /// Starts a transaction confined to this tenant with an isolation
    /// level and access mode (see [`Db::begin_with`]).
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<TenantTransaction<K>> {
        Ok(TenantDb::new(
            self.exec.begin_with(options).await?,
            self.key.clone(),
        ))
    }
}

impl<K> TenantDb<K, Transaction> {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        self.exec.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        self.exec.rollback().await
    }
    /// Begins a savepoint in this transaction, confined to the same tenant
    /// (see [`Transaction::begin`]).
    pub async fn begin(&mut self) -> Result<TenantDb<K, Savepoint<'_>>>
    where
        K: TenantKey,
    {
        let key = self.key.clone();
        Ok(TenantDb::new(self.exec.begin().await?, key))
    }
}

impl<K: Clone, E: Clone> Clone for TenantDb<K, E> {
    fn clone(&self) -> Self {
        TenantDb {
            exec: self.exec.clone(),
            key: self.key.clone(),
        }
    }
}

impl<K: fmt::Debug, E> fmt::Debug for TenantDb<K, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDb")
            .field("tenant", &self.key)
            .finish()
    }
}
