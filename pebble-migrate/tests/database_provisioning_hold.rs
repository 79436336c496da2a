//! A database tenant being created and migrated by pebble-migrate holds
//! its `pending` registry row until it is ready, so an application's
//! `TenantManager::cleanup` over the same registry, running meanwhile,
//! does not take it for a crashed provisioning (and drop the database
//! under it), and dropping one holds it too, and takes a crashed
//! provisioning's staging database with it. Its own binary: tenant
//! databases are server-wide.

use std::sync::{Arc, Mutex};

use pebble_migrate::{Created, Migrations, Registry};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_being_created_is_not_cleaned_up() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    // Tenant databases are server-wide: an id of this run only.
    let id = format!("hold{}", std::process::id());
    let (entered_tx, entered) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(Mutex::new(Some(entered_tx)));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    // The CLI's manager (no registry of its own), whose setup waits inside
    // until the test lets it go.
    let provisioner = {
        let release = release.clone();
        pebble::TenantManager::builder(db.config())
            .create_missing(true)
            .setup(move |_db: pebble::TenantDatabase, _| {
                let entered = entered_tx.lock().map(|mut tx| tx.take()).ok().flatten();
                let release = release.clone();
                async move {
                    if let Some(tx) = entered {
                        let _ = tx.send(());
                    }
                    if let Ok(permit) = release.acquire().await {
                        permit.forget();
                    }
                    Ok(())
                }
            })
            .build()?
    };
    // The application's, over the registry pebble-migrate writes.
    let app = pebble::TenantManager::builder(db.config())
        .registry(pebble::Db::connect(db.config()).await?, "main")
        .build()?;
    let migrations = Migrations::from_files([(
        "0001_notes.sql",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);",
    )])?;

    let tenant = id.clone();
    let creating = tokio::spawn(async move {
        registry
            .create_database_tenant(&provisioner, &tenant, &migrations)
            .await
    });
    // A guard, not a measure: a setup never entered fails instead of hanging.
    tokio::time::timeout(std::time::Duration::from_secs(120), entered).await??;
    // The row is `pending` while its database is set up: held, so the
    // application's cleanup leaves it (and its staging database) alone.
    let removed = app.cleanup().await?;
    assert!(removed.is_empty(), "{removed:?}");
    release.add_permits(1);
    assert!(matches!(creating.await??, Created::New));
    let record = Registry::new(db.config())
        .get(&id)
        .await?
        .ok_or("the tenant is registered")?;
    assert!(record.ready, "{record:?}");
    // Migrated: its table is there.
    let tenant = app.db(&id).await?;
    tenant.batch_execute("SELECT count(*) FROM notes").await?;
    drop(tenant);
    app.close_all();
    Registry::new(db.config())
        .drop_database_tenant(&app, &id)
        .await?;
    assert!(Registry::new(db.config()).list().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_tenant_removes_a_crashed_provisionings_staging_database() -> TestResult {
    let db = pebble_testkit::database().await?;
    let registry = Registry::new(db.config());
    let id = format!("left{}", std::process::id());
    // The CLI's manager: no registry of its own.
    let manager = pebble::TenantManager::builder(db.config())
        .create_missing(true)
        .build()?;
    let migrations = Migrations::from_files([(
        "0001_notes.sql",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);",
    )])?;
    registry
        .create_database_tenant(&manager, &id, &migrations)
        .await?;
    manager.close_all();
    // What a provisioning of it that crashed left on the server.
    let (admin, connection) = db.server().config().connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let staging = format!("pebble_new_{id}");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{staging}\""))
        .await?;
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{staging}\" IS 'pebble tenant {id}'"
        ))
        .await?;

    registry.drop_database_tenant(&manager, &id).await?;
    let left = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname IN ($1, $2)",
            &[&staging, &format!("tenant_{id}")],
        )
        .await?;
    assert!(left.is_empty(), "{} databases left", left.len());
    assert!(registry.get(&id).await?.is_none());
    Ok(())
}
