//! Keyset pagination on a select: `after(key, value)` / `before(key,
//! value)`, the page boundary as a typed condition on a column or a tuple
//! of columns, so a page costs an index range scan wherever it is, unlike
//! `OFFSET`, which reads and throws away every row before the page.

use crate::column::Column;
use crate::filter::{Cmp, Filter, Node};
use crate::model::Model;
use crate::sql_type::{IntoValue, SqlType};

use super::select::Select;

/// A page boundary for [`Select::after`] and [`Select::before`]: one
/// column of `M` with a value of its type, or a tuple of two or three
/// columns of `M` with a tuple of values of theirs, compared as a row
/// (`("pages", "id") > ($2, $3)`: by the first column, then the next on a
/// tie, which is what `ORDER BY "pages", "id"` means).
///
/// Implemented by pebble for those shapes only (sealed); a column of
/// another model, or values of other types, do not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a page boundary of `{M}` with values `{V}`",
    label = "not a column of `{M}` with a value of its type, or a tuple of 2 or 3 of them",
    note = "a keyset is one column of the selected model with a value of its type, or a tuple of two or three of its columns with a tuple of values of theirs"
)]
pub trait Keyset<M, V>: sealed::Boundary<M, V> {}

impl<M, V, K: sealed::Boundary<M, V>> Keyset<M, V> for K {}

mod sealed {
    use super::*;

    /// The condition itself, kept out of the public trait: only pebble
    /// makes page boundaries.
    pub trait Boundary<M, V> {
        fn condition(self, values: V, after: bool) -> Filter<M>;
    }

    impl<M: Model, T: SqlType, V: IntoValue<T::Base>> Boundary<M, V> for Column<M, T> {
        fn condition(self, value: V, after: bool) -> Filter<M> {
            Filter::new(Node::Cmp {
                column: self.name(),
                op: if after { Cmp::Gt } else { Cmp::Lt },
                value: value.into_value(),
            })
        }
    }

    impl<M: Model, A: SqlType, B: SqlType, VA: IntoValue<A::Base>, VB: IntoValue<B::Base>>
        Boundary<M, (VA, VB)> for (Column<M, A>, Column<M, B>)
    {
        fn condition(self, (va, vb): (VA, VB), after: bool) -> Filter<M> {
            Filter::new(Node::Row {
                columns: vec![self.0.name(), self.1.name()],
                greater: after,
                values: vec![va.into_value(), vb.into_value()],
            })
        }
    }

    impl<
            M: Model,
            A: SqlType,
            B: SqlType,
            C: SqlType,
            VA: IntoValue<A::Base>,
            VB: IntoValue<B::Base>,
            VC: IntoValue<C::Base>,
        > Boundary<M, (VA, VB, VC)> for (Column<M, A>, Column<M, B>, Column<M, C>)
    {
        fn condition(self, (va, vb, vc): (VA, VB, VC), after: bool) -> Filter<M> {
            Filter::new(Node::Row {
                columns: vec![self.0.name(), self.1.name(), self.2.name()],
                greater: after,
                values: vec![va.into_value(), vb.into_value(), vc.into_value()],
            })
        }
    }
}

impl<M: Model> Select<M> {
    /// Keyset pagination: only rows whose `key` is greater than `value`
    /// (`"column" > $n`, AND-ed after the tenant condition like any filter).
    /// The key is one column, or a tuple of two or three compared as a row
    /// (see [`Keyset`]): `(Task::DUE, Task::ID)` pages through a column
    /// that is not unique, with the primary key breaking ties.
    ///
    /// Pair it with an `.order_by` on the same columns, ascending, and a
    /// `limit`: the next page starts after the last row of this one. The
    /// order must match the boundary (ascending for `after`, descending for
    /// `before`), the key should be unique (end it with the primary key), or
    /// rows sharing the boundary value are skipped, and its columns should
    /// be NOT NULL (a NULL compares as unknown: the row is on no page).
    /// pebble does not add the `ORDER BY` itself, so that an order you
    /// already gave is not repeated.
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
    ///
    /// // A column that is not unique, with the key breaking ties.
    /// let next = db.tenant(7_i64)
    ///     .select::<Task>()
    ///     .after((Task::TITLE, Task::ID), ("draft", last_seen))
    ///     .order_by(Task::TITLE.asc())
    ///     .order_by(Task::ID.asc())
    ///     .limit(50);
    /// assert_eq!(
    ///     next.to_sql()?,
    ///     r#"SELECT "id", "org", "title" FROM "task" WHERE "org" = $1 AND ("title", "id") > ($2, $3) ORDER BY "title" ASC, "id" ASC LIMIT $4"#
    /// );
    /// # Ok::<(), pebble::Error>(())
    /// ```
    pub fn after<K: Keyset<M, V>, V>(self, key: K, value: V) -> Self {
        self.filter(key.condition(value, true))
    }

    /// Keyset pagination backwards: only rows whose `key` is less than
    /// `value`; pair it with a descending `.order_by` on the same columns
    /// (see [`Select::after`]).
    pub fn before<K: Keyset<M, V>, V>(self, key: K, value: V) -> Self {
        self.filter(key.condition(value, false))
    }
}
