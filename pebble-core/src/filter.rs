//! Conditions on one model, combined with `and`, `or` and `not`.
//!
//! A filter is kept as a small tree of its own ([`Node`]) rather than as a
//! sea-query expression: the tree is what a statement's shape is keyed by,
//! and it turns into exactly the sea-query expression the builders used to
//! build ([`Node::to_expr`]) only when a shape is rendered.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use sea_query::extension::postgres::PgBinOper;
use sea_query::{BinOper, Expr, ExprTrait, PgFunc, Value};
use sea_query_postgres::PostgresValue;

use crate::shape::{bound, tag, value_key, KeySink};

/// A comparison of a column with one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    ILike,
}

/// One node of a filter. Columns are unqualified names of the filter's model.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// `column <op> value`
    Cmp {
        column: &'static str,
        op: Cmp,
        value: Value,
    },
    /// `column BETWEEN low AND high`
    Between {
        column: &'static str,
        low: Value,
        high: Value,
    },
    /// `column = ANY(array)`, or `column <> ALL(array)` when `all`.
    Any {
        column: &'static str,
        all: bool,
        array: Value,
    },
    /// `column IS NULL`, or `IS NOT NULL` when `not`.
    Null {
        column: &'static str,
        not: bool,
    },
    /// `(column, column, ..) > (value, value, ..)`, or `<` unless
    /// `greater`: a row comparison, one value per column (keyset
    /// pagination on a tuple).
    Row {
        columns: Vec<&'static str>,
        greater: bool,
        values: Vec<Value>,
    },
    And(Box<(Node, Node)>),
    Or(Box<(Node, Node)>),
    Not(Box<Node>),
}

impl Node {
    /// The sea-query expression, made by the same calls the builders made
    /// before filters had a tree of their own, so the text is unchanged.
    pub(crate) fn to_expr(&self) -> Expr {
        match self {
            Node::Cmp { column, op, value } => {
                let col = Expr::col(*column);
                let value = value.clone();
                match op {
                    Cmp::Eq => col.eq(value),
                    Cmp::Ne => col.ne(value),
                    Cmp::Gt => col.gt(value),
                    Cmp::Gte => col.gte(value),
                    Cmp::Lt => col.lt(value),
                    Cmp::Lte => col.lte(value),
                    Cmp::Like => col.binary(BinOper::Like, value),
                    Cmp::ILike => col.binary(PgBinOper::ILike, value),
                }
            }
            Node::Between { column, low, high } => {
                Expr::col(*column).between(low.clone(), high.clone())
            }
            Node::Any { column, all, array } => {
                let array = Expr::val(array.clone());
                if *all {
                    Expr::col(*column).ne(PgFunc::all(array))
                } else {
                    Expr::col(*column).eq(PgFunc::any(array))
                }
            }
            Node::Null { column, not } => {
                if *not {
                    Expr::col(*column).is_not_null()
                } else {
                    Expr::col(*column).is_null()
                }
            }
            Node::Row {
                columns,
                greater,
                values,
            } => {
                let left = Expr::tuple(columns.iter().map(|c| Expr::col(*c)));
                let right = Expr::tuple(values.iter().cloned().map(Expr::val));
                if *greater {
                    left.gt(right)
                } else {
                    left.lt(right)
                }
            }
            Node::And(pair) => pair.0.to_expr().and(pair.1.to_expr()),
            Node::Or(pair) => pair.0.to_expr().or(pair.1.to_expr()),
            Node::Not(inner) => inner.to_expr().not(),
        }
    }

    /// Everything about this node that shapes the SQL text: operators,
    /// columns, nesting, and what kind of value each placeholder holds.
    pub(crate) fn key(&self, key: &mut impl KeySink) {
        match self {
            Node::Cmp { column, op, value } => {
                key.num(tag::CMP);
                key.column(column);
                key.num(*op as u64);
                value_key(value, key);
            }
            Node::Between { column, low, high } => {
                key.num(tag::BETWEEN);
                key.column(column);
                value_key(low, key);
                value_key(high, key);
            }
            Node::Any { column, all, array } => {
                key.num(tag::ANY);
                key.column(column);
                key.num(u64::from(*all));
                value_key(array, key);
            }
            Node::Null { column, not } => {
                key.num(tag::NULL);
                key.column(column);
                key.num(u64::from(*not));
            }
            Node::Row {
                columns,
                greater,
                values,
            } => {
                key.num(tag::ROW);
                key.num(columns.len() as u64);
                for column in columns {
                    key.column(column);
                }
                key.num(u64::from(*greater));
                key.num(values.len() as u64);
                for value in values {
                    value_key(value, key);
                }
            }
            Node::And(pair) => {
                key.num(tag::AND);
                pair.0.key(key);
                pair.1.key(key);
            }
            Node::Or(pair) => {
                key.num(tag::OR);
                pair.0.key(key);
                pair.1.key(key);
            }
            Node::Not(inner) => {
                key.num(tag::NOT);
                inner.key(key);
            }
        }
    }

    /// The bind values in the order their placeholders appear.
    pub(crate) fn values(self, out: &mut Vec<PostgresValue>) {
        match self {
            Node::Cmp { value, .. } => out.push(bound(value)),
            Node::Between { low, high, .. } => {
                out.push(bound(low));
                out.push(bound(high));
            }
            Node::Any { array, .. } => out.push(bound(array)),
            Node::Null { .. } => {}
            Node::Row { values, .. } => out.extend(values.into_iter().map(bound)),
            Node::And(pair) | Node::Or(pair) => {
                let (left, right) = *pair;
                left.values(out);
                right.values(out);
            }
            Node::Not(inner) => inner.values(out),
        }
    }
}

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
    node: Node,
    _marker: PhantomData<fn() -> M>,
}

impl<M> Filter<M> {
    pub(crate) fn new(node: Node) -> Self {
        Self {
            node,
            _marker: PhantomData,
        }
    }

    pub(crate) fn into_expr(self) -> Expr {
        self.node.to_expr()
    }

    pub(crate) fn into_node(self) -> Node {
        self.node
    }

    /// Both conditions hold. Also available as `a & b`.
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        Filter::new(Node::And(Box::new((self.node, other.node))))
    }

    /// Either condition holds. Also available as `a | b`.
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        Filter::new(Node::Or(Box::new((self.node, other.node))))
    }

    /// The condition does not hold. Also available as `!a`.
    #[allow(clippy::should_implement_trait)] // it is implemented too; the method reads better in chains
    pub fn not(self) -> Filter<M> {
        Filter::new(Node::Not(Box::new(self.node)))
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
        Filter::new(self.node.clone())
    }
}

impl<M> fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.node).finish()
    }
}
