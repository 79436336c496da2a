//! `TenantManager` routing when other processes move tenants between
//! servers: every operation goes where the registry row it acts on says,
//! a cached pool whose database went away is forgotten, and a one-server
//! manager refuses tenants the registry places elsewhere. Two real
//! throwaway servers; other managers over the same registry stand in for
//! other processes, and where an interleaving must be forced, it is forced
//! by holding a registry row lock or the manager's connection budget and
//! observing the waiter, never by sleeping.

use std::collections::BTreeSet;
use std::time::Duration;

use pebble::{
    Db, Error, Placement, PoolOptions, TenantDatabase, TenantManager, TenantManagerBuilder,
};

mod common;
use common::servers::{note, raw, Note};

/// The two servers of this binary.
fn servers() -> &'static (pebble_testkit::TempServer, pebble_testkit::TempServer) {
    common::servers::two()
}

/// Names unique to one test of this binary.
fn ids() -> impl Fn(&str) -> String {
    common::servers::ids("rt")
}

/// Whether `database` exists on the server of `config`.
async fn exists(config: tokio_postgres::Config, database: &str) -> bool {
    raw(config)
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .unwrap()
        .is_some()
}

/// Every database (tenant or staging) of the test's tenants on a server.
async fn databases(
    config: tokio_postgres::Config,
    id: &impl Fn(&str) -> String,
) -> BTreeSet<String> {
    raw(config)
        .await
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) \
             OR (starts_with(datname, 'pebble_new_') \
                 AND starts_with(shobj_description(oid, 'pg_database'), 'pebble tenant ' || $2))",
            &[&format!("tenant_{}", id("")), &id("")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A registry of the test's own, in a fresh database on server one, and
/// the name of that database.
async fn home(id: &impl Fn(&str) -> String) -> (Db, String) {
    let (one, _) = servers();
    let name = id("home");
    raw(one.config())
        .await
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    (Db::connect(one.config_for(&name)).await.unwrap(), name)
}

/// A raw connection to the registry's database.
async fn registry_client(home: &str) -> tokio_postgres::Client {
    raw(servers().0.config_for(home)).await
}

/// Tenant `id`'s registry row: (status, placement).
async fn row(home: &str, id: &str) -> Option<(String, String)> {
    registry_client(home)
        .await
        .query_opt(
            "SELECT status, placement FROM public.pebble_tenants WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

/// How many sessions on the registry's database wait for a lock.
async fn lock_waiters(client: &tokio_postgres::Client, home: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
            &[&home],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls `condition` (an observation, never a guess at timing) until it
/// holds; fails the test after two minutes.
async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A manager over both servers ("one", the base, and "two") that creates
/// missing tenants where `placed` says.
fn manager(home: &Db, placed: &'static str) -> TenantManagerBuilder {
    let (one, two) = servers();
    TenantManager::builder(one.config())
        .registry(home.clone(), "one")
        .server("two", two.config())
        .create_missing(true)
        .placement(Placement::custom(move |_, _| placed.to_owned()))
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
}

/// A manager that knows server "one" only, registered under that name.
fn one_server(home: &Db) -> TenantManagerBuilder {
    TenantManager::builder(servers().0.config())
        .registry(home.clone(), "one")
        .create_missing(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
}

async fn bodies(db: &TenantDatabase) -> Vec<String> {
    let mut found: Vec<String> = db
        .select::<Note>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body)
        .collect();
    found.sort();
    found
}

/// Defect: a manager given one server took every registry row as its own,
/// so with `create_missing` it made a second, empty database on its server
/// for a tenant that lives on another one (and `cleanup` deleted rows of
/// other servers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_server_manager_refuses_tenants_placed_on_another_server() {
    let id = ids();
    let (home, home_name) = home(&id).await;
    let (one, two) = servers();
    let on_two = manager(&home, "two").build().unwrap();
    let on_one = manager(&home, "one").build().unwrap();
    let (far, near) = (id("far"), id("near"));
    on_two
        .db(&far)
        .await
        .unwrap()
        .insert(note("far"))
        .exec()
        .await
        .unwrap();
    on_one
        .db(&near)
        .await
        .unwrap()
        .insert(note("near"))
        .exec()
        .await
        .unwrap();

    let single = one_server(&home).build().unwrap();
    for err in [
        single.db(&far).await.map(|_| ()).unwrap_err(),
        single.create_tenant(&far).await.map(|_| ()).unwrap_err(),
        single.drop_tenant(&far).await.unwrap_err(),
        single
            .reset_role_password(&far)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::UnknownServer { id, server } if *id == far && server == "two"),
            "{err:?}"
        );
    }
    // Nothing was made on server one, and far's tenant is as it was.
    assert!(!exists(one.config(), &format!("tenant_{far}")).await);
    assert_eq!(
        row(&home_name, &far).await,
        Some(("ready".into(), "two".into()))
    );
    assert_eq!(bodies(&on_two.db(&far).await.unwrap()).await, ["far"]);

    // Its own server's tenant it serves as before, and only that one's rows.
    let near_db = single.db(&near).await.unwrap();
    assert_eq!(bodies(&near_db).await, ["near"]);
    near_db.insert(note("near again")).exec().await.unwrap();
    assert_eq!(bodies(&on_two.db(&far).await.unwrap()).await, ["far"]);

    // A row as pebble-migrate writes it (the placement is the database)
    // is on the only server there is.
    let legacy = id("legacy");
    single.create_tenant(&legacy).await.unwrap();
    registry_client(&home_name)
        .await
        .execute(
            "UPDATE public.pebble_tenants SET placement = $2 WHERE id = $1",
            &[&legacy, &format!("tenant_{legacy}")],
        )
        .await
        .unwrap();
    let legacy_db = single.db(&legacy).await.unwrap();
    legacy_db.insert(note("legacy")).exec().await.unwrap();
    assert_eq!(bodies(&legacy_db).await, ["legacy"]);

    // A crashed provisioning on server two is not this manager's to clean.
    let crashed = id("crashed");
    registry_client(&home_name)
        .await
        .execute(
            "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
             VALUES ($1, 'database', 'pending', 'two')",
            &[&crashed],
        )
        .await
        .unwrap();
    let removed = single.cleanup().await.unwrap();
    assert!(!removed.contains(&crashed), "{removed:?}");
    assert_eq!(
        row(&home_name, &crashed).await,
        Some(("pending".into(), "two".into()))
    );
    // The manager that knows server two cleans it up.
    assert!(on_two.cleanup().await.unwrap().contains(&crashed));
    assert_eq!(row(&home_name, &crashed).await, None);

    drop((near_db, legacy_db));
    single.close_all();
    on_one.close_all();
    on_two.close_all();
    single.drop_tenant(&legacy).await.unwrap();
    single.drop_tenant(&near).await.unwrap();
    on_two.drop_tenant(&far).await.unwrap();
    assert!(databases(one.config(), &id).await.is_empty());
    assert!(databases(two.config(), &id).await.is_empty());
}

/// Defect: an open that found the tenant's database missing where it first
/// looked, and then found the registry row (written by another process)
/// placing it on another server, still opened its pool on the first one.
///
/// The row is rewritten while this manager waits for it: that stands for
/// another process dropping the tenant and re-creating it on server two
/// between this manager's lookup and its claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_goes_where_the_row_it_claims_says() {
    let id = ids();
    let (home, home_name) = home(&id).await;
    let (one, two) = servers();
    let other = manager(&home, "two").build().unwrap();
    let moved = id("moved");
    other
        .db(&moved)
        .await
        .unwrap()
        .insert(note("on two"))
        .exec()
        .await
        .unwrap();
    other.close_all();
    let this = manager(&home, "one").build().unwrap();
    let neighbour = id("neighbour");
    this.db(&neighbour)
        .await
        .unwrap()
        .insert(note("neighbour"))
        .exec()
        .await
        .unwrap();

    // What this manager reads first: the tenant on server one.
    let mut lock = registry_client(&home_name).await;
    lock.execute(
        "UPDATE public.pebble_tenants SET placement = 'one' WHERE id = $1",
        &[&moved],
    )
    .await
    .unwrap();
    let tx = lock.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM public.pebble_tenants WHERE id = $1 FOR UPDATE",
        &[&moved],
    )
    .await
    .unwrap();
    let opening = {
        let this = this.clone();
        let moved = moved.clone();
        tokio::spawn(async move { this.db(&moved).await })
    };
    let watcher = registry_client(&home_name).await;
    until("the open waits for the tenant's row", || async {
        lock_waiters(&watcher, &home_name).await == 1
    })
    .await;
    // ...and what it finds once it holds the row: server two.
    tx.execute(
        "UPDATE public.pebble_tenants SET placement = 'two' WHERE id = $1",
        &[&moved],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let db = opening.await.unwrap().expect("opened on server two");
    assert_eq!(bodies(&db).await, ["on two"]);
    db.insert(note("written through the open"))
        .exec()
        .await
        .unwrap();
    // Nothing was created on server one; the neighbour there is untouched.
    assert!(!exists(one.config(), &format!("tenant_{moved}")).await);
    assert!(exists(two.config(), &format!("tenant_{moved}")).await);
    assert_eq!(
        bodies(&this.db(&neighbour).await.unwrap()).await,
        ["neighbour"]
    );
    assert_eq!(
        bodies(&other.db(&moved).await.unwrap()).await,
        ["on two", "written through the open"]
    );

    drop(db);
    this.close_all();
    other.close_all();
    this.drop_tenant(&moved).await.unwrap();
    this.drop_tenant(&neighbour).await.unwrap();
    assert!(databases(one.config(), &id).await.is_empty());
    assert!(databases(two.config(), &id).await.is_empty());
}

