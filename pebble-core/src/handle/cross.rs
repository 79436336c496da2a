//! [`CrossTenant`]: the explicit, traced way to query across tenants.

use std::fmt;

use crate::model::SingleTableModel;
use crate::scope::Scope;

use super::db::Db;
use super::{unscoped_queries, Executor};

/// Statements with no tenant confinement on the tables every tenant's rows
/// share (models with a `#[tenant_id]` field, and shared ones), for admin
/// tools and analytics. A `#[pebble(per_tenant)]` model does not compile
/// here: no one table holds every tenant's rows of it. Made by `db.cross_tenant()` so that every use is greppable,
/// and every statement is logged through `tracing` at INFO level with
/// target `pebble::cross_tenant`.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] tenant_id: i64 }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let users_in_all_tenants = db.cross_tenant().select::<User>().count().await?;
/// # Ok(()) }
/// ```
pub struct CrossTenant<E = Db> {
    exec: E,
}

impl<E: Executor> CrossTenant<E> {
    pub(crate) fn new(exec: E) -> Self {
        CrossTenant { exec }
    }

    fn conn(&self) -> crate::conn::Conn {
        self.exec.conn()
    }

    unscoped_queries!(SingleTableModel, Scope::cross_tenant::<M>());
}

impl<E> fmt::Debug for CrossTenant<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrossTenant")
    }
}
