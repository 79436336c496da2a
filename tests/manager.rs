//! TenantManager (database per tenant) against real PostgreSQL: single-flight
//! opening under load, the pool cap, removal during a running query, id
//! validation, isolation between tenant databases, provisioning, outages.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pebble::{
    Error, Model, PoolOptions, SqlState, TenantDatabase, TenantManager, TenantManagerBuilder,
};
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
        .setup(|db: TenantDatabase, _tenant| async move { db.create_table::<Note>().await })
}

/// The databases on the test server.
async fn databases() -> BTreeSet<String> {
    let server = pebble_testkit::server().expect("a test server");
    databases_on(&server.config()).await
}

/// The databases on the server of `config`.
async fn databases_on(config: &tokio_postgres::Config) -> BTreeSet<String> {
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    let rows = client
        .query("SELECT datname FROM pg_database", &[])
        .await
        .expect("list databases");
    drop(client);
    let _ = connection.await;
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// Waits until `condition` holds. Tests synchronise on explicit events; this
/// polls only for states nothing signals (a pool becoming idle, a caller
/// queued), and its deadline is a safety net against a hang, far beyond
/// anything a loaded machine needs.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_open_exactly_one_pool_per_tenant() {
    let ids = Ids::new();
    let setups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&setups);
    let manager = builder()
        .max_open_pools(50)
        .setup(move |db: TenantDatabase, _tenant| {
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
async fn removing_or_waiting_for_a_tenant_lets_its_running_work_finish() {
    let ids = Ids::new();
    let manager = builder().max_open_pools(1).build().unwrap();
    let (a, b) = (ids.id("a"), ids.id("b"));

    // At the cap, a busy pool is not evicted: the open of `b` waits until
    // `a`'s work is done and its handle dropped, then evicts it.
    let db = manager.db(&a).await.unwrap();
    let tx = db.begin().await.unwrap();
    let opening = {
        let (manager, b) = (manager.clone(), b.clone());
        tokio::spawn(async move { manager.db(&b).await })
    };
    until("the open of b waits for room", || {
        manager.status().opens_waiting == 1
    })
    .await;
    assert_eq!(
        manager.tenants(),
        std::slice::from_ref(&a),
        "a was not evicted"
    );
    tx.insert(note("a", "during")).exec().await.unwrap();
    tx.commit().await.expect("a's work finished");
    drop(db);
    opening.await.unwrap().expect("b opened once a was idle");
    assert_eq!(manager.tenants(), std::slice::from_ref(&b));
    assert_eq!(
        manager.status().detached_pools,
        0,
        "a was closed, not detached"
    );

    // Dropped (database and all) while a transaction runs: the drop waits for it.
    let db = manager.db(&b).await.unwrap();
    let tx = db.begin().await.unwrap();
    let dropping = {
        let (manager, b) = (manager.clone(), b.clone());
        tokio::spawn(async move { manager.drop_tenant(&b).await })
    };
    until("the drop has begun", || manager.tenants().is_empty()).await;
    tx.insert(note("b", "late")).exec().await.unwrap();
    tx.commit()
        .await
        .expect("the dropped tenant's transaction finished");
    drop(db);
    dropping.await.unwrap().expect("drop after the transaction");
    assert!(!databases().await.contains(&format!("tenant_{b}")));

    // Closed while a transaction runs; its handle refuses new statements.
    let db = manager.db(&a).await.unwrap();
    let tx = db.begin().await.unwrap();
    assert!(manager.close_tenant(&a));
    tx.insert(note("a", "after close")).exec().await.unwrap();
    tx.commit()
        .await
        .expect("the closed tenant's transaction finished");
    let err = db.select::<Note>().count().await.unwrap_err();
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
        2
    );
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_queued_on_a_dropped_tenant_get_tenant_dropped() {
    let ids = Ids::new();
    let manager = builder()
        .pool(PoolOptions::default().max_size(1))
        .build()
        .unwrap();
    let tenant = ids.id("gone");
    let db = manager.db(&tenant).await.unwrap();
    // The pool's only connection is busy in a transaction...
    let tx = db.begin().await.unwrap();
    // ...so this statement queues for it.
    let queued = {
        let db = db.clone();
        tokio::spawn(async move { db.select::<Note>().count().await })
    };
    until("a statement queues for the connection", || {
        db.status().waiting == 1
    })
    .await;
    let dropping = {
        let (manager, tenant) = (manager.clone(), tenant.clone());
        tokio::spawn(async move { manager.drop_tenant(&tenant).await })
    };
    until("the drop has begun", || manager.tenants().is_empty()).await;
    tx.insert(note("x", "running")).exec().await.unwrap();
    tx.commit().await.expect("the running transaction finishes");

    let err = queued.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::TenantDropped { id } if *id == tenant),
        "{err:?}"
    );
    assert!(err.to_string().contains("dropped"), "{err}");
    dropping.await.unwrap().expect("dropped");
    // Later statements through the handle say the same.
    let err = db.select::<Note>().count().await.unwrap_err();
    assert!(matches!(err, Error::TenantDropped { .. }), "{err:?}");
    assert!(!databases().await.contains(&format!("tenant_{tenant}")));
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
    // Each database, read directly (not through pebble), holds its own two rows.
    let server = pebble_testkit::server().unwrap();
    for tenant in &tenants {
        let config = server.config_for(&format!("tenant_{tenant}"));
        let (client, connection) = config.connect(NoTls).await.unwrap();
        let connection = tokio::spawn(connection);
        let rows = client.query("SELECT author FROM notes", &[]).await.unwrap();
        drop(client);
        let _ = connection.await;
        let authors: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(authors, BTreeSet::from([tenant.clone()]));
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
        .setup(move |db: TenantDatabase, _tenant| {
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
    until("the idle pool is closed", || manager.tenants().is_empty()).await;
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
        .setup(|db: TenantDatabase, _tenant| async move { db.create_table::<Note>().await })
        .pool(PoolOptions::default().max_size(2))
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
    let started = Arc::new(tokio::sync::Notify::new());
    let (seen, signal) = (Arc::clone(&attempts), Arc::clone(&started));
    let manager = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(move |db: TenantDatabase, _tenant| {
            let first = seen.fetch_add(1, Ordering::Relaxed) == 0;
            let signal = Arc::clone(&signal);
            async move {
                db.create_table::<Note>().await?;
                if first {
                    signal.notify_one();
                    std::future::pending::<()>().await; // cancelled here
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let opening = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.db("slow").await })
    };
    started.notified().await;
    opening.abort();
    assert!(opening.await.unwrap_err().is_cancelled());
    assert!(!databases_on(&server.config()).await.contains("tenant_slow"));

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
async fn a_handle_to_a_closed_pool_never_reaches_a_recreated_tenant() {
    let ids = Ids::new();
    let manager = builder().build().unwrap();
    let tenant = ids.id("reborn");
    let old = manager.db(&tenant).await.unwrap();
    old.insert(note("a", "first life")).exec().await.unwrap();
    // The pool leaves the registry while `old` still holds it (closed
    // here; evicted pools are never ones with a handle out); then the
    // tenant is dropped and created again under the same id. Whatever
    // `old` says, it must not reach the new database.
    assert!(manager.close_tenant(&tenant));
    manager.drop_tenant(&tenant).await.unwrap();
    let new = manager.db(&tenant).await.unwrap();
    new.insert(note("b", "second life")).exec().await.unwrap();
    assert!(old.select::<Note>().count().await.is_err());
    assert!(old.insert(note("a", "late")).exec().await.is_err());
    let bodies: Vec<String> = new
        .select::<Note>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body)
        .collect();
    assert_eq!(bodies, ["second life"]);
    ids.cleanup(&manager).await;
}

#[tokio::test]
async fn a_pool_with_a_handle_out_is_not_idle() {
    let ids = Ids::new();
    let manager = builder()
        .idle_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let (held, free) = (ids.id("held"), ids.id("free"));
    let handle = manager.db(&held).await.unwrap();
    drop(manager.db(&free).await.unwrap());
    // Once the reaper closed `free`, it has also looked at `held`, which
    // was used no later.
    until("the unused pool is closed", || {
        !manager.tenants().contains(&free)
    })
    .await;
    assert_eq!(
        manager.tenants(),
        std::slice::from_ref(&held),
        "kept while a handle is out"
    );
    handle.select::<Note>().count().await.unwrap();
    drop(handle);
    until("the pool is closed once its handle is dropped", || {
        manager.tenants().is_empty()
    })
    .await;
    ids.cleanup(&manager).await;
}

#[tokio::test]
async fn a_pool_with_only_a_builder_out_is_not_idle() {
    let ids = Ids::new();
    let manager = builder()
        .idle_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let (held, free) = (ids.id("held"), ids.id("free"));
    // A builder holds the pool's shared state itself, not the handle it
    // came from: the handle is gone, the builder still counts.
    let pending = manager.db(&held).await.unwrap().select::<Note>();
    drop(manager.db(&free).await.unwrap());
    until("the unused pool is closed", || {
        !manager.tenants().contains(&free)
    })
    .await;
    assert_eq!(
        manager.tenants(),
        std::slice::from_ref(&held),
        "kept while a builder is out"
    );
    pending.count().await.unwrap();
    until("the pool is closed once its builder has run", || {
        manager.tenants().is_empty()
    })
    .await;
    ids.cleanup(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_tenant_while_it_opens_never_opens_a_second_pool() {
    let ids = Ids::new();
    let started = Arc::new(tokio::sync::Notify::new());
    let proceed = Arc::new(tokio::sync::Notify::new());
    let (signal, wait) = (Arc::clone(&started), Arc::clone(&proceed));
    let manager = builder()
        .setup(move |db: TenantDatabase, _tenant| {
            let (signal, wait) = (Arc::clone(&signal), Arc::clone(&wait));
            async move {
                signal.notify_one();
                wait.notified().await;
                db.create_table::<Note>().await
            }
        })
        .build()
        .unwrap();
    let tenant = ids.id("busy");
    let opening = {
        let (manager, tenant) = (manager.clone(), tenant.clone());
        tokio::spawn(async move { manager.db(&tenant).await })
    };
    started.notified().await;
    assert!(!manager.close_tenant(&tenant), "nothing open to close yet");
    manager.close_all();
    let second = {
        let (manager, tenant) = (manager.clone(), tenant.clone());
        tokio::spawn(async move { manager.db(&tenant).await })
    };
    proceed.notify_one();
    let second = second.await.unwrap().unwrap();
    opening.await.unwrap().unwrap();
    second.insert(note("x", "y")).exec().await.unwrap();
    assert_eq!(manager.pools_opened(), 1);
    assert_eq!(manager.tenants(), std::slice::from_ref(&tenant));
    ids.cleanup(&manager).await;
}

/// With every pool busy and every connection taken, callers wait (at most
/// the pool's wait timeout) and then fail clearly; they never go past the
/// bounds. The busy state is held by the test until the outcome is seen, so
/// the timeouts expire however slow the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_capacity_callers_wait_then_fail_clearly() {
    let ids = Ids::new();
    let manager = builder()
        .max_open_pools(1)
        .pool(
            PoolOptions::default()
                .max_size(1)
                .wait_timeout(Some(Duration::from_millis(200))),
        )
        .build()
        .unwrap();
    let (a, b) = (ids.id("a"), ids.id("b"));
    let db = manager.db(&a).await.unwrap();
    let tx = db.begin().await.unwrap();

    // No room for b's pool: every caller for b fails (those queued behind
    // an open that failed fail with it instead of waiting again).
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let (manager, b) = (manager.clone(), b.clone());
            tokio::spawn(async move { manager.db(&b).await })
        })
        .collect();
    for open in opens {
        let err = open.await.unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Timeout(why) if why.contains("max_open_pools")),
            "{err:?}"
        );
    }
    // No connection left either (1 pool × 1): the maintenance connection a
    // drop needs waits, then fails; nothing was dropped.
    let err = manager.drop_tenant(&b).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(why) if why.contains("connection limit")),
        "{err:?}"
    );
    let status = manager.status();
    assert_eq!(
        (status.connections_open, status.max_connections),
        (1, 1),
        "{status:?}"
    );
    assert_eq!(manager.tenants(), std::slice::from_ref(&a));

    tx.commit().await.unwrap();
    drop(db);
    manager.db(&b).await.expect("room once a is idle");
    assert_eq!(manager.tenants(), std::slice::from_ref(&b));
    ids.cleanup(&manager).await;
}

