use std::fmt;
use std::marker::PhantomData;

use sea_query::{InsertStatement, OnConflict as SeaOnConflict, Query};

use crate::column::{names, Columns, SetColumns};
use crate::error::{Error, Result};
use crate::exec::{Built, Conn};
use crate::model::Model;
use crate::scope::Scope;

use super::{decode_all, returning};

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
/// ```no_run
/// # use pebble::{Model, Db};
/// # #[derive(Model)] struct User { #[pebble(primary_key, default)] id: i64, #[tenant_id] tenant_id: i64, name: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let alice = db.tenant(7_i64)
///     .insert(User { id: 0, tenant_id: 0, name: "alice".into() })
///     .returning() // the stored row: database defaults filled, tenant stamped
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an insert does nothing until it is run with `.exec()` or `.returning()`"]
pub struct Insert<M, R = One> {
    exec: Conn,
    scope: Scope,
    /// `Err` when a row was refused while the builder was made; reported on run.
    stmt: Result<InsertStatement>,
    rows: usize,
    _marker: PhantomData<fn() -> (M, R)>,
}

impl<M: Model, R> Insert<M, R> {
    pub(crate) fn new(exec: Conn, scope: Scope, rows: Result<Vec<M>>) -> Self {
        let (stmt, count) = match rows {
            Ok(rows) => {
                let count = rows.len();
                (statement(rows), count)
            }
            Err(e) => (Err(e), 0),
        };
        Insert {
            exec,
            scope,
            stmt,
            rows: count,
            _marker: PhantomData,
        }
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

    /// The SQL text this insert sends, with `$n` placeholders; `None` when
    /// a row was refused (running the insert reports why).
    pub fn to_sql(&self) -> Option<String> {
        self.stmt.as_ref().ok().map(|stmt| Built::new(stmt).sql)
    }

    /// Runs the insert; returns the number of rows written.
    pub async fn exec(self) -> Result<u64> {
        let stmt = self.stmt?;
        if self.rows == 0 {
            return Ok(0);
        }
        self.exec.execute(&Built::new(&stmt), &self.scope).await
    }

    async fn returning_rows(self) -> Result<Vec<M>> {
        let mut stmt = self.stmt?;
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        stmt.returning(returning::<M>());
        decode_all(self.exec.rows(&Built::new(&stmt), &self.scope).await?)
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
        if let Some(own_row) = self.insert.scope.qualified_condition(M::TABLE) {
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
        if let Ok(stmt) = &mut insert.stmt {
            stmt.on_conflict(action);
        }
        Upsert { insert }
    }

    /// Runs the upsert; returns the number of rows inserted or updated.
    pub async fn exec(self) -> Result<u64> {
        self.insert.exec().await
    }

    /// The SQL text this upsert sends, with `$n` placeholders; `None` when
    /// a row was refused (running the upsert reports why).
    pub fn to_sql(&self) -> Option<String> {
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

fn statement<M: Model>(rows: Vec<M>) -> Result<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(M::TABLE).columns(
        M::COLUMNS
            .iter()
            .filter(|c| c.is_inserted())
            .map(|c| c.name),
    );
    for row in rows {
        let values = row
            .into_values()
            .into_iter()
            .zip(M::COLUMNS)
            .filter(|(_, c)| c.is_inserted())
            .map(|(v, _)| v.into());
        stmt.values(values)
            .map_err(|_| Error::InvalidQuery("a row's values do not match its columns"))?;
    }
    Ok(stmt)
}

impl<M, R> fmt::Debug for Insert<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Insert")
            .field("scope", &self.scope)
            .field("statement", &self.stmt)
            .finish()
    }
}
