//! Typed SQL expressions for updates: `now()`, `col + 1`,
//! `COALESCE(col, value)`, another column of the same model. An
//! [`Expr<M, T>`] computes a `T` from a row of `M`; `set_expr` only takes
//! one whose type matches the column's.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Add, Mul, Sub};

use sea_query::{ExprTrait, Func};

use crate::column::Column;
use crate::sql_type::{IntoValue, SqlType};

/// An SQL expression computing a `T` from a row of model `M`: from
/// [`now`], [`coalesce`], arithmetic on a numeric column
/// (`Task::VOTES + 1`, `Task::VOTES.plus(1)`) or a column itself.
///
/// ```
/// # use pebble::{Db, Model, PoolOptions};
/// #[derive(Model)]
/// struct Post {
///     #[pebble(primary_key)] id: i64,
///     #[tenant_id] org: i64,
///     votes: i32,
///     edited_at: Option<chrono::DateTime<chrono::Utc>>,
///     note: Option<String>,
///     summary: String,
/// }
/// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
/// let update = db
///     .tenant(7_i64)
///     .update::<Post>()
///     .set_expr(Post::VOTES, Post::VOTES + 1)
///     .set_expr(Post::EDITED_AT, pebble::now())
///     .set_expr(Post::SUMMARY, pebble::coalesce(Post::NOTE, "(none)"))
///     .filter(Post::ID.eq(1));
/// assert_eq!(
///     update.to_sql()?,
///     r#"UPDATE "post" SET "votes" = "votes" + $1, "edited_at" = now(), "summary" = COALESCE("note", $2) WHERE "org" = $3 AND "id" = $4"#
/// );
/// # Ok::<(), pebble::Error>(())
/// ```
pub struct Expr<M, T> {
    expr: sea_query::Expr,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Expr<M, T> {
    fn new(expr: impl Into<sea_query::Expr>) -> Self {
        Expr {
            expr: expr.into(),
            _marker: PhantomData,
        }
    }
}

impl<M, T> Clone for Expr<M, T> {
    fn clone(&self) -> Self {
        Expr::new(self.expr.clone())
    }
}

impl<M, T> fmt::Debug for Expr<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.expr).finish()
    }
}

impl<M, T> From<Column<M, T>> for Expr<M, T> {
    fn from(column: Column<M, T>) -> Self {
        Expr::new(column.expr())
    }
}

/// Something that computes a value for a column of type `T` of model `M`:
/// an [`Expr<M, T>`] or a [`Column<M, T>`] (also an `Expr<M, T>` or
/// `Column<M, T>` for an `Option<T>` column). Nothing else: an expression
/// of another type, or on another model, does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be assigned to a `{T}` column of `{M}`",
    label = "expected an expression or column of type `{T}` on `{M}`",
    note = "an update expression must compute the column's own type (a `T` also fits an `Option<T>` column)"
)]
pub trait IntoExpr<M, T> {
    /// The expression as sea-query builds it.
    fn into_expr(self) -> sea_query::Expr;
}

impl<M, T> IntoExpr<M, T> for Expr<M, T> {
    fn into_expr(self) -> sea_query::Expr {
        self.expr
    }
}

/// A non-null expression for a nullable column.
impl<M, T: SqlType<Base = T>> IntoExpr<M, Option<T>> for Expr<M, T> {
    fn into_expr(self) -> sea_query::Expr {
        self.expr
    }
}

impl<M, T> IntoExpr<M, T> for Column<M, T> {
    fn into_expr(self) -> sea_query::Expr {
        self.expr()
    }
}

/// A non-null column copied into a nullable one.
impl<M, T: SqlType<Base = T>> IntoExpr<M, Option<T>> for Column<M, T> {
    fn into_expr(self) -> sea_query::Expr {
        self.expr()
    }
}

/// The transaction's start time: `now()`.
#[cfg(feature = "chrono")]
pub fn now<M>() -> Expr<M, chrono::DateTime<chrono::Utc>> {
    Expr::new(sea_query::Expr::cust("now()"))
}

/// Today's date in the session's time zone: `CURRENT_DATE`.
#[cfg(feature = "chrono")]
pub fn current_date<M>() -> Expr<M, chrono::NaiveDate> {
    Expr::new(sea_query::Expr::cust("CURRENT_DATE"))
}