/// Idle connections hold their place in the bound; a connection needed
/// elsewhere closes one of them rather than wait for a busy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_other_pools_make_way() {
    let ids = Ids::new();
    let manager = builder()
        .max_open_pools(2)
        .pool(PoolOptions::default().max_size(2))
        .build()
        .unwrap();
    let pools = vec![
        manager.db(&ids.id("a")).await.unwrap(),
        manager.db(&ids.id("b")).await.unwrap(),
    ];
    let idle = || pools.iter().map(|db| db.status().size).sum::<usize>();
    // Provisioning's connections are closed, but the server may not have
    // let go of them yet: start from a state where only the pools hold any.
    until("provisioning's connections are gone", || {
        manager.status().connections_open == idle()
    })
    .await;
    for db in &pools {
        // Two transactions at once: the pool opens both its connections,
        // which stay in it, idle, afterwards.
        let first = db.begin().await.unwrap();
        let second = db.begin().await.unwrap();
        first.commit().await.unwrap();
        second.commit().await.unwrap();
    }
    assert_eq!(idle(), 4);
    assert_eq!(manager.status().max_connections, 4);

    // The maintenance connection of a drop needs a place: it gets one.
    manager
        .drop_tenant(&ids.id("never_created"))
        .await
        .expect("an idle connection made way");
    assert!(idle() < 4, "an idle connection was closed");
    let status = manager.status();
    assert!(status.connections_open <= 4, "{status:?}");
    assert_eq!(manager.tenants().len(), 2, "no pool was evicted for it");
    drop(pools);
    ids.cleanup(&manager).await;
}

