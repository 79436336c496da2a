//! The user-facing handles: [`Db`](db::Db), [`Transaction`](transaction::Transaction),
//! [`TenantDb`](tenant::TenantDb), [`CrossTenant`](cross::CrossTenant) and the
//! row-level security handles ([`rls`]); and what they share: the sealed
//! [`Executor`] trait (a pool or a transaction, and the strategy its tenant
//! handles confine by) and the query methods of unscoped handles.

pub(crate) mod bulk;
pub(crate) mod cross;
pub(crate) mod database;
pub(crate) mod db;
pub(crate) mod login;
mod login_pools;
pub(crate) mod rls;
pub(crate) mod savepoint;
pub(crate) mod schema;
pub(crate) mod tenant;
pub(crate) mod transaction;

/// Something statements run on: a [`Db`](crate::Db) or an
/// [`RlsDb`](crate::RlsDb) (a pooled connection per statement), a
/// [`Transaction`](crate::Transaction) or an
/// [`RlsTransaction`](crate::RlsTransaction) (its one connection), or a
/// reference to one. Sealed: which strategy a tenant handle confines by
/// comes from its executor, and only pebble's executors exist.
pub trait Executor: private::Sealed {}

pub(crate) mod private {
    use crate::conn::Conn;
    use crate::scope::Strategy;

    pub trait Sealed {
        /// Where statements run.
        fn conn(&self) -> Conn;
        /// How tenant handles on it confine their statements. Required of
        /// every executor: no strategy is picked by default.
        fn strategy(&self) -> Strategy;
    }
}

impl<E: Executor> Executor for &E {}

impl<E: Executor> private::Sealed for &E {
    fn conn(&self) -> crate::conn::Conn {
        (**self).conn()
    }

    fn strategy(&self) -> crate::scope::Strategy {
        (**self).strategy()
    }
}

/// The query methods of a handle without a tenant: `$bound` is the model
/// bound (`SharedModel` for `Db` and `Transaction`, `GlobalModel` for a
/// `TenantDatabase`, `SingleTableModel` for `CrossTenant`) and `$scope`
/// the confinement of its statements.
macro_rules! unscoped_queries {
    ($bound:path, $scope:expr) => {
        /// A `SELECT` on `M`.
        pub fn select<M: $bound>(&self) -> $crate::query::Select<M> {
            $crate::query::Select::new(self.conn(), $scope)
        }

        /// A `SELECT` of the row of `M` whose primary key is `key`:
        /// finish with `.one()` or `.optional()`.
        pub fn find<M: $bound + $crate::HasPrimaryKey>(
            &self,
            key: M::Key,
        ) -> $crate::query::Select<M> {
            $crate::query::Select::new(self.conn(), $scope).by_key(key)
        }

        /// An `INSERT` of one row: a model, or its generated `New*` value
        /// (see [`Insertable`]($crate::Insertable)).
        pub fn insert<I>(&self, row: I) -> $crate::query::Insert<I::Model, $crate::query::One>
        where
            I: $crate::Insertable,
            I::Model: $bound,
        {
            self.insert_rows([row.into_model()])
        }

        /// An `INSERT` of many rows: models, or their generated `New*`
        /// values; one statement, or past PostgreSQL's 65,535 bind
        /// parameters several in one transaction.
        pub fn insert_many<I>(
            &self,
            rows: impl IntoIterator<Item = I>,
        ) -> $crate::query::Insert<I::Model, $crate::query::Many>
        where
            I: $crate::Insertable,
            I::Model: $bound,
        {
            self.insert_rows(rows.into_iter().map($crate::Insertable::into_model))
        }

        /// An insert of `rows`, unchecked (an unscoped handle stamps nothing).
        fn insert_rows<M: $bound, R>(
            &self,
            rows: impl IntoIterator<Item = M>,
        ) -> $crate::query::Insert<M, R> {
            $crate::query::Insert::new(self.conn(), $scope, rows.into_iter().map(Ok))
        }

        /// An `UPDATE` on `M`: add `.set(column, value)` and filters.
        pub fn update<M: $bound>(&self) -> $crate::query::Update<M> {
            $crate::query::Update::new(self.conn(), $scope)
        }

        /// Writes every column of `row` to the stored row with the same
        /// primary key; returns the stored row, or [`Error::NotFound`]($crate::Error::NotFound).
        pub async fn update_model<M: $bound + $crate::HasPrimaryKey>(
            &self,
            row: &M,
        ) -> $crate::Result<M> {
            $crate::query::Update::of_row(self.conn(), $scope, row)
                .returning()
                .await?
                .pop()
                .ok_or($crate::Error::NotFound { table: M::TABLE })
        }

        /// A `DELETE` on `M`.
        pub fn delete<M: $bound>(&self) -> $crate::query::Delete<M> {
            $crate::query::Delete::new(self.conn(), $scope)
        }
    };
}

pub(crate) use unscoped_queries;
