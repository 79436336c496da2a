//! Database tenants through a `TenantManager`. Tenant databases are
//! server-wide, so this binary (its own throwaway cluster) has one test.

use pebble_migrate::{Finding, Fleet, HealthCheck, Migrations, Registry, Target};
use tokio_postgres::NoTls;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_database_tenants_are_created_migrated_checked_and_dropped() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let manager = pebble::TenantManager::builder(db.config())
        .create_missing(true)
        .build()?;
    let v1 = Migrations::from_files([(
        "0001_notes.sql",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);",
    )])?;
    let v2 = Migrations::from_files([
        (
            "0001_notes.sql",
            "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);",
        ),
        (
            "0002_pinned.sql",
            "ALTER TABLE notes ADD COLUMN pinned boolean NOT NULL DEFAULT false;",
        ),
    ])?;
    let ids: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    for id in &ids {
        registry.create_database_tenant(&manager, id, &v1).await?;
    }
    let targets = registry.targets().await?;
    assert_eq!(targets.len(), 10);
    assert!(targets.iter().all(|t| matches!(t, Target::Database(_))));

    let report = Fleet::new(db.config())
        .jobs(3)
        .run(&v2, targets.clone())
        .await?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.applied_count(), 10);
    assert_eq!(
        Fleet::new(db.config())
            .run(&v2, targets)
            .await?
            .applied_count(),
        0
    );
    assert!(HealthCheck::new(db.config()).run(&v2).await?.is_healthy());

    // A database dropped behind the registry's back, and a stray one.
    manager.close_all();
    let (admin, connection) = db.server().config().connect(NoTls).await?;
    tokio::spawn(connection);
    admin
        .batch_execute("DROP DATABASE tenant_d9 WITH (FORCE)")
        .await?;
    admin.batch_execute("CREATE DATABASE tenant_stray").await?;
    let report = HealthCheck::new(db.config()).run(&v2).await?;
    assert_eq!(
        report.findings,
        [
            Finding::Vanished {
                tenant: "d9".into(),
                missing: "database tenant_d9".into()
            },
            Finding::OrphanDatabase {
                database: "tenant_stray".into()
            },
        ]
    );
    admin.batch_execute("DROP DATABASE tenant_stray").await?;

    for id in &ids[..9] {
        registry.drop_database_tenant(&manager, id).await?;
    }
    let left: Vec<String> = registry.list().await?.into_iter().map(|t| t.id).collect();
    assert_eq!(left, ["d9"]);
    let remaining: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(remaining, 0);
    Ok(())
}
