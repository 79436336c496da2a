//! Chosen columns and aggregates instead of whole rows: [`Projection`],
//! from `.columns(...)` on a select or a join, with `group_by` and
//! `having`. Confined exactly like the query it came from: the base's
//! tenant condition in WHERE, each joined tenant table's in its ON clause.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{Expr, SelectStatement};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::aggregate::{Agg, AggFilter, AggOrder};
use crate::column::{Column, Order, TenantColumn};
use crate::conn::Statement;
use crate::error::{Error, Result};
use crate::sql_type::SqlType;

use super::join::{Condition, InQuery, Join, Models, Nullness};

/// Markers telling the compiler which kind of term an argument is. Hidden.
#[doc(hidden)]
pub mod kind {
    /// A column of a model of the query.
    pub struct Col<I>(I);
    /// An aggregate over a column of a model of the query.
    pub struct AggOf<I>(I);
    /// An aggregate over rows (`count()`).
    pub struct Rows;
    /// One term rather than a tuple.
    pub struct One<I>(I);
}

use kind::{AggOf, Col, One, Rows};

/// Where a selected value came from, for decode errors.
type Label = (&'static str, &'static str);

/// One selectable term of a query whose models are `S` (rows `O`): a
/// column of one of its models, or an aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be selected in this query",
    note = "select columns of the query's models and aggregates (`pebble::count()`, \
            `Task::ID.count()`, `.sum()`, ...)"
)]
pub trait Item<S, O, I> {
    /// What it decodes as.
    type Out: for<'a> FromSql<'a> + Send;
    #[doc(hidden)]
    fn expr(&self) -> Expr;
    #[doc(hidden)]
    fn label(&self) -> Label;
}

impl<S, O, I, N: InQuery<S, O, I>, T: SqlType> Item<S, O, Col<I>> for Column<N, T> {
    type Out = <N::Null as Nullness>::Out<T>;

    fn expr(&self) -> Expr {
        Expr::col((N::TABLE, self.name()))
    }

    fn label(&self) -> Label {
        (N::TABLE, self.name())
    }
}

impl<S, O, I, N: InQuery<S, O, I>, K: SqlType> Item<S, O, Col<I>> for TenantColumn<N, K> {
    type Out = <N::Null as Nullness>::Out<K>;

    fn expr(&self) -> Expr {
        Expr::col((N::TABLE, self.name()))
    }

    fn label(&self) -> Label {
        (N::TABLE, self.name())
    }
}

impl<S, O, I, N: InQuery<S, O, I>, T> Item<S, O, AggOf<I>> for Agg<N, T>
where
    T: for<'a> FromSql<'a> + Send,
{
    type Out = T;

    fn expr(&self) -> Expr {
        Agg::expr(self)
    }

    fn label(&self) -> Label {
        (N::TABLE, Agg::label(self))
    }
}

impl<S, O, T> Item<S, O, Rows> for Agg<(), T>
where
    T: for<'a> FromSql<'a> + Send,
{
    type Out = T;

    fn expr(&self) -> Expr {
        Agg::expr(self)
    }

    fn label(&self) -> Label {
        ("(rows)", Agg::label(self))
    }
}

/// What `.columns(...)` takes: one [`Item`] or a tuple of up to 8.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be selected in this query",
    note = "pass one column or aggregate, or a tuple of up to 8, of models the query has"
)]
pub trait Selection<S, O, I> {
    /// What one row decodes as: the item's type, or a tuple of them.
    type Out;
    #[doc(hidden)]
    fn push(self, stmt: &mut SelectStatement, labels: &mut Vec<Label>);
    #[doc(hidden)]
    fn decode(row: &Row, labels: &[Label]) -> Result<Self::Out>;
}

fn get<T: for<'a> FromSql<'a>>(row: &Row, index: usize, labels: &[Label]) -> Result<T> {
    row.try_get(index).map_err(|source| {
        let (table, column) = labels.get(index).copied().unwrap_or(("", ""));
        Error::Decode {
            table,
            column,
            source,
        }
    })
}

