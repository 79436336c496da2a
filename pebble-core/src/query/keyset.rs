//! Keyset pagination on a select: `after(column, value)` / `before(column,
//! value)`, the page boundary as a typed condition on a column, so a page
//! costs an index range scan wherever it is, unlike `OFFSET`, which reads
//! and throws away every row before the page.

use crate::column::Column;
use crate::filter::{Cmp, Filter, Node};
use crate::model::Model;
use crate::sql_type::{IntoValue, SqlType};

use super::select::Select;

impl<M: Model> Select<M> {
    /// Keyset pagination: only rows whose `column` is greater than `value`
    /// (`"column" > $n`, AND-ed after the tenant condition like any filter).
    ///
    /// Pair it with `.order_by(column.asc())` and a `limit`: the next page
    /// starts after the last row of this one. The order must match the
    /// boundary (ascending for `after`, descending for `before`) and the
    /// column should be unique (a primary key, or a unique column), or rows
    /// sharing the boundary value are skipped. pebble does not add the
    /// `ORDER BY` itself, so that an order you already gave is not repeated.
    ///
    /// ```
    /// # use pebble::{Db, Model, PoolOptions};
    /// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, title: String }
    /// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
    /// let last_seen = 120_i64; // the id of the last row of the previous page
    /// let page = db.tenant(7_i64)
    ///     .select::<Task>()
    ///     .after(Task::ID, last_seen)
    ///     .order_by(Task::ID.asc())
    ///     .limit(50);
    /// assert_eq!(
    ///     page.to_sql()?,
    ///     r#"SELECT "id", "org", "title" FROM "task" WHERE "org" = $1 AND "id" > $2 ORDER BY "id" ASC LIMIT $3"#
    /// );
    /// # Ok::<(), pebble::Error>(())
    /// ```
    pub fn after<T: SqlType>(self, column: Column<M, T>, value: impl IntoValue<T::Base>) -> Self {
        self.filter(Filter::new(Node::Cmp {
            column: column.name(),
            op: Cmp::Gt,
            value: value.into_value(),
        }))
    }

    /// Keyset pagination backwards: only rows whose `column` is less than
    /// `value`; pair it with `.order_by(column.desc())` (see [`Select::after`]).
    pub fn before<T: SqlType>(self, column: Column<M, T>, value: impl IntoValue<T::Base>) -> Self {
        self.filter(Filter::new(Node::Cmp {
            column: column.name(),
            op: Cmp::Lt,
            value: value.into_value(),
        }))
    }
}
