//! The library on a real PostgreSQL: registry, fleet runner, failures,
//! checksums, concurrency and the health check.

use std::collections::BTreeSet;

use pebble_migrate::{
    Created, Finding, Fleet, HealthCheck, Migrations, Registry, Target, TargetError,
};
use tokio_postgres::{Client, Config, NoTls};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const CREATE_TASKS: (&str, &str) = (
    "0001_create_tasks.sql",
    "CREATE TABLE tasks (id bigserial PRIMARY KEY, title text, done boolean NOT NULL DEFAULT false);\n\
     CREATE INDEX tasks_done ON tasks (done);",
);
const TITLE_NOT_NULL: (&str, &str) = (
    "0002_title_not_null.sql",
    "ALTER TABLE tasks ALTER COLUMN title SET NOT NULL;",
);
const ADD_DUE: (&str, &str) = (
    "0003_add_due.sql",
    "ALTER TABLE tasks ADD COLUMN due date;\nCREATE TABLE labels (id bigserial PRIMARY KEY, name text NOT NULL);",
);

fn set(files: &[(&'static str, &'static str)]) -> Migrations {
    Migrations::from_files(files.iter().copied()).expect("valid test migrations")
}

async fn client(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn count(client: &Client, sql: &str) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

async fn ledger(client: &Client, id: &str) -> Result<Vec<i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT version FROM tenant_{id}.pebble_migrations ORDER BY version"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i:02}")).collect()
}

