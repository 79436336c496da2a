use std::fmt;
use std::future::Future;

use sea_query::{Expr, Query, UpdateStatement, Value};
use sea_query_postgres::PostgresValue;

use crate::column::Column;
use crate::conn::{Conn, Statement};
use crate::error::{Error, Result};
use crate::expr::IntoExpr;
use crate::filter::{Cmp, Filter, Node};
use crate::model::{HasPrimaryKey, Model};
use crate::scope::Scope;
use crate::shape::{bound, tag, value_key, KeySink};
use crate::sql_type::{IntoValue, SqlType};

use super::core::{all_columns, columns_key, Core, Few, Filtered, Filters, Returns};
use super::shape_cache::{tenant_value, Plan};

/// An `UPDATE` on model `M`, from `update::<M>()`.
///
/// `set` takes a [`Column`], never the tenant column (a different type), so
/// an update cannot move a row to another tenant.
///
/// ```no_run
/// # use pebble::{Model, Db};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] tenant_id: i64, age: i32, name: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let changed = db.tenant(7_i64)
///     .update::<User>()
///     .set(User::NAME, "Alice")
///     .filter(User::ID.eq(1))
///     .exec()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an update does nothing until it is run with `.exec()` or `.returning()`"]
pub struct Update<M> {
    core: Core<M, UpdatePlan>,
    assigned: bool,
    /// The tenant column, if something tried to assign it.
    tenant_assigned: Option<&'static str>,
    /// A column `set` or `set_expr` assigned more than once.
    assigned_twice: Option<&'static str>,
}

impl<M: Model> Update<M> {
    pub(crate) fn new(conn: Conn, scope: Scope) -> Self {
        Update {
            core: Core::new(conn, scope),
            assigned: false,
            tenant_assigned: None,
            assigned_twice: None,
        }
    }

    /// An update of every column but the key and tenant columns of `row`,
    /// matched by its primary key.
    pub(crate) fn of_row(conn: Conn, scope: Scope, row: &M) -> Self
    where
        M: HasPrimaryKey,
    {
        let mut update = Update::new(conn, scope);
        let mut columns = M::COLUMNS.iter();
        row.to_values(|value| {
            if let Some(column) = columns.next() {
                if !column.primary_key && !column.tenant {
                    update.assign_value(column.name, value);
                }
            }
        });
        let confined = update.core.scope.is_tenant();
        for (column, value) in M::PRIMARY_KEY.iter().zip(M::key_values(row.primary_key())) {
            // Under a tenant scope the key's tenant part is already the
            // statement's first condition, with the handle's tenant: the
            // row's own value adds nothing when it is that tenant, and when
            // it is unset (not stamped, as on insert) it would match no row.
            // The handle has refused any other tenant before this point.
            if confined && M::COLUMNS.iter().any(|c| c.tenant && c.name == *column) {
                continue;
            }
            update.core.and_where(Node::Cmp {
                column,
                op: Cmp::Eq,
                value,
            });
        }
        update
    }

    /// Sets `column` to `value` in every matching row.
    pub fn set<T: SqlType>(mut self, column: Column<M, T>, value: impl IntoValue<T>) -> Self {
        self.check_once(column.name());
        self.assign_value(column.name(), value.into_value());
        self
    }