/// Defect: a pool cached by one manager kept pointing at the old server
/// after another process dropped the tenant and re-created it elsewhere;
/// every statement failed with `3D000` until the pool was evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_pool_whose_database_went_away_is_forgotten() {
    let id = ids();
    let (home, _) = home(&id).await;
    let (one, two) = servers();
    let this = manager(&home, "one").build().unwrap();
    let (moved, neighbour) = (id("moved"), id("neighbour"));
    let held = this.db(&moved).await.unwrap();
    held.insert(note("old")).exec().await.unwrap();
    let neighbour_db = this.db(&neighbour).await.unwrap();
    neighbour_db.insert(note("neighbour")).exec().await.unwrap();
    let opened = this.pools_opened();

    // The server ends this manager's sessions on the tenant's database (as
    // idle_session_timeout or an operator would), so another process can
    // drop it.
    let database = format!("tenant_{moved}");
    raw(one.config())
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();
    // The neighbour's connection is all this manager has open once the
    // terminated one has closed on both ends.
    until("the terminated connection closed", || async {
        this.status().connections_open == 1
    })
    .await;
    let other = manager(&home, "two").build().unwrap();
    other.drop_tenant(&moved).await.unwrap();
    other.create_tenant(&moved).await.unwrap();
    other
        .db(&moved)
        .await
        .unwrap()
        .insert(note("new"))
        .exec()
        .await
        .unwrap();
    other.close_all();

    // The held handle's database is gone: a clear error, and the write is
    // not retried anywhere.
    let err = held.insert(note("lost write")).exec().await.unwrap_err();
    assert!(
        matches!(&err, Error::TenantDatabaseGone { id } if *id == moved),
        "{err:?}"
    );
    assert!(!this.tenants().contains(&moved), "the pool was forgotten");
    let err = held.select::<Note>().count().await.unwrap_err();
    assert!(matches!(err, Error::TenantDatabaseGone { .. }), "{err:?}");
    let err = held.begin().await.map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::TenantDatabaseGone { .. }), "{err:?}");

    // The next db(id) reads the registry again and finds it on server two,
    // with the new database's rows only.
    let fresh = this.db(&moved).await.unwrap();
    assert_eq!(bodies(&fresh).await, ["new"]);
    assert_eq!(this.pools_opened(), opened + 1);
    assert!(!exists(one.config(), &database).await);
    assert!(exists(two.config(), &database).await);
    // The neighbour's pool was neither forgotten nor touched.
    assert_eq!(bodies(&neighbour_db).await, ["neighbour"]);
    assert!(this.tenants().contains(&neighbour));

    drop((held, fresh, neighbour_db));
    this.close_all();
    this.drop_tenant(&moved).await.unwrap();
    this.drop_tenant(&neighbour).await.unwrap();
    assert!(databases(one.config(), &id).await.is_empty());
    assert!(databases(two.config(), &id).await.is_empty());
}

