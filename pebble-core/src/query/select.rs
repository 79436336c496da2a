use std::fmt;
use std::future::Future;

use futures_util::FutureExt;

use sea_query::{Asterisk, Expr, ExprTrait, Query, SelectStatement, Value};
use sea_query_postgres::PostgresValue;

use crate::column::Order;
use crate::conn::{Conn, Statement};
use crate::error::{Error, Result};
use crate::filter::{Cmp, Filter, Node};
use crate::model::{HasPrimaryKey, Model};
use crate::scope::Scope;
use crate::shape::{bound, tag, KeySink};

use super::core::{column_names, columns_key, Core, Filtered, Filters};
use super::shape_cache::{tenant_value, Plan};

/// A `SELECT` on model `M`, from `select::<M>()` or `find::<M>(key)`.
///
/// ```no_run
/// # use pebble::{Model, Db};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] tenant_id: i64, age: i32, name: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let adults = db.tenant(7_i64)
///     .select::<User>()
///     .filter(User::AGE.gte(18))
///     .order_by(User::NAME.asc())
///     .limit(50)
///     .all()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until it is run with `.all()`, `.one()`, `.count()`..."]
pub struct Select<M> {
    pub(super) core: Core<M, SelectPlan>,
}

impl<M: Model> Select<M> {
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        Select {
            core: Core::new(conn, scope),
        }
    }

    pub(crate) fn by_key(mut self, key: M::Key) -> Self
    where
        M: HasPrimaryKey,
    {
        for (column, value) in M::PRIMARY_KEY.iter().zip(M::key_values(key)) {
            self.core.and_where(Node::Cmp {
                column,
                op: Cmp::Eq,
                value,
            });
        }
        self
    }

    /// Its connection and scope, and whether filters, an order, a limit,
    /// an offset or a key were added since `select::<M>()` (a join starts
    /// from the bare select: those were written for one table).
    pub(crate) fn into_start(self) -> (Conn, Scope, bool) {
        if let Some(plan) = self.core.plan() {
            let shaped = !plan.is_bare();
            let (conn, scope, _) = self.core.into_parts();
            return (conn, scope, shaped);
        }
        let (conn, scope, stmt) = self.core.into_parts();
        let bare = SelectPlan::default().tree::<M>(&scope);
        (conn, scope, stmt != bare)
    }

    /// Keeps rows matching `filter`. Several calls are AND-ed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.core.and_where(filter.into_node());
        self
    }

    /// Sorts by a column; call again for further sort keys.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        match self.core.plan_mut() {
            // Only `asc()` and `desc()` make an `Order`; anything else
            // would not be keyed by its direction alone.
            Some(plan) if matches!(order.order, sea_query::Order::Asc | sea_query::Order::Desc) => {
                plan.order.push((order.column, order.order))
            }
            _ => {
                self.core.tree_mut().order_by(order.column, order.order);
            }
        }
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        match self.core.plan_mut() {
            Some(plan) => plan.limit = Some(as_bigint(n)),
            None => {
                self.core.tree_mut().limit(as_bigint(n));
            }
        }
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        match self.core.plan_mut() {
            Some(plan) => plan.offset = Some(as_bigint(n)),
            None => {
                self.core.tree_mut().offset(as_bigint(n));
            }
        }
        self
    }

    /// The statement `all()` sends: SQL text and bind values. `one()` and
    /// `optional()` send it with `LIMIT 1`; `count()` and `exists()` wrap
    /// the same condition.
    ///
    /// An error when nothing would be sent, saying why: the error `all()`
    /// returns ([`Error::InvalidTenantId`] on a handle keyed by the unset value).
    pub fn build(&self) -> Result<Statement> {
        self.core.build()
    }

    /// The SQL text of [`Select::build`], with `$n` placeholders, or why nothing would be sent.
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    /// All matching rows.
    pub async fn all(self) -> Result<Vec<M>> {
        self.core.all().await
    }

    /// The first matching row, or [`Error::NotFound`].
    ///
    /// (Not an `async fn`, nor is [`Select::optional`]: the statement is
    /// built before the future is made, which then holds only it and where
    /// to send it, not the builder; a point select's future is copied
    /// each time it moves.)
    pub fn one(self) -> impl Future<Output = Result<M>> + Send + 'static {
        // A combinator, not an `async` block: a block would keep the
        // future it awaits twice (as a capture and as the awaited value).
        self.optional()
            .map(|row| row?.ok_or(Error::NotFound { table: M::TABLE }))
    }

    /// The first matching row, if any.
    pub fn optional(mut self) -> impl Future<Output = Result<Option<M>>> + Send + 'static {
        match self.core.plan_mut() {
            Some(plan) => plan.limit = Some(1),
            None => {
                self.core.tree_mut().limit(1);
            }
        }
        let stmt = self.core.take_statement();
        let (conn, scope) = self.core.into_target();
        async move {
            let stmt = stmt?;
            let row = conn.first(&stmt, &scope).await?;
            row.as_ref().map(M::from_row).transpose()
        }
    }

    /// How many rows match (ignores order, limit and offset).
    pub async fn count(mut self) -> Result<i64> {
        let stmt = match self.core.plan_mut() {
            Some(plan) => {
                plan.wrap = Wrap::Count;
                self.core.take_statement()?
            }
            None => Statement::new(&count(self.core.tree_mut().clone())),
        };
        self.scalar(&stmt).await
    }

    /// Whether any row matches.
    pub async fn exists(mut self) -> Result<bool> {
        let stmt = match self.core.plan_mut() {
            Some(plan) => {
                plan.wrap = Wrap::Exists;
                self.core.take_statement()?
            }
            None => Statement::new(&exists(self.core.tree_mut().clone())),
        };
        self.scalar(&stmt).await
    }

    async fn scalar<T: for<'r> tokio_postgres::types::FromSql<'r>>(
        &self,
        stmt: &Statement,
    ) -> Result<T> {
        let rows = self.core.rows(stmt).await?;
        let row = rows.first().ok_or(Error::NotFound { table: M::TABLE })?;
        Ok(row.try_get(0)?)
    }
}

