//! Statement builders. Each holds a sea-query statement that already carries
//! its scope (the tenant condition is the first term of the WHERE clause, set
//! when the builder is created), so user filters can only narrow it.

pub(crate) mod ddl;
mod delete;
mod insert;
mod select;
mod update;

pub(crate) use ddl::record_statement;
pub use delete::Delete;
pub use insert::{Insert, Many, OnConflict, One, Upsert};
pub use select::Select;
pub use update::Update;

use sea_query::{Returning, ReturningClause};
use tokio_postgres::Row;

use crate::error::Result;
use crate::model::Model;

fn column_names<M: Model>() -> impl Iterator<Item = &'static str> {
    M::COLUMNS.iter().map(|c| c.name)
}

fn returning<M: Model>() -> ReturningClause {
    Returning::new().columns(column_names::<M>())
}

fn decode_all<M: Model>(rows: Vec<Row>) -> Result<Vec<M>> {
    rows.iter().map(M::from_row).collect()
}
