//! How a statement is confined to a tenant: the one place that decides the
//! tenant condition every select, count, exists, update, delete and upsert
//! of a tenant handle starts with.

use sea_query::{ConditionalStatement, Expr, ExprTrait, Value};

use crate::model::TenantScoped;
use crate::sql_type::SqlType;

/// The confinement of a handle's statements.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    /// `Db` on a global model: there is no tenant column to confine by.
    Global,
    /// `TenantDb`: `column = key` is AND-ed in front of every condition and
    /// stamped into every inserted row.
    Tenant { column: &'static str, key: Value },
    /// `cross_tenant()`: deliberately unconfined, and every statement is traced.
    CrossTenant,
}

impl Scope {
    pub(crate) fn tenant<M: TenantScoped>(key: &M::TenantKey) -> Scope {
        Scope::Tenant {
            column: M::TENANT_COLUMN,
            key: key.clone().into_sql(),
        }
    }

    /// Starts `stmt`'s WHERE clause with the tenant condition. Builders call
    /// this when they are made, before any user filter, and every user
    /// filter is AND-ed after it as one parenthesised term.
    pub(crate) fn confine(&self, stmt: &mut impl ConditionalStatement) {
        if let Some(tenant) = self.condition() {
            stmt.and_where(tenant);
        }
    }

    /// The tenant condition, unqualified (`"tenant_id" = $1`).
    fn condition(&self) -> Option<Expr> {
        match self {
            Scope::Tenant { column, key } => Some(Expr::col(*column).eq(key.clone())),
            Scope::Global | Scope::CrossTenant => None,
        }
    }

    /// The tenant condition on `table`'s existing row (`"users"."tenant_id" = $n`),
    /// for an upsert's `DO UPDATE ... WHERE`, where `excluded` is also in scope.
    pub(crate) fn qualified_condition(&self, table: &'static str) -> Option<Expr> {
        match self {
            Scope::Tenant { column, key } => Some(Expr::col((table, *column)).eq(key.clone())),
            Scope::Global | Scope::CrossTenant => None,
        }
    }

    pub(crate) fn trace(&self, sql: &str) {
        if let Scope::CrossTenant = self {
            tracing::info!(target: "pebble::cross_tenant", sql, "cross-tenant statement");
        }
    }
}
