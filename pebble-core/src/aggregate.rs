//! Aggregates (`Task::ESTIMATE.sum()`, [`count()`]), their conditions for
//! `having`, join conditions (`Task::PROJECT_ID.eq_col(Project::ID)`), and
//! the result type of each aggregate.
//!
//! Every expression here names its columns with their table
//! (`"tasks"."estimate"`): they are used in joins, where models share
//! column names.
//!
//! | aggregate | column type | result | SQL |
//! |---|---|---|---|
//! | [`count()`] | (rows) | `i64` | `COUNT(*)` |
//! | [`Column::count`] | any | `i64` (non-NULL values) | `COUNT(col)` |
//! | [`Column::count_distinct`] | any | `i64` | `COUNT(DISTINCT col)` |
//! | [`Column::sum`] | `i16`, `i32` | `Option<i64>` | `SUM(col)` (bigint) |
//! | [`Column::sum`] | `i64` | `Option<i64>` | `SUM(col)::bigint`: numeric in PostgreSQL; past `i64` it fails with SQLSTATE 22003, never wraps |
//! | [`Column::sum`] | `f32` / `f64` | `Option<f32>` / `Option<f64>` | `SUM(col)` |
//! | [`Column::avg`] | integers, floats | `Option<f64>` | `AVG(col)::float8` (numeric for integers in PostgreSQL: rounded to f64) |
//! | [`Column::min`], [`Column::max`] | `T` among integers, floats, `String`, `DateTime<Utc>`, `NaiveDate` | `Option<T>` | `MIN(col)`, `MAX(col)` |
//!
//! `Option<T>` columns aggregate like `T`. Sums, averages, minimums and
//! maximums are `None` over no rows or only NULLs (as PostgreSQL returns
//! them); counts are never NULL.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{Alias, Expr, ExprTrait, Func};

use crate::column::{Column, TenantColumn};
use crate::model::Model;
use crate::sql_type::{IntoValue, SqlType};

/// An aggregate over a column of `M` (or over rows, `M = ()`), whose
/// result decodes as `T`: `Task::ESTIMATE.sum()`, [`count()`]. Select it
/// with `columns`, compare it in `having`, sort by it.
pub struct Agg<M, T> {
    expr: Expr,
    label: &'static str,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Agg<M, T> {
    fn new(expr: Expr, label: &'static str) -> Self {
        Agg {
            expr,
            label,
            _marker: PhantomData,
        }
    }

    pub(crate) fn expr(&self) -> Expr {
        self.expr.clone()
    }

    /// What the aggregate is over, for error messages.
    pub(crate) fn label(&self) -> &'static str {
        self.label
    }

    /// Ascending order on this aggregate's value.
    pub fn asc(self) -> AggOrder<M> {
        AggOrder::new(self.expr, sea_query::Order::Asc)
    }

    /// Descending order on this aggregate's value.
    pub fn desc(self) -> AggOrder<M> {
        AggOrder::new(self.expr, sea_query::Order::Desc)
    }
}

impl<M, T: SqlType> Agg<M, T> {
    /// `aggregate = value`, for `having`.
    pub fn eq(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.eq(value.into_value()))
    }

    /// `aggregate <> value`
    pub fn ne(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.ne(value.into_value()))
    }

    /// `aggregate > value`
    pub fn gt(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.gt(value.into_value()))
    }

    /// `aggregate >= value`
    pub fn gte(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.gte(value.into_value()))
    }

    /// `aggregate < value`
    pub fn lt(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.lt(value.into_value()))
    }

    /// `aggregate <= value`
    pub fn lte(self, value: impl IntoValue<T::Base>) -> AggFilter<M> {
        AggFilter::new(self.expr.lte(value.into_value()))
    }
}

impl<M, T> Clone for Agg<M, T> {
    fn clone(&self) -> Self {
        Agg::new(self.expr.clone(), self.label)
    }
}

impl<M, T> fmt::Debug for Agg<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Agg").field(&self.expr).finish()
    }
}

/// `COUNT(*)`: the number of rows (per group with `group_by`), an `i64`.
///
/// ```
/// # use pebble::Model;
/// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, done: bool }
/// # fn demo(db: pebble::Db) {
/// let per_state = db.tenant(7_i64)
///     .select::<Task>()
///     .columns((Task::DONE, pebble::count()))
///     .group_by(Task::DONE); // .all().await? is a Vec<(bool, i64)>
/// # }
/// ```
pub fn count() -> Agg<(), i64> {
    Agg::new(Expr::col(sea_query::Asterisk).count(), "count(*)")
}

/// A condition on aggregates of `M` (or on [`count()`], `M = ()`), for
/// `having`: `Task::ID.count().gt(3)`. Combine with `and` / `or` / `not`.
pub struct AggFilter<M> {
    expr: Expr,
    _marker: PhantomData<fn() -> M>,
}

impl<M> AggFilter<M> {
    fn new(expr: Expr) -> Self {
        AggFilter {
            expr,
            _marker: PhantomData,
        }
    }

    pub(crate) fn into_expr(self) -> Expr {
        self.expr
    }

    /// Both conditions hold.
    pub fn and(self, other: AggFilter<M>) -> AggFilter<M> {
        AggFilter::new(self.expr.and(other.expr))
    }

    /// Either condition holds.
    pub fn or(self, other: AggFilter<M>) -> AggFilter<M> {
        AggFilter::new(self.expr.or(other.expr))
    }

    /// The condition does not hold.
    #[allow(clippy::should_implement_trait)] // a method reads better in chains
    pub fn not(self) -> AggFilter<M> {
        AggFilter::new(self.expr.not())
    }
}

impl<M> fmt::Debug for AggFilter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AggFilter").field(&self.expr).finish()
    }
}

