//! The tenant registry against real PostgreSQL: the `TenantManager`
//! registering the databases it creates, a drop racing a `db(id)` with
//! `create_missing`, cleanup of crashed provisionings, and schema tenants
//! placed over two servers.

use std::collections::BTreeSet;
use std::time::Duration;

use pebble::{
    Db, Error, SchemaTenants, TenantDatabase, TenantManager, TenantStatus, TenantStrategy,
};
use tokio_postgres::NoTls;

mod common;
use common::servers::{note, raw, Note};

/// Names unique to one test of this binary.
fn ids() -> impl Fn(&str) -> String {
    common::servers::ids("r")
}

/// The staging databases marked for tenant `id` (other tests' are theirs),
/// as pebble marks them (`pebble tenant <id> as <database>`) or marked
/// them before (`pebble tenant <id>`).
async fn staging_of(client: &tokio_postgres::Client, id: &str) -> BTreeSet<String> {
    client
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, 'pebble_new_') \
             AND (shobj_description(oid, 'pg_database') = 'pebble tenant ' || $1 \
             OR starts_with(shobj_description(oid, 'pg_database'), 'pebble tenant ' || $1 || ' as '))",
            &[&id],
        )
        .await
        .expect("staging databases")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn databases(client: &tokio_postgres::Client, like: &str) -> BTreeSet<String> {
    client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&like],
        )
        .await
        .expect("databases")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A manager on the test server whose registry lives in `home`.
async fn manager(home: &Db) -> TenantManager {
    let server = pebble_testkit::server().expect("server");
    TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
        .registry(home.clone(), "main")
        .build()
        .expect("manager")
}

