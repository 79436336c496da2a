//! Conditions on one model, combined with `and`, `or` and `not`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use sea_query::{Expr, ExprTrait};

/// A condition on rows of model `M`, built from its typed columns.
///
/// Filters on different models do not combine, and a tenant handle always
/// wraps the whole filter: `tenant = $1 AND (a OR b)`, never `tenant = $1 AND a OR b`.
///
/// ```
/// # use pebble_core::{Column, Filter};
/// # struct Doc;
/// # fn demo(title: Column<Doc, String>, pages: Column<Doc, i32>) -> Filter<Doc> {
/// title.eq("Q3 report").or(pages.gt(100)).and(pages.lt(500).not())
/// # }
/// ```
pub struct Filter<M> {
    expr: Expr,
    _marker: PhantomData<fn() -> M>,
}

impl<M> Filter<M> {
    pub(crate) fn new(expr: Expr) -> Self {
        Self {
            expr,
            _marker: PhantomData,
        }
    }

    pub(crate) fn into_expr(self) -> Expr {
        self.expr
    }

    /// Both conditions hold. Also available as `a & b`.
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        Filter::new(self.expr.and(other.expr))
    }

    /// Either condition holds. Also available as `a | b`.
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        Filter::new(self.expr.or(other.expr))
    }

    /// The condition does not hold. Also available as `!a`.
    #[allow(clippy::should_implement_trait)] // it is implemented too; the method reads better in chains
    pub fn not(self) -> Filter<M> {
        Filter::new(self.expr.not())
    }
}

impl<M> BitAnd for Filter<M> {
    type Output = Filter<M>;

    fn bitand(self, rhs: Filter<M>) -> Filter<M> {
        self.and(rhs)
    }
}

impl<M> BitOr for Filter<M> {
    type Output = Filter<M>;

    fn bitor(self, rhs: Filter<M>) -> Filter<M> {
        self.or(rhs)
    }
}

impl<M> Not for Filter<M> {
    type Output = Filter<M>;

    fn not(self) -> Filter<M> {
        Filter::not(self)
    }
}

impl<M> Clone for Filter<M> {
    fn clone(&self) -> Self {
        Filter::new(self.expr.clone())
    }
}

impl<M> fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.expr).finish()
    }
}