async fn create_all(registry: &Registry, ids: &[String], migrations: &Migrations) -> TestResult {
    for id in ids {
        assert_eq!(
            registry.create_schema_tenant(id, migrations).await?,
            Created::New
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_schema_tenants_migrate_and_a_new_migration_runs_alone() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let tenants = ids(50);
    create_all(&registry, &tenants, &set(&[CREATE_TASKS])).await?;

    let fleet = Fleet::new(db.config()).jobs(4);
    let v2 = set(&[CREATE_TASKS, TITLE_NOT_NULL]);
    let report = fleet.run(&v2, registry.targets().await?).await?;
    assert!(
        report.is_ok(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.targets.len(), 50);
    for outcome in &report.targets {
        assert_eq!(outcome.already_applied, 1);
        let files: Vec<&str> = outcome.applied.iter().map(|a| a.file.as_str()).collect();
        assert_eq!(files, ["0002_title_not_null.sql"]);
    }

    let again = fleet.run(&v2, registry.targets().await?).await?;
    assert!(again.is_ok());
    assert_eq!(again.applied_count(), 0);

    let c = client(&db.config()).await?;
    for id in &tenants {
        assert_eq!(ledger(&c, id).await?, [1, 2]);
    }
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'"
        )
        .await?,
        50
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tenant_is_left_unchanged_and_completes_after_its_data_is_fixed() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let tenants = ids(50);
    create_all(&registry, &tenants, &set(&[CREATE_TASKS])).await?;
    let c = client(&db.config()).await?;
    for id in &tenants {
        c.batch_execute(&format!(
            "INSERT INTO tenant_{id}.tasks (title) VALUES ('ok')"
        ))
        .await?;
    }
    // Its data makes 0002 fail on this tenant only.
    c.batch_execute("INSERT INTO tenant_t17.tasks (title) VALUES (NULL)")
        .await?;

    let all = set(&[CREATE_TASKS, TITLE_NOT_NULL, ADD_DUE]);
    let report = Fleet::new(db.config())
        .run(&all, registry.targets().await?)
        .await?;
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].target, Target::Schema("t17".into()));
    assert!(failures[0].applied.is_empty());
    match &failures[0].error {
        Some(TargetError::Migration {
            version,
            file,
            sqlstate,
            message,
        }) => {
            assert_eq!((*version, file.as_str()), (2, "0002_title_not_null.sql"));
            assert_eq!(sqlstate, "23502");
            assert!(message.contains("title"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(report.applied_count(), 49 * 2);
    // Exactly as before: no 0002, no 0003 (same transaction), no new column.
    assert_eq!(ledger(&c, "t17").await?, [1]);
    assert_eq!(
        count(&c, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tenant_t17' AND column_name = 'due'").await?,
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'tenant_t17' AND tablename = 'labels'").await?,
        0
    );
    assert_eq!(ledger(&c, "t16").await?, [1, 2, 3]);

    c.batch_execute("UPDATE tenant_t17.tasks SET title = 'fixed' WHERE title IS NULL")
        .await?;
    let rerun = Fleet::new(db.config())
        .run(&all, registry.targets().await?)
        .await?;
    assert!(rerun.is_ok());
    assert_eq!(rerun.applied_count(), 2);
    assert_eq!(ledger(&c, "t17").await?, [1, 2, 3]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_checksum_is_refused_and_nothing_runs() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    registry
        .create_schema_tenant("acme", &set(&[CREATE_TASKS]))
        .await?;
    let tampered = set(&[
        ("0001_create_tasks.sql", "CREATE TABLE tasks (id int);"),
        TITLE_NOT_NULL,
    ]);
    let report = Fleet::new(db.config())
        .run(&tampered, registry.targets().await?)
        .await?;
    match &report.targets[0].error {
        Some(TargetError::ChecksumMismatch {
            version: 1, file, ..
        }) => {
            assert_eq!(file, "0001_create_tasks.sql")
        }
        other => panic!("unexpected {other:?}"),
    }
    let c = client(&db.config()).await?;
    assert_eq!(ledger(&c, "acme").await?, [1]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleets_at_once_apply_every_migration_exactly_once() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let tenants = ids(30);
    create_all(&registry, &tenants, &set(&[CREATE_TASKS])).await?;
    let all = set(&[CREATE_TASKS, TITLE_NOT_NULL, ADD_DUE]);
    let targets = registry.targets().await?;
    let mut reversed = targets.clone();
    reversed.reverse();
    let first = Fleet::new(db.config()).jobs(3);
    let second = Fleet::new(db.config()).jobs(3);
    let (a, b) = tokio::join!(first.run(&all, targets), second.run(&all, reversed));
    let (a, b) = (a?, b?);
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(a.applied_count() + b.applied_count(), 30 * 2);
    let c = client(&db.config()).await?;
    for id in &tenants {
        assert_eq!(ledger(&c, id).await?, [1, 2, 3]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creation_makes_one_schema_and_one_row_per_tenant() -> TestResult {
    let db = pebble_testkit::database().await?;
    let migrations = set(&[CREATE_TASKS]);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let registry = Registry::new(db.config());
        let migrations = migrations.clone();
        tasks.push(tokio::spawn(async move {
            registry
                .create_schema_tenant(&format!("c{}", i % 10), &migrations)
                .await
        }));
    }
    let mut new = 0;
    for task in tasks {
        if task.await?? == Created::New {
            new += 1;
        }
    }
    assert_eq!(new, 10);
    let c = client(&db.config()).await?;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pebble_tenants WHERE status = 'ready'"
        )
        .await?,
        10
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_c%'"
        )
        .await?,
        10
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_create_nothing() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let long = "a".repeat(57);
    for id in [
        "",
        "Acme",
        "a-b",
        "a\"b",
        "a b",
        "public",
        "pg_catalog",
        "é",
        long.as_str(),
    ] {
        let result = registry
            .create_schema_tenant(id, &set(&[CREATE_TASKS]))
            .await;
        assert!(
            matches!(result, Err(pebble_migrate::Error::InvalidTenantId { .. })),
            "{id:?}"
        );
    }
    assert!(registry.list().await?.is_empty());
    let c = client(&db.config()).await?;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant%'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_creation_leaves_no_schema_and_a_pending_row() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let broken = set(&[
        CREATE_TASKS,
        ("0002_broken.sql", "ALTER TABLE nope ADD x int;"),
    ]);
    let result = registry.create_schema_tenant("acme", &broken).await;
    assert!(matches!(
        result,
        Err(pebble_migrate::Error::Migration { .. })
    ));
    let c = client(&db.config()).await?;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'"
        )
        .await?,
        0
    );
    let rows = registry.list().await?;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].ready);
    // Fixed files: the same call finishes it.
    assert_eq!(
        registry
            .create_schema_tenant("acme", &set(&[CREATE_TASKS]))
            .await?,
        Created::New
    );
    assert!(registry.get("acme").await?.is_some_and(|r| r.ready));
    registry.drop_schema_tenant("acme").await?;
    assert!(registry.list().await?.is_empty());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transaction_migrations_run_outside_the_transaction() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    registry
        .create_schema_tenant("acme", &set(&[CREATE_TASKS]))
        .await?;
    let all = set(&[
        CREATE_TASKS,
        (
            "0002_index_title.sql",
            "-- pebble:no_transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title ON tasks (title);",
        ),
        ADD_DUE,
    ]);
    let report = Fleet::new(db.config())
        .run(&all, registry.targets().await?)
        .await?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.applied_count(), 2);
    let c = client(&db.config()).await?;
    assert_eq!(ledger(&c, "acme").await?, [1, 2, 3]);
    assert_eq!(
        count(&c, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_acme' AND indexname = 'tasks_title'").await?,
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_each_case_exactly() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let v1 = set(&[CREATE_TASKS]);
    for id in ["fine", "missing", "extra", "changed", "notable", "vanished"] {
        registry.create_schema_tenant(id, &v1).await?;
    }
    let c = client(&db.config()).await?;
    let v2 = set(&[CREATE_TASKS, ADD_DUE]);
    Fleet::new(db.config())
        .run(
            &v2,
            ["fine", "extra", "changed", "notable"]
                .iter()
                .map(|id| Target::Schema((*id).into()))
                .collect(),
        )
        .await?;
    c.batch_execute(
        "INSERT INTO tenant_extra.pebble_migrations (version, name, checksum, duration_ms) VALUES (9, 'from_the_future', 'x', 0);
         UPDATE tenant_changed.pebble_migrations SET checksum = 'tampered' WHERE version = 1;
         DROP TABLE tenant_notable.labels;
         DROP SCHEMA tenant_vanished CASCADE;
         CREATE SCHEMA tenant_stray;",
    )
    .await?;
    let report = HealthCheck::new(db.config()).run(&v2).await?;
    let expected = BTreeSet::from([
        Finding::MissingMigration {
            tenant: "missing".into(),
            version: 3,
            file: "0003_add_due.sql".into(),
        },
        Finding::MissingTable {
            tenant: "missing".into(),
            table: "labels".into(),
        },
        Finding::ExtraMigration {
            tenant: "extra".into(),
            version: 9,
            name: "from_the_future".into(),
        },
        Finding::ChecksumChanged {
            tenant: "changed".into(),
            version: 1,
            file: "0001_create_tasks.sql".into(),
        },
        Finding::MissingTable {
            tenant: "notable".into(),
            table: "labels".into(),
        },
        Finding::Vanished {
            tenant: "vanished".into(),
            missing: "schema tenant_vanished".into(),
        },
        Finding::OrphanSchema {
            schema: "tenant_stray".into(),
        },
    ]);
    assert_eq!(
        report.findings.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(report.findings.len(), expected.len());
    assert_eq!(report.tenants, 6);

    let healthy = set(&[CREATE_TASKS]);
    let db2 = pebble_testkit::database().await?;
    Registry::new(db2.config())
        .create_schema_tenant("only", &healthy)
        .await?;
    assert!(HealthCheck::new(db2.config())
        .run(&healthy)
        .await?
        .is_healthy());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_a_missing_schema_is_reported() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    registry
        .create_schema_tenant("acme", &set(&[CREATE_TASKS]))
        .await?;
    let all = set(&[CREATE_TASKS, TITLE_NOT_NULL]);
    let targets = vec![
        Target::Schema("acme".into()),
        Target::Schema("ghost".into()),
    ];
    let report = Fleet::new(db.config())
        .dry_run(true)
        .run(&all, targets)
        .await?;
    assert_eq!(report.targets[0].applied.len(), 1);
    assert!(report.targets[0].is_ok());
    assert!(matches!(
        report.targets[1].error,
        Some(TargetError::Missing { .. })
    ));
    let c = client(&db.config()).await?;
    assert_eq!(ledger(&c, "acme").await?, [1]);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_ghost'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_schema_has_its_own_ledger() -> TestResult {
    let db = pebble_testkit::database().await?;
    let shared = set(&[("0001_plans.sql", "CREATE TABLE plans (id int PRIMARY KEY);")]);
    let report = Fleet::new(db.config())
        .run(&shared, vec![Target::Shared])
        .await?;
    assert!(report.is_ok());
    let again = Fleet::new(db.config())
        .run(&shared, vec![Target::Shared])
        .await?;
    assert_eq!(again.applied_count(), 0);
    let c = client(&db.config()).await?;
    assert_eq!(
        count(&c, "SELECT count(*) FROM public.pebble_migrations").await?,
        1
    );
    assert_eq!(count(&c, "SELECT count(*) FROM public.plans").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_is_per_target_and_a_held_one_is_reported_busy() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let v1 = set(&[CREATE_TASKS]);
    for id in ["held", "free"] {
        registry.create_schema_tenant(id, &v1).await?;
    }
    // Another runner in the middle of migrating `held`.
    let other = client(&db.config()).await?;
    other
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('pebble-migrate'), hashtext('pebble-migrate:tenant_held'))",
        )
        .await?;
    let v2 = set(&[CREATE_TASKS, TITLE_NOT_NULL]);
    let report = Fleet::new(db.config())
        .lock_wait(std::time::Duration::from_millis(200))
        .run(&v2, registry.targets().await?)
        .await?;
    let by_tenant = |id: &str| {
        report
            .targets
            .iter()
            .find(|t| t.target.tenant() == Some(id))
    };
    assert!(matches!(
        by_tenant("held").and_then(|t| t.error.clone()),
        Some(TargetError::Busy { .. })
    ));
    assert!(by_tenant("free").is_some_and(|t| t.is_ok() && t.applied.len() == 1));
    other.batch_execute("ROLLBACK").await?;
    let rerun = Fleet::new(db.config())
        .run(&v2, registry.targets().await?)
        .await?;
    assert!(rerun.is_ok());
    assert_eq!(rerun.applied_count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_fails_a_migration_waiting_behind_live_traffic() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    registry
        .create_schema_tenant("busy", &set(&[CREATE_TASKS]))
        .await?;
    // Live traffic holding a lock that ALTER TABLE must wait for.
    let live = client(&db.config()).await?;
    live.batch_execute("BEGIN; LOCK TABLE tenant_busy.tasks IN ACCESS SHARE MODE")
        .await?;
    let report = Fleet::new(db.config())
        .lock_timeout(std::time::Duration::from_millis(100))
        .run(
            &set(&[CREATE_TASKS, TITLE_NOT_NULL]),
            registry.targets().await?,
        )
        .await?;
    match &report.targets[0].error {
        Some(TargetError::Migration { sqlstate, file, .. }) => {
            assert_eq!(
                (sqlstate.as_str(), file.as_str()),
                ("55P03", "0002_title_not_null.sql")
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    live.batch_execute("COMMIT").await?;
    let c = client(&db.config()).await?;
    assert_eq!(ledger(&c, "busy").await?, [1]);
    Ok(())
}