async fn status(home: &Db, manager: &TenantManager, id: &str) -> Option<TenantStatus> {
    let _ = home;
    manager
        .registered()
        .await
        .expect("registry")
        .into_iter()
        .find(|r| r.id == id)
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_registers_what_it_creates_and_drops() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let manager = manager(&home).await;
    let id = ids();

    let acme = manager.db(&id("acme")).await.unwrap();
    acme.insert(note("hello")).exec().await.unwrap();
    let records = manager.registered().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, id("acme"));
    assert_eq!(records[0].strategy, TenantStrategy::Database);
    assert_eq!(records[0].status, TenantStatus::Ready);
    assert_eq!(records[0].placement, "main");

    // Schema tenants and database tenants share one registry.
    let schemas = SchemaTenants::builder(home.clone())
        .table::<Note>()
        .build()
        .unwrap();
    schemas.create(&id("globex")).await.unwrap();
    let listed: Vec<(String, TenantStrategy)> = schemas
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.strategy))
        .collect();
    assert_eq!(
        listed,
        vec![
            (id("acme"), TenantStrategy::Database),
            (id("globex"), TenantStrategy::Schema)
        ]
    );
    // Neither strategy takes the other's tenant.
    assert!(matches!(
        schemas.db(&id("acme")).await,
        Err(Error::StrategyMismatch { .. })
    ));
    assert!(matches!(
        schemas.drop_tenant(&id("acme")).await,
        Err(Error::StrategyMismatch { .. })
    ));

    drop(acme);
    manager.drop_tenant(&id("acme")).await.unwrap();
    assert_eq!(status(&home, &manager, &id("acme")).await, None);
    let client = raw(database.config()).await;
    assert!(databases(&client, &format!("tenant_{}", id("acme")))
        .await
        .is_empty());
    schemas.drop_tenant(&id("globex")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_racing_create_missing_does_not_bring_the_tenant_back() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let manager = manager(&home).await;
    let id = ids();
    let tenant = id("racy");
    let client = raw(database.config()).await;

    let db = manager.db(&tenant).await.unwrap();
    db.insert(note("before the drop")).exec().await.unwrap();
    // A transaction still running keeps the drop waiting in its drain,
    // halfway: row marked, pool closed, database not yet dropped.
    let running = db.begin().await.unwrap();
    let dropping = {
        let manager = manager.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { manager.drop_tenant(&tenant).await })
    };
    // Observed, not slept on: the row says `dropping` once the drop holds it.
    let mut seen = false;
    for _ in 0..1000 {
        let row = client
            .query_opt(
                "SELECT status FROM pebble_tenants WHERE id = $1",
                &[&tenant],
            )
            .await
            .unwrap();
        if row.is_some_and(|row| row.get::<_, String>(0) == "dropping") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen, "the drop never marked the row");

    // Every kind of caller during the drop: a new manager (another
    // process), this one, many at once.
    let other = self::manager(&home).await;
    assert!(matches!(
        other.db(&tenant).await,
        Err(Error::TenantDropped { .. })
    ));
    let mut racers = Vec::new();
    for _ in 0..10 {
        let manager = manager.clone();
        let tenant = tenant.clone();
        racers.push(tokio::spawn(async move { manager.db(&tenant).await }));
    }
    running.rollback().await.unwrap();
    drop(db);
    dropping.await.unwrap().unwrap();
    for racer in racers {
        match racer.await.unwrap() {
            Err(Error::TenantDropped { .. }) => {}
            // Only after the drop finished may a caller create it anew,
            // empty: never the old database.
            Ok(db) => assert_eq!(db.select::<Note>().count().await.unwrap(), 0),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    // The dropped tenant's data is gone whatever happened after.
    let recreated = databases(&client, &format!("tenant_{tenant}")).await;
    if !recreated.is_empty() {
        assert_eq!(
            status(&home, &manager, &tenant).await,
            Some(TenantStatus::Ready)
        );
        manager.drop_tenant(&tenant).await.unwrap();
    }
    // Once dropped, asking again is a new tenant, created as usual.
    let again = manager.db(&tenant).await.unwrap();
    assert_eq!(again.select::<Note>().count().await.unwrap(), 0);
    drop(again);
    manager.drop_tenant(&tenant).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_a_crashed_database_provisioning() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let server = pebble_testkit::server().unwrap();
    let id = ids();
    let client = raw(database.config()).await;
    let (entered_tx, entered) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = std::sync::Mutex::new(Some(entered_tx));
    // A setup that never finishes: the process "dies" inside it.
    let stuck = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(move |_db: TenantDatabase, _| {
            if let Some(tx) = entered_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            std::future::pending::<pebble::Result<()>>()
        })
        .registry(home.clone(), "main")
        .build()
        .unwrap();
    let healthy = manager(&home).await;
    healthy.db(&id("fine")).await.unwrap();

    let crashed = {
        let stuck = stuck.clone();
        let tenant = id("crashed");
        tokio::spawn(async move { stuck.db(&tenant).await.map(|_| ()) })
    };
    entered.await.unwrap();
    crashed.abort();
    let _ = crashed.await;
    drop(stuck);

    assert_eq!(
        status(&home, &healthy, &id("crashed")).await,
        Some(TenantStatus::Pending)
    );
    let staging_before = staging_of(&client, &id("crashed")).await;
    assert_eq!(staging_before.len(), 1, "the staging database is left");
    // The crashed row's lock goes with its connection; cleanup skips held rows.
    let mut removed = Vec::new();
    for _ in 0..200 {
        removed.extend(healthy.cleanup().await.unwrap());
        if removed.contains(&id("crashed")) && staging_before.iter().all(|s| removed.contains(s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(removed.contains(&id("crashed")), "{removed:?}");
    let left = staging_of(&client, &id("crashed")).await;
    assert!(left.is_empty(), "staging databases left: {left:?}");
    let ids_left: Vec<String> = healthy
        .registered()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids_left, vec![id("fine")]);
    // The ready tenant is untouched and works.
    assert_eq!(
        healthy
            .db(&id("fine"))
            .await
            .unwrap()
            .select::<Note>()
            .count()
            .await
            .unwrap(),
        0
    );
    healthy.drop_tenant(&id("fine")).await.unwrap();
    // Without a registry, cleanup cannot tell abandoned from in progress.
    let bare = TenantManager::builder(server.config()).build().unwrap();
    assert!(matches!(bare.cleanup().await, Err(Error::Config(_))));
}

async fn has_notes(client: &tokio_postgres::Client, tenant: &str) -> bool {
    let sql = format!("SELECT to_regclass('tenant_{tenant}.notes')::text");
    client
        .query_one(&sql, &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_tenants_spread_over_two_servers() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let second = pebble_testkit::TempServer::start().expect("a second server");
    let second_client = raw(second.config()).await;
    second_client
        .batch_execute("CREATE DATABASE app")
        .await
        .unwrap();
    let one = home.clone();
    let two = Db::connect(second.config_for("app")).await.unwrap();
    let tenants = SchemaTenants::builder(home.clone())
        .server("one", one.clone())
        .server("two", two.clone())
        .table::<Note>()
        .build()
        .unwrap();
    let id = ids();
    let names: Vec<String> = (0..4).map(|n| id(&format!("t{n}"))).collect();
    let mut placed = Vec::new();
    for name in &names {
        placed.push(tenants.create(name).await.unwrap().server);
    }
    // Least loaded first: they alternate.
    assert_eq!(placed, ["one", "two", "one", "two"]);

    let on_one = raw(database.config()).await;
    let on_two = raw(second.config_for("app")).await;
    for (name, server) in names.iter().zip(&placed) {
        let tenant = tenants.db(name).await.unwrap();
        tenant
            .insert(note(&format!("{name} on {server}")))
            .exec()
            .await
            .unwrap();
        let (here, there) = if server == "one" {
            (&on_one, &on_two)
        } else {
            (&on_two, &on_one)
        };
        assert!(has_notes(here, name).await, "{name} missing on {server}");
        assert!(
            !has_notes(there, name).await,
            "{name} also on the other server"
        );
    }
    // A second provisioner (another process) finds each on its server.
    let other = SchemaTenants::builder(home.clone())
        .server("one", one.clone())
        .server("two", two.clone())
        .build()
        .unwrap();
    for (name, server) in names.iter().zip(&placed) {
        let notes = other
            .db(name)
            .await
            .unwrap()
            .select::<Note>()
            .all()
            .await
            .unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].body, format!("{name} on {server}"));
    }
    // The registry lives on the home server only.
    let registry_on_two: Option<String> = on_two
        .query_one("SELECT to_regclass('public.pebble_tenants')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(registry_on_two, None);
    // A provisioner that does not know server `two` says so.
    let partial = SchemaTenants::builder(home.clone())
        .server("one", one.clone())
        .server("three", two.clone())
        .build()
        .unwrap();
    assert!(matches!(
        partial.db(&names[1]).await,
        Err(Error::UnknownServer { .. })
    ));
    // Dropped on the right server.
    for name in &names {
        assert!(tenants.drop_tenant(name).await.unwrap());
    }
    for client in [&on_one, &on_two] {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }
    assert!(tenants.list().await.unwrap().is_empty());
    two.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_tenant_role_cannot_open_another_tenant_database() {
    let server = pebble_testkit::server().unwrap();
    let id = ids();
    let manager = TenantManager::builder(server.config())
        .create_missing(true)
        .roles(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
        .build()
        .unwrap();
    let a = manager
        .create_tenant(&id("a"))
        .await
        .unwrap()
        .expect("a's role");
    let b = manager
        .create_tenant(&id("b"))
        .await
        .unwrap()
        .expect("b's role");
    assert!(
        manager.create_tenant(&id("a")).await.unwrap().is_none(),
        "only once"
    );
    assert!(!format!("{a:?}").contains(a.password()));
    manager
        .db(&id("b"))
        .await
        .unwrap()
        .insert(note("b's secret"))
        .exec()
        .await
        .unwrap();

    // Its own database, raw SQL and all.
    let own = raw(a.config(&server.config_for(&format!("tenant_{}", id("a"))))).await;
    own.execute("INSERT INTO notes (body) VALUES ('mine')", &[])
        .await
        .unwrap();
    let n: i64 = own
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // Another tenant's database: refused at connect. (Databases that are
    // not tenants keep their own grants: PostgreSQL gives PUBLIC CONNECT.)
    for database in [format!("tenant_{}", id("b"))] {
        let err = a
            .config(&server.config_for(&database))
            .connect(NoTls)
            .await
            .err()
            .unwrap_or_else(|| panic!("{} opened {database}", a.name()));
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{database}: {err}"
        );
    }
    let _ = b;
    // A new password replaces the old one; the role survives until the drop.
    let reset = manager.reset_role_password(&id("a")).await.unwrap();
    assert_ne!(reset.password(), a.password());
    drop(own);
    manager.drop_tenant(&id("a")).await.unwrap();
    manager.drop_tenant(&id("b")).await.unwrap();
    let client = raw(server.config()).await;
    let roles: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![
                format!("tenant_{}", id("a")),
                format!("tenant_{}", id("b")),
            ]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0);
    assert!(matches!(
        manager.reset_role_password(&id("a")).await,
        Err(Error::UnknownTenant { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_tenant_staged_again_holds_its_row_against_cleanup() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let server = pebble_testkit::server().unwrap();
    let id = ids();
    let tenant = id("again");
    let block = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = Arc::new(Mutex::new(Some(entered_tx)));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    // A setup that, once `block` is set, waits inside until released.
    let gated = {
        let (block, entered_tx, release) = (block.clone(), entered_tx.clone(), release.clone());
        TenantManager::builder(server.config())
            .create_missing(true)
            .setup(move |db: TenantDatabase, _| {
                let blocked = block.load(Ordering::SeqCst);
                let entered = if blocked {
                    entered_tx.lock().unwrap().take()
                } else {
                    None
                };
                let release = release.clone();
                async move {
                    if blocked {
                        if let Some(tx) = entered {
                            let _ = tx.send(());
                        }
                        release.acquire().await.expect("open").forget();
                    }
                    db.create_table::<Note>().await
                }
            })
            .registry(home.clone(), "main")
            .build()
            .unwrap()
    };
    gated.db(&tenant).await.unwrap();
    gated.close_all();
    // Dropped behind pebble's back: the row still says ready.
    let admin = raw(server.config()).await;
    admin
        .batch_execute(&format!("DROP DATABASE \"tenant_{tenant}\" WITH (FORCE)"))
        .await
        .unwrap();

    block.store(true, Ordering::SeqCst);
    let opening = {
        let gated = gated.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { gated.db(&tenant).await.map(|_| ()) })
    };
    // A guard, not a measure: a setup never entered fails instead of hanging.
    tokio::time::timeout(Duration::from_secs(120), entered)
        .await
        .expect("the setup was entered")
        .unwrap();
    let staging = staging_of(&admin, &tenant).await;
    assert_eq!(staging.len(), 1, "{staging:?}");
    // Another process's cleanup, while the setup runs: the row is held,
    // so the staging database in use is left.
    let other = manager(&home).await;
    let removed = other.cleanup().await.unwrap();
    assert!(removed.iter().all(|r| !staging.contains(r)), "{removed:?}");
    assert_eq!(staging_of(&admin, &tenant).await, staging);
    release.add_permits(1);
    opening.await.unwrap().unwrap();
    let again = gated.db(&tenant).await.unwrap();
    assert_eq!(again.select::<Note>().count().await.unwrap(), 0);
    drop(again);
    assert!(staging_of(&admin, &tenant).await.is_empty());
    gated.drop_tenant(&tenant).await.unwrap();
}

/// What a provisioning cancelled between granting its role and the rename
/// leaves for tenant `tenant`: its pending row, its role, and a staging
/// database the role may connect to (so the role cannot be dropped before
/// it). The manager has roles on. Returns the role's and staging
/// database's names.
async fn crashed_with_role(
    manager: &TenantManager,
    registry: &tokio_postgres::Client,
    admin: &tokio_postgres::Client,
    tenant: &str,
) -> (String, String) {
    assert!(manager.registered().await.unwrap().is_empty());
    let role = format!("tenant_{tenant}");
    let staging = format!("pebble_new_{}", tenant.replace('_', ""));
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN"),
        format!("COMMENT ON ROLE \"{role}\" IS 'pebble tenant database role'"),
        format!("CREATE DATABASE \"{staging}\""),
        format!("COMMENT ON DATABASE \"{staging}\" IS 'pebble tenant {tenant}'"),
        format!("GRANT CONNECT ON DATABASE \"{staging}\" TO \"{role}\""),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    registry
        .execute(
            "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
             VALUES ($1, 'database', 'pending', 'main')",
            &[&tenant],
        )
        .await
        .unwrap();
    (role, staging)
}

/// Whether role `role` exists.
async fn role_exists(admin: &tokio_postgres::Client, role: &str) -> bool {
    !admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .unwrap()
        .is_empty()
}

async fn manager_with_roles(home: &Db) -> TenantManager {
    let server = pebble_testkit::server().unwrap();
    TenantManager::builder(server.config())
        .create_missing(true)
        .roles(true)
        .registry(home.clone(), "main")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_tenant_removes_a_crashed_provisionings_staging_database_before_its_role() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let admin = raw(pebble_testkit::server().unwrap().config()).await;
    let manager = manager_with_roles(&home).await;
    let tenant = ids()("halfway");
    let registry = raw(database.config()).await;
    let (role, _) = crashed_with_role(&manager, &registry, &admin, &tenant).await;

    manager.drop_tenant(&tenant).await.unwrap();
    assert!(staging_of(&admin, &tenant).await.is_empty());
    assert!(!role_exists(&admin, &role).await, "the role is left");
    assert!(manager.registered().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_a_crashed_provisionings_staging_database_and_role() {
    let database = pebble_testkit::database().await.unwrap();
    let home = Db::connect(database.config()).await.unwrap();
    let admin = raw(pebble_testkit::server().unwrap().config()).await;
    let manager = manager_with_roles(&home).await;
    let tenant = ids()("crashedrole");
    let registry = raw(database.config()).await;
    let (role, staging) = crashed_with_role(&manager, &registry, &admin, &tenant).await;
    // A role granted something by hand elsewhere cannot go yet: its row
    // stays (and does not stop the rest of the cleanup).
    let elsewhere = database.config().get_dbname().unwrap().to_owned();
    admin
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE \"{elsewhere}\" TO \"{role}\""
        ))
        .await
        .unwrap();
    let removed = manager.cleanup().await.unwrap();
    assert!(removed.contains(&staging), "{removed:?}");
    assert!(!removed.contains(&tenant), "{removed:?}");
    assert!(role_exists(&admin, &role).await);
    assert_eq!(manager.registered().await.unwrap().len(), 1);
    admin
        .batch_execute(&format!(
            "REVOKE CONNECT ON DATABASE \"{elsewhere}\" FROM \"{role}\""
        ))
        .await
        .unwrap();
    let removed = manager.cleanup().await.unwrap();
    assert_eq!(removed, vec![tenant.clone()]);
    assert!(!role_exists(&admin, &role).await, "the role is left");
    assert!(staging_of(&admin, &tenant).await.is_empty());
    assert!(manager.registered().await.unwrap().is_empty());
}
