use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use sea_query::{
    Expr, InsertStatement, OnConflict as SeaOnConflict, Query, Returning, TableRef, Value,
};
use sea_query_postgres::PostgresValue;

use crate::column::{names, Columns, SetColumns};
use crate::conn::{Conn, Statement};
use crate::error::{Error, Refusal, Result};
use crate::model::Model;
use crate::scope::Scope;
use crate::shape::{bound, tag, value_key, KeySink};

use super::core::{all_columns, column_names, columns_key, Core, Returns};
use super::shape_cache::Plan;

/// Marker: the insert writes one row; `returning()` gives that row.
#[derive(Debug)]
pub enum One {}

/// Marker: the insert writes many rows; `returning()` gives them all.
#[derive(Debug)]
pub enum Many {}

/// An `INSERT` of one row (`insert(row)`) or many (`insert_many(rows)`).
///
/// On a tenant handle every row is stamped with the handle's tenant; a row
/// that carries another tenant makes the whole insert fail with
/// [`Error::TenantMismatch`] before anything is sent.
///
/// Every column is listed. A `#[pebble(default)]` field holding its type's
/// [unset](crate::SqlType::is_unset) value (nil UUID, `0`, the Unix epoch,
/// `None`) is written as `DEFAULT`, so the database fills it; any other
/// value is sent as it is.
///
/// ```no_run
/// # use pebble::{Model, Db};
/// # #[derive(Model)] struct User { #[pebble(primary_key, default)] id: i64, #[tenant_id] tenant_id: i64, name: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let alice = db.tenant(7_i64)
///     .insert(User { id: 0, tenant_id: 0, name: "alice".into() }) // id 0: the database generates it
///     .returning() // the stored row: database defaults filled, tenant stamped
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an insert does nothing until it is run with `.exec()` or `.returning()`"]
pub struct Insert<M, R = One> {
    core: Core<M, InsertPlan>,
    /// Set when a row was refused while the builder was made; reported on run.
    refused: Option<Refusal>,
    rows: usize,
    /// Earlier statements of an insert too large for one (see
    /// `PARAMETERS_PER_STATEMENT`); `core.stmt` holds the last one.
    chunks: Vec<InsertStatement>,
    _rows: PhantomData<fn() -> R>,
}

/// PostgreSQL's protocol counts bind parameters in 16 bits. An upsert's
/// conflict condition takes one more per statement; the margin covers it.
const PARAMETERS_PER_STATEMENT: usize = u16::MAX as usize - 16;

impl<M: Model, R> Insert<M, R> {
    /// An insert of `rows`; the first refused row (`Err`) refuses them all.
    pub(crate) fn new(
        conn: Conn,
        scope: Scope,
        rows: impl IntoIterator<Item = Result<M, Refusal>>,
    ) -> Self {
        let mut insert = Insert {
            core: Core::new(conn, scope),
            refused: None,
            rows: 0,
            chunks: Vec::new(),
            _rows: PhantomData,
        };
        // Every column, always: whether a defaulted column is filled by the
        // database is decided per row, in VALUES, so rows that differ on it
        // still share one statement.
        let width = M::COLUMNS.len();
        // Rows past this many go into another statement of the same insert.
        let per_statement = (PARAMETERS_PER_STATEMENT / width.max(1)).max(1);
        let mut rows = rows.into_iter().peekable();
        let first = rows.next();
        // One row goes in the plan: an insert of one row is sent from the
        // shape cache. Several rows make the statement a sea-query tree.
        if rows.peek().is_none() && width <= PLANNED_WIDTH {
            match first {
                None => {}
                Some(Err(refusal)) => insert.refused = Some(refusal),
                Some(Ok(row)) => {
                    if let Some(plan) = insert.core.plan_mut() {
                        plan.record(row);
                        if plan.width != width {
                            insert.refused = Some(Refusal::MalformedRow {
                                table: M::TABLE,
                                columns: width,
                                values: plan.width,
                            });
                            return insert;
                        }
                    }
                    insert.rows = 1;
                }
            }
            return insert;
        }
        // Built in place: the statement is large, and moving it through
        // intermediate results costs more than filling it here.
        let table = insert.core.scope.table_ref::<M>();
        insert.core.tree_mut();
        let rows = first.into_iter().chain(rows);
        for row in rows {
            if insert.rows > 0 && insert.rows % per_statement == 0 {
                let next = fresh_statement::<M>(table.clone());
                insert
                    .chunks
                    .push(std::mem::replace(insert.core.tree_mut(), next));
            }
            let row = match row {
                Ok(row) => row,
                Err(refusal) => {
                    insert.refused = Some(refusal);
                    break;
                }
            };
            let mut values = Vec::with_capacity(width);
            let mut columns = M::COLUMNS.iter();
            row.into_values(|value, unset| {
                let defaulted = columns.next().is_some_and(|c| c.default.is_some());
                let filled_by_database = unset && defaulted;
                values.push(if filled_by_database {
                    Expr::keyword_default()
                } else {
                    Expr::from(value)
                });
            });
            // An exactly sized `Vec`: sea-query collects it in place.
            let given = values.len();
            if insert.core.tree_mut().values(values).is_err() {
                insert.refused = Some(Refusal::MalformedRow {
                    table: M::TABLE,
                    columns: width,
                    values: given,
                });
                break;
            }
            insert.rows += 1;
        }
        insert
    }

