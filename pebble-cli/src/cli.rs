//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tenants, fleet migrations and health checks for pebble applications.
#[derive(Debug, Parser)]
#[command(name = "pebble", version, about)]
pub struct Cli {
    /// The application database (where the registry `pebble_tenants` and
    /// schema tenants live), e.g. postgres://owner@localhost/app.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list or drop tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Apply pending migrations to one tenant, every tenant or the shared schema.
    Migrate(MigrateArgs),
    /// Check every registered tenant against the migrations; exit 1 on findings.
    Health(HealthArgs),
    /// Audit row-level security for the connected role; exit 1 on any gap.
    Audit(AuditArgs),
}

/// `pebble audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A table to audit, as NAME:TENANT_COLUMN:TYPE (e.g. tasks:org:uuid);
    /// repeatable. Default: every table of the current schema whose pebble
    /// record names a tenant column.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

/// `pebble tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (schema `tenant_<id>` or database `tenant_<id>`) and
    /// run its migrations; it is `ready` only once migrated.
    Create {
        /// Lowercase ASCII letters, digits and `_`.
        id: String,
        /// Schema or database per tenant.
        #[arg(long, value_enum, default_value_t = StrategyArg::Schema)]
        strategy: StrategyArg,
        /// The tenant migrations directory.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// List registered tenants.
    List,
    /// Drop a tenant's schema or database and its registry row.
    Drop {
        /// The tenant id.
        id: String,
    },
}

/// Schema or database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// A schema `tenant_<id>` in the application database.
    Schema,
    /// A database `tenant_<id>` on the same server.
    Database,
}

/// `pebble migrate`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["tenant", "all", "shared"])))]
pub struct MigrateArgs {
    /// Migrate this tenant only.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Migrate every ready tenant in the registry.
    #[arg(long)]
    pub all: bool,
    /// Migrate the shared schema `public` (give its own --dir).
    #[arg(long)]
    pub shared: bool,
    /// Targets migrated at once, one connection each [default: min(2 ×
    /// cores, max_connections / 4)].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Show what would be applied; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The migrations directory.
    #[arg(long, default_value = "migrations")]
    pub dir: PathBuf,
}

/// `pebble health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The tenant migrations directory (the expected ledger).
    #[arg(long, default_value = "migrations")]
    pub dir: PathBuf,
    /// A table every tenant must have (repeatable). Default: the tables
    /// the migrations create.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}
