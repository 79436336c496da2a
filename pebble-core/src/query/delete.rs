use std::fmt;

use sea_query::{DeleteStatement, Query};

use crate::conn::{Conn, Statement};
use crate::error::Result;
use crate::filter::Filter;
use crate::model::Model;
use crate::scope::Scope;

use super::core::Core;

/// A `DELETE` on model `M`, from `delete::<M>()`.
///
/// ```no_run
/// # use pebble::{Model, Db};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] tenant_id: i64, age: i32 }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let removed = db.tenant(7_i64).delete::<User>().filter(User::AGE.lt(13)).exec().await?;
/// # Ok(()) }
/// ```
#[must_use = "a delete does nothing until it is run with `.exec()` or `.returning()`"]
pub struct Delete<M> {
    core: Core<M, DeleteStatement>,
}

impl<M: Model> Delete<M> {
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        let mut stmt = Query::delete();
        stmt.from_table(scope.table_ref::<M>());
        Delete {
            core: Core::confined(conn, scope, stmt),
        }
    }

    /// Only deletes rows matching `filter`. Several calls are AND-ed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.core.filter(filter);
        self
    }

    /// The statement `exec()` sends: SQL text and bind values. `returning()`
    /// sends the same statement followed by `RETURNING` and every column.
    ///
    /// An error when nothing would be sent, saying why: the error `exec()`
    /// returns ([`Error::InvalidTenantId`](crate::Error::InvalidTenantId) on
    /// a handle keyed by the unset value).
    pub fn build(&self) -> Result<Statement> {
        self.core.build()
    }

    /// The SQL text of [`Delete::build`], with `$n` placeholders, or why nothing would be sent.
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    /// Runs the delete; returns the number of rows removed.
    pub async fn exec(self) -> Result<u64> {
        self.core.execute(&self.build()?).await
    }

    /// Runs the delete; returns the removed rows.
    pub async fn returning(self) -> Result<Vec<M>> {
        self.core.returning().await
    }
}

impl<M> fmt::Debug for Delete<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(f, "Delete").finish()
    }
}
