//! `TenantManager` over two real throwaway servers: placement (least
//! loaded, or a policy), every operation on the tenant's own server,
//! nothing of a tenant on the other one, a second manager finding tenants
//! where the registry put them, and concurrent provisioning across
//! managers making one database on one server.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pebble::{Db, Error, Placement, TenantDatabase, TenantManager, TenantManagerBuilder};
use tokio_postgres::NoTls;

mod common;
use common::servers::{note, raw, Note};

/// The two servers of this binary.
fn servers() -> &'static (pebble_testkit::TempServer, pebble_testkit::TempServer) {
    common::servers::two()
}

/// Names unique to one test of this binary.
fn ids() -> impl Fn(&str) -> String {
    common::servers::ids("pl")
}

/// The databases on a server whose names start with `prefix`.
async fn databases(config: tokio_postgres::Config, prefix: &str) -> BTreeSet<String> {
    raw(config)
        .await
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The staging databases on a server of tenants whose ids start with `prefix`.
async fn staging(config: tokio_postgres::Config, prefix: &str) -> BTreeSet<String> {
    raw(config)
        .await
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, 'pebble_new_') \
             AND starts_with(shobj_description(oid, 'pg_database'), 'pebble tenant ' || $1)",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs `sql` on a connection of its own, closed (its backend gone) on return.
async fn once(config: tokio_postgres::Config, sql: &str) {
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.expect("statement");
    drop(client);
    let _ = connection.await;
}

/// Every database of the test's tenants (and their staging databases) on
/// each server.
async fn both(id: &impl Fn(&str) -> String) -> (BTreeSet<String>, BTreeSet<String>) {
    let (one, two) = servers();
    let prefix = format!("tenant_{}", id(""));
    let mut on_one = databases(one.config(), &prefix).await;
    let mut on_two = databases(two.config(), &prefix).await;
    on_one.extend(staging(one.config(), &id("")).await);
    on_two.extend(staging(two.config(), &id("")).await);
    (on_one, on_two)
}

/// A registry of the test's own, in a fresh database on server one.
async fn home(id: &impl Fn(&str) -> String) -> Db {
    let (one, _) = servers();
    let name = id("home");
    raw(one.config())
        .await
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    Db::connect(one.config_for(&name)).await.unwrap()
}

/// A manager over both servers ("one", the base, and "two").
fn manager(home: &Db) -> TenantManagerBuilder {
    let (one, two) = servers();
    TenantManager::builder(one.config())
        .registry(home.clone(), "one")
        .server("two", two.config())
        .create_missing(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
}

async fn bodies(db: &TenantDatabase) -> Vec<String> {
    db.select::<Note>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_live_on_their_own_server_only() {
    let id = ids();
    let home = home(&id).await;
    let first = manager(&home).build().unwrap();
    let names: Vec<String> = (0..4).map(|n| id(&format!("t{n}"))).collect();
    for name in &names {
        let db = first.db(name).await.unwrap();
        db.insert(note(name)).exec().await.unwrap();
    }
    let placed: Vec<String> = {
        let records = first.registered().await.unwrap();
        names
            .iter()
            .map(|name| {
                let record = records.iter().find(|r| &r.id == name).unwrap();
                assert_eq!(record.status.to_string(), "ready");
                record.placement.clone()
            })
            .collect()
    };
    // Least loaded first: they alternate.
    assert_eq!(placed, ["one", "two", "one", "two"]);

    let (on_one, on_two) = both(&id).await;
    for (name, server) in names.iter().zip(&placed) {
        let database = format!("tenant_{name}");
        let (here, there) = if server == "one" {
            (&on_one, &on_two)
        } else {
            (&on_two, &on_one)
        };
        assert!(here.contains(&database), "{database} missing on {server}");
        assert!(
            !there.contains(&database),
            "{database} also on the other server"
        );
    }
    assert_eq!(on_one.len() + on_two.len(), 4, "no staging database left");

    // Each tenant sees its own note only; a tenant on the other server
    // (and its neighbour on the same one) neither.
    for name in &names {
        assert_eq!(
            bodies(&first.db(name).await.unwrap()).await,
            vec![name.clone()]
        );
    }

    // A second manager (another process) over the same registry finds each
    // tenant on its recorded server, and drops it there.
    let second = manager(&home).create_missing(false).build().unwrap();
    for name in &names {
        let db = second.db(name).await.unwrap();
        assert_eq!(bodies(&db).await, vec![name.clone()]);
    }
    // DROP DATABASE waits for no one's connections: the first manager lets go.
    first.close_all();
    second.drop_tenant(&names[1]).await.unwrap(); // on "two"
    second.drop_tenant(&names[2]).await.unwrap(); // on "one"
    let (on_one, on_two) = both(&id).await;
    assert_eq!(on_one, BTreeSet::from([format!("tenant_{}", names[0])]));
    assert_eq!(on_two, BTreeSet::from([format!("tenant_{}", names[3])]));
    // The tenants left, on either server, are untouched.
    for name in [&names[0], &names[3]] {
        assert_eq!(
            bodies(&second.db(name).await.unwrap()).await,
            vec![name.clone()]
        );
    }
    let left: BTreeSet<String> = second
        .registered()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, BTreeSet::from([names[0].clone(), names[3].clone()]));
    // Without `create_missing`, a dropped tenant is unknown (with it, it
    // would be provisioned anew, wherever the policy says).
    let gone = second.db(&names[1]).await.map(|_| ()).unwrap_err();
    assert!(matches!(gone, Error::UnknownTenant { .. }), "{gone:?}");
    second.close_all();
    for name in [&names[0], &names[3]] {
        first.drop_tenant(name).await.unwrap();
    }
    assert_eq!(both(&id).await, (BTreeSet::new(), BTreeSet::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_passwords_and_cleanup_go_to_the_tenants_server() {
    let id = ids();
    let home = home(&id).await;
    let manager = manager(&home).roles(true).build().unwrap();
    let (a, b) = (id("a"), id("b"));
    let role_a = manager.create_tenant(&a).await.unwrap().expect("a's role");
    let role_b = manager.create_tenant(&b).await.unwrap().expect("b's role");
    let (one, two) = servers();
    // a went to "one", b to "two" (least loaded).
    let prefix = format!("tenant_{}", id(""));
    let roles = |config: tokio_postgres::Config| {
        let prefix = prefix.clone();
        async move {
            raw(config)
                .await
                .query(
                    "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)",
                    &[&prefix],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        roles(one.config()).await,
        BTreeSet::from([format!("tenant_{a}")])
    );
    assert_eq!(
        roles(two.config()).await,
        BTreeSet::from([format!("tenant_{b}")])
    );
    // Each role logs in to its tenant's database on its server.
    let login = |base: tokio_postgres::Config, role: &pebble::TenantRole| {
        let mut config = role.config(&base);
        config.dbname(role.name());
        config
    };
    once(login(two.config(), &role_b), "SELECT count(*) FROM notes").await;
    once(login(one.config(), &role_a), "SELECT count(*) FROM notes").await;
    // A new password, set on b's server.
    let reset = manager.reset_role_password(&b).await.unwrap();
    once(login(two.config(), &reset), "SELECT 1").await;

    // What a provisioning that crashed on server two leaves: its `pending`
    // row and its marked staging database.
    let staging = |tenant: &str| format!("pebble_new_{}", tenant.replace('_', ""));
    let admin_two = raw(two.config()).await;
    // A database named `name` with the comment `comment` on server two.
    let marked = |name: String, comment: String| {
        let admin_two = &admin_two;
        async move {
            for sql in [
                format!("CREATE DATABASE \"{name}\""),
                format!("COMMENT ON DATABASE \"{name}\" IS '{comment}'"),
            ] {
                admin_two.batch_execute(&sql).await.unwrap();
            }
            name
        }
    };
    // Marked as pebble marked staging databases before markers named the
    // database they were to become.
    let stage = |tenant: String| marked(staging(&tenant), format!("pebble tenant {tenant}"));
    let crashed = stage(id("crashed")).await;
    // The same crashed provisioning's staging database as this pebble
    // marks it (naming the database it was to become), and one of another
    // application on this server with the same tenant id, whose databases
    // are named apart: only the first is this tenant's.
    let crashed_named = marked(
        staging(&id("crashednamed")),
        format!(
            "pebble tenant {} as tenant_{}",
            id("crashed"),
            id("crashed")
        ),
    )
    .await;
    let other_app = marked(
        staging(&id("otherapp")),
        format!(
            "pebble tenant {} as other_app_{}",
            id("crashed"),
            id("crashed")
        ),
    )
    .await;
    raw(one.config_for(&id("home")))
        .await
        .execute(
            "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
             VALUES ($1, 'database', 'pending', 'two')",
            &[&id("crashed")],
        )
        .await
        .unwrap();
    // A staging database of a tenant this registry does not know: another
    // application's provisioning in progress, on a server they share.
    let foreign = stage(id("foreign")).await;
    // One marked for a, whose row places it on server one: another
    // application's tenant of the same id, on this server.
    let not_here = marked(staging(&id("nothere")), format!("pebble tenant {a}")).await;
    let removed = manager.cleanup().await.unwrap();
    assert!(!removed.contains(&not_here), "{removed:?}");
    assert_eq!(
        databases(two.config(), &not_here).await,
        BTreeSet::from([not_here.clone()])
    );
    admin_two
        .batch_execute(&format!("DROP DATABASE \"{not_here}\""))
        .await
        .unwrap();
    assert!(removed.contains(&crashed), "{removed:?}");
    assert!(removed.contains(&crashed_named), "{removed:?}");
    assert!(removed.contains(&id("crashed")), "{removed:?}");
    assert!(databases(two.config(), &crashed).await.is_empty());
    assert!(databases(two.config(), &crashed_named).await.is_empty());
    assert!(!removed.contains(&other_app), "{removed:?}");
    assert_eq!(
        databases(two.config(), &other_app).await,
        BTreeSet::from([other_app.clone()])
    );
    admin_two
        .batch_execute(&format!("DROP DATABASE \"{other_app}\""))
        .await
        .unwrap();
    // What pebble provisions carries the marker naming the database.
    let comment: String = raw(two.config())
        .await
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&format!("tenant_{b}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(comment, format!("pebble tenant {b} as tenant_{b}"));
    assert!(!removed.contains(&foreign), "{removed:?}");
    assert_eq!(
        databases(two.config(), &foreign).await,
        BTreeSet::from([foreign.clone()])
    );
    admin_two
        .batch_execute(&format!("DROP DATABASE \"{foreign}\""))
        .await
        .unwrap();

    for tenant in [&a, &b] {
        manager.drop_tenant(tenant).await.unwrap();
    }
    assert!(roles(one.config()).await.is_empty());
    assert!(roles(two.config()).await.is_empty());
    assert_eq!(both(&id).await, (BTreeSet::new(), BTreeSet::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_naming_an_unknown_server_is_an_error() {
    let id = ids();
    let home = home(&id).await;
    // A policy that names a server the manager does not have: refused
    // before anything is registered or created.
    let lost = manager(&home)
        .placement(Placement::custom(|_, _| "three".to_owned()))
        .build()
        .unwrap();
    let err = lost.db(&id("x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownServer { server, .. } if server == "three"),
        "{err:?}"
    );
    assert!(lost.registered().await.unwrap().is_empty());

    // A tenant on "two", seen by a manager that only knows "one" and "three".
    let pinned = manager(&home)
        .placement(Placement::custom(|_, _| "two".to_owned()))
        .build()
        .unwrap();
    let tenant = id("y");
    pinned.db(&tenant).await.unwrap();
    let (one, _) = servers();
    let (_, two) = servers();
    let partial = TenantManager::builder(one.config())
        .registry(home.clone(), "one")
        .server("three", two.config())
        .build()
        .unwrap();
    for err in [
        partial.db(&tenant).await.map(|_| ()).unwrap_err(),
        partial.drop_tenant(&tenant).await.unwrap_err(),
        partial
            .create_tenant(&tenant)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::UnknownServer { server, .. } if server == "two"),
            "{err:?}"
        );
    }
    let (on_one, on_two) = both(&id).await;
    assert!(on_one.is_empty());
    assert_eq!(on_two, BTreeSet::from([format!("tenant_{tenant}")]));
    pinned.drop_tenant(&tenant).await.unwrap();

    // Several servers need the registry that records where tenants are.
    let (_, two) = servers();
    let unregistered = TenantManager::builder(one.config())
        .server("two", two.config())
        .build();
    assert!(matches!(unregistered, Err(Error::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_from_two_managers_make_one_database_on_one_server() {
    let id = ids();
    let home = home(&id).await;
    // Two managers stand in for two processes; the setup hook counts the
    // databases set up, whichever manager does it.
    let setups = Arc::new(AtomicUsize::new(0));
    let counting = || {
        let setups = Arc::clone(&setups);
        manager(&home)
            .setup(move |db: TenantDatabase, _| {
                setups.fetch_add(1, Ordering::Relaxed);
                async move { db.create_table::<Note>().await }
            })
            .build()
            .unwrap()
    };
    let managers = [counting(), counting()];
    let tenant = id("new");
    let tasks: Vec<tokio::task::JoinHandle<pebble::Result<()>>> = (0..40)
        .map(|n| {
            let manager = managers[n % 2].clone();
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let db = manager.db(&tenant).await?;
                db.insert(note(&format!("task {n}"))).exec().await?;
                pebble::Result::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let (on_one, on_two) = both(&id).await;
    let database = format!("tenant_{tenant}");
    assert_eq!(
        (
            on_one.len() + on_two.len(),
            on_one.contains(&database) || on_two.contains(&database)
        ),
        (1, true),
        "one: {on_one:?}, two: {on_two:?}"
    );
    assert_eq!(setups.load(Ordering::Relaxed), 1, "set up exactly once");
    let records = managers[0].registered().await.unwrap();
    assert_eq!(records.len(), 1);
    let server = if on_one.contains(&database) {
        "one"
    } else {
        "two"
    };
    assert_eq!(records[0].placement, server);
    assert_eq!(
        managers[1]
            .db(&tenant)
            .await
            .unwrap()
            .select::<Note>()
            .count()
            .await
            .unwrap(),
        40
    );
    managers[1].close_all();
    managers[0].drop_tenant(&tenant).await.unwrap();
    assert_eq!(both(&id).await, (BTreeSet::new(), BTreeSet::new()));
}
