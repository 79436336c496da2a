//! [`Statement`]: what a builder sends, rendered once.

use sea_query::PostgresQueryBuilder;
use std::sync::Arc;

use sea_query_postgres::{PostgresBinder, PostgresValue, PostgresValues};
use tokio_postgres::types::{ToSql, Type};

use crate::error::{Error, Result};
use crate::scope::Scope;

/// A statement rendered to SQL text (with `$n` placeholders) and its bind
/// values: exactly what a builder sends. From a builder's `build()`.
///
/// ```
/// # use pebble::{Db, Model, PoolOptions};
/// # #[derive(Model)] struct User { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, age: i32 }
/// # let db = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
/// let stmt = db.tenant(7_i64).select::<User>().filter(User::AGE.gt(30)).build()?;
/// assert_eq!(stmt.sql(), r#"SELECT "id", "org", "age" FROM "user" WHERE "org" = $1 AND "age" > $2"#);
/// assert_eq!(stmt.params().len(), 2);
/// # Ok::<(), pebble::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Statement {
    sql: Sql,
    values: PostgresValues,
}

/// A statement's text: rendered for it, or shared with every statement of
/// the same shape (the shape cache's).
#[derive(Debug, Clone)]
enum Sql {
    Owned(String),
    Shared(Arc<str>),
}

impl Statement {
    pub(crate) fn new(stmt: &impl PostgresBinder) -> Self {
        let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
        Statement {
            sql: Sql::Owned(sql),
            values,
        }
    }

    /// A statement of a cached shape: its text, and the values collected
    /// for it in placeholder order.
    pub(crate) fn shared(sql: Arc<str>, values: Vec<PostgresValue>) -> Self {
        Statement {
            sql: Sql::Shared(sql),
            values: PostgresValues(values),
        }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        match &self.sql {
            Sql::Owned(sql) => sql,
            Sql::Shared(sql) => sql,
        }
    }

    /// The bind values, for tracing when the pool opted in.
    pub(crate) fn values(&self) -> &PostgresValues {
        &self.values
    }

    /// The SQL text, without copying it.
    pub(crate) fn into_sql(self) -> String {
        match self.sql {
            Sql::Owned(sql) => sql,
            Sql::Shared(sql) => sql.to_string(),
        }
    }

    /// The bind values, in placeholder order, ready for `tokio_postgres`.
    pub fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.values.as_params()
    }

    /// The bind values without collecting them: what `tokio_postgres`'s
    /// `query_raw`/`execute_raw` take, sparing a `Vec` per statement.
    pub(crate) fn param_iter(&self) -> impl ExactSizeIterator<Item = &(dyn ToSql + Sync)> {
        self.values
            .0
            .iter()
            .map(|value| value as &(dyn ToSql + Sync))
    }
}

/// PostgreSQL's wire protocol counts bind parameters in 16 bits.
const MAX_PARAMETERS: usize = u16::MAX as usize;

impl Statement {
    /// Refuses a statement the server could not even parse off the wire.
    pub(crate) fn check_size(&self, scope: &Scope) -> Result<()> {
        let parameters = self.values.0.len();
        if parameters > MAX_PARAMETERS {
            return Err(Error::TooManyParameters {
                table: scope.table(),
                parameters,
            });
        }
        Ok(())
    }
}

impl Statement {
    /// The bind values with their PostgreSQL types, for unnamed statements.
    pub(crate) fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values
            .0
            .iter()
            .zip(self.values.as_types())
            .map(|(value, ty)| {
                // sea-query-postgres declares a `u64` (LIMIT, OFFSET) as
                // `numeric` but encodes it as an `int8`: the server would
                // read garbage (LIMIT 1 matched no row). Declare what is sent.
                let ty = match value.0 {
                    sea_query::Value::BigUnsigned(_) => Type::INT8,
                    _ => ty,
                };
                (value as &(dyn ToSql + Sync), ty)
            })
            .collect()
    }
}