/// `COALESCE(expr, fallback)`: the nullable `expr` (a column or
/// expression of type `Option<T>`), or `fallback` where it is NULL; never
/// NULL itself.
///
/// ```
/// # use pebble::Model;
/// # #[derive(Model)] #[pebble(shared)] struct Item { #[pebble(primary_key)] id: i64, stock: Option<i32> }
/// let restock = pebble::coalesce(Item::STOCK, 0) + 10; // COALESCE("stock", $1) + $2
/// # let _ = restock;
/// ```
pub fn coalesce<M, T: SqlType<Base = T>>(
    expr: impl Into<Expr<M, Option<T>>>,
    fallback: impl IntoValue<T>,
) -> Expr<M, T> {
    let expr: Expr<M, Option<T>> = expr.into();
    Expr::new(Func::coalesce([
        expr.expr,
        sea_query::Expr::val(fallback.into_value()),
    ]))
}

/// Column types arithmetic applies to: the integer and floating-point
/// types, nullable or not (NULL plus anything is NULL).
pub trait Numeric: SqlType {}

macro_rules! numeric {
    ($($ty:ty),*) => {$(
        impl Numeric for $ty {}
        impl Numeric for Option<$ty> {}
    )*};
}

numeric!(i16, i32, i64, f32, f64);

macro_rules! arithmetic {
    ($($method:ident, $trait:ident, $op:ident, $sql:literal;)*) => {
        impl<M, T: Numeric> Expr<M, T> {
            $(
                #[doc = concat!("`expr ", $sql, " value`, of the expression's type.")]
                pub fn $method(self, value: impl IntoValue<T::Base>) -> Expr<M, T> {
                    Expr::new(self.expr.$op(value.into_value()))
                }
            )*
        }

        impl<M, T: Numeric> Column<M, T> {
            $(
                #[doc = concat!("`column ", $sql, " value`, of the column's type.")]
                pub fn $method(self, value: impl IntoValue<T::Base>) -> Expr<M, T> {
                    Expr::from(self).$method(value)
                }
            )*
        }

        $(
            impl<M, T: Numeric, V: IntoValue<T::Base>> $trait<V> for Expr<M, T> {
                type Output = Expr<M, T>;

                fn $op(self, value: V) -> Expr<M, T> {
                    self.$method(value)
                }
            }

            impl<M, T: Numeric, V: IntoValue<T::Base>> $trait<V> for Column<M, T> {
                type Output = Expr<M, T>;

                fn $op(self, value: V) -> Expr<M, T> {
                    self.$method(value)
                }
            }
        )*
    };
}

arithmetic! {
    plus, Add, add, "+";
    minus, Sub, sub, "-";
    times, Mul, mul, "*";
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_query::{PostgresQueryBuilder, Query};

    struct Post;
    const VOTES: Column<Post, i32> = Column::new("votes");
    const STOCK: Column<Post, Option<i64>> = Column::new("stock");

    fn sql(expr: impl IntoExpr<Post, i32>) -> String {
        Query::update()
            .table("post")
            .value("votes", expr.into_expr())
            .to_string(PostgresQueryBuilder)
    }

    #[test]
    fn arithmetic_keeps_precedence() {
        assert_eq!(
            sql((VOTES + 1) * 2),
            r#"UPDATE "post" SET "votes" = ("votes" + 1) * 2"#
        );
        assert_eq!(
            sql(VOTES.minus(3).plus(1)),
            r#"UPDATE "post" SET "votes" = ("votes" - 3) + 1"#
        );
        assert_eq!(sql(VOTES), r#"UPDATE "post" SET "votes" = "votes""#);
    }

    #[test]
    fn coalesce_renders_a_function_call() {
        let expr = coalesce(STOCK, 0_i64).plus(5);
        let rendered = Query::update()
            .table("post")
            .value("stock", IntoExpr::<Post, Option<i64>>::into_expr(expr))
            .to_string(PostgresQueryBuilder);
        assert_eq!(
            rendered,
            r#"UPDATE "post" SET "stock" = COALESCE("stock", 0) + 5"#
        );
    }
}
