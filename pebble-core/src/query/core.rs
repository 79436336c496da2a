//! What every builder shares: where it runs, how it is confined, the
//! statement it grows, and the steps from there to decoded rows.
//!
//! A builder starts with a [`Plan`]: what it was asked for, recorded
//! without building a sea-query statement, so that a statement shape seen
//! before is sent from the shape cache with no tree built or rendered.
//! Anything a plan does not record (a lock, a join, an expression) turns
//! the plan into its sea-query tree first ([`Core::tree_mut`]), and the
//! builder goes on as before plans existed.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{DeleteStatement, InsertStatement, Returning, ReturningClause, UpdateStatement};
use sea_query_postgres::PostgresBinder;
use tokio_postgres::Row;

use crate::conn::{Conn, Statement};
use crate::error::Result;
use crate::filter::Node;
use crate::model::Model;
use crate::scope::Scope;

use super::shape_cache::{self, Plan};

/// A builder's statement: still a plan, or already a sea-query tree.
pub(crate) enum Body<P: Plan> {
    Plan(P),
    // Boxed: a sea-query tree is several times a plan's size, and every
    // builder method moves the whole builder.
    Tree(Box<P::Tree>),
}

/// A builder's connection, scope and statement on model `M`. The scope's
/// tenant condition is the first term of the statement's WHERE clause
/// (put there by the plan's `tree`, before any user filter), so filters
/// can only narrow it.
pub(crate) struct Core<M, P: Plan> {
    conn: Conn,
    pub(crate) scope: Scope,
    body: Body<P>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model, P: Plan> Core<M, P>
where
    P::Tree: PostgresBinder,
{
    /// A core with an empty plan.
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        Core {
            conn,
            scope,
            body: Body::Plan(P::default()),
            _model: PhantomData,
        }
    }

    /// The plan, while the statement is still one.
    pub(crate) fn plan_mut(&mut self) -> Option<&mut P> {
        match &mut self.body {
            Body::Plan(plan) => Some(plan),
            Body::Tree(_) => None,
        }
    }

    /// The plan, while the statement is still one.
    pub(crate) fn plan(&self) -> Option<&P> {
        match &self.body {
            Body::Plan(plan) => Some(plan),
            Body::Tree(_) => None,
        }
    }

    /// The sea-query statement, built from the plan the first time: from
    /// then on this builder is rendered on every run, as before plans.
    pub(crate) fn tree_mut(&mut self) -> &mut P::Tree {
        if let Body::Plan(plan) = &self.body {
            self.body = Body::Tree(Box::new(plan.tree::<M>(&self.scope)));
        }
        match &mut self.body {
            Body::Tree(tree) => tree,
            Body::Plan(_) => unreachable!("the plan was just turned into its tree"),
        }
    }

    /// Its connection, scope and sea-query statement.
    pub(crate) fn into_parts(mut self) -> (Conn, Scope, P::Tree) {
        self.tree_mut();
        match self.body {
            Body::Tree(tree) => (self.conn, self.scope, *tree),
            Body::Plan(_) => unreachable!("the plan was just turned into its tree"),
        }
    }

    /// The statement as it would be sent, or why the scope sends nothing.
    pub(crate) fn build(&self) -> Result<Statement> {
        self.scope.check()?;
        Ok(match &self.body {
            Body::Tree(tree) => Statement::new(&**tree),
            Body::Plan(plan) => self.planned(plan.clone()),
        })
    }

    /// [`Core::build`] for a builder about to run: its plan's values move
    /// into the statement instead of being copied.
    pub(crate) fn take_statement(&mut self) -> Result<Statement> {
        self.scope.check()?;
        Ok(match &mut self.body {
            Body::Tree(tree) => Statement::new(&**tree),
            Body::Plan(plan) => {
                let plan = std::mem::take(plan);
                self.planned(plan)
            }
        })
    }

    fn planned(&self, plan: P) -> Statement {
        let scope = &self.scope;
        shape_cache::statement::<M, P>(plan, scope, |plan| Statement::new(&plan.tree::<M>(scope)))
    }

