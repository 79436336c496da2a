//! The runtime of [pebble](https://docs.rs/pebble): models, typed filters,
//! tenant-scoped query builders and their execution on PostgreSQL.
//!
//! Use it through the `pebble` crate, which adds `#[derive(Model)]`.
#![warn(missing_docs)]

// Layers, each importing only from those above it in this list:
// vocabulary (no I/O), how statements are confined, execution, builders,
// handles, and the operations built on handles.
pub mod aggregate;
mod column;
mod error;
mod expr;
mod filter;
mod ident;
mod insertable;
mod model;
mod shape;
mod sql_enum;
mod sql_type;

mod scope;

mod conn;

pub mod query;

mod handle;
mod verify;

mod provision;

mod manager;
mod rls;

pub use aggregate::{count, Agg, AggFilter, AggOrder, On};
pub use column::{Column, Columns, Order, SetColumns, TenantColumn};
pub use conn::options::{IsolationLevel, TransactionOptions};
pub use conn::pool::{IntoConfig, PoolOptions};
pub use conn::send::StatementMode;
pub use conn::tls::{ConnectConfig, SslMode, TlsOptions};
pub use conn::Statement;
pub use error::{Error, Result, SqlState};
pub use expr::{coalesce, Expr, IntoExpr, Numeric};
#[cfg(feature = "chrono")]
pub use expr::{current_date, now};
pub use filter::Filter;
pub use handle::cross::CrossTenant;
pub use handle::database::{TenantDatabase, TenantDatabaseTransaction};
pub use handle::db::Db;
pub use handle::login::{LoginDb, TenantLogins};
pub use handle::rls::{RawSql, RlsDb, RlsTenantTransaction, RlsTransaction};
pub use handle::savepoint::Savepoint;
pub use handle::schema::{SchemaDb, SchemaTransaction};
pub use handle::tenant::{TenantDb, TenantTransaction};
pub use handle::transaction::Transaction;
pub use handle::Executor;
pub use ident::validate_tenant_id;
pub use insertable::{Insertable, Unset};
pub use manager::{
    ManagerStatus, Placement, PlacementFn, ServerLoad, TenantManager, TenantManagerBuilder,
};
pub use model::{
    join_key, ColumnDef, GlobalModel, HasPrimaryKey, JoinBase, Joinable, Model, PerTenantModel,
    Reference, ScopedBy, SharedModel, SingleTableModel, TenantScoped,
};
pub use provision::registry::{TenantRecord, TenantStatus, TenantStrategy};
pub use provision::roles::TenantRole;
pub use provision::schema::{Provisioned, SchemaTenants, SchemaTenantsBuilder};
pub use query::ddl::create_table_sql;
pub use query::{Cond, Join, Keyset, Projection};
pub use rls::audit::{AuditReport, Finding, LoginAudit, Severity, TableAudit};
pub use rls::RlsTable;
pub use scope::login::LoginSecret;
pub use sql_enum::{EnumDef, SqlEnum};
pub use sql_type::{IntoValue, SqlType, TenantKey, TextType};
pub use verify::{Mismatch, MismatchKind, ModelSchema, SchemaReport};

/// Re-exported so pools and configs can be built without a separate dependency.
pub use deadpool_postgres;
/// Re-exported so custom [`SqlType`] impls can name the value type.
pub use sea_query;
/// Re-exported for [`Model::from_row`] and driver-level access.
pub use tokio_postgres;

/// What `#[derive(Model)]` expands to refers to these paths. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::model::{decode, single_key, tenant_reference_allowed, Reference};
    /// The tenant registry's DDL, for pebble-migrate (one table, one text).
    pub use crate::provision::registry::ensure_sql as registry_ensure_sql;
    pub use crate::sql_enum::derived as sql_enum;
    pub use postgres_types::private::BytesMut;
    pub use postgres_types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
    pub use sea_query::Value;
    pub use std::boxed::Box;
    pub use std::option::Option;
    pub use std::{result::Result, vec::Vec};
    pub use tokio_postgres::Row;
}
