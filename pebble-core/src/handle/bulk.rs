//! `copy_in` on the handles: bulk loads through binary `COPY` (see [`CopyIn`]).

use crate::error::Refusal;
use crate::model::{ScopedBy, SharedModel};
use crate::query::CopyIn;
use crate::scope::Scope;
use crate::sql_type::TenantKey;

use super::db::Db;
use super::private::Sealed;
use super::tenant::TenantDb;
use super::transaction::Transaction;
use super::Executor;

impl<K: TenantKey, E: Executor> TenantDb<K, E> {
    /// A bulk load of `rows` with binary `COPY` (see [`CopyIn`]), each row
    /// stamped with this tenant; a row carrying another tenant refuses the
    /// whole load, nothing written. Under row-level security it is sent as
    /// chunked `INSERT`s in one transaction instead.
    pub fn copy_in<M: ScopedBy<K>>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        let rows = rows.into_iter().map(|row| self.stamp(row));
        CopyIn::new(self.executor().conn(), self.scope::<M>(), rows)
    }
}

impl Db {
    /// A bulk load of rows of a shared model (`#[pebble(shared)]`), with binary
    /// `COPY` (see [`CopyIn`]).
    pub fn copy_in<M: SharedModel>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        CopyIn::new(
            self.conn(),
            Scope::plain::<M>(),
            rows.into_iter().map(Ok::<M, Refusal>),
        )
    }
}

impl Transaction {
    /// A bulk load inside this transaction (see [`Db::copy_in`]).
    pub fn copy_in<M: SharedModel>(&self, rows: impl IntoIterator<Item = M>) -> CopyIn<M> {
        CopyIn::new(
            self.conn(),
            Scope::plain::<M>(),
            rows.into_iter().map(Ok::<M, Refusal>),
        )
    }
}
