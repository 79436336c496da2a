//! TenantManager (database per tenant) against real PostgreSQL: single-flight
//! opening under load, the pool cap, removal during a running query, id
//! validation, isolation between tenant databases, provisioning, outages.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pebble::{Db, Error, Model, PoolOptions, SqlState, TenantManager, TenantManagerBuilder};
use tokio_postgres::NoTls;

/// The table every tenant database gets.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    author: String,
    body: String,
}

fn note(author: &str, body: &str) -> Note {
    Note {
        id: 0,
        author: author.to_owned(),
        body: body.to_owned(),
    }
}

/// Tenant ids unique to one test of one run, so tests (and runs against a
/// shared `DATABASE_URL`) never meet; dropped again by `cleanup`.
struct Ids(String);

impl Ids {
    fn new() -> Ids {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Ids(format!(
            "p{}n{}_",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn id(&self, name: impl std::fmt::Display) -> String {
        format!("{}{name}", self.0)
    }

    async fn cleanup(&self, manager: &TenantManager) {
        for name in databases().await {
            if let Some(id) = name
                .strip_prefix("tenant_")
                .filter(|id| id.starts_with(&self.0))
            {
                manager.drop_tenant(id).await.expect("drop test tenant");
            }
        }
    }
}

fn builder() -> TenantManagerBuilder {
    let server = pebble_testkit::server().expect("a test server");
    TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: Db, _tenant| async move { db.create_table::<Note>().await })
}

/// The databases on the test server.
async fn databases() -> BTreeSet<String> {
    let server = pebble_testkit::server().expect("a test server");
    let (client, connection) = server.config().connect(NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let rows = client
        .query("SELECT datname FROM pg_database", &[])
        .await
        .expect("list databases");
    drop(client);
    let _ = connection.await;
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_open_exactly_one_pool_per_tenant() {
    let ids = Ids::new();
    let setups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&setups);
    let manager = builder()
        .max_open_pools(50)
        .setup(move |db: Db, _tenant| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move { db.create_table::<Note>().await }
        })
        .build()
        .unwrap();

    let tasks: Vec<_> = (0..200)
        .map(|task| {
            let manager = manager.clone();
            let tenant = ids.id(task % 20);
            tokio::spawn(async move {
                let db = manager.db(&tenant).await?;
                db.insert(note(&tenant, &format!("task {task}")))
                    .exec()
                    .await?;
                db.select::<Note>().count().await
            })
        })
        .collect();
    for task in tasks {
        let count = task.await.expect("task").expect("every query succeeds");
        assert!((1..=10).contains(&count));
    }

    assert_eq!(manager.pools_opened(), 20);
    assert_eq!(
        setups.load(Ordering::Relaxed),
        20,
        "setup ran once per new database"
    );
    assert_eq!(manager.tenants().len(), 20);
    for tenant in 0..20 {
        let db = manager.db(&ids.id(tenant)).await.unwrap();
        assert_eq!(db.select::<Note>().count().await.unwrap(), 10);
    }
    assert_eq!(manager.pools_opened(), 20, "known tenants are lookups");
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_keeps_open_pools_under_the_cap() {
    let ids = Ids::new();
    let manager = builder().max_open_pools(5).build().unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let watcher = {
        let (manager, done) = (manager.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(manager.tenants().len());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            most
        })
    };
    let tasks: Vec<_> = (0..120)
        .map(|task| {
            let manager = manager.clone();
            let tenant = ids.id(task % 15);
            tokio::spawn(async move {
                let db = manager.db(&tenant).await?;
                db.insert(note(&tenant, "x")).exec().await?;
                db.select::<Note>()
                    .filter(Note::AUTHOR.eq(&tenant))
                    .count()
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("task")
            .expect("every query succeeds during eviction");
    }
    done.store(true, Ordering::Relaxed);
    let most = watcher.await.unwrap();
    assert!(most <= 5, "{most} pools were open at once");
    assert!(manager.tenants().len() <= 5);

    // Every tenant kept all of its rows across evictions, and evicted
    // tenants were reopened on demand.
    for tenant in 0..15 {
        let db = manager.db(&ids.id(tenant)).await.unwrap();
        assert_eq!(db.select::<Note>().count().await.unwrap(), 8);
        assert!(manager.tenants().len() <= 5);
    }
    assert!(
        manager.pools_opened() >= 25,
        "{} opens",
        manager.pools_opened()
    );
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_or_evicting_a_tenant_lets_its_running_query_finish() {
    let ids = Ids::new();
    let manager = builder().max_open_pools(1).build().unwrap();
    let (a, b) = (ids.id("a"), ids.id("b"));

    // Evicted while a statement runs.
    let db = manager.db(&a).await.unwrap();
    let running = tokio::spawn(async move { db.batch_execute("SELECT pg_sleep(0.4)").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    manager.db(&b).await.unwrap(); // the cap is 1: `a` is evicted
    assert_eq!(manager.tenants(), std::slice::from_ref(&b));
    running
        .await
        .unwrap()
        .expect("the evicted tenant's query finished");

    // Dropped (database and all) while a statement runs: the drop waits for it.
    let db = manager.db(&b).await.unwrap();
    let running = tokio::spawn(async move {
        db.batch_execute(
            "SELECT pg_sleep(0.4); INSERT INTO notes (author, body) VALUES ('b', 'late')",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    manager.drop_tenant(&b).await.expect("drop after the query");
    running
        .await
        .unwrap()
        .expect("the dropped tenant's query finished");
    assert!(!databases().await.contains(&format!("tenant_{b}")));

    // Closed while a statement runs; its handle refuses new statements.
    let db = manager.db(&a).await.unwrap();
    let kept = db.clone();
    let running = tokio::spawn(async move { db.batch_execute("SELECT pg_sleep(0.3)").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(manager.close_tenant(&a));
    running
        .await
        .unwrap()
        .expect("the closed tenant's query finished");
    let err = kept.select::<Note>().count().await.unwrap_err();
    assert!(matches!(err, Error::Pool(_)), "{err:?}");
    assert_eq!(
        manager
            .db(&a)
            .await
            .unwrap()
            .select::<Note>()
            .count()
            .await
            .unwrap(),
        0
    );
    ids.cleanup(&manager).await;
}

#[tokio::test]
async fn invalid_ids_are_refused_and_create_nothing() {
    let manager = builder().build().unwrap();
    let too_long = "a".repeat(64 - "tenant_".len());
    let invalid = [
        "",
        "Acme",
        "ac-me",
        "ac\"me",
        "ac me",
        "a;drop",
        "a';drop database postgres;--",
        &too_long,
        "café",
        "акме",
        "a\0b",
        "../x",
    ];
    for id in invalid {
        let err = manager.db(id).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidTenantId { .. }),
            "{id:?}: {err:?}"
        );
        assert!(err.is_tenant_error());
        let err = manager.drop_tenant(id).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidTenantId { .. }),
            "{id:?}: {err:?}"
        );
    }
    // Other tests create databases concurrently, so look for these names only.
    let after = databases().await;
    for id in invalid {
        assert!(
            !after.contains(&format!("tenant_{id}")),
            "{id:?} created a database"
        );
    }
    assert!(manager.tenants().is_empty());
    assert_eq!(manager.pools_opened(), 0);

    // A name function that yields an invalid name is refused the same way.
    let odd = builder()
        .database_name(|id| format!("Tenant-{id}"))
        .build()
        .unwrap();
    let err = odd.db("acme").await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
    assert!(!databases().await.contains("Tenant-acme"));
}

#[tokio::test]
async fn each_tenant_database_holds_only_its_own_rows() {
    let ids = Ids::new();
    let manager = builder().build().unwrap();
    let tenants: Vec<String> = ["a", "b", "c"].iter().map(|t| ids.id(t)).collect();
    for tenant in &tenants {
        let db = manager.db(tenant).await.unwrap();
        db.insert_many([note(tenant, "one"), note(tenant, "two")])
            .exec()
            .await
            .unwrap();
    }
    for tenant in &tenants {
        let db = manager.db(tenant).await.unwrap();
        let notes = db.select::<Note>().all().await.unwrap();
        assert_eq!(notes.len(), 2);
        assert!(notes.iter().all(|n| &n.author == tenant), "{notes:?}");
        for other in tenants.iter().filter(|o| *o != tenant) {
            assert_eq!(
                db.select::<Note>()
                    .filter(Note::AUTHOR.eq(other))
                    .count()
                    .await
                    .unwrap(),
                0
            );
            // Writes through one tenant's pool never reach another's database.
            assert_eq!(
                db.update::<Note>()
                    .set(Note::BODY, "x")
                    .filter(Note::AUTHOR.eq(other))
                    .exec()
                    .await
                    .unwrap(),
                0
            );
            assert_eq!(
                db.delete::<Note>()
                    .filter(Note::AUTHOR.eq(other))
                    .exec()
                    .await
                    .unwrap(),
                0
            );
        }
    }
    // Each database, read directly, holds its own two rows.
    let server = pebble_testkit::server().unwrap();
    for tenant in &tenants {
        let direct = Db::connect(server.config_for(&format!("tenant_{tenant}")))
            .await
            .unwrap();
        let authors: BTreeSet<String> = direct
            .select::<Note>()
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.author)
            .collect();
        assert_eq!(authors, BTreeSet::from([tenant.clone()]));
        direct.close();
    }
    ids.cleanup(&manager).await;
}

#[tokio::test]
async fn missing_database_without_create_missing() {
    let ids = Ids::new();
    let server = pebble_testkit::server().unwrap();
    let manager = TenantManager::builder(server.config()).build().unwrap();
    let err = manager.db(&ids.id("ghost")).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err:?}");
    assert!(manager.tenants().is_empty());
    assert!(!databases()
        .await
        .contains(&format!("tenant_{}", ids.id("ghost"))));
}

/// The name of the database a handle is on (a view over `current_database()`).
#[derive(Model)]
#[pebble(table = "db_name", per_tenant)]
struct DbName {
    name: String,
}

#[tokio::test]
async fn a_failing_setup_leaves_no_database_and_is_retried() {
    let ids = Ids::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let staged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (seen, staging) = (Arc::clone(&attempts), Arc::clone(&staged));
    let manager = builder()
        .setup(move |db: Db, _tenant| {
            let attempt = seen.fetch_add(1, Ordering::Relaxed);
            let staging = Arc::clone(&staging);
            async move {
                db.batch_execute("CREATE VIEW db_name AS SELECT current_database()::text AS name")
                    .await?;
                let name = db.select::<DbName>().one().await?.name;
                staging.lock().unwrap().push(name);
                if attempt == 0 {
                    db.batch_execute("CREATE TABLE broken (").await
                } else {
                    db.create_table::<Note>().await
                }
            }
        })
        .build()
        .unwrap();
    let tenant = ids.id("flaky");
    let err = manager.db(&tenant).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR), "{err:?}");
    assert!(!databases().await.contains(&format!("tenant_{tenant}")));
    assert!(manager.tenants().is_empty());

    let db = manager
        .db(&tenant)
        .await
        .expect("second attempt provisions");
    db.insert(note("x", "y")).exec().await.unwrap();
    assert_eq!(attempts.load(Ordering::Relaxed), 2);

    // Reopening an existing database does not run setup again.
    manager.close_tenant(&tenant);
    manager.db(&tenant).await.unwrap();
    assert_eq!(attempts.load(Ordering::Relaxed), 2);
    ids.cleanup(&manager).await;
}

#[tokio::test]
async fn idle_pools_are_closed_and_reopened_on_demand() {
    let ids = Ids::new();
    let manager = builder()
        .idle_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let tenant = ids.id("sleepy");
    manager
        .db(&tenant)
        .await
        .unwrap()
        .insert(note("a", "b"))
        .exec()
        .await
        .unwrap();
    assert_eq!(manager.tenants(), std::slice::from_ref(&tenant));
    let mut waited = Duration::ZERO;
    while !manager.tenants().is_empty() && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert!(manager.tenants().is_empty(), "the idle pool was closed");
    let db = manager.db(&tenant).await.unwrap();
    assert_eq!(db.select::<Note>().count().await.unwrap(), 1);
    assert_eq!(manager.pools_opened(), 2);

    manager.close_all();
    assert!(manager.tenants().is_empty());
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_a_clear_error_and_the_manager_recovers() {
    let server = pebble_testkit::TempServer::start().expect("a restartable server");
    let manager = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: Db, _tenant| async move { db.create_table::<Note>().await })
        .pool(
            PoolOptions::default()
                .max_size(2)
                .create_timeout(Some(Duration::from_secs(2))),
        )
        .build()
        .unwrap();
    let up = manager.db("up").await.unwrap();
    up.insert(note("a", "before")).exec().await.unwrap();

    server.stop();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.db("new").await })
        })
        .collect();
    for attempt in attempts {
        let err = attempt.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Connection(_)), "{err:?}");
    }
    let err = up.select::<Note>().count().await.unwrap_err();
    assert!(
        matches!(err, Error::Connection(_) | Error::Pool(_)),
        "{err:?}"
    );
    assert_eq!(
        manager.tenants(),
        ["up"],
        "a failed open leaves nothing behind"
    );

    server.restart().unwrap();
    let new = manager
        .db("new")
        .await
        .expect("opens once the server is back");
    new.insert(note("b", "after")).exec().await.unwrap();
    // Connections the outage closed are replaced, not handed out.
    let up = manager.db("up").await.unwrap();
    assert_eq!(up.select::<Note>().count().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_setup_leaves_no_tenant_database() {
    // Its own server: the abandoned staging database stays there, and goes with it.
    let server = pebble_testkit::TempServer::start().expect("a server");
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&attempts);
    let manager = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(move |db: Db, _tenant| {
            let first = seen.fetch_add(1, Ordering::Relaxed) == 0;
            async move {
                db.create_table::<Note>().await?;
                if first {
                    tokio::time::sleep(Duration::from_secs(60)).await; // cancelled meanwhile
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), manager.db("slow"))
            .await
            .is_err()
    );
    let db = manager.db("slow").await.expect("provisioned afresh");
    db.insert(note("a", "b"))
        .exec()
        .await
        .expect("setup ran on this database");
    assert_eq!(attempts.load(Ordering::Relaxed), 2);
    assert_eq!(manager.pools_opened(), 1);
}

#[tokio::test]
async fn system_databases_are_never_tenants() {
    let manager = builder().database_name(|id| id.to_owned()).build().unwrap();
    for id in ["postgres", "template0", "template1"] {
        let err = manager.db(id).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidTenantId { .. }),
            "{id}: {err:?}"
        );
        let err = manager.drop_tenant(id).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidTenantId { .. }),
            "{id}: {err:?}"
        );
    }
    assert!(databases().await.contains("template1"));
}