/// A database pebble did not provision is never dropped, whatever its name.
#[tokio::test]
async fn drop_tenant_refuses_a_database_pebble_did_not_provision() {
    let server = pebble_testkit::server().unwrap();
    let plain = format!("plain_{}", std::process::id());
    server
        .execute(&format!("CREATE DATABASE {plain}"))
        .await
        .unwrap();
    let manager = builder().database_name(|id| id.to_owned()).build().unwrap();

    let err = manager.drop_tenant(&plain).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotProvisionedByPebble { database, .. } if *database == plain),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not provisioned by pebble"),
        "{err}"
    );
    assert!(databases().await.contains(&plain), "left alone");

    // Its pool, if open, is left alone too.
    let db = manager.db(&plain).await.unwrap();
    manager.drop_tenant(&plain).await.unwrap_err();
    assert_eq!(manager.tenants(), std::slice::from_ref(&plain));
    db.batch_execute("SELECT 1").await.expect("still usable");

    // Another tenant's marker is not this tenant's.
    server
        .execute(&format!(
            "COMMENT ON DATABASE {plain} IS 'pebble tenant other'"
        ))
        .await
        .unwrap();
    manager.close_all();
    let err = manager.drop_tenant(&plain).await.unwrap_err();
    assert!(
        matches!(err, Error::NotProvisionedByPebble { .. }),
        "{err:?}"
    );
    assert!(databases().await.contains(&plain));

    // What pebble provisions under the same naming it drops.
    let own = format!("own_{}", std::process::id());
    manager.db(&own).await.unwrap();
    manager
        .drop_tenant(&own)
        .await
        .expect("pebble's own tenant");
    assert!(!databases().await.contains(&own));
    manager
        .drop_tenant(&own)
        .await
        .expect("a missing database is no error");

    server
        .execute(&format!("DROP DATABASE {plain}"))
        .await
        .unwrap();
}

