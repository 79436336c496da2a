//! The runtime of [pebble](https://docs.rs/pebble): models, typed filters,
//! tenant-scoped query builders and their execution on PostgreSQL.
//!
//! Use it through the `pebble` crate, which adds `#[derive(Model)]`.
#![warn(missing_docs)]

mod column;
mod cross;
mod db;
mod ddl;
mod error;
mod exec;
mod filter;
mod handle;
mod manager;
mod model;
mod pool;
pub mod query;
mod rls;
mod scope;
mod send;
mod sql_type;
mod table_check;
mod tenant;
mod transaction;

pub use column::{Column, Columns, Order, SetColumns, TenantColumn};
pub use cross::CrossTenant;
pub use db::Db;
pub use ddl::create_table_sql;
pub use error::{Error, Result, SqlState};
pub use exec::Statement;
pub use filter::Filter;
pub use handle::Executor;
pub use manager::{ManagerStatus, TenantManager, TenantManagerBuilder};
pub use model::{ColumnDef, GlobalModel, HasPrimaryKey, Model, ScopedBy, TenantScoped};
pub use pool::{IntoConfig, PoolOptions};
pub use rls::audit::{AuditReport, Finding, Severity, TableAudit};
pub use rls::handle::{RawSql, RlsDb, RlsTenantTransaction, RlsTransaction};
pub use rls::RlsTable;
pub use send::StatementMode;
pub use sql_type::{IntoValue, SqlType, TenantKey, TextType};
pub use tenant::{TenantDb, TenantTransaction};
pub use transaction::Transaction;

/// Re-exported so pools and configs can be built without a separate dependency.
pub use deadpool_postgres;
/// Re-exported so custom [`SqlType`] impls can name the value type.
pub use sea_query;
/// Re-exported for [`Model::from_row`] and driver-level access.
pub use tokio_postgres;

/// What `#[derive(Model)]` expands to refers to these paths. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::model::decode;
    pub use sea_query::Value;
    pub use std::{result::Result, vec::Vec};
    pub use tokio_postgres::Row;
}