    /// Sets `column` to the value of `expr`, computed per row by the
    /// database: [`now()`](crate::now), `Task::VOTES + 1`,
    /// [`coalesce`](crate::coalesce), another column of the same model.
    /// The expression's type must be the column's (a `T` also fits an
    /// `Option<T>` column); the tenant column is never assignable.
    ///
    /// ```no_run
    /// # use pebble::{Model, Db};
    /// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, attempts: i32,
    /// #     done_at: Option<chrono::DateTime<chrono::Utc>>, due: chrono::NaiveDate, started: chrono::NaiveDate }
    /// # async fn demo(db: Db) -> pebble::Result<()> {
    /// db.tenant(7_i64)
    ///     .update::<Task>()
    ///     .set_expr(Task::DONE_AT, pebble::now())
    ///     .set_expr(Task::ATTEMPTS, Task::ATTEMPTS + 1)
    ///     .set_expr(Task::DUE, Task::STARTED)
    ///     .filter(Task::ID.eq(1))
    ///     .exec()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn set_expr<T: SqlType>(mut self, column: Column<M, T>, expr: impl IntoExpr<M, T>) -> Self {
        self.check_once(column.name());
        self.assign(column.name(), expr.into_expr());
        self
    }

    /// PostgreSQL refuses `SET a = .., a = ..`; say so before sending.
    /// (`of_row` assigns each column once by construction.)
    fn check_once(&mut self, column: &'static str) {
        let seen = match self.core.plan_mut() {
            Some(plan) => plan.sets.iter().any(|(assigned, _)| *assigned == column),
            None => self
                .core
                .tree_mut()
                .get_values()
                .iter()
                .any(|(assigned, _)| assigned.to_string() == column),
        };
        if seen && self.assigned_twice.is_none() {
            self.assigned_twice = Some(column);
        }
    }

    fn assign(&mut self, column: &'static str, value: impl Into<Expr>) {
        // The type system already keeps the tenant column out of `set`; this
        // also stops a hand-made `Column` naming it.
        if M::COLUMNS.iter().any(|c| c.tenant && c.name == column) {
            self.tenant_assigned = Some(column);
        } else {
            // An expression is not keyed: this update is rendered each time.
            self.core.tree_mut().value(column, value);
            self.assigned = true;
        }
    }

    /// [`Update::assign`] of a bind value, which the plan records.
    fn assign_value(&mut self, column: &'static str, value: Value) {
        if M::COLUMNS.iter().any(|c| c.tenant && c.name == column) {
            self.tenant_assigned = Some(column);
            return;
        }
        match self.core.plan_mut() {
            Some(plan) => plan.sets.push((column, value)),
            None => {
                self.core.tree_mut().value(column, value);
            }
        }
        self.assigned = true;
    }

    /// Only updates rows matching `filter`. Several calls are AND-ed.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.core.and_where(filter.into_node());
        self
    }

    /// The statement `exec()` sends: SQL text and bind values. `returning()`
    /// sends the same statement followed by `RETURNING` and every column.
    ///
    /// An error when nothing would be sent, saying why: the error `exec()`
    /// returns ([`Error::NothingToSet`] for an update with no `set`,
    /// [`Error::TenantColumnAssigned`] for one assigning the tenant column,
    /// [`Error::ColumnAssignedTwice`] for one assigning a column twice,
    /// [`Error::InvalidTenantId`] on a handle
    /// keyed by the unset value).
    ///
    /// ```
    /// # use pebble::{Db, Model, PoolOptions};
    /// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, name: String }
    /// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
    /// let tenant = db.tenant(7_i64);
    /// let rename = tenant.update::<User>().set(User::NAME, "ann").filter(User::ID.eq(1));
    /// assert_eq!(
    ///     rename.to_sql()?,
    ///     r#"UPDATE "user" SET "name" = $1 WHERE "org" = $2 AND "id" = $3"#
    /// );
    /// let nothing_set = tenant.update::<User>().filter(User::ID.eq(1));
    /// assert!(matches!(nothing_set.to_sql(), Err(pebble::Error::NothingToSet { .. })));
    /// # Ok::<(), pebble::Error>(())
    /// ```
    pub fn build(&self) -> Result<Statement> {
        self.check()?;
        self.core.build()
    }

    /// The SQL text of [`Update::build`], with `$n` placeholders, or why nothing would be sent.
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    /// Runs the update; returns the number of rows changed.
    ///
    /// (Not an `async fn`: the statement is built before the future is
    /// made, which holds only it and where it goes, not the builder.)
    pub fn exec(mut self) -> impl Future<Output = Result<u64>> + Send + 'static {
        let stmt = self.check().and_then(|()| self.core.take_statement());
        let (conn, scope) = self.core.into_target();
        async move { conn.execute(&stmt?, &scope).await }
    }

    /// Runs the update; returns the changed rows as stored.
    pub async fn returning(self) -> Result<Vec<M>> {
        self.check()?;
        self.core.returning().await
    }

    /// Why nothing would be sent for reasons of the update's own (the
    /// scope's are checked by `build`), if nothing would.
    fn check(&self) -> Result<()> {
        if let Some(column) = self.tenant_assigned {
            return Err(Error::TenantColumnAssigned {
                table: M::TABLE,
                column,
            });
        }
        if let Some(column) = self.assigned_twice {
            return Err(Error::ColumnAssignedTwice {
                table: M::TABLE,
                column,
            });
        }
        if !self.assigned {
            return Err(Error::NothingToSet { table: M::TABLE });
        }
        Ok(())
    }
}

/// What an update records while its shape can be keyed: assignments of
/// bind values (an expression makes it a sea-query tree).
#[derive(Clone, Debug, Default)]
pub(crate) struct UpdatePlan {
    sets: Few<(&'static str, Value)>,
    filters: Filters,
    returning: bool,
}

impl Filtered for UpdatePlan {
    fn filters(&mut self) -> &mut Filters {
        &mut self.filters
    }
}

impl Returns for UpdatePlan {
    fn set_returning(&mut self) {
        self.returning = true;
    }
}

impl Plan for UpdatePlan {
    type Tree = UpdateStatement;

    fn tree<M: Model>(&self, scope: &Scope) -> UpdateStatement {
        let mut stmt = Query::update();
        stmt.table(scope.table_ref::<M>());
        scope.confine(&mut stmt);
        for (column, value) in self.sets.iter() {
            stmt.value(*column, value.clone());
        }
        self.filters.apply(&mut stmt);
        if self.returning {
            stmt.returning(all_columns::<M>());
        }
        stmt
    }

    fn key<M: Model>(&self, key: &mut impl KeySink) {
        key.num(tag::UPDATE);
        key.num(self.sets.len() as u64);
        for (column, value) in self.sets.iter() {
            key.column(column);
            value_key(value, key);
        }
        self.filters.key(key);
        key.num(u64::from(self.returning));
        if self.returning {
            columns_key(key);
        }
    }

    fn values(self, tenant: Option<&Value>) -> Vec<PostgresValue> {
        let mut values = Vec::with_capacity(self.sets.len() + self.filters.len() + 1);
        let out = &mut values;
        for (_, value) in self.sets {
            out.push(bound(value));
        }
        tenant_value(tenant, out);
        self.filters.values(out);
        values
    }
}

impl<M> fmt::Debug for Update<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug(f, "Update").finish()
    }
}