/// An `ORDER BY` term on an aggregate: `pebble::count().desc()`.
pub struct AggOrder<M> {
    pub(crate) expr: Expr,
    pub(crate) order: sea_query::Order,
    _marker: PhantomData<fn() -> M>,
}

impl<M> AggOrder<M> {
    fn new(expr: Expr, order: sea_query::Order) -> Self {
        AggOrder {
            expr,
            order,
            _marker: PhantomData,
        }
    }
}

impl<M> fmt::Debug for AggOrder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggOrder")
            .field("expr", &self.expr)
            .field("order", &self.order)
            .finish()
    }
}

/// A column type `SUM` accepts, and what the sum decodes as (see the
/// module's table).
pub trait Summable: SqlType {
    /// The sum's Rust type (without the `Option` of an empty sum).
    type Sum: SqlType<Base = Self::Sum>;
    /// A cast that makes PostgreSQL's result type `Sum` (`numeric` to `bigint`).
    #[doc(hidden)]
    const CAST: Option<&'static str>;
}

/// A column type `AVG` accepts; the average is an `f64`.
pub trait Averageable: SqlType {}

/// A column type with an order PostgreSQL's `MIN` and `MAX` accept (not
/// `uuid` or `boolean`, which have none in PostgreSQL 15).
pub trait Ordered: SqlType {}

macro_rules! summable {
    ($($ty:ty => $sum:ty, $cast:expr;)+) => {$(
        impl Summable for $ty {
            type Sum = $sum;
            const CAST: Option<&'static str> = $cast;
        }
        impl Summable for Option<$ty> {
            type Sum = $sum;
            const CAST: Option<&'static str> = $cast;
        }
        impl Averageable for $ty {}
        impl Averageable for Option<$ty> {}
    )+};
}

summable! {
    i16 => i64, None;
    i32 => i64, None;
    i64 => i64, Some("bigint");
    f32 => f32, None;
    f64 => f64, None;
}

macro_rules! ordered {
    ($($ty:ty),+) => {$(
        impl Ordered for $ty {}
        impl Ordered for Option<$ty> {}
    )+};
}

ordered!(i16, i32, i64, f32, f64, String);
#[cfg(feature = "chrono")]
ordered!(chrono::DateTime<chrono::Utc>, chrono::NaiveDate);

fn qualified<M: Model>(column: &'static str) -> Expr {
    Expr::col((M::TABLE, column))
}

fn cast(expr: Expr, to: Option<&'static str>) -> Expr {
    match to {
        Some(ty) => expr.cast_as(Alias::new(ty)),
        None => expr,
    }
}

impl<M: Model, T: SqlType> Column<M, T> {
    /// `COUNT(column)`: how many rows have a non-NULL value.
    pub fn count(self) -> Agg<M, i64> {
        Agg::new(qualified::<M>(self.name()).count(), self.name())
    }

    /// `COUNT(DISTINCT column)`: how many distinct non-NULL values.
    pub fn count_distinct(self) -> Agg<M, i64> {
        Agg::new(qualified::<M>(self.name()).count_distinct(), self.name())
    }

    /// `SUM(column)`; `None` over no rows or only NULLs. See the
    /// [mapping](crate::aggregate) for the result type.
    pub fn sum(self) -> Agg<M, Option<T::Sum>>
    where
        T: Summable,
    {
        let sum = Expr::from(Func::sum(qualified::<M>(self.name())));
        Agg::new(cast(sum, T::CAST), self.name())
    }

    /// `AVG(column)::float8`; `None` over no rows or only NULLs.
    pub fn avg(self) -> Agg<M, Option<f64>>
    where
        T: Averageable,
    {
        let avg = Expr::from(Func::avg(qualified::<M>(self.name())));
        Agg::new(cast(avg, Some("float8")), self.name())
    }

    /// `MIN(column)`; `None` over no rows or only NULLs.
    pub fn min(self) -> Agg<M, Option<T::Base>>
    where
        T: Ordered,
    {
        Agg::new(qualified::<M>(self.name()).min(), self.name())
    }

    /// `MAX(column)`; `None` over no rows or only NULLs.
    pub fn max(self) -> Agg<M, Option<T::Base>>
    where
        T: Ordered,
    {
        Agg::new(qualified::<M>(self.name()).max(), self.name())
    }
}

/// A join condition between two models of a query:
/// `Task::PROJECT_ID.eq_col(Project::ID)`. Several are combined with `and`.
pub struct On<A, B> {
    expr: Expr,
    _marker: PhantomData<fn() -> (A, B)>,
}

impl<A, B> On<A, B> {
    pub(crate) fn into_expr(self) -> Expr {
        self.expr
    }

    /// Both conditions hold (a join on two columns).
    pub fn and(self, other: On<A, B>) -> On<A, B> {
        On {
            expr: self.expr.and(other.expr),
            _marker: PhantomData,
        }
    }
}

impl<A, B> fmt::Debug for On<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("On").field(&self.expr).finish()
    }
}

impl<M: Model, T: SqlType> Column<M, T> {
    /// `"m"."column" = "n"."other"`: a join condition between two models;
    /// the columns hold the same type (either may be an `Option` of it).
    pub fn eq_col<N: Model, U: SqlType<Base = T::Base>>(self, other: Column<N, U>) -> On<M, N> {
        On {
            expr: qualified::<M>(self.name()).equals((N::TABLE, other.name())),
            _marker: PhantomData,
        }
    }
}

impl<M: Model, K: SqlType> TenantColumn<M, K> {
    /// `COUNT(DISTINCT tenant_column)`, useful through `cross_tenant()`.
    pub fn count_distinct(self) -> Agg<M, i64> {
        Agg::new(qualified::<M>(self.name()).count_distinct(), self.name())
    }
}
