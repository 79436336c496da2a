//! Row-level security: PostgreSQL enforces the tenant too.
//!
//! pebble installs, from model metadata, a policy per tenant table that
//! only shows and accepts rows of the tenant set for the current
//! transaction (`pebble.tenant_id`, set with `SET LOCAL` by
//! every statement of an RLS tenant handle), and a function
//! `pebble_tenant()` that is NULL when no tenant is set, so that a
//! statement without context sees and writes nothing: **fail-closed**.
//!
//! - [`install`]: the idempotent DDL (`ENABLE` and `FORCE ROW LEVEL
//!   SECURITY`, a permissive base policy and the restrictive tenant policy).
//! - [`roles`]: the application's role (NOSUPERUSER, NOBYPASSRLS, not the
//!   owner, no TRUNCATE) and a separate BYPASSRLS role for cross-tenant work.
//! - [`audit`]: what RLS does and does not cover for the connected role.

pub(crate) mod audit;
pub(crate) mod install;
mod logins;
mod owner;
pub(crate) mod roles;

use std::borrow::Cow;

pub(crate) use crate::conn::send::TENANT_SETTING;
use crate::model::TenantScoped;

/// A tenant table as row-level security needs it: its name, its tenant
/// column and that column's type. From [`RlsTable::of`].
///
/// ```
/// # use pebble::{Model, RlsTable};
/// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64 }
/// let tasks = RlsTable::of::<Task>();
/// assert_eq!(tasks.table(), "task");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsTable {
    table: Cow<'static, str>,
    column: Cow<'static, str>,
    sql_type: Cow<'static, str>,
}

impl RlsTable {
    /// The table of tenant model `M`.
    pub fn of<M: TenantScoped>() -> RlsTable {
        let sql_type = M::COLUMNS
            .iter()
            .find(|c| c.tenant)
            .map_or("text", |c| c.sql_type);
        RlsTable {
            table: Cow::Borrowed(M::TABLE),
            column: Cow::Borrowed(M::TENANT_COLUMN),
            sql_type: Cow::Borrowed(sql_type),
        }
    }

    /// A table known only at run time (a tool without the models): its
    /// name, tenant column, and that column's SQL type as `format_type`
    /// prints it (`uuid`, `bigint`, `integer`, `text`). See
    /// [`Db::recorded_tenant_tables`](crate::Db::recorded_tenant_tables).
    pub fn new(
        table: impl Into<String>,
        tenant_column: impl Into<String>,
        tenant_type: impl Into<String>,
    ) -> RlsTable {
        RlsTable {
            table: Cow::Owned(table.into()),
            column: Cow::Owned(tenant_column.into()),
            sql_type: Cow::Owned(tenant_type.into()),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The tenant column's name.
    pub fn tenant_column(&self) -> &str {
        &self.column
    }

    /// The tenant column's SQL type (`uuid`, `bigint`, `integer`, `text`).
    pub fn tenant_type(&self) -> &str {
        &self.sql_type
    }
}

/// Names of the two policies pebble installs on each table.
pub(crate) const TENANT_POLICY: &str = "pebble_tenant";
pub(crate) const BASE_POLICY: &str = "pebble_base";

/// `"name"`, with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
