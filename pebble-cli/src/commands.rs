//! What each subcommand does. Each returns the exit code or a failure.

use std::path::Path;

use pebble::ConnectConfig as Config;
use pebble_migrate::{
    Created, Fleet, HealthCheck, Migrations, Registry, Strategy, Target, TenantRecord,
};

use crate::cli::{AuditArgs, HealthArgs, MigrateArgs, StrategyArg, TenantCommand};
use crate::failure::{connection, Failure, FINDINGS, OK};
use crate::progress::Progress;

fn load(dir: &Path) -> Result<Migrations, Failure> {
    Ok(Migrations::from_dir(dir)?)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn manager(config: &Config) -> Result<pebble::TenantManager, Failure> {
    pebble::TenantManager::builder(config.clone())
        .create_missing(true)
        .build()
        .map_err(|e| Failure(e.to_string()))
}

/// `pebble tenant ...`.
pub async fn tenant(command: TenantCommand, config: Config, json: bool) -> Result<u8, Failure> {
    let registry = Registry::new(config.clone());
    let fail = |e| connection(e, &config);
    match command {
        TenantCommand::Create { id, strategy, dir } => {
            pebble_migrate::validate_tenant_id(&id)?;
            let migrations = load(&dir)?;
            let created = match strategy {
                StrategyArg::Schema => registry.create_schema_tenant(&id, &migrations).await,
                StrategyArg::Database => {
                    let manager = manager(&config)?;
                    registry
                        .create_database_tenant(&manager, &id, &migrations)
                        .await
                }
            };
            let created = match created {
                Ok(created) => created,
                // A migration failure is a finding about the tenant, not a
                // usage error: the tenant stays pending, nothing half-made.
                Err(pebble_migrate::Error::Migration { id, failure }) => {
                    eprintln!("tenant {id} not created: {failure}");
                    return Ok(FINDINGS);
                }
                Err(e) => return Err(fail(e)),
            };
            let record = registry.get(&id).await.map_err(fail)?;
            if json {
                print_json(&record)?;
            } else {
                let verb = match created {
                    Created::New => "created",
                    Created::Existed => "already exists:",
                };
                let what = match strategy {
                    StrategyArg::Schema => "schema",
                    StrategyArg::Database => "database",
                };
                println!(
                    "{verb} tenant {id} ({what} tenant_{id}, {})",
                    plural(migrations.len(), "migration")
                );
            }
            Ok(OK)
        }
        TenantCommand::List => {
            let tenants = registry.list().await.map_err(fail)?;
            if json {
                print_json(&tenants)?;
            } else {
                print_tenants(&tenants);
            }
            Ok(OK)
        }
        TenantCommand::Drop { id } => {
            pebble_migrate::validate_tenant_id(&id)?;
            let record = registry
                .get(&id)
                .await
                .map_err(fail)?
                .ok_or_else(|| Failure(format!("tenant {id:?} is not in the registry")))?;
            match record.strategy {
                Strategy::Schema => registry.drop_schema_tenant(&id).await.map_err(fail)?,
                Strategy::Database => {
                    let manager = manager(&config)?;
                    registry
                        .drop_database_tenant(&manager, &id)
                        .await
                        .map_err(fail)?;
                }
            }
            if json {
                print_json(&serde_json::json!({ "dropped": id }))?;
            } else {
                println!("dropped tenant {id} ({} tenant_{id})", record.strategy);
            }
            Ok(OK)
        }
    }
}

fn print_tenants(tenants: &[TenantRecord]) {
    if tenants.is_empty() {
        println!("no tenants");
        return;
    }
    let width = tenants.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    let place = tenants
        .iter()
        .map(|t| t.placement.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:width$}  STRATEGY  STATUS   {:place$}  CREATED",
        "ID", "PLACEMENT"
    );
    for t in tenants {
        let status = if t.ready { "ready" } else { "pending" };
        println!(
            "{:width$}  {:8}  {:7}  {:place$}  {}",
            t.id,
            t.strategy.to_string(),
            status,
            t.placement,
            t.created_at
        );
    }
}