#[tokio::test]
async fn a_pool_with_a_handle_out_is_not_idle() {
    let ids = Ids::new();
    let manager = builder()
        .idle_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let tenant = ids.id("held");
    let held = manager.db(&tenant).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        manager.tenants(),
        std::slice::from_ref(&tenant),
        "kept while a handle is out"
    );
    held.select::<Note>().count().await.unwrap();
    drop(held);
    let mut waited = Duration::ZERO;
    while !manager.tenants().is_empty() && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert!(
        manager.tenants().is_empty(),
        "closed once the handle was dropped"
    );
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_tenant_while_it_opens_never_opens_a_second_pool() {
    let ids = Ids::new();
    let manager = builder()
        .setup(|db: Db, _tenant| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            db.create_table::<Note>().await
        })
        .build()
        .unwrap();
    let tenant = ids.id("busy");
    let opening = {
        let (manager, tenant) = (manager.clone(), tenant.clone());
        tokio::spawn(async move { manager.db(&tenant).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!manager.close_tenant(&tenant), "nothing open to close yet");
    manager.close_all();
    let second = manager.db(&tenant).await.unwrap();
    opening.await.unwrap().unwrap();
    second.insert(note("x", "y")).exec().await.unwrap();
    assert_eq!(manager.pools_opened(), 1);
    assert_eq!(manager.tenants(), std::slice::from_ref(&tenant));
    ids.cleanup(&manager).await;
}
