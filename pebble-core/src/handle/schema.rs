//! [`SchemaDb`]: a handle confined to one tenant's schema (the schema per
//! tenant pattern): every statement names its table `"tenant_<id>"."table"`.

use std::fmt;
use std::sync::Arc;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::ident::tenant_schema;
use crate::model::{HasPrimaryKey, PerTenantModel};
use crate::query::{CopyIn, Delete, Insert, Many, One, Select, Update};
use crate::scope::Scope;

use super::db::Db;
use super::savepoint::Savepoint;
use super::transaction::Transaction;
use super::Executor;

/// A handle confined to one tenant's schema, from
/// [`Db::schema_tenant`](crate::Db::schema_tenant).
///
/// It queries `#[pebble(per_tenant)]` models only, and names their tables
/// with the tenant's schema in the statement text:
/// `SELECT ... FROM "tenant_acme"."tasks"`. pebble never sets
/// `search_path` (a session setting on a pooled connection would carry one
/// tenant's schema into the next request), so a statement cannot reach
/// another schema by what ran before it on the connection. Shared models
/// (`#[pebble(shared)]`) and row-scoped ones (`#[tenant_id]`) do not
/// compile here: use the plain `Db` and `db.tenant(id)` for them.
///
/// `E` is what statements run on: [`Db`] by default, or a [`Transaction`]
/// ([`SchemaTransaction`]) after [`SchemaDb::begin`].
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model, Debug)] #[pebble(table = "tasks", per_tenant)] struct Task { #[pebble(primary_key, default)] id: i64, title: String, done: bool }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let acme = db.schema_tenant("acme")?;
/// assert_eq!(
///     acme.select::<Task>().filter(Task::DONE.eq(false)).to_sql()?,
///     r#"SELECT "id", "title", "done" FROM "tenant_acme"."tasks" WHERE "done" = $1"#
/// );
/// acme.insert(Task { id: 0, title: "ship".into(), done: false }).exec().await?;
/// let tx = acme.begin().await?;
/// tx.update::<Task>().set(Task::DONE, true).filter(Task::TITLE.eq("ship")).exec().await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct SchemaDb<E = Db> {
    exec: E,
    id: Arc<str>,
    schema: Arc<str>,
}

/// A transaction confined to one tenant's schema, from [`SchemaDb::begin`].
pub type SchemaTransaction = SchemaDb<Transaction>;

impl<E: Executor> SchemaDb<E> {
    /// The handle of tenant `id` on `exec`, after validating `id` (the
    /// one validator: see [`validate_tenant_id`](crate::validate_tenant_id)).
    pub(crate) fn new(exec: E, id: &str) -> Result<Self> {
        let schema = tenant_schema(id)?;
        Ok(SchemaDb {
            exec,
            id: id.into(),
            schema: schema.into(),
        })
    }

    /// The tenant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tenant's schema, `tenant_<id>`.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn conn(&self) -> Conn {
        self.exec.conn()
    }

    fn scope<M: PerTenantModel>(&self) -> Scope {
        Scope::schema::<M>(&self.schema)
    }

    /// A `SELECT` on this tenant's table of `M`.
    pub fn select<M: PerTenantModel>(&self) -> Select<M> {
        Select::new(self.conn(), self.scope::<M>())
    }

    /// A `SELECT` of the row of `M` whose primary key is `key`, in this
    /// tenant's table: finish with `.one()` or `.optional()`.
    pub fn find<M: PerTenantModel + HasPrimaryKey>(&self, key: M::Key) -> Select<M> {
        Select::new(self.conn(), self.scope::<M>()).by_key(key)
    }

    /// An `INSERT` of one row into this tenant's table.
    pub fn insert<M: PerTenantModel>(&self, row: M) -> Insert<M, One> {
        Insert::new(self.conn(), self.scope::<M>(), [Ok(row)])
    }

    /// An `INSERT` of many rows into this tenant's table, in one statement.
    pub fn insert_many<M: PerTenantModel>(
        &self,
        rows: impl IntoIterator<Item = M>,
    ) -> Insert<M, Many> {
        Insert::new(self.conn(), self.scope::<M>(), rows.into_iter().map(Ok))
    }

    /// A bulk load of `rows` into this tenant's table with binary `COPY`
    /// (see [`CopyIn`]), named `"tenant_<id>"."table"` like every other
    /// statement of the handle.
    pub fn copy_in<M: PerTenantModel>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        CopyIn::new(self.conn(), self.scope::<M>(), rows.into_iter().map(Ok))
    }

    /// An `UPDATE` on this tenant's table of `M`: add `.set(column, value)` and filters.
    pub fn update<M: PerTenantModel>(&self) -> Update<M> {
        Update::new(self.conn(), self.scope::<M>())
    }

    /// Writes every column of `row` (but its key) to the row with the same
    /// primary key in this tenant's table; returns the stored row, or
    /// [`Error::NotFound`] if this tenant has none.
    pub async fn update_model<M: PerTenantModel + HasPrimaryKey>(&self, row: &M) -> Result<M> {
        Update::of_row(self.conn(), self.scope::<M>(), row)
            .returning()
            .await?
            .pop()
            .ok_or(Error::NotFound { table: M::TABLE })
    }

    /// A `DELETE` on this tenant's table of `M`.
    pub fn delete<M: PerTenantModel>(&self) -> Delete<M> {
        Delete::new(self.conn(), self.scope::<M>())
    }
}