/// `pebble migrate`.
pub async fn migrate(args: MigrateArgs, config: Config, json: bool) -> Result<u8, Failure> {
    let migrations = load(&args.dir)?;
    let registry = Registry::new(config.clone());
    let fail = |e| connection(e, &config);
    let targets = if args.shared {
        vec![Target::Shared]
    } else if let Some(id) = &args.tenant {
        pebble_migrate::validate_tenant_id(id)?;
        match registry.get(id).await.map_err(fail)? {
            Some(record) => vec![record.target()],
            None => return Err(Failure(format!("tenant {id:?} is not in the registry"))),
        }
    } else {
        registry.targets().await.map_err(fail)?
    };
    let mut fleet = Fleet::new(config.clone()).dry_run(args.dry_run);
    if let Some(jobs) = args.jobs {
        fleet = fleet.jobs(jobs);
    }
    let progress = Progress::new(targets.len(), json);
    let report = fleet
        .run_with(&migrations, targets, |outcome| {
            progress.done(outcome, args.dry_run)
        })
        .await
        .map_err(fail)?;
    progress.finish();
    if json {
        print_json(&report)?;
    } else {
        let failed = report.failures().count();
        let verb = if report.dry_run {
            "would apply"
        } else {
            "applied"
        };
        println!(
            "{}: {} ok, {failed} failed; {verb} {}",
            plural(report.targets.len(), "target"),
            report.targets.len() - failed,
            plural(report.applied_count(), "migration"),
        );
    }
    Ok(if report.is_ok() { OK } else { FINDINGS })
}

/// `pebble health`.
pub async fn health(args: HealthArgs, config: Config, json: bool) -> Result<u8, Failure> {
    let migrations = load(&args.dir)?;
    let mut check = HealthCheck::new(config.clone());
    if !args.tables.is_empty() {
        check = check.expected_tables(args.tables);
    }
    let report = check
        .run(&migrations)
        .await
        .map_err(|e| connection(e, &config))?;
    if json {
        print_json(&report)?;
    } else {
        for finding in &report.findings {
            println!("{finding}");
        }
        if report.is_healthy() {
            println!("healthy: {} checked", plural(report.tenants, "tenant"));
        } else {
            println!(
                "{} in {} checked",
                plural(report.findings.len(), "finding"),
                plural(report.tenants, "tenant")
            );
        }
    }
    Ok(if report.is_healthy() { OK } else { FINDINGS })
}

/// `pebble audit`: row-level security as the connected role sees it.
pub async fn audit(args: AuditArgs, config: Config, json: bool) -> Result<u8, Failure> {
    let tables = args
        .tables
        .iter()
        .map(|spec| match spec.splitn(3, ':').collect::<Vec<_>>()[..] {
            [table, column, ty] if !table.is_empty() && !column.is_empty() && !ty.is_empty() => {
                Ok(pebble::RlsTable::new(table, column, ty))
            }
            _ => Err(Failure(format!(
                "invalid --table {spec:?}: expected NAME:TENANT_COLUMN:TYPE, e.g. tasks:org:uuid"
            ))),
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let db = pebble::Db::connect(config.clone())
        .await
        .map_err(|e| pebble_error(e, &config))?;
    let tables = if tables.is_empty() {
        db.recorded_tenant_tables()
            .await
            .map_err(|e| pebble_error(e, &config))?
    } else {
        tables
    };
    let report = db
        .audit_rls(&tables)
        .await
        .map_err(|e| pebble_error(e, &config))?;
    db.close();
    let findings = report.findings();
    let gaps = findings
        .iter()
        .filter(|f| f.severity == pebble::Severity::Gap)
        .count();
    if json {
        let tables: Vec<serde_json::Value> = report
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.table,
                    "exists": t.exists,
                    "enabled": t.enabled,
                    "forced": t.forced,
                    "policy_as_expected": t.policy_as_expected,
                    "owned_by_role": t.owned_by_role,
                    "can_truncate": t.can_truncate,
                    "unique_without_tenant": t.unique_without_tenant,
                    "definer_views": t.definer_views,
                })
            })
            .collect();
        let findings: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "severity": if f.severity == pebble::Severity::Gap { "gap" } else { "warning" },
                    "table": f.table,
                    "message": f.message,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "role": report.role,
            "superuser": report.superuser,
            "bypass_rls": report.bypass_rls,
            "tables": tables,
            "findings": findings,
        }))?;
    } else {
        print!("{report}");
        if tables.is_empty() {
            println!(
                "no tenant tables recorded in the current schema; pass --table NAME:COLUMN:TYPE"
            );
        }
    }
    Ok(if gaps == 0 { OK } else { FINDINGS })
}

/// A pebble error as a failure, naming where we tried to connect when it
/// is a connection problem.
fn pebble_error(e: pebble::Error, config: &Config) -> Failure {
    if e.is_connection_error() {
        connection(pebble_migrate::Error::Connection(e.to_string()), config)
    } else {
        Failure(e.to_string())
    }
}

/// `1 tenant`, `2 tenants`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One target's line; a dry run says what it would do.
pub fn line(outcome: &pebble_migrate::TargetOutcome, dry_run: bool) -> String {
    if dry_run && outcome.is_ok() && !outcome.applied.is_empty() {
        let files: Vec<&str> = outcome.applied.iter().map(|a| a.file.as_str()).collect();
        return format!("would migrate {}: {}", outcome.target, files.join(", "));
    }
    outcome.to_string()
}
