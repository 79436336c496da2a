//! What a migration run applies to.

use std::fmt;

use crate::error::Result;
use crate::ident::{quote, tenant_name};

/// One place with its own ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", content = "tenant", rename_all = "snake_case")
)]
pub enum Target {
    /// The shared schema `public` of the main database (plans, the registry).
    Shared,
    /// Tenant `id`'s schema `tenant_<id>` in the main database.
    Schema(String),
    /// Tenant `id`'s database `tenant_<id>` on the same server.
    Database(String),
}

impl Target {
    /// A schema tenant, its id validated.
    pub fn schema(id: &str) -> Result<Target> {
        tenant_name(id)?;
        Ok(Target::Schema(id.to_owned()))
    }

    /// A database tenant, its id validated.
    pub fn database(id: &str) -> Result<Target> {
        tenant_name(id)?;
        Ok(Target::Database(id.to_owned()))
    }

    /// The tenant id, if a tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Target::Shared => None,
            Target::Schema(id) | Target::Database(id) => Some(id),
        }
    }

    /// The schema that holds the ledger and, for schema tenants, the
    /// migrated tables.
    pub(crate) fn schema_name(&self) -> Result<String> {
        match self {
            Target::Schema(id) => tenant_name(id),
            Target::Shared | Target::Database(_) => Ok("public".to_owned()),
        }
    }

    /// The database to connect to, `None` for the main database.
    pub(crate) fn database_name(&self) -> Result<Option<String>> {
        match self {
            Target::Database(id) => tenant_name(id).map(Some),
            Target::Shared | Target::Schema(_) => Ok(None),
        }
    }

    /// The advisory lock key: per target, never one global key, so parallel
    /// runners serialise only on the same target. Advisory locks are per
    /// database, so a tenant database needs no more than a constant.
    pub(crate) fn lock_key(&self) -> Result<String> {
        Ok(format!("pebble-migrate:{}", self.schema_name()?))
    }

    /// `"tenant_x".pebble_migrations`.
    pub(crate) fn ledger_table(&self) -> Result<String> {
        Ok(format!("{}.pebble_migrations", quote(&self.schema_name()?)))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Shared => f.write_str("shared schema public"),
            Target::Schema(id) => write!(f, "tenant {id} (schema tenant_{id})"),
            Target::Database(id) => write!(f, "tenant {id} (database tenant_{id})"),
        }
    }
}