impl SchemaDb<Db> {
    /// Starts a transaction whose statements are confined to this schema.
    pub async fn begin(&self) -> Result<SchemaTransaction> {
        Ok(SchemaDb {
            exec: self.exec.begin().await?,
            id: Arc::clone(&self.id),
            schema: Arc::clone(&self.schema),
        })
    }
}

impl SchemaDb<Transaction> {
    /// Commits the transaction (see [`Transaction::commit`]).
    pub async fn commit(self) -> Result<()> {
        self.exec.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<()> {
        self.exec.rollback().await
    }

    /// Begins a savepoint confined to the same schema (see [`Savepoint`]):
    /// `commit` keeps what ran in it, `rollback` (or dropping it) undoes
    /// that and nothing before it.
    ///
    /// ```no_run
    /// # use pebble::{Db, Model};
    /// # #[derive(Model, Debug)] #[pebble(table = "tasks", per_tenant)] struct Task { #[pebble(primary_key)] id: i64, title: String }
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// let mut tx = db.schema_tenant("acme")?.begin().await?;
    /// tx.insert(Task { id: 1, title: "kept".into() }).exec().await?;
    /// let inner = tx.begin().await?;                 // SAVEPOINT
    /// inner.insert(Task { id: 2, title: "undone".into() }).exec().await?;
    /// inner.rollback().await?;                       // task 2 is gone
    /// tx.commit().await?;                            // task 1 is stored
    /// # Ok(()) }
    /// ```
    pub async fn begin(&mut self) -> Result<SchemaDb<Savepoint<'_>>> {
        let (id, schema) = (Arc::clone(&self.id), Arc::clone(&self.schema));
        Ok(SchemaDb {
            exec: self.exec.begin().await?,
            id,
            schema,
        })
    }
}

impl<'a, T> SchemaDb<Savepoint<'a, T>> {
    /// Keeps what ran in the savepoint (see [`Savepoint::commit`]).
    pub async fn commit(self) -> Result<()> {
        self.exec.commit().await
    }

    /// Undoes what ran in the savepoint (see [`Savepoint::rollback`]).
    pub async fn rollback(self) -> Result<()> {
        self.exec.rollback().await
    }

    /// Begins a savepoint inside this one, confined to the same schema.
    pub async fn begin(&mut self) -> Result<SchemaDb<Savepoint<'_, T>>> {
        let (id, schema) = (Arc::clone(&self.id), Arc::clone(&self.schema));
        Ok(SchemaDb {
            exec: self.exec.begin().await?,
            id,
            schema,
        })
    }
}

impl<E: Clone> Clone for SchemaDb<E> {
    fn clone(&self) -> Self {
        SchemaDb {
            exec: self.exec.clone(),
            id: Arc::clone(&self.id),
            schema: Arc::clone(&self.schema),
        }
    }
}

impl<E> fmt::Debug for SchemaDb<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaDb")
            .field("tenant", &self.id)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}