macro_rules! single_selection {
    ($($ty:ident<$a:ident, $b:ident> as $kind:ident),+) => {$(
        impl<S, O, I, $a, $b> Selection<S, O, One<I>> for $ty<$a, $b>
        where
            $ty<$a, $b>: Item<S, O, I>,
        {
            type Out = <$ty<$a, $b> as Item<S, O, I>>::Out;

            fn push(self, stmt: &mut SelectStatement, labels: &mut Vec<Label>) {
                stmt.expr(Item::expr(&self));
                labels.push(Item::label(&self));
            }

            fn decode(row: &Row, labels: &[Label]) -> Result<Self::Out> {
                get(row, 0, labels)
            }
        }
    )+};
}

single_selection!(Column<N, T> as Col, TenantColumn<N, K> as Col, Agg<N, T> as AggOf);

macro_rules! tuple_selection {
    ($(($($item:ident $index:ident $n:tt),+));+) => {$(
        impl<S, O, $($item: Item<S, O, $index>, $index),+> Selection<S, O, ($($index,)+)> for ($($item,)+) {
            type Out = ($($item::Out,)+);

            fn push(self, stmt: &mut SelectStatement, labels: &mut Vec<Label>) {
                $(
                    stmt.expr(self.$n.expr());
                    labels.push(self.$n.label());
                )+
            }

            fn decode(row: &Row, labels: &[Label]) -> Result<Self::Out> {
                Ok(($(get::<$item::Out>(row, $n, labels)?,)+))
            }
        }
    )+};
}

tuple_selection! {
    (A IA 0);
    (A IA 0, B IB 1);
    (A IA 0, B IB 1, C IC 2);
    (A IA 0, B IB 1, C IC 2, D ID 3);
    (A IA 0, B IB 1, C IC 2, D ID 3, E IE 4);
    (A IA 0, B IB 1, C IC 2, D ID 3, E IE 4, F IF 5);
    (A IA 0, B IB 1, C IC 2, D ID 3, E IE 4, F IF 5, G IG 6);
    (A IA 0, B IB 1, C IC 2, D ID 3, E IE 4, F IF 5, G IG 6, H IH 7)
}

/// A sort key of a projection: a column (`Task::TITLE.asc()`) or an
/// aggregate (`pebble::count().desc()`) of the query's models.
pub trait Sort<S, O, I> {
    #[doc(hidden)]
    fn apply(self, stmt: &mut SelectStatement);
}

impl<S, O, I, N: InQuery<S, O, I>> Sort<S, O, Col<I>> for Order<N> {
    fn apply(self, stmt: &mut SelectStatement) {
        stmt.order_by((N::TABLE, self.column), self.order);
    }
}

impl<S, O, I, N: InQuery<S, O, I>> Sort<S, O, AggOf<I>> for AggOrder<N> {
    fn apply(self, stmt: &mut SelectStatement) {
        stmt.order_by_expr(self.expr, self.order);
    }
}

impl<S, O> Sort<S, O, Rows> for AggOrder<()> {
    fn apply(self, stmt: &mut SelectStatement) {
        stmt.order_by_expr(self.expr, self.order);
    }
}

/// A `group_by` key: a column of one of the query's models.
pub trait GroupKey<S, O, I> {
    #[doc(hidden)]
    fn expr(self) -> Expr;
}

impl<S, O, I, N: InQuery<S, O, I>, T> GroupKey<S, O, I> for Column<N, T> {
    fn expr(self) -> Expr {
        Expr::col((N::TABLE, self.name()))
    }
}

impl<S, O, I, N: InQuery<S, O, I>, K> GroupKey<S, O, I> for TenantColumn<N, K> {
    fn expr(self) -> Expr {
        Expr::col((N::TABLE, self.name()))
    }
}

/// A `having` condition: on aggregates of the query's models or on `count()`.
pub trait HavingCondition<S, O, I> {
    #[doc(hidden)]
    fn expr(self) -> Expr;
}

impl<S, O, I, N: InQuery<S, O, I>> HavingCondition<S, O, AggOf<I>> for AggFilter<N> {
    fn expr(self) -> Expr {
        self.into_expr()
    }
}

impl<S, O> HavingCondition<S, O, Rows> for AggFilter<()> {
    fn expr(self) -> Expr {
        self.into_expr()
    }
}

