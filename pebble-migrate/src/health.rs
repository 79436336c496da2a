//! The health check: every registered tenant against the expected
//! migrations and tables, and `tenant_*` schemas or databases that the
//! registry does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use pebble::ConnectConfig;
use tokio_postgres::Client;

use crate::connect::{connect, literal, rows};
use crate::error::Result;
use crate::ident::TENANT_PREFIX;
use crate::migration::Migrations;
use crate::registry::{Registry, Strategy, TenantRecord};
use crate::target::Target;

/// One thing wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "finding", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Finding {
    /// A registry row whose provisioning never finished.
    Pending {
        /// The tenant.
        tenant: String,
    },
    /// A registry row whose schema or database is gone.
    Vanished {
        /// The tenant.
        tenant: String,
        /// `schema tenant_x` or `database tenant_x`.
        missing: String,
    },
    /// An expected migration not in the tenant's ledger.
    MissingMigration {
        /// The tenant.
        tenant: String,
        /// The version.
        version: i64,
        /// The file.
        file: String,
    },
    /// A ledger entry no migration file has.
    ExtraMigration {
        /// The tenant.
        tenant: String,
        /// The version.
        version: i64,
        /// The name in the ledger.
        name: String,
    },
    /// An applied migration whose file has changed since.
    ChecksumChanged {
        /// The tenant.
        tenant: String,
        /// The version.
        version: i64,
        /// The file.
        file: String,
    },
    /// An expected table the tenant does not have.
    MissingTable {
        /// The tenant.
        tenant: String,
        /// The table.
        table: String,
    },
    /// A `tenant_*` schema the registry does not know.
    OrphanSchema {
        /// The schema.
        schema: String,
    },
    /// A `tenant_*` database the registry does not know.
    OrphanDatabase {
        /// The database.
        database: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Pending { tenant } => write!(
                f,
                "tenant {tenant}: still pending (provisioning did not finish)"
            ),
            Finding::Vanished { tenant, missing } => {
                write!(f, "tenant {tenant}: {missing} is gone")
            }
            Finding::MissingMigration { tenant, file, .. } => {
                write!(f, "tenant {tenant}: migration {file} not applied")
            }
            Finding::ExtraMigration {
                tenant,
                version,
                name,
            } => {
                write!(
                    f,
                    "tenant {tenant}: applied migration {version} ({name}) has no file"
                )
            }
            Finding::ChecksumChanged { tenant, file, .. } => {
                write!(f, "tenant {tenant}: {file} changed after it was applied")
            }
            Finding::MissingTable { tenant, table } => {
                write!(f, "tenant {tenant}: table {table} missing")
            }
            Finding::OrphanSchema { schema } => {
                write!(f, "orphan schema {schema} (not in the registry)")
            }
            Finding::OrphanDatabase { database } => {
                write!(f, "orphan database {database} (not in the registry)")
            }
        }
    }
}

/// The health check's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HealthReport {
    /// Registered tenants checked.
    pub tenants: usize,
    /// What is wrong, sorted; empty when healthy.
    pub findings: Vec<Finding>,
}

impl HealthReport {
    /// Whether nothing was found.
    pub fn is_healthy(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks every registered tenant of the database in `config`.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    config: ConnectConfig,
    expected_tables: Option<Vec<String>>,
}

impl HealthCheck {
    /// A check of the registry and tenants of the database in `config`.
    pub fn new(config: impl Into<ConnectConfig>) -> HealthCheck {
        HealthCheck {
            config: config.into(),
            expected_tables: None,
        }
    }

    /// The tables every tenant must have. Default: the `CREATE TABLE` names
    /// of the migrations ([`Migrations::declared_tables`]).
    pub fn expected_tables(mut self, tables: Vec<String>) -> HealthCheck {
        self.expected_tables = Some(tables);
        self
    }

