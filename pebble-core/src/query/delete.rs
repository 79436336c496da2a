use std::fmt;

use sea_query::{DeleteStatement, Query, Value};
use sea_query_postgres::PostgresValue;

use crate::conn::{Conn, Statement};
use crate::error::Result;
use crate::filter::Filter;
use crate::model::Model;
use crate::scope::Scope;
use crate::shape::{tag, KeySink};

use super::core::{all_columns, columns_key, Core, Filtered, Filters, Returns};
use super::shape_cache::{tenant_value, Plan};

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
    core: Core<M, DeletePlan>,
}

impl<M: Model> Delete<M> {
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        Delete {
            core: Core::new(conn, scope),
        }
    }

    /// Only deletes rows matching `filter`. Several calls are AND-ed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.core.and_where(filter.into_node());
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
    pub async fn exec(mut self) -> Result<u64> {
        let stmt = self.core.take_statement()?;
        self.core.execute(&stmt).await
    }

    /// Runs the delete; returns the removed rows.
    pub async fn returning(self) -> Result<Vec<M>> {
        self.core.returning().await
    }
}

/// What a delete records while its shape can be keyed.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeletePlan {
    filters: Filters,
    returning: bool,
}

impl Filtered for DeletePlan {
    fn filters(&mut self) -> &mut Filters {
        &mut self.filters
    }
}

impl Returns for DeletePlan {
    fn set_returning(&mut self) {
        self.returning = true;
    }
}

impl Plan for DeletePlan {
    type Tree = DeleteStatement;

    fn tree<M: Model>(&self, scope: &Scope) -> DeleteStatement {
        let mut stmt = Query::delete();
        stmt.from_table(scope.table_ref::<M>());
        scope.confine(&mut stmt);
        self.filters.apply(&mut stmt);
        if self.returning {
            stmt.returning(all_columns::<M>());
        }
        stmt
    }

    fn key<M: Model>(&self, key: &mut impl KeySink) {
        key.num(tag::DELETE);
        self.filters.key(key);
        key.num(u64::from(self.returning));
        if self.returning {
            columns_key(key);
        }
    }

    fn values(self, tenant: Option<&Value>) -> Vec<PostgresValue> {
        let mut values = Vec::with_capacity(self.filters.len() + 1);
        let out = &mut values;
        tenant_value(tenant, out);
        self.filters.values(out);
        values
    }
}

impl<M> fmt::Debug for Delete<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(f, "Delete").finish()
    }
}