/// `SELECT COUNT(*)` with `select`'s condition (its order, limit and offset dropped).
fn count(mut select: SelectStatement) -> SelectStatement {
    select
        .clear_selects()
        .clear_order_by()
        .reset_limit()
        .reset_offset();
    select.expr(Expr::col(Asterisk).count());
    select
}

/// `SELECT EXISTS (SELECT 1 ...)` with `select`'s condition.
fn exists(mut select: SelectStatement) -> SelectStatement {
    select
        .clear_selects()
        .clear_order_by()
        .reset_limit()
        .reset_offset();
    select.expr(Expr::cust("1"));
    Query::select().expr(Expr::exists(select)).take()
}

/// What a select records while its shape can be keyed.
#[derive(Clone, Debug, Default)]
pub(crate) struct SelectPlan {
    filters: Filters,
    order: Vec<(&'static str, sea_query::Order)>,
    limit: Option<u64>,
    offset: Option<u64>,
    wrap: Wrap,
}

/// What the select is sent as: its rows, or a count or existence check of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Wrap {
    #[default]
    Rows,
    Count,
    Exists,
}

impl SelectPlan {
    /// Nothing narrowed or ordered yet (a join starts from such a select).
    fn is_bare(&self) -> bool {
        self.filters.is_empty()
            && self.order.is_empty()
            && self.limit.is_none()
            && self.offset.is_none()
    }

    /// Whether order, limit and offset are in the text: a count or an
    /// existence check drops them.
    fn ordered(&self) -> bool {
        self.wrap == Wrap::Rows
    }
}

impl Filtered for SelectPlan {
    fn filters(&mut self) -> &mut Filters {
        &mut self.filters
    }
}

impl Plan for SelectPlan {
    type Tree = SelectStatement;

    fn tree<M: Model>(&self, scope: &Scope) -> SelectStatement {
        let mut stmt = Query::select();
        stmt.columns(column_names::<M>())
            .from(scope.table_ref::<M>());
        scope.confine(&mut stmt);
        self.filters.apply(&mut stmt);
        for (column, order) in &self.order {
            stmt.order_by(*column, order.clone());
        }
        if let Some(n) = self.limit {
            stmt.limit(n);
        }
        if let Some(n) = self.offset {
            stmt.offset(n);
        }
        match self.wrap {
            Wrap::Rows => stmt,
            Wrap::Count => count(stmt),
            Wrap::Exists => exists(stmt),
        }
    }

    fn key<M: Model>(&self, key: &mut impl KeySink) {
        key.num(tag::SELECT);
        key.num(self.wrap as u64);
        columns_key(key);
        self.filters.key(key);
        if self.ordered() {
            key.num(self.order.len() as u64);
            for (column, order) in &self.order {
                key.column(column);
                key.num(match order {
                    sea_query::Order::Asc => 0,
                    sea_query::Order::Desc => 1,
                    // Never planned (see `order_by`).
                    _ => 2,
                });
            }
            key.num(u64::from(self.limit.is_some()));
            key.num(u64::from(self.offset.is_some()));
        }
    }

    fn values(self, tenant: Option<&Value>) -> Vec<PostgresValue> {
        let mut values = Vec::with_capacity(self.filters.len() + 3);
        let out = &mut values;
        tenant_value(tenant, out);
        let ordered = self.ordered();
        self.filters.values(out);
        if ordered {
            for n in [self.limit, self.offset].into_iter().flatten() {
                out.push(bound(Value::BigUnsigned(Some(n))));
            }
        }
        values
    }
}

/// PostgreSQL's LIMIT and OFFSET are `bigint`; a larger `u64` would wrap
/// to a negative number on the way, so it is clamped (it means "all").
pub(crate) fn as_bigint(n: u64) -> u64 {
    std::cmp::min(n, i64::MAX.unsigned_abs())
}

impl<M> fmt::Debug for Select<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(f, "Select").finish()
    }
}