    /// Where the builder runs.
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Runs `stmt` (this builder's, possibly reshaped); the rows it wrote.
    pub(crate) async fn execute(&self, stmt: &Statement) -> Result<u64> {
        self.conn.execute(stmt, &self.scope).await
    }

    /// Where this builder's statement goes and how it is confined, without
    /// the rest of the builder (for a future that should not carry it).
    pub(crate) fn into_target(self) -> (Conn, Scope) {
        (self.conn, self.scope)
    }

    /// Runs `stmt` (this builder's, possibly reshaped); its rows.
    pub(crate) async fn rows(&self, stmt: &Statement) -> Result<Vec<Row>> {
        self.conn.rows(stmt, &self.scope).await
    }

    /// Runs the statement and decodes every row it returns as an `M`.
    pub(crate) async fn all(mut self) -> Result<Vec<M>> {
        let stmt = self.take_statement()?;
        self.rows(&stmt).await?.iter().map(M::from_row).collect()
    }
}

impl<M: Model, P: Plan + Filtered> Core<M, P>
where
    P::Tree: PostgresBinder + sea_query::ConditionalStatement,
{
    /// AND-s `node` after the conditions already there, as one
    /// parenthesised term.
    pub(crate) fn and_where(&mut self, node: Node) {
        match self.plan_mut() {
            Some(plan) => plan.filters().push(node),
            None => {
                sea_query::ConditionalStatement::and_where(self.tree_mut(), node.to_expr());
            }
        }
    }
}

impl<M: Model, P: Plan + Returns> Core<M, P>
where
    P::Tree: PostgresBinder + ReturnsTree,
{
    /// Runs the statement followed by `RETURNING` and every column of `M`;
    /// the rows as stored.
    pub(crate) async fn returning(mut self) -> Result<Vec<M>> {
        match self.plan_mut() {
            Some(plan) => plan.set_returning(),
            None => self.tree_mut().returning_all(all_columns::<M>()),
        }
        self.all().await
    }
}

impl<M, P: Plan + fmt::Debug> Core<M, P>
where
    P::Tree: fmt::Debug,
{
    /// The fields every builder's `Debug` shows; the builder adds its own.
    pub(crate) fn debug<'a, 'b>(
        &self,
        f: &'a mut fmt::Formatter<'b>,
        name: &str,
    ) -> fmt::DebugStruct<'a, 'b> {
        let mut out = f.debug_struct(name);
        out.field("scope", &self.scope);
        match &self.body {
            Body::Plan(plan) => out.field("plan", plan),
            Body::Tree(tree) => out.field("statement", tree),
        };
        out
    }
}

/// Plans with a WHERE clause of AND-ed filters.
pub(crate) trait Filtered {
    fn filters(&mut self) -> &mut Filters;
}

/// A few items in order, the first held inline: most statements on the
/// hot path have one filter (a key) and one assignment, and those cost no
/// allocation.
#[derive(Clone, Debug)]
pub(crate) struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Few<T> {
    pub(crate) fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// A plan's AND-ed filters, in order.
pub(crate) type Filters = Few<Node>;

impl Few<Node> {
    /// AND-s each filter into `stmt`, after what is there (the tenant
    /// condition), as the builders did before plans.
    pub(crate) fn apply(&self, stmt: &mut impl sea_query::ConditionalStatement) {
        for filter in self.iter() {
            stmt.and_where(filter.to_expr());
        }
    }

    pub(crate) fn key(&self, key: &mut impl crate::shape::KeySink) {
        key.num(self.len() as u64);
        for filter in self.iter() {
            filter.key(key);
        }
    }

    pub(crate) fn values(self, out: &mut Vec<sea_query_postgres::PostgresValue>) {
        for filter in self {
            filter.values(out);
        }
    }
}

/// Plans that can return the rows they wrote.
pub(crate) trait Returns {
    fn set_returning(&mut self);
}

/// The statements that can return the rows they wrote.
pub(crate) trait ReturnsTree {
    fn returning_all(&mut self, clause: ReturningClause);
}

impl ReturnsTree for InsertStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

impl ReturnsTree for UpdateStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

impl ReturnsTree for DeleteStatement {
    fn returning_all(&mut self, clause: ReturningClause) {
        self.returning(clause);
    }
}

/// `M`'s columns in field order: what `from_row` decodes.
pub(crate) fn column_names<M: Model>() -> impl Iterator<Item = &'static str> {
    M::COLUMNS.iter().map(|c| c.name)
}

pub(crate) fn all_columns<M: Model>() -> ReturningClause {
    Returning::new().columns(column_names::<M>())
}

/// Every column name of `M`, as tokens: the select list, `RETURNING` and
/// an insert's column list are all of them, in this order.
/// The shape's own model's columns: the model is a token of every shape
/// (see [`KeySink::model`](crate::shape::KeySink::model)), which fixes
/// their names and order.
pub(crate) fn columns_key(key: &mut impl crate::shape::KeySink) {
    key.num(crate::shape::tag::ALL_COLUMNS);
}
