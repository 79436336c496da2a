//! Fleet migrations for pebble's tenant schemas and databases.
//!
//! - [`Migrations`]: SQL files `NNNN_name.sql`, read from a directory at run
//!   time ([`Migrations::from_dir`]) or compiled in with
//!   [`embed_migrations!`].
//! - [`Fleet`]: migrates [`Target`]s (the shared schema, tenant schemas
//!   `tenant_<id>`, tenant databases `tenant_<id>`) in parallel over a
//!   bounded number of connections. Each target has its own ledger table
//!   `pebble_migrations(version, name, checksum, applied_at, duration_ms)`
//!   and migrates in **one transaction** under
//!   `pg_try_advisory_xact_lock` keyed per target, with `SET LOCAL
//!   lock_timeout` (and `SET LOCAL search_path` for schema tenants): a
//!   failing migration leaves its target exactly as it was, is reported
//!   with the target, the file and PostgreSQL's SQLSTATE and message, and
//!   does not stop the others. A re-run applies only what is missing; an
//!   applied migration whose file changed is refused.
//! - [`Registry`]: the shared table `pebble_tenants`; creates (atomically:
//!   the schema exists exactly when migrated), lists and drops tenants.
//! - [`HealthCheck`]: missing, extra and changed migrations, missing
//!   tables, orphan and vanished schemas and databases.
//!
//! Each takes a `tokio_postgres::Config` or a [`pebble::ConnectConfig`],
//! which keeps a URL's TLS settings (`sslmode=verify-full`,
//! `sslrootcert=`, client certificates): with the feature `tls`, every
//! connection is made with pebble's rustls connector, as the application's.
//!
//! ```no_run
//! # async fn demo() -> pebble_migrate::Result<()> {
//! use pebble_migrate::{Fleet, HealthCheck, Migrations, Registry};
//! let config: tokio_postgres::Config = "postgres://owner@localhost/app".parse()?;
//! let migrations = Migrations::from_dir("migrations")?;
//! let registry = Registry::new(config.clone());
//! registry.create_schema_tenant("acme", &migrations).await?;
//! let report = Fleet::new(config.clone()).run(&migrations, registry.targets().await?).await?;
//! assert!(report.is_ok());
//! let health = HealthCheck::new(config).run(&migrations).await?;
//! assert!(health.is_healthy());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod apply;
mod connect;
mod error;
mod fleet;
mod health;
mod ident;
mod migration;
mod registry;
mod report;
mod tables;
mod target;

pub use error::{Error, Result};
pub use fleet::Fleet;
pub use health::{Finding, HealthCheck, HealthReport};
pub use ident::{tenant_name, validate_tenant_id, TENANT_PREFIX};
pub use migration::{checksum, Migration, Migrations, NO_TRANSACTION_MARKER};
pub use registry::{Created, Registry, Strategy, TenantRecord};
pub use report::{Applied, FleetReport, TargetError, TargetOutcome};
pub use target::Target;

/// Compiles the `NNNN_name.sql` files of a directory (relative to the
/// crate's `Cargo.toml`) into the binary; evaluates to
/// `pebble_migrate::Result<Migrations>`. File names are checked at compile
/// time.
///
/// ```ignore
/// let migrations = pebble_migrate::embed_migrations!("migrations")?;
/// ```
pub use pebble_migrate_macros::embed_migrations;

/// The tokio-postgres the API takes configurations from.
pub use tokio_postgres;
