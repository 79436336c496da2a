//! Migrating one target: one transaction under the target's advisory lock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::connect::{first_cell, literal, rows};
use crate::ident::quote;
use crate::migration::{Migration, Migrations};
use crate::report::{pg_parts, Applied, TargetError, TargetOutcome};
use crate::target::Target;

/// How a target is migrated.
#[derive(Debug, Clone)]
pub(crate) struct ApplyOptions {
    /// `SET LOCAL lock_timeout`: how long a migration statement waits for a
    /// table lock before failing, so live traffic does not queue behind it.
    pub lock_timeout: Duration,
    /// How long to wait for another runner holding this target's lock.
    pub lock_wait: Duration,
    /// Roll back instead of committing; report what would run.
    pub dry_run: bool,
    /// Create the tenant's schema if missing and mark the registry row
    /// `ready` in the same transaction (tenant provisioning).
    pub provision: bool,
}

/// How often a runner that found the target locked tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// What one transaction achieved.
enum Segment {
    /// Everything pending is applied (committed).
    Done(Vec<Applied>),
    /// Applied and committed up to a `no_transaction` migration.
    NoTransaction(Vec<Applied>, i64),
}

/// Migrates `target` over `client` (connected to the target's database).
/// Never returns with a transaction open on `client`.
pub(crate) async fn migrate_target(
    client: &Client,
    target: &Target,
    migrations: &Migrations,
    options: &ApplyOptions,
) -> TargetOutcome {
    let mut outcome = TargetOutcome {
        target: target.clone(),
        applied: Vec::new(),
        already_applied: 0,
        error: None,
    };
    let mut first = true;
    loop {
        let segment = transaction(client, target, migrations, options).await;
        match segment {
            Ok((already, segment)) => {
                if first {
                    outcome.already_applied = already;
                    first = false;
                }
                match segment {
                    Segment::Done(applied) => {
                        outcome.applied.extend(applied);
                        return outcome;
                    }
                    Segment::NoTransaction(applied, version) => {
                        outcome.applied.extend(applied);
                        let Some(migration) = migrations.get(version) else {
                            return outcome;
                        };
                        match outside_transaction(client, target, migration, options).await {
                            Ok(Some(applied)) => outcome.applied.push(applied),
                            Ok(None) => {}
                            Err(e) => {
                                outcome.error = Some(e);
                                return outcome;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if !client.is_closed() {
                    // Also ends an aborted transaction; a failure here means
                    // the connection broke, and the server rolls back then.
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                outcome.error = Some(e);
                return outcome;
            }
        }
    }
}

/// `BEGIN`, the target's settings and its advisory lock, retried while
/// another runner holds it. Returns whether the schema exists and whether
/// the ledger does, with the transaction open.
async fn begin_locked(
    client: &Client,
    target: &Target,
    options: &ApplyOptions,
) -> Result<(bool, bool), TargetError> {
    let schema = target.schema_name().map_err(invalid)?;
    let ledger = target.ledger_table().map_err(invalid)?;
    let search_path = match target {
        // Transaction-local: it ends with the transaction, so nothing of it
        // survives on the connection whatever happens.
        Target::Schema(_) => format!("SET LOCAL search_path TO {};", quote(&schema)),
        Target::Shared | Target::Database(_) => String::new(),
    };
    // The settings and the per-target lock in one round trip; what exists
    // in a second statement once the lock is held. Asked in the same
    // statement, the answer would come from that statement's snapshot,
    // taken before the lock was granted: a concurrent creator that committed
    // and let go in between would be missed (and its CREATE SCHEMA repeated).
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'; {search_path} \
         SELECT pg_try_advisory_xact_lock(hashtext('pebble-migrate'), hashtext({}))::text",
        options.lock_timeout.as_millis(),
        literal(&target.lock_key().map_err(invalid)?),
    );
    let exists = format!(
        "SELECT (to_regnamespace({}) IS NOT NULL)::text || (to_regclass({}) IS NOT NULL)::text",
        literal(&quote(&schema)),
        literal(&ledger),
    );
    let started = Instant::now();
    loop {
        let reply = client
            .simple_query(&sql)
            .await
            .map_err(|e| TargetError::from_pg(&e))?;
        if first_cell(&reply) == Some("true") {
            let reply = client
                .simple_query(&exists)
                .await
                .map_err(|e| TargetError::from_pg(&e))?;
            let flags = first_cell(&reply).unwrap_or_default();
            let schema_exists = flags.starts_with("true");
            let ledger_exists = flags.ends_with("true") && schema_exists;
            return Ok((schema_exists, ledger_exists));
        }
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| TargetError::from_pg(&e))?;
        if started.elapsed() >= options.lock_wait {
            return Err(TargetError::Busy {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

fn invalid(e: crate::Error) -> TargetError {
    TargetError::Database {
        sqlstate: String::new(),
        message: e.to_string(),
    }
}

/// Reads the ledger: version → (name, checksum).
async fn read_ledger(
    client: &Client,
    ledger: &str,
) -> Result<BTreeMap<i64, (String, String)>, TargetError> {
    let reply = client
        .simple_query(&format!("SELECT version, name, checksum FROM {ledger}"))
        .await
        .map_err(|e| TargetError::from_pg(&e))?;
    let mut applied = BTreeMap::new();
    for row in rows(&reply) {
        let version = row
            .get(0)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default();
        let name = row.get(1).unwrap_or_default().to_owned();
        let checksum = row.get(2).unwrap_or_default().to_owned();
        applied.insert(version, (name, checksum));
    }
    Ok(applied)
}

/// The SQL creating a ledger table.
pub(crate) fn create_ledger_sql(ledger: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (\
            version bigint PRIMARY KEY, \
            name text NOT NULL, \
            checksum text NOT NULL, \
            applied_at timestamptz NOT NULL DEFAULT now(), \
            duration_ms bigint NOT NULL)"
    )
}

/// Refuses a ledger that disagrees with the files.
fn verify(
    applied: &BTreeMap<i64, (String, String)>,
    migrations: &Migrations,
) -> Result<(), TargetError> {
    for (version, (name, checksum)) in applied {
        match migrations.get(*version) {
            None => {
                return Err(TargetError::UnknownApplied {
                    version: *version,
                    name: name.clone(),
                })
            }
            Some(m) if m.checksum() != checksum => {
                return Err(TargetError::ChecksumMismatch {
                    version: *version,
                    file: m.file().to_owned(),
                    applied: checksum.clone(),
                    expected: m.checksum().to_owned(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One transaction: lock, check, apply what is pending up to the first
/// `no_transaction` migration, commit. Returns how many were already applied.
async fn transaction(
    client: &Client,
    target: &Target,
    migrations: &Migrations,
    options: &ApplyOptions,
) -> Result<(usize, Segment), TargetError> {
    let (schema_exists, ledger_exists) = begin_locked(client, target, options).await?;
    let schema = target.schema_name().map_err(invalid)?;
    let ledger = target.ledger_table().map_err(invalid)?;
    let mut setup = String::new();
    if !schema_exists {
        if !options.provision {
            return Err(TargetError::Missing {
                what: format!("schema {schema}"),
            });
        }
        setup.push_str(&format!("CREATE SCHEMA {};", quote(&schema)));
        // pebble's marker, as `SchemaTenants` writes it: a schema without
        // it is never dropped by pebble.
        if let Some(id) = target.tenant() {
            setup.push_str(&format!(
                "COMMENT ON SCHEMA {} IS {};",
                quote(&schema),
                literal(&format!("pebble tenant {id}"))
            ));
        }
    }
    let applied = if ledger_exists {
        read_ledger(client, &ledger).await?
    } else {
        setup.push_str(&create_ledger_sql(&ledger));
        BTreeMap::new()
    };
    verify(&applied, migrations)?;
    let pending: Vec<&Migration> = migrations
        .iter()
        .filter(|m| !applied.contains_key(&m.version()))
        .collect();
    if options.dry_run {
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| TargetError::from_pg(&e))?;
        let would = pending
            .iter()
            .map(|m| Applied {
                version: m.version(),
                file: m.file().to_owned(),
                duration_ms: 0,
            })
            .collect();
        return Ok((applied.len(), Segment::Done(would)));
    }
    if !setup.is_empty() {
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| TargetError::from_pg(&e))?;
    }
    let mut done = Vec::new();
    let mut stopped_at = None;
    for migration in pending {
        if migration.no_transaction() {
            stopped_at = Some(migration.version());
            break;
        }
        done.push(run_migration(client, &ledger, migration).await?);
    }
    if stopped_at.is_none() && options.provision {
        // A database tenant's registry row lives in another database: the
        // registry marks it after this commit.
        if let Target::Schema(id) = target {
            client
                .batch_execute(&crate::registry::mark_ready_sql(id))
                .await
                .map_err(|e| TargetError::from_pg(&e))?;
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| TargetError::from_pg(&e))?;
    let segment = match stopped_at {
        Some(version) => Segment::NoTransaction(done, version),
        None => Segment::Done(done),
    };
    Ok((applied.len(), segment))
}

/// Runs one migration's SQL and records it in the ledger.
async fn run_migration(
    client: &Client,
    ledger: &str,
    migration: &Migration,
) -> Result<Applied, TargetError> {
    let started = Instant::now();
    client.batch_execute(migration.sql()).await.map_err(|e| {
        let (sqlstate, message) = pg_parts(&e);
        TargetError::Migration {
            version: migration.version(),
            file: migration.file().to_owned(),
            sqlstate,
            message,
        }
    })?;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    client
        .batch_execute(&format!(
            "INSERT INTO {ledger} (version, name, checksum, duration_ms) VALUES ({}, {}, {}, {duration_ms})",
            migration.version(),
            literal(migration.name()),
            literal(migration.checksum()),
        ))
        .await
        .map_err(|e| TargetError::from_pg(&e))?;
    Ok(Applied {
        version: migration.version(),
        file: migration.file().to_owned(),
        duration_ms,
    })
}

/// A `no_transaction` migration: under the target's session-level advisory
/// lock, with a session `search_path` for schema tenants that is reset
/// before the lock is released. Not atomic: if it fails, the ledger does
/// not have it and the next run tries it again (write it to be re-runnable,
/// e.g. `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, and drop an INVALID index
/// left by a failed run). `None` if another runner applied it meanwhile.
async fn outside_transaction(
    client: &Client,
    target: &Target,
    migration: &Migration,
    options: &ApplyOptions,
) -> Result<Option<Applied>, TargetError> {
    let key = literal(&target.lock_key().map_err(invalid)?);
    let ledger = target.ledger_table().map_err(invalid)?;
    let pg = |e: tokio_postgres::Error| TargetError::from_pg(&e);
    let started = Instant::now();
    loop {
        let reply = client
            .simple_query(&format!(
                "SELECT pg_try_advisory_lock(hashtext('pebble-migrate'), hashtext({key}))"
            ))
            .await
            .map_err(pg)?;
        if first_cell(&reply) == Some("t") {
            break;
        }
        if started.elapsed() >= options.lock_wait {
            return Err(TargetError::Busy {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
    let result = async {
        let reply = client
            .simple_query(&format!(
                "SELECT count(*) FROM {ledger} WHERE version = {}",
                migration.version()
            ))
            .await
            .map_err(pg)?;
        if first_cell(&reply) != Some("0") {
            return Ok(None);
        }
        if let Target::Schema(_) = target {
            let schema = target.schema_name().map_err(invalid)?;
            client
                .batch_execute(&format!("SET search_path TO {}", quote(&schema)))
                .await
                .map_err(pg)?;
        }
        client
            .batch_execute(&format!(
                "SET lock_timeout = '{}ms'",
                options.lock_timeout.as_millis()
            ))
            .await
            .map_err(pg)?;
        run_migration(client, &ledger, migration).await.map(Some)
    }
    .await;
    // The connection is the runner's own, but leave it as it was anyway.
    let _ = client
        .batch_execute(&format!(
            "RESET search_path; RESET lock_timeout; \
             SELECT pg_advisory_unlock(hashtext('pebble-migrate'), hashtext({key}))"
        ))
        .await;
    result
}
