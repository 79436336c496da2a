//! [`CrossTenant`]: the explicit, traced way to query across tenants.

use std::fmt;

use crate::model::Model;
use crate::scope::Scope;

use super::db::Db;
use super::{unscoped_queries, Executor};

/// Statements on any model with no tenant confinement, for admin tools and
/// analytics. Made by `db.cross_tenant()` so that every use is greppable,
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

    unscoped_queries!(Model, Scope::cross_tenant::<M>());
}

impl<E> fmt::Debug for CrossTenant<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrossTenant")
    }
}
