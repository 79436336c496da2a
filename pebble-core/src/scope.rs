//! How a statement is confined to a tenant: the one place that decides the
//! tenant condition every select, count, exists, update, delete and upsert
//! of a tenant handle starts with.

use sea_query::{ConditionalStatement, Expr, ExprTrait, Value};

use crate::error::{Error, Result};
use crate::model::{ColumnDef, Model, TenantScoped};
use crate::sql_type::SqlType;
use crate::table_check::Target;

/// The confinement of a handle's statements.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    /// `Db` on a global model: there is no tenant column to confine by.
    Global { target: Target },
    /// `TenantDb`: `column = key` is AND-ed in front of every condition and
    /// stamped into every inserted row.
    Tenant {
        column: &'static str,
        key: Value,
        target: Target,
    },
    /// A `TenantDb` keyed by the unset value (nil UUID, `0`, empty string),
    /// typically a missing id defaulted: every statement is refused.
    UnsetTenant { key: String },
    /// `Db` on a model that has a tenant column (only reachable through a
    /// hand-written `GlobalModel` impl): every statement is refused.
    TenantModelThroughDb,
    /// `cross_tenant()`: deliberately unconfined, and every statement is traced.
    CrossTenant { table: &'static str },
}

impl Scope {
    /// The scope of `Db` and `Transaction` statements on `M`.
    pub(crate) fn global<M: Model>() -> Scope {
        if const { has_tenant_column(M::COLUMNS) } {
            Scope::TenantModelThroughDb
        } else {
            Scope::Global {
                target: Target::of::<M>(),
            }
        }
    }

    /// The scope of `cross_tenant()` statements on `M`.
    pub(crate) fn cross_tenant<M: Model>() -> Scope {
        Scope::CrossTenant { table: M::TABLE }
    }

    pub(crate) fn tenant<M: TenantScoped>(key: &M::TenantKey) -> Scope {
        if key.is_unset() {
            return Scope::UnsetTenant {
                key: format!("{key:?}"),
            };
        }
        Scope::Tenant {
            column: M::TENANT_COLUMN,
            key: key.clone().into_sql(),
            target: Target::of::<M>(),
        }
    }

    /// The model to check against its live table before the first
    /// statement (see `table_check`); none for `cross_tenant()`, which
    /// confines nothing a table record could contradict.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            Scope::Global { target } | Scope::Tenant { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The tenant as text for `pebble.tenant_id` (row-level security), if
    /// this scope has one.
    pub(crate) fn tenant_context(&self) -> Option<String> {
        match self {
            Scope::Tenant { key, .. } => context_of(key),
            _ => None,
        }
    }

    /// The table statements of this scope run on, for error messages.
    pub(crate) fn table(&self) -> &'static str {
        match self {
            Scope::Global { target } | Scope::Tenant { target, .. } => target.table(),
            Scope::CrossTenant { table } => table,
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb => "",
        }
    }

    /// Refuses a statement this scope must not run; checked by the executor
    /// before anything is sent.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Scope::UnsetTenant { key } => Err(Error::InvalidTenantId {
                id: key.clone(),
                reason: "the unset value (nil UUID, 0, empty string) cannot be a tenant",
            }),
            Scope::TenantModelThroughDb => Err(Error::InvalidQuery(
                "a model with a #[tenant_id] column cannot be queried through Db; \
                 use db.tenant(id) (GlobalModel must come from #[pebble(global)])",
            )),
            Scope::Global { .. } | Scope::Tenant { .. } | Scope::CrossTenant { .. } => Ok(()),
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
            Scope::Tenant { column, key, .. } => Some(Expr::col(*column).eq(key.clone())),
            // Never sent (see `check`); if it were, it would match nothing.
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb => Some(Expr::cust("FALSE")),
            Scope::Global { .. } | Scope::CrossTenant { .. } => None,
        }
    }

    /// The tenant condition on `table`'s existing row (`"users"."tenant_id" = $n`),
    /// for an upsert's `DO UPDATE ... WHERE`, where `excluded` is also in scope.
    pub(crate) fn qualified_condition(&self, table: &'static str) -> Option<Expr> {
        match self {
            Scope::Tenant { column, key, .. } => Some(Expr::col((table, *column)).eq(key.clone())),
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb => Some(Expr::cust("FALSE")),
            Scope::Global { .. } | Scope::CrossTenant { .. } => None,
        }
    }

    pub(crate) fn trace(&self, sql: &str) {
        if let Scope::CrossTenant { .. } = self {
            tracing::info!(target: "pebble::cross_tenant", sql, "cross-tenant statement");
        }
    }
}

/// A tenant key as the text `pebble_tenant()` casts back to the column type.
pub(crate) fn context_of(key: &Value) -> Option<String> {
    match key {
        Value::Uuid(Some(key)) => Some(key.to_string()),
        Value::BigInt(Some(key)) => Some(key.to_string()),
        Value::Int(Some(key)) => Some(key.to_string()),
        Value::SmallInt(Some(key)) => Some(key.to_string()),
        Value::String(Some(key)) => Some(key.clone()),
        _ => None,
    }
}

const fn has_tenant_column(columns: &[ColumnDef]) -> bool {
    let mut i = 0;
    while i < columns.len() {
        if columns[i].tenant {
            return true;
        }
        i += 1;
    }
    false
}
