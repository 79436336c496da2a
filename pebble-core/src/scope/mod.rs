//! How a statement is confined: the one place that decides the tenant
//! condition every select, count, exists, update, delete and upsert of a
//! tenant handle starts with, and whether its transaction also carries the
//! tenant for row-level security.
//!
//! A closed enum, never a trait: a strategy written elsewhere that forgot to
//! confine would be exactly the leak pebble exists to stop. What each
//! strategy adds lives in its own module: [`row`] (the condition),
//! [`rls`] (the transaction's tenant setting), [`login`] (the tenant bound
//! to the connection's login role) and [`schema`] (the qualified table
//! name).

pub(crate) mod login;
mod rls;
mod row;
mod schema;

use std::sync::Arc;

use sea_query::{ConditionalStatement, Expr, ExprTrait, TableRef, Value};

pub(crate) use rls::TenantContext;

use crate::error::{Error, Result};
use crate::model::{ColumnDef, Model, Target, TenantScoped};
use crate::sql_type::{SqlType, TenantKey};

/// How a tenant handle confines its statements. Public only inside this
/// private module, to appear in the sealed `Executor` trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// pebble's row condition alone (`db.tenant(id)` on a plain `Db`).
    Row,
    /// The row condition, and the database's row-level security policy
    /// with the tenant set in each statement's transaction (`RlsDb`).
    Rls,
    /// The row condition, and the database's row-level security policy
    /// with the tenant bound to the connection: it logged in as the
    /// tenant's own role (`TenantLogins`). Statements are sent as they
    /// are, with no transaction around them.
    Login,
}

impl Strategy {
    /// The context a transaction or raw SQL runs in as tenant `key`. Only
    /// row-level security has one (and only it confines raw SQL), so under
    /// any other strategy it is refused: the typed API does not offer raw
    /// SQL there, and this guards the crate's own paths.
    pub(crate) fn tenant_context<K: TenantKey>(self, key: &K) -> Result<TenantContext> {
        match self {
            Strategy::Row => Err(Error::RawSqlNeedsRls),
            // A tenant login's raw SQL also gets the setting, in the
            // transaction raw SQL runs in anyway: the login outranks it in
            // `pebble_tenant()`, and it names the same tenant.
            Strategy::Rls | Strategy::Login => TenantContext::of(key),
        }
    }
}

