//! The tenant registry: the shared table `public.pebble_tenants` that
//! provisioning writes and everything lists from.

use std::fmt;
use std::time::Duration;

use pebble::ConnectConfig;
use tokio_postgres::Client;

use crate::apply::{migrate_target, ApplyOptions};
use crate::connect::{connect, literal, rows};
use crate::error::{Error, Result};
use crate::ident::{quote, tenant_name};
use crate::migration::Migrations;
use crate::target::Target;

/// How a tenant is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Strategy {
    /// A schema `tenant_<id>` in the main database.
    Schema,
    /// A database `tenant_<id>` on the server.
    Database,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::Schema => "schema",
            Strategy::Database => "database",
        }
    }

    fn parse(s: &str) -> Strategy {
        if s == "database" {
            Strategy::Database
        } else {
            Strategy::Schema
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registry row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TenantRecord {
    /// The tenant id.
    pub id: String,
    /// Schema or database.
    pub strategy: Strategy,
    /// `true` once fully provisioned (`status = 'ready'`); a `pending` row
    /// is a provisioning that has not finished (or crashed).
    pub ready: bool,
    /// Where it lives: the database holding the schema, or the tenant's
    /// database.
    pub placement: String,
    /// When it was registered, UTC, RFC 3339.
    pub created_at: String,
}

impl TenantRecord {
    /// Its migration target.
    pub fn target(&self) -> Target {
        match self.strategy {
            Strategy::Schema => Target::Schema(self.id.clone()),
            Strategy::Database => Target::Database(self.id.clone()),
        }
    }
}

/// Whether `create_*_tenant` made the tenant or found it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call provisioned it.
    New,
    /// It was already ready (another task or process provisioned it).
    Existed,
}

/// The registry of the database in its config.
#[derive(Debug, Clone)]
pub struct Registry {
    config: ConnectConfig,
    options: ApplyOptions,
}

pub(crate) fn mark_ready_sql(id: &str) -> String {
    format!(
        "UPDATE public.pebble_tenants SET status = 'ready' WHERE id = {} AND status = 'pending'",
        literal(id)
    )
}

impl Registry {
    /// The registry in the database of `config` (an owner connection: it
    /// creates schemas and tables).
    pub fn new(config: impl Into<ConnectConfig>) -> Registry {
        Registry {
            config: config.into(),
            options: ApplyOptions {
                lock_timeout: Duration::from_secs(5),
                lock_wait: Duration::from_secs(300),
                dry_run: false,
                provision: true,
            },
        }
    }

    async fn client(&self) -> Result<Client> {
        let client = connect(&self.config).await?;
        // pebble's own registry table (the one `SchemaTenants` and the
        // `TenantManager` write), created under the advisory lock every
        // creator takes: concurrent `CREATE TABLE IF NOT EXISTS` can still
        // collide in the catalog.
        client
            .batch_execute(&pebble::__private::registry_ensure_sql())
            .await?;
        Ok(client)
    }

    /// Every registered tenant, by id.
    pub async fn list(&self) -> Result<Vec<TenantRecord>> {
        let client = self.client().await?;
        list(&client, None).await
    }

    /// Tenant `id`'s row.
    pub async fn get(&self, id: &str) -> Result<Option<TenantRecord>> {
        tenant_name(id)?;
        let client = self.client().await?;
        Ok(list(&client, Some(id)).await?.pop())
    }

    /// The migration targets of every `ready` tenant, by id.
    pub async fn targets(&self) -> Result<Vec<Target>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|t| t.ready)
            .map(|t| t.target())
            .collect())
    }

    /// Provisions schema tenant `id`: registers it `pending`, then in one
    /// transaction under the tenant's advisory lock creates `tenant_<id>`,
    /// runs `migrations` in it and marks it `ready`. So the schema exists
    /// exactly when it is migrated (unless a `no_transaction` migration
    /// splits the run), a failure leaves no schema and a `pending` row, and
    /// any number of concurrent calls for one tenant make one schema and
    /// one row.
    pub async fn create_schema_tenant(&self, id: &str, migrations: &Migrations) -> Result<Created> {
        let client = self.client().await?;
        if let Some(existing) = self.register(&client, id, Strategy::Schema).await? {
            if existing.ready {
                return Ok(Created::Existed);
            }
        }
        let target = Target::schema(id)?;
        let outcome = migrate_target(&client, &target, migrations, &self.options).await;
        if let Some(failure) = outcome.error {
            return Err(Error::Migration {
                id: id.to_owned(),
                failure,
            });
        }
        // Another task may have provisioned it while this one waited for the
        // lock: then this run found everything applied.
        Ok(
            if outcome.applied.is_empty() && outcome.already_applied > 0 {
                Created::Existed
            } else {
                Created::New
            },
        )
    }

    /// Inserts a `pending` row unless there is one; returns the row that
    /// was there. A row of another strategy is refused.
    async fn register(
        &self,
        client: &Client,
        id: &str,
        strategy: Strategy,
    ) -> Result<Option<TenantRecord>> {
        let name = tenant_name(id)?;
        let placement = match strategy {
            Strategy::Schema => "current_database()".to_owned(),
            Strategy::Database => literal(&name),
        };
        let existing = list(client, Some(id)).await?.pop();
        match &existing {
            Some(row) if row.strategy != strategy => {
                return Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: row.strategy.to_string(),
                })
            }
            Some(_) => {}
            None => {
                client
                    .batch_execute(&format!(
                        "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
                         VALUES ({}, '{strategy}', 'pending', {placement}) ON CONFLICT (id) DO NOTHING",
                        literal(id)
                    ))
                    .await?;
            }
        }
        Ok(existing)
    }

    /// Drops schema tenant `id`: its schema (with everything in it) and its
    /// row, in one transaction under its lock. A tenant not in the registry
    /// is refused ([`Error::NotRegistered`]): a `tenant_*` schema pebble did
    /// not provision is never dropped.
    pub async fn drop_schema_tenant(&self, id: &str) -> Result<()> {
        let name = tenant_name(id)?;
        let client = self.client().await?;
        match list(&client, Some(id)).await?.pop() {
            None => return Err(Error::NotRegistered { id: id.to_owned() }),
            Some(row) if row.strategy != Strategy::Schema => {
                return Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: row.strategy.to_string(),
                })
            }
            Some(_) => {}
        }
        let key = literal(&Target::Schema(id.to_owned()).lock_key()?);
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('pebble-migrate'), hashtext({key})); \
                 DROP SCHEMA IF EXISTS {} CASCADE; \
                 DELETE FROM public.pebble_tenants WHERE id = {}; COMMIT",
                quote(&name),
                literal(id)
            ))
            .await?;
        Ok(())
    }

    /// Provisions database tenant `id` through `manager` (which creates the
    /// database `tenant_<id>` and marks it as pebble's): registers it
    /// `pending`, creates the database if needed, migrates it, marks it
    /// `ready`. The manager must create missing databases
    /// (`create_missing(true)`) and name them `tenant_<id>` (its default).
    /// Unlike a schema, the database exists before it is migrated: a
    /// failure leaves it with its ledger as it was, and the row `pending`.
    pub async fn create_database_tenant(
        &self,
        manager: &pebble::TenantManager,
        id: &str,
        migrations: &Migrations,
    ) -> Result<Created> {
        let client = self.client().await?;
        let existing = self.register(&client, id, Strategy::Database).await?;
        if existing.is_some_and(|row| row.ready) {
            return Ok(Created::Existed);
        }
        // The `pending` row is held until it is marked ready (the
        // transaction ends with `mark_ready_sql`; an error drops the
        // connection, which lets it go): an application's
        // `TenantManager::cleanup` meanwhile would take an unheld pending
        // row for a crashed provisioning and drop the database being
        // migrated. Not when the manager keeps this registry itself: its
        // provisioning takes the row, and would wait on this hold forever.
        let held = !manager.has_registry();
        if held {
            // An idle transaction the server may not end: its lock is what
            // keeps a cleanup off the tenant.
            client
                .batch_execute("BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0")
                .await?;
            let row = client
                .query_opt(
                    "SELECT strategy, status FROM public.pebble_tenants WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?;
            // The row as it is once held: a drop or another creator may
            // have had it meanwhile.
            let (strategy, status): (String, String) = match row {
                Some(row) => (row.try_get(0)?, row.try_get(1)?),
                None => return Err(Error::TenantDropped { id: id.to_owned() }),
            };
            if strategy != Strategy::Database.as_str() {
                return Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: strategy,
                });
            }
            match status.as_str() {
                "pending" => {}
                "ready" => {
                    client.batch_execute("COMMIT").await?;
                    return Ok(Created::Existed);
                }
                _ => return Err(Error::TenantDropped { id: id.to_owned() }),
            }
        }
        // Opening the tenant provisions its database; the handle itself is
        // not needed.
        manager.db(id).await?;
        manager.close_tenant(id);
        let target = Target::database(id)?;
        let report = crate::Fleet::new(self.config.clone())
            .jobs(1)
            .run(migrations, vec![target])
            .await?;
        if let Some(failure) = report.targets.into_iter().find_map(|t| t.error) {
            return Err(Error::Migration {
                id: id.to_owned(),
                failure,
            });
        }
        // Only a pending row: one a drop marked meanwhile (possible
        // without the hold) stays dropping. A manager with the registry
        // marked it ready itself.
        if client.execute(mark_ready_sql(id).as_str(), &[]).await? == 0
            && !list(&client, Some(id))
                .await?
                .pop()
                .is_some_and(|row| row.ready)
        {
            return Err(Error::TenantDropped { id: id.to_owned() });
        }
        if held {
            client.batch_execute("COMMIT").await?;
        }
        Ok(Created::New)
    }

    /// Drops database tenant `id` through `manager` (which drops only a
    /// database it marked as pebble's) and deletes its row.
    pub async fn drop_database_tenant(
        &self,
        manager: &pebble::TenantManager,
        id: &str,
    ) -> Result<()> {
        tenant_name(id)?;
        let client = self.client().await?;
        // Held through the drop (as `create_database_tenant` holds it), so
        // that a creation or a cleanup waits for it; not when the manager
        // keeps this registry itself: its drop takes the row.
        let held = !manager.has_registry();
        if held {
            client
                .batch_execute("BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0")
                .await?;
            client
                .query_opt(
                    "SELECT 1 FROM public.pebble_tenants WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?;
        }
        match list(&client, Some(id)).await?.pop() {
            None => return Err(Error::NotRegistered { id: id.to_owned() }),
            Some(row) if row.strategy != Strategy::Database => {
                return Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: row.strategy.to_string(),
                })
            }
            Some(_) => {}
        }
        manager.drop_tenant(id).await?;
        client
            .batch_execute(&format!(
                "DELETE FROM public.pebble_tenants WHERE id = {}",
                literal(id)
            ))
            .await?;
        if held {
            client.batch_execute("COMMIT").await?;
        }
        Ok(())
    }
}

async fn list(client: &Client, id: Option<&str>) -> Result<Vec<TenantRecord>> {
    let filter = match id {
        Some(id) => format!("WHERE id = {}", literal(id)),
        None => String::new(),
    };
    let reply = client
        .simple_query(&format!(
            "SELECT id, strategy, status, placement, \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM public.pebble_tenants {filter} ORDER BY id"
        ))
        .await?;
    Ok(rows(&reply)
        .map(|row| TenantRecord {
            id: row.get(0).unwrap_or_default().to_owned(),
            strategy: Strategy::parse(row.get(1).unwrap_or_default()),
            ready: row.get(2) == Some("ready"),
            placement: row.get(3).unwrap_or_default().to_owned(),
            created_at: row.get(4).unwrap_or_default().to_owned(),
        })
        .collect())
}