    /// Runs the check against `migrations` (the tenants' expected list).
    pub async fn run(&self, migrations: &Migrations) -> Result<HealthReport> {
        let tenants = Registry::new(self.config.clone()).list().await?;
        let client = connect(&self.config).await?;
        let tables = self
            .expected_tables
            .clone()
            .unwrap_or_else(|| migrations.declared_tables());
        let mut findings = Vec::new();
        let schemas = tenant_names(
            &client,
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'",
        )
        .await?;
        let databases = tenant_names(
            &client,
            "SELECT datname FROM pg_database WHERE datname LIKE 'tenant\\_%'",
        )
        .await?;
        for tenant in &tenants {
            self.check_tenant(
                &client,
                tenant,
                migrations,
                &tables,
                &schemas,
                &databases,
                &mut findings,
            )
            .await?;
        }
        let registered = |strategy: Strategy| -> BTreeSet<String> {
            tenants
                .iter()
                .filter(|t| t.strategy == strategy)
                .map(|t| format!("{TENANT_PREFIX}{}", t.id))
                .collect()
        };
        let schema_tenants = registered(Strategy::Schema);
        let database_tenants = registered(Strategy::Database);
        findings.extend(
            schemas
                .difference(&schema_tenants)
                .map(|schema| Finding::OrphanSchema {
                    schema: schema.clone(),
                }),
        );
        // The database holding the registry is not a tenant even if named so.
        let own = self.config.pg().get_dbname().unwrap_or_default();
        findings.extend(
            databases
                .difference(&database_tenants)
                .filter(|d| d.as_str() != own)
                .map(|database| Finding::OrphanDatabase {
                    database: database.clone(),
                }),
        );
        findings.sort();
        Ok(HealthReport {
            tenants: tenants.len(),
            findings,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_tenant(
        &self,
        client: &Client,
        tenant: &TenantRecord,
        migrations: &Migrations,
        tables: &[String],
        schemas: &BTreeSet<String>,
        databases: &BTreeSet<String>,
        findings: &mut Vec<Finding>,
    ) -> Result<()> {
        let name = format!("{TENANT_PREFIX}{}", tenant.id);
        let id = tenant.id.clone();
        let exists = match tenant.strategy {
            Strategy::Schema => schemas.contains(&name),
            Strategy::Database => databases.contains(&name),
        };
        if !tenant.ready {
            // Provisioning is atomic for schemas: a pending tenant has no
            // schema yet, so only the unfinished provisioning is reported.
            findings.push(Finding::Pending { tenant: id });
            return Ok(());
        }
        if !exists {
            findings.push(Finding::Vanished {
                tenant: id,
                missing: format!("{} {name}", tenant.strategy),
            });
            return Ok(());
        }
        let target = tenant.target();
        let (ledger, present) = match tenant.strategy {
            Strategy::Schema => inspect(client, &target).await?,
            Strategy::Database => {
                let mut config = self.config.clone();
                config.pg_mut().dbname(&name);
                let tenant_client = connect(&config).await?;
                inspect(&tenant_client, &target).await?
            }
        };
        for migration in migrations {
            match ledger.get(&migration.version()) {
                None => findings.push(Finding::MissingMigration {
                    tenant: id.clone(),
                    version: migration.version(),
                    file: migration.file().to_owned(),
                }),
                Some((_, checksum)) if checksum != migration.checksum() => {
                    findings.push(Finding::ChecksumChanged {
                        tenant: id.clone(),
                        version: migration.version(),
                        file: migration.file().to_owned(),
                    })
                }
                Some(_) => {}
            }
        }
        for (version, (name, _)) in &ledger {
            if migrations.get(*version).is_none() {
                findings.push(Finding::ExtraMigration {
                    tenant: id.clone(),
                    version: *version,
                    name: name.clone(),
                });
            }
        }
        for table in tables {
            if !present.contains(table) {
                findings.push(Finding::MissingTable {
                    tenant: id.clone(),
                    table: table.clone(),
                });
            }
        }
        Ok(())
    }
}

type Ledger = BTreeMap<i64, (String, String)>;

/// The target's ledger (empty if it has none) and its tables.
async fn inspect(client: &Client, target: &Target) -> Result<(Ledger, BTreeSet<String>)> {
    let schema = target.schema_name()?;
    let reply = client
        .simple_query(&format!(
            "SELECT tablename FROM pg_tables WHERE schemaname = {}",
            literal(&schema)
        ))
        .await?;
    let present: BTreeSet<String> = rows(&reply)
        .filter_map(|row| row.get(0).map(str::to_owned))
        .collect();
    let mut ledger = BTreeMap::new();
    if present.contains("pebble_migrations") {
        let reply = client
            .simple_query(&format!(
                "SELECT version, name, checksum FROM {}",
                target.ledger_table()?
            ))
            .await?;
        for row in rows(&reply) {
            let version = row.get(0).and_then(|v| v.parse().ok()).unwrap_or_default();
            ledger.insert(
                version,
                (
                    row.get(1).unwrap_or_default().to_owned(),
                    row.get(2).unwrap_or_default().to_owned(),
                ),
            );
        }
    }
    Ok((ledger, present))
}

async fn tenant_names(client: &Client, sql: &str) -> Result<BTreeSet<String>> {
    let reply = client.simple_query(sql).await?;
    Ok(rows(&reply)
        .filter_map(|row| row.get(0).map(str::to_owned))
        .collect())
}