    /// Starts an upsert: what to do when a row conflicts on `target` (a
    /// column or a tuple of columns matching a unique index, tenant column
    /// included where the index has it).
    pub fn on_conflict(self, target: impl Columns<M>) -> OnConflict<M, R> {
        OnConflict {
            insert: self,
            target: names(target),
        }
    }

    /// The statement `exec()` sends: SQL text and bind values. `returning()`
    /// sends the same statement followed by `RETURNING` and every column.
    ///
    /// An error when nothing would be sent, saying why: the refusal
    /// `exec()` reports ([`Error::TenantMismatch`], [`Error::InvalidTenantId`]),
    /// or [`Error::NothingToInsert`] for an `insert_many` of no rows (which
    /// `exec()` answers with `0` without going to the server).
    ///
    /// ```
    /// # use pebble::{Db, Model, PoolOptions};
    /// # #[derive(Model)] struct User { #[pebble(primary_key, default)] id: i64, #[tenant_id] org: i64, name: String }
    /// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
    /// let insert = db.tenant(7_i64).insert(User { id: 0, org: 0, name: "ann".into() });
    /// assert_eq!(
    ///     insert.to_sql()?,
    ///     r#"INSERT INTO "user" ("id", "org", "name") VALUES (DEFAULT, $1, $2)"#
    /// );
    /// let foreign = db.tenant(7_i64).insert(User { id: 0, org: 8, name: "eve".into() });
    /// assert!(matches!(foreign.to_sql(), Err(pebble::Error::TenantMismatch { .. })));
    /// # Ok::<(), pebble::Error>(())
    /// ```
    pub fn build(&self) -> Result<Statement> {
        self.check()?;
        if !self.chunks.is_empty() {
            return Err(Error::SplitInsert {
                table: M::TABLE,
                rows: self.rows,
                statements: self.chunks.len() + 1,
            });
        }
        self.core.build()
    }

    /// Every statement `exec()` sends, in order: one, or for more rows than
    /// fit one statement's 65,535 bind parameters, several (each at most
    /// that), which `exec()` and `returning()` run in one transaction so
    /// that they land all or nothing. An error when nothing would be sent,
    /// as for [`Insert::build`].
    pub fn statements(&self) -> Result<Vec<Statement>> {
        self.check()?;
        let last = self.core.build()?;
        let mut all: Vec<Statement> = self.chunks.iter().map(Statement::new).collect();
        all.push(last);
        Ok(all)
    }

    /// The SQL text of [`Insert::build`], with `$n` placeholders, or why nothing would be sent.
    pub fn to_sql(&self) -> Result<String> {
        self.build().map(Statement::into_sql)
    }

