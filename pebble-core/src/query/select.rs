use std::fmt;

use sea_query::{Asterisk, Expr, ExprTrait, Query, SelectStatement};

use crate::column::Order;
use crate::conn::{Conn, Statement};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::{HasPrimaryKey, Model};
use crate::scope::Scope;

use super::core::{column_names, Core};

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
    pub(super) core: Core<M, SelectStatement>,
}

impl<M: Model> Select<M> {
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        let mut stmt = Query::select();
        stmt.columns(column_names::<M>())
            .from(scope.table_ref::<M>());
        Select {
            core: Core::confined(conn, scope, stmt),
        }
    }

    pub(crate) fn by_key(mut self, key: M::Key) -> Self
    where
        M: HasPrimaryKey,
    {
        for (column, value) in M::PRIMARY_KEY.iter().zip(M::key_values(key)) {
            self.core.stmt.and_where(Expr::col(*column).eq(value));
        }
        self
    }

    /// Its connection and scope, and whether filters, an order, a limit,
    /// an offset or a key were added since `select::<M>()` (a join starts
    /// from the bare select: those were written for one table).
    pub(crate) fn into_start(self) -> (Conn, Scope, bool) {
        let (conn, scope, stmt) = self.core.into_parts();
        let bare = Select::<M>::new(conn.clone(), scope.clone()).core.stmt;
        (conn, scope, stmt != bare)
    }

    /// Keeps rows matching `filter`. Several calls are AND-ed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.core.filter(filter);
        self
    }

    /// Sorts by a column; call again for further sort keys.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.core.stmt.order_by(order.column, order.order);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.core.stmt.limit(as_bigint(n));
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.core.stmt.offset(as_bigint(n));
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
    pub async fn one(self) -> Result<M> {
        self.optional()
            .await?
            .ok_or(Error::NotFound { table: M::TABLE })
    }

    /// The first matching row, if any.
    pub async fn optional(mut self) -> Result<Option<M>> {
        self.core.stmt.limit(1);
        let stmt = self.build()?;
        let rows = self.core.rows(&stmt).await?;
        rows.first().map(M::from_row).transpose()
    }

    /// How many rows match (ignores order, limit and offset).
    pub async fn count(mut self) -> Result<i64> {
        self.core
            .stmt
            .clear_selects()
            .clear_order_by()
            .reset_limit()
            .reset_offset();
        self.core.stmt.expr(Expr::col(Asterisk).count());
        let stmt = Statement::new(&self.core.stmt);
        self.scalar(&stmt).await
    }

    /// Whether any row matches.
    pub async fn exists(mut self) -> Result<bool> {
        self.core
            .stmt
            .clear_selects()
            .clear_order_by()
            .reset_limit()
            .reset_offset();
        self.core.stmt.expr(Expr::cust("1"));
        let outer = Query::select()
            .expr(Expr::exists(self.core.stmt.take()))
            .take();
        let stmt = Statement::new(&outer);
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