/// The database the manager's base configuration names is the
/// application's (and where pebble runs CREATE DATABASE): never a tenant.
#[tokio::test]
async fn the_base_configuration_database_is_never_a_tenant() {
    let server = pebble_testkit::server().unwrap();
    let app = server.create_database("app").await.unwrap();
    let manager = TenantManager::builder(server.config_for(app.name()))
        .create_missing(true)
        .database_name(|id| id.to_owned())
        .build()
        .unwrap();
    let err = manager.db(app.name()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
    let err = manager.drop_tenant(app.name()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
    let err = manager.db("pebble_new_x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
    assert!(databases().await.contains(app.name()));
    assert_eq!(manager.pools_opened(), 0);
}

/// Issue 12's churn: 100 tasks hammer 50 tenants through a manager capped at
/// 5 pools of 4 connections. A sampler on `pg_stat_activity` (the manager's
/// connections carry their own `application_name`) must never see more than
/// the documented 5 × 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_never_exceeds_the_connection_bound() {
    const TENANTS: usize = 50;
    const TASKS: usize = 100;
    const OPS: usize = 30;
    let ids = Ids::new();
    let server = pebble_testkit::server().unwrap();
    let app = format!("pebble_churn_{}", std::process::id());
    let mut config = server.config();
    config.application_name(&app);
    let manager = TenantManager::builder(config)
        .create_missing(true)
        .setup(|db: TenantDatabase, _tenant| async move { db.create_table::<Note>().await })
        .max_open_pools(5)
        .pool(PoolOptions::default().max_size(4))
        .build()
        .unwrap();
    // Provision every database first: the churn is about opening pools.
    let tenants: Vec<String> = (0..TENANTS).map(|t| ids.id(t)).collect();
    for tenant in &tenants {
        manager.db(tenant).await.unwrap();
    }
    let opened_before = manager.pools_opened();

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, app, manager) = (Arc::clone(&done), app.clone(), manager.clone());
        let (client, connection) = server.config().connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        tokio::spawn(async move {
            let (mut most, mut samples) = (0_i64, 0_usize);
            while !done.load(Ordering::Relaxed) {
                let row = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&app],
                    )
                    .await
                    .expect("sample pg_stat_activity");
                most = most.max(row.get::<_, i64>(0));
                samples += 1;
                let status = manager.status();
                assert!(
                    status.connections_open <= status.max_connections,
                    "{status:?}"
                );
                assert!(status.open_pools + status.opening_pools <= 5, "{status:?}");
            }
            (most, samples)
        })
    };
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let manager = manager.clone();
            let tenants = tenants.clone();
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for op in 0..OPS {
                    let tenant = &tenants[(task * 7 + op * 13) % TENANTS];
                    let result = async {
                        let db = manager.db(tenant).await?;
                        db.insert(note(tenant, "churn")).exec().await?;
                        db.select::<Note>().count().await
                    }
                    .await;
                    if let Err(e) = result {
                        failed.push(e);
                    }
                }
                failed
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        for err in task.await.expect("task") {
            assert!(
                matches!(err, Error::Pool(_) | Error::Timeout(_)),
                "a clear pool error, not {err:?}"
            );
            failures += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let (most, samples) = sampler.await.unwrap();
    let reopened = manager.pools_opened() - opened_before;
    eprintln!(
        "churn: {} ops, {reopened} pool opens, {failures} failed, at most {most} connections in {samples} samples",
        TASKS * OPS
    );
    assert!(most <= 20, "{most} connections seen, the bound is 5 × 4");
    let status = manager.status();
    assert_eq!(status.max_connections, 20);
    assert_eq!(status.opens_waiting, 0);
    assert_eq!(status.detached_pools, 0, "busy pools are never evicted");
    ids.cleanup(&manager).await;
}