/// Defect: `drop_tenant` read the tenant's server before it claimed the
/// registry row. A drop and re-create of the same id on another server in
/// between made it drop on the old server and delete the new row, leaving
/// the new database on the other server without a row.
///
/// The drop is held between its steps by the manager's connection budget
/// (its one connection is busy), while another process drops and
/// re-creates the tenant on server two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drop_takes_the_server_from_the_row_it_claims() {
    let id = ids();
    let (home, home_name) = home(&id).await;
    let (one, two) = servers();
    let (moved, busy) = (id("moved"), id("busy"));
    // One connection in all, kept busy by a transaction on another tenant.
    let this = manager(&home, "one")
        .max_open_pools(1)
        .pool(
            PoolOptions::default()
                .max_size(1)
                .wait_timeout(Some(Duration::from_secs(120))),
        )
        .build()
        .unwrap();
    this.create_tenant(&moved).await.unwrap();
    let busy_db = this.db(&busy).await.unwrap();
    busy_db.insert(note("busy")).exec().await.unwrap();
    let tx = busy_db.begin().await.unwrap();

    let dropping = {
        let this = this.clone();
        let moved = moved.clone();
        tokio::spawn(async move { this.drop_tenant(&moved).await })
    };
    until("the drop waits for a connection", || async {
        this.status().connections_waiting == 1
    })
    .await;
    // Another process drops the tenant and creates it again on server two.
    let other = {
        let home = home.clone();
        let moved = moved.clone();
        tokio::spawn(async move {
            let first: TenantManager = manager(&home, "one").build()?;
            first.drop_tenant(&moved).await?;
            let second = manager(&home, "two").build()?;
            second.create_tenant(&moved).await?;
            second.db(&moved).await?.insert(note("new")).exec().await?;
            second.close_all();
            Ok::<(), Error>(())
        })
    };
    let watcher = registry_client(&home_name).await;
    until(
        "the other process finished or waits for the row",
        || async { other.is_finished() || lock_waiters(&watcher, &home_name).await > 0 },
    )
    .await;
    tx.rollback().await.unwrap();
    dropping.await.unwrap().expect("dropped");
    other.await.unwrap().expect("dropped and re-created");

    // Whatever the order, the registry and the servers agree: the tenant
    // is on server two with its row, or gone with its row; never a
    // database without a row, and nothing left on server one.
    let database = format!("tenant_{moved}");
    assert!(!exists(one.config(), &database).await);
    let on_two = exists(two.config(), &database).await;
    match row(&home_name, &moved).await {
        Some((status, placement)) => {
            assert!(on_two, "a row without its database");
            assert_eq!((status.as_str(), placement.as_str()), ("ready", "two"));
            let check = manager(&home, "two").create_missing(false).build().unwrap();
            assert_eq!(bodies(&check.db(&moved).await.unwrap()).await, ["new"]);
            check.close_all();
        }
        None => assert!(!on_two, "a database on server two without its row"),
    }
    // The busy tenant is untouched.
    assert_eq!(bodies(&busy_db).await, ["busy"]);

    drop(busy_db);
    this.close_all();
    let cleaner = manager(&home, "one").build().unwrap();
    cleaner.drop_tenant(&busy).await.unwrap();
    if row(&home_name, &moved).await.is_some() {
        cleaner.drop_tenant(&moved).await.unwrap();
    }
    assert!(databases(one.config(), &id).await.is_empty());
    assert!(databases(two.config(), &id).await.is_empty());
}

