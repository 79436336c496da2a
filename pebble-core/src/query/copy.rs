//! [`CopyIn`]: a bulk load through `COPY ... FROM STDIN (FORMAT binary)`.

use std::fmt;

use sea_query::Value;
use sea_query_postgres::{PostgresValue, PostgresValues};
use tokio_postgres::types::Type;

use crate::conn::Conn;
use crate::error::{Error, Refusal, Result};
use crate::model::Model;
use crate::scope::Scope;

use super::insert::{Insert, Many};

/// A bulk load of rows of `M` with PostgreSQL's binary `COPY`, from
/// `copy_in(rows)` on a tenant handle, a [`Db`](crate::Db) or a
/// [`Transaction`](crate::Transaction): the fastest way to write many rows
/// (see the README's benchmark), one statement whatever their number, so
/// all or nothing.
///
/// On a tenant handle every row is stamped with the tenant, and one row
/// carrying another tenant refuses the whole load with
/// [`Error::TenantMismatch`] before anything is sent, exactly as an insert.
///
/// `COPY` cannot write `DEFAULT` for some rows only: a `#[pebble(default)]`
/// column that every row leaves unset is left out (the database fills it),
/// one that every row sets is copied, and a mix is refused with
/// [`Error::CopyMixedDefaults`] before anything is sent.
///
/// Under row-level security (an [`RlsDb`](crate::RlsDb) tenant handle)
/// PostgreSQL refuses `COPY FROM` to the application role, so the rows go
/// as an `insert_many` instead: multi-row `INSERT`s under the parameter
/// limit, in one transaction that carries the tenant.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] struct Reading { #[pebble(primary_key, default)] id: i64, #[tenant_id] org: i64, value: f64 }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let rows = (0..100_000).map(|i| Reading { id: 0, org: 0, value: i as f64 });
/// let written = db.tenant(7_i64).copy_in(rows).exec().await?; // ids from the identity column
/// assert_eq!(written, 100_000);
/// # Ok(()) }
/// ```
#[must_use = "a load does nothing until it is run with `.exec()`"]
pub struct CopyIn<M> {
    conn: Conn,
    scope: Scope,
    rows: Vec<M>,
    refused: Option<Refusal>,
}

impl<M: Model> CopyIn<M> {
    /// A load of `rows`; the first refused row (`Err`) refuses them all.
    pub(crate) fn new(
        conn: Conn,
        scope: Scope,
        rows: impl IntoIterator<Item = Result<M, Refusal>>,
    ) -> Self {
        let mut load = CopyIn {
            conn,
            scope,
            rows: Vec::new(),
            refused: None,
        };
        let rows = rows.into_iter();
        load.rows.reserve(rows.size_hint().0);
        for row in rows {
            match row {
                Ok(row) => load.rows.push(row),
                Err(refusal) => {
                    load.refused = Some(refusal);
                    load.rows = Vec::new();
                    break;
                }
            }
        }
        load
    }

    /// Runs the load; the number of rows written. No rows: `0`, nothing sent.
    pub async fn exec(self) -> Result<u64> {
        if let Some(refusal) = self.refused {
            return Err(refusal.into());
        }
        if self.rows.is_empty() {
            return Ok(0);
        }
        self.scope.check()?;
        if self.scope.tenant_context().is_some() {
            // Row-level security: COPY FROM is refused, chunked INSERTs are not.
            let insert: Insert<M, Many> =
                Insert::new(self.conn, self.scope, self.rows.into_iter().map(Ok));
            return insert.exec().await;
        }
        let (columns, rows) = copied_values(self.rows)?;
        let types = column_types::<M>(&columns, &rows);
        self.conn
            .copy_in(&self.scope, M::TABLE, &columns, &types, rows)
            .await
    }
}

/// The columns to copy and the rows' values for them, row after row in
/// one `Vec` (one allocation for the load, not one per row): every column
/// but the `#[pebble(default)]` ones that every row leaves unset.
fn copied_values<M: Model>(rows: Vec<M>) -> Result<(Vec<&'static str>, Vec<Value>)> {
    let width = M::COLUMNS.len();
    let (mut unset, mut set) = (vec![false; width], vec![false; width]);
    let mut values = Vec::with_capacity(rows.len() * width);
    for row in rows {
        let start = values.len();
        row.into_values(|value, is_unset| {
            let i = values.len() - start;
            if M::COLUMNS.get(i).is_some_and(|c| c.default.is_some()) {
                if is_unset {
                    unset[i] = true;
                } else {
                    set[i] = true;
                }
            }
            values.push(value);
        });
        if values.len() - start != width {
            return Err(Error::MalformedRow {
                table: M::TABLE,
                columns: width,
                values: values.len() - start,
            });
        }
    }
    if let Some(mixed) = (0..width).find(|&i| unset[i] && set[i]) {
        return Err(Error::CopyMixedDefaults {
            table: M::TABLE,
            column: M::COLUMNS[mixed].name,
        });
    }
    let keep: Vec<usize> = (0..width).filter(|&i| !unset[i]).collect();
    let columns = keep.iter().map(|&i| M::COLUMNS[i].name).collect();
    if keep.len() < width {
        let mut i = 0;
        values.retain(|_| {
            let kept = !unset[i % width];
            i += 1;
            kept
        });
    }
    Ok((columns, values))
}

/// The PostgreSQL type of each copied column: the type pebble declares for
/// the field (which the table check holds the table to), or, for a custom
/// [`SqlType`](crate::SqlType) whose SQL type is not one of pebble's, the
/// type its values bind as.
fn column_types<M: Model>(columns: &[&'static str], rows: &[Value]) -> Vec<Type> {
    let first = rows.get(..columns.len());
    columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let declared = M::COLUMNS
                .iter()
                .find(|c| c.name == *name)
                .and_then(|c| builtin_type(c.sql_type));
            declared.unwrap_or_else(|| {
                first
                    .and_then(|row| row.get(i))
                    .map(|value| PostgresValues(vec![PostgresValue(value.clone())]).as_types())
                    .and_then(|types| types.into_iter().next())
                    .unwrap_or(Type::UNKNOWN)
            })
        })
        .collect()
}

/// The types `SqlType::SQL_TYPE` names for pebble's own column types.
fn builtin_type(sql_type: &str) -> Option<Type> {
    Some(match sql_type {
        "uuid" => Type::UUID,
        "text" => Type::TEXT,
        "smallint" => Type::INT2,
        "integer" => Type::INT4,
        "bigint" => Type::INT8,
        "real" => Type::FLOAT4,
        "double precision" => Type::FLOAT8,
        "boolean" => Type::BOOL,
        "bytea" => Type::BYTEA,
        "timestamptz" => Type::TIMESTAMPTZ,
        "date" => Type::DATE,
        "jsonb" => Type::JSONB,
        _ => return None,
    })
}

impl<M> fmt::Debug for CopyIn<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyIn")
            .field("scope", &self.scope)
            .field("rows", &self.rows.len())
            .field("refused", &self.refused)
            .finish()
    }
}