/// Chosen columns and aggregates of a tenant's rows, from `.columns(...)`:
/// each row decodes as `Out` (a tuple of the items' types).
///
/// ```no_run
/// # use pebble::Model;
/// # #[derive(Model)] #[pebble(table = "projects")]
/// # struct Project { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, name: String }
/// # #[derive(Model)] #[pebble(table = "tasks")]
/// # struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, project_id: i64, estimate: i32 }
/// # async fn demo(db: pebble::Db) -> pebble::Result<()> {
/// let per_project: Vec<(String, i64, Option<i64>)> = db
///     .tenant(7_i64)
///     .select::<Task>()
///     .join::<Project>().on(Task::PROJECT_ID.eq_col(Project::ID))
///     .columns((Project::NAME, pebble::count(), Task::ESTIMATE.sum()))
///     .group_by(Project::NAME)
///     .having(pebble::count().gt(2))
///     .order_by(pebble::count().desc())
///     .all()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until it is run with `.all()`, `.one()`..."]
pub struct Projection<K, S, O, Out> {
    join: Join<K, S, O>,
    labels: Vec<Label>,
    decode: fn(&Row, &[Label]) -> Result<Out>,
    _marker: PhantomData<fn() -> Out>,
}

impl<K, S, O, Out> Projection<K, S, O, Out>
where
    (S, O): Models,
{
    pub(crate) fn new<C: Selection<S, O, I, Out = Out>, I>(
        mut join: Join<K, S, O>,
        columns: C,
    ) -> Self {
        let mut labels = Vec::new();
        columns.push(&mut join.stmt, &mut labels);
        Projection {
            join,
            labels,
            decode: C::decode,
            _marker: PhantomData,
        }
    }

    /// Keeps rows matching `filter` (before grouping), on any model of the
    /// query. Several calls are AND-ed, after the tenant condition.
    pub fn filter<C: Condition<S, O, I>, I>(mut self, filter: C) -> Self {
        self.join.stmt.and_where(filter.into_qualified());
        self
    }

    /// Groups rows by a column of any model of the query; call again for
    /// further keys. Selected columns must be grouped (PostgreSQL says
    /// which is not, SQLSTATE 42803) unless the grouped key is the primary
    /// key of their table.
    pub fn group_by<G: GroupKey<S, O, I>, I>(mut self, key: G) -> Self {
        self.join.stmt.add_group_by([key.expr()]);
        self
    }

    /// Keeps groups matching a condition on aggregates:
    /// `.having(pebble::count().gt(2))`. Several calls are AND-ed.
    pub fn having<H: HavingCondition<S, O, I>, I>(mut self, condition: H) -> Self {
        self.join.stmt.and_having(condition.expr());
        self
    }

    /// Sorts by a column or an aggregate; call again for further keys.
    pub fn order_by<T: Sort<S, O, I>, I>(mut self, order: T) -> Self {
        order.apply(&mut self.join.stmt);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.join.stmt.limit(super::select::as_bigint(n));
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.join.stmt.offset(super::select::as_bigint(n));
        self
    }

    /// The statement `all()` sends, or why nothing would be sent.
    pub fn build(&self) -> Result<Statement> {
        self.join.build()
    }

    /// The SQL text of [`Projection::build`].
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    /// Every row.
    pub async fn all(self) -> Result<Vec<Out>> {
        let stmt = self.build()?;
        self.join
            .rows(&stmt)
            .await?
            .iter()
            .map(|row| (self.decode)(row, &self.labels))
            .collect()
    }

    /// The first row, if any. Without `group_by`, aggregates give exactly
    /// one row, even over no rows at all.
    pub async fn optional(mut self) -> Result<Option<Out>> {
        self.join.stmt.limit(1);
        let stmt = self.build()?;
        let rows = self.join.rows(&stmt).await?;
        rows.first()
            .map(|row| (self.decode)(row, &self.labels))
            .transpose()
    }

    /// The first row, or [`Error::NotFound`].
    pub async fn one(self) -> Result<Out> {
        let table = <(S, O) as Models>::base_table();
        self.optional().await?.ok_or(Error::NotFound { table })
    }
}

impl<K, S, O, Out> fmt::Debug for Projection<K, S, O, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Projection")
            .field("join", &self.join)
            .finish()
    }
}