    /// Runs the insert; returns the number of rows written. An insert
    /// split into several statements (see [`Insert::statements`]) runs
    /// them in one transaction: all rows are written, or none. Inside a
    /// transaction it uses that transaction, where a failure aborts it as
    /// a single failing statement would.
    ///
    /// (Not an `async fn`: the statements are built before the future is
    /// made, which holds only them and where they go, not the builder.)
    pub fn exec(mut self) -> impl Future<Output = Result<u64>> + Send + 'static {
        let planned = if !self.chunks.is_empty() {
            self.statements().map(Planned::Atomically)
        } else {
            match self.check() {
                Err(Error::NothingToInsert { .. }) => Ok(Planned::Nothing),
                Err(e) => Err(e),
                Ok(()) => self.core.take_statement().map(Planned::One),
            }
        };
        let (conn, scope) = self.core.into_target();
        async move {
            match planned? {
                Planned::Nothing => Ok(0),
                Planned::One(stmt) => conn.execute(&stmt, &scope).await,
                Planned::Atomically(stmts) => conn.execute_atomically(&stmts, &scope).await,
            }
        }
    }

    async fn returning_rows(mut self) -> Result<Vec<M>> {
        match self.check() {
            Err(Error::NothingToInsert { .. }) => return Ok(Vec::new()),
            other => other?,
        }
        if !self.chunks.is_empty() {
            let returning = || Returning::new().columns(column_names::<M>());
            for chunk in &mut self.chunks {
                chunk.returning(returning());
            }
            self.core.tree_mut().returning(returning());
            let stmts = self.statements()?;
            let rows = self
                .core
                .conn()
                .rows_atomically(&stmts, &self.core.scope)
                .await?;
            return rows.iter().map(M::from_row).collect();
        }
        self.core.returning().await
    }

    /// Why nothing would be sent for reasons of the insert's own (the
    /// scope's are checked by `build`), if nothing would; in the order
    /// `exec()` meets them.
    fn check(&self) -> Result<()> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone().into());
        }
        if self.rows == 0 {
            return Err(Error::NothingToInsert { table: M::TABLE });
        }
        Ok(())
    }
}

impl<M: Model> Insert<M, One> {
    /// Runs the insert and returns the row as stored (database defaults filled in).
    pub async fn returning(self) -> Result<M> {
        self.returning_rows()
            .await?
            .pop()
            .ok_or(Error::NotFound { table: M::TABLE })
    }
}

impl<M: Model> Insert<M, Many> {
    /// Runs the insert and returns the rows as stored.
    pub async fn returning(self) -> Result<Vec<M>> {
        self.returning_rows().await
    }
}

/// An insert with a conflict target, waiting for `do_update` or `do_nothing`.
#[must_use = "choose `.do_update(columns)` or `.do_nothing()`"]
pub struct OnConflict<M, R> {
    insert: Insert<M, R>,
    target: Vec<&'static str>,
}

impl<M: Model, R> OnConflict<M, R> {
    /// On conflict, overwrite `columns` of the existing row with the new
    /// values. On a tenant handle only the tenant's own row is ever updated:
    /// a conflict with another tenant's row changes and returns nothing.
    pub fn do_update(self, columns: impl SetColumns<M>) -> Upsert<M, R> {
        let mut action = SeaOnConflict::columns(self.target);
        action.update_columns(names(columns));
        if let Some(own_row) = self.insert.core.scope.qualified_condition(M::TABLE) {
            action.action_and_where(own_row);
        }
        Upsert::new(self.insert, action)
    }

    /// On conflict, leave the existing row alone (and do not return it).
    pub fn do_nothing(self) -> Upsert<M, R> {
        let mut action = SeaOnConflict::columns(self.target);
        action.do_nothing();
        Upsert::new(self.insert, action)
    }
}

/// `INSERT ... ON CONFLICT ... DO UPDATE / DO NOTHING`.
#[must_use = "an upsert does nothing until it is run with `.exec()` or `.returning()`"]
pub struct Upsert<M, R> {
    insert: Insert<M, R>,
}

impl<M: Model, R> Upsert<M, R> {
    fn new(mut insert: Insert<M, R>, action: SeaOnConflict) -> Self {
        for chunk in &mut insert.chunks {
            chunk.on_conflict(action.clone());
        }
        insert.core.tree_mut().on_conflict(action);
        Upsert { insert }
    }

    /// Runs the upsert; returns the number of rows inserted or updated.
    pub async fn exec(self) -> Result<u64> {
        self.insert.exec().await
    }

    /// The statement `exec()` sends; `returning()` sends it followed by
    /// `RETURNING` and every column. An error when nothing would be sent,
    /// saying why (see [`Insert::build`]).
    pub fn build(&self) -> Result<Statement> {
        self.insert.build()
    }

    /// The SQL text of [`Upsert::build`], with `$n` placeholders, or why nothing would be sent.
    pub fn to_sql(&self) -> Result<String> {
        self.insert.to_sql()
    }
}