/// The confinement of a handle's statements on one model.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    /// `Db` or `Transaction` on a model without a tenant column (shared, or
    /// per tenant in a database of its own): nothing to confine by.
    Plain { target: Target },
    /// A tenant handle: `column = key` is AND-ed in front of every
    /// condition and stamped into every inserted row; under
    /// [`Strategy::Rls`] the statement's transaction also carries the tenant.
    Tenant {
        strategy: Strategy,
        column: &'static str,
        key: Value,
        target: Target,
    },
    /// A tenant handle keyed by the unset value (nil UUID, `0`, empty
    /// string), typically a missing id defaulted: every statement is refused.
    UnsetTenant { key: String, reason: &'static str },
    /// A schema handle on a per-tenant model: the table is named with the
    /// tenant's schema in the statement text (`"tenant_acme"."tasks"`), so
    /// no condition is needed and no session setting (`search_path`) is used.
    Schema { schema: Arc<str>, target: Target },
    /// `Db` on a model that has a tenant column (only reachable through a
    /// hand-written `GlobalModel` impl): every statement is refused.
    TenantModelThroughDb { table: &'static str },
    /// `cross_tenant()`: deliberately unconfined, and every statement is traced.
    CrossTenant { table: &'static str },
}

impl Scope {
    /// The scope of `Db` and `Transaction` statements on `M`.
    pub(crate) fn plain<M: Model>() -> Scope {
        if const { has_tenant_column(M::COLUMNS) } {
            Scope::TenantModelThroughDb { table: M::TABLE }
        } else {
            Scope::Plain {
                target: Target::of::<M>(),
            }
        }
    }

    /// The scope of a schema handle's statements on `M` (a per-tenant model),
    /// in the validated schema `schema`.
    pub(crate) fn schema<M: Model>(schema: &Arc<str>) -> Scope {
        Scope::Schema {
            schema: Arc::clone(schema),
            target: Target::of::<M>(),
        }
    }

    /// The table `M`'s statements name: qualified with the tenant's schema
    /// under a schema handle, the bare table otherwise (found through the
    /// connection's default `search_path`, which pebble never changes).
    /// Every builder names its table through this one function.
    pub(crate) fn table_ref<M: Model>(&self) -> TableRef {
        match self {
            Scope::Schema { schema, .. } => schema::table_ref(schema, M::TABLE),
            _ => M::TABLE.into(),
        }
    }

    /// The table a joined model `J` is named by: in the tenant's schema under
    /// a schema handle when `J` is per-tenant too, the bare (shared) table
    /// otherwise.
    pub(crate) fn joined_table_ref<J: Model>(&self) -> TableRef {
        match self {
            Scope::Schema { schema, .. } if J::PER_TENANT => schema::table_ref(schema, J::TABLE),
            _ => J::TABLE.into(),
        }
    }

    /// The schema statements are confined to, under a schema handle.
    pub(crate) fn schema_arc(&self) -> Option<&Arc<str>> {
        match self {
            Scope::Schema { schema, .. } => Some(schema),
            _ => None,
        }
    }

    /// The scope of `cross_tenant()` statements on `M`.
    pub(crate) fn cross_tenant<M: Model>() -> Scope {
        Scope::CrossTenant { table: M::TABLE }
    }

    /// The scope of a tenant handle's statements on `M`.
    pub(crate) fn tenant<M: TenantScoped>(key: &M::TenantKey, strategy: Strategy) -> Scope {
        if let Some(reason) = rls::refusal(key) {
            return Scope::UnsetTenant {
                key: format!("{key:?}"),
                reason,
            };
        }
        Scope::Tenant {
            strategy,
            column: M::TENANT_COLUMN,
            key: key.clone().into_sql(),
            target: Target::of::<M>(),
        }
    }

    /// Whether statements are confined to one tenant by pebble's condition.
    pub(crate) fn is_tenant(&self) -> bool {
        matches!(self, Scope::Tenant { .. })
    }

    /// The model to check against its live table before the first
    /// statement (see `table_check`); none for `cross_tenant()`, which
    /// confines nothing a table record could contradict.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            Scope::Plain { target }
            | Scope::Tenant { target, .. }
            | Scope::Schema { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The tenant to set for the statement's transaction: only under
    /// row-level security.
    pub(crate) fn tenant_context(&self) -> Option<TenantContext> {
        match self {
            Scope::Tenant {
                strategy: Strategy::Rls,
                key,
                ..
            } => TenantContext::of_value(key),
            _ => None,
        }
    }

    /// The table statements of this scope run on, for error messages.
    pub(crate) fn table(&self) -> &'static str {
        match self {
            Scope::Plain { target }
            | Scope::Tenant { target, .. }
            | Scope::Schema { target, .. } => target.table(),
            Scope::CrossTenant { table } | Scope::TenantModelThroughDb { table } => table,
            Scope::UnsetTenant { .. } => "",
        }
    }

    /// Refuses a statement this scope must not run; checked by the executor
    /// before anything is sent.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Scope::UnsetTenant { key, reason } => Err(Error::InvalidTenantId {
                id: key.clone(),
                reason,
            }),
            Scope::TenantModelThroughDb { table } => Err(Error::TenantModelThroughDb { table }),
            Scope::Plain { .. }
            | Scope::Tenant { .. }
            | Scope::Schema { .. }
            | Scope::CrossTenant { .. } => Ok(()),
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

    /// The value the tenant condition binds, for builders that place its
    /// placeholder themselves (a cached statement shape).
    pub(crate) fn condition_value(&self) -> Option<&Value> {
        match self {
            Scope::Tenant { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The tenant condition, unqualified (`"tenant_id" = $1`).
    fn condition(&self) -> Option<Expr> {
        match self {
            // Every strategy keeps the row condition.
            Scope::Tenant { column, key, .. } => Some(row::condition(column, key)),
            // Never sent (see `check`); if it were, it would match nothing.
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb { .. } => {
                Some(Expr::cust("FALSE"))
            }
            // The schema in the table name confines it.
            Scope::Plain { .. } | Scope::Schema { .. } | Scope::CrossTenant { .. } => None,
        }
    }

    /// The tenant condition on `table`'s existing row (`"users"."tenant_id" = $n`),
    /// for an upsert's `DO UPDATE ... WHERE`, where `excluded` is also in scope.
    pub(crate) fn qualified_condition(&self, table: &'static str) -> Option<Expr> {
        match self {
            Scope::Tenant { column, key, .. } => Some(row::qualified_condition(table, column, key)),
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb { .. } => {
                Some(Expr::cust("FALSE"))
            }
            Scope::Plain { .. } | Scope::Schema { .. } | Scope::CrossTenant { .. } => None,
        }
    }

    /// The condition a joined model's ON clause starts with: its own
    /// tenant column equal to this scope's tenant (`"projects"."org" = $n`),
    /// for a joined tenant model; nothing for a shared one (`tenant_column`
    /// `None`).
    ///
    /// Under `cross_tenant()` there is no one tenant, but a row is still
    /// only paired with rows of its own tenant: the joined tenant column
    /// equals `anchor`'s, the (table, tenant column) of the query's first
    /// tenant model (`"projects"."org" = "tasks"."org"`). Callers cannot
    /// write that themselves (a tenant column has no `eq_col`), and a
    /// report pairing one tenant's task with another's project is wrong
    /// whoever reads it.
    pub(crate) fn joined_condition(
        &self,
        table: &'static str,
        tenant_column: Option<&'static str>,
        anchor: Option<(&'static str, &'static str)>,
    ) -> Option<Expr> {
        match self {
            Scope::CrossTenant { .. } => match (tenant_column, anchor) {
                (Some(column), Some(anchor)) => Some(Expr::col((table, column)).equals(anchor)),
                _ => None,
            },
            Scope::Tenant { key, .. } => {
                tenant_column.map(|column| row::qualified_condition(table, column, key))
            }
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb { .. } => {
                Some(Expr::cust("FALSE"))
            }
            // Refused before sending (`refuses_joined`); were it sent, a
            // tenant table joined here would pair with no row.
            Scope::Plain { .. } | Scope::Schema { .. } if tenant_column.is_some() => {
                Some(Expr::cust("FALSE"))
            }
            Scope::Plain { .. } | Scope::Schema { .. } => None,
        }
    }

    /// Whether a joined model with this tenant column must be refused: a
    /// tenant model in a plain `Db`'s query has no tenant to be confined
    /// by (only a hand-written `Joinable` impl gets it there).
    /// `cross_tenant()` reaches every tenant on purpose.
    pub(crate) fn refuses_joined(&self, tenant_column: Option<&'static str>) -> bool {
        matches!(self, Scope::Plain { .. } | Scope::Schema { .. }) && tenant_column.is_some()
    }

    /// For tracing: the tenant the statement is confined to (as the text
    /// row-level security would set), and the strategy confining it.
    pub(crate) fn describe(&self) -> (Option<String>, &'static str) {
        match self {
            Scope::Tenant { strategy, key, .. } => (
                TenantContext::of_value(key).map(|t| t.as_str().to_owned()),
                match strategy {
                    Strategy::Row => "row",
                    Strategy::Rls => "rls",
                    Strategy::Login => "login",
                },
            ),
            Scope::Plain { .. } => (None, "none"),
            Scope::Schema { schema, .. } => (Some(schema.to_string()), "schema"),
            Scope::CrossTenant { .. } => (None, "cross_tenant"),
            Scope::UnsetTenant { .. } | Scope::TenantModelThroughDb { .. } => (None, "refused"),
        }
    }

    /// Logs a statement that reaches every tenant.
    pub(crate) fn trace(&self, sql: &str) {
        if let Scope::CrossTenant { .. } = self {
            tracing::info!(target: "pebble::cross_tenant", sql, "cross-tenant statement");
        }
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