/// A held handle whose database was dropped and created again under the
/// same name on the same server (by another process) must not write into
/// the new database: the pool remembers the database it first reached.
/// (Found by a review of the routing fixes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_handle_does_not_write_into_a_database_recreated_on_the_same_server() {
    let id = ids();
    let (home, _) = home(&id).await;
    let (one, _two) = servers();
    let this = manager(&home, "one").build().unwrap();
    let moved = id("recreated");
    let neighbour = id("recreated_neighbour");
    let held = this.db(&moved).await.unwrap();
    held.insert(note("old")).exec().await.unwrap();
    let beside = this.db(&neighbour).await.unwrap();
    beside.insert(note("neighbour's")).exec().await.unwrap();

    let database = format!("tenant_{moved}");
    raw(one.config())
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();
    let watcher = raw(one.config()).await;
    until("the terminated backend is gone", || async {
        let left: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .await
            .unwrap()
            .get(0);
        left == 0
    })
    .await;
    // Another process drops the tenant and creates it again, on server one.
    let other = manager(&home, "one").build().unwrap();
    other.drop_tenant(&moved).await.unwrap();
    other.create_tenant(&moved).await.unwrap();
    other.close_all();

    // The first statement may meet the connection the server ended.
    let mut result = held.insert(note("meant for the old database")).exec().await;
    if matches!(result, Err(Error::Connection(_))) {
        result = held.insert(note("meant for the old database")).exec().await;
    }
    let fresh = other.db(&moved).await.unwrap();
    let landed = bodies(&fresh).await;
    assert!(
        matches!(&result, Err(Error::TenantDatabaseGone { .. })),
        "the held handle's write: {result:?}; the new database now holds {landed:?}"
    );
    assert!(landed.is_empty(), "{landed:?}");
    // The neighbour's pool and rows are untouched.
    assert_eq!(bodies(&beside).await, vec!["neighbour's".to_owned()]);
    // The manager forgot the pool: the tenant's next handle reaches the new database.
    let again = this.db(&moved).await.unwrap();
    again.insert(note("new")).exec().await.unwrap();
    assert_eq!(bodies(&fresh).await, vec!["new".to_owned()]);
    drop((held, fresh, again, beside));
    this.close_all();
    other.close_all();
    this.drop_tenant(&moved).await.unwrap();
    this.drop_tenant(&neighbour).await.unwrap();
}