impl<M: Model> Upsert<M, One> {
    /// Runs the upsert; the row inserted or updated, or `None` when the
    /// conflict was skipped (`do_nothing`, or another tenant's row).
    pub async fn returning(self) -> Result<Option<M>> {
        Ok(self.insert.returning_rows().await?.pop())
    }
}

impl<M: Model> Upsert<M, Many> {
    /// Runs the upsert; the rows inserted or updated.
    pub async fn returning(self) -> Result<Vec<M>> {
        self.insert.returning_rows().await
    }
}

/// An empty insert into `M`'s table, every column listed.
fn fresh_statement<M: Model>(table: TableRef) -> InsertStatement {
    let mut stmt = Query::insert();
    stmt.into_table(table).columns(column_names::<M>());
    stmt
}

/// The widest row an insert plan records (its `DEFAULT` columns are bits of
/// a `u64`); a wider model's insert is rendered each time.
const PLANNED_WIDTH: usize = u64::BITS as usize;

/// What an insert of one row records while its shape can be keyed: the
/// values given, in column order, and which columns the database fills
/// (`DEFAULT`). The given values become the statement's bind values as
/// they are, with no second list.
#[derive(Clone, Debug, Default)]
pub(crate) struct InsertPlan {
    given: Vec<PostgresValue>,
    /// Bit `i`: column `i` is `DEFAULT`.
    defaults: u64,
    /// How many values the row had (given and `DEFAULT`).
    width: usize,
    returning: bool,
}

impl InsertPlan {
    fn record<M: Model>(&mut self, row: M) {
        let mut columns = M::COLUMNS.iter();
        self.given.reserve_exact(M::COLUMNS.len());
        row.into_values(|value, unset| {
            let defaulted = columns.next().is_some_and(|c| c.default.is_some());
            if unset && defaulted && self.width < PLANNED_WIDTH {
                self.defaults |= 1 << self.width;
            } else {
                self.given.push(PostgresValue(value));
            }
            self.width += 1;
        });
    }

    fn is_default(&self, column: usize) -> bool {
        column < PLANNED_WIDTH && self.defaults >> column & 1 == 1
    }
}

impl Returns for InsertPlan {
    fn set_returning(&mut self) {
        self.returning = true;
    }
}

impl Plan for InsertPlan {
    type Tree = InsertStatement;

    fn tree<M: Model>(&self, scope: &Scope) -> InsertStatement {
        let mut stmt = fresh_statement::<M>(scope.table_ref::<M>());
        if self.width > 0 {
            let mut given = self.given.iter();
            let values = (0..self.width).map(|column| {
                if self.is_default(column) {
                    return Expr::keyword_default();
                }
                // `width` counts each value once, given or `DEFAULT`, so
                // there is always one given here.
                given
                    .next()
                    .map_or_else(Expr::keyword_default, |value| Expr::from(value.0.clone()))
            });
            // The width was checked when the row was recorded.
            let _ = stmt.values(values.collect::<Vec<_>>());
        }
        if self.returning {
            stmt.returning(all_columns::<M>());
        }
        stmt
    }

    fn key<M: Model>(&self, key: &mut impl KeySink) {
        key.num(tag::INSERT);
        columns_key(key);
        key.num(self.width as u64);
        let mut given = self.given.iter();
        for column in 0..self.width {
            if self.is_default(column) {
                key.num(tag::DEFAULT);
            } else if let Some(value) = given.next() {
                value_key(&value.0, key);
            }
        }
        key.num(u64::from(self.returning));
    }

    fn values(mut self, _tenant: Option<&Value>) -> Vec<PostgresValue> {
        // The tenant is stamped into the row: no condition to bind.
        for value in &mut self.given {
            let given = std::mem::replace(&mut value.0, Value::Bool(None));
            *value = bound(given);
        }
        self.given
    }
}

impl<M, R> fmt::Debug for Insert<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core
            .debug(f, "Insert")
            .field("refused", &self.refused)
            .finish()
    }
}

/// What an insert's `exec` sends, decided before its future is made.
enum Planned {
    /// No row: nothing.
    Nothing,
    /// One statement.
    One(Statement),
    /// Several statements (a split insert), in one transaction.
    Atomically(Vec<Statement>),
}
