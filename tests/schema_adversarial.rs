//! Adversarial review of schema per tenant: ids that try to escape or
//! collide, roles whose names pebble does not own, handles on tenants that
//! are pending or dropped, the statement cache past its bound, and streams
//! dropped halfway inside a tenant's transaction. Every test runs two
//! tenants with identical tables and checks the second saw and changed
//! nothing of the first.

use futures_util::{StreamExt, TryStreamExt};
use pebble::{Db, Error, PoolOptions, SchemaTenants, TenantDatabase};
use tokio_postgres::NoTls;

mod common;

use common::schema::{all_tasks, owner, raw, task, Task};

/// Tenant ids unique to this process and test (see `common::schema::ids`).
fn ids() -> impl Fn(&str) -> String {
    common::schema::ids("x")
}

async fn role_exists(client: &tokio_postgres::Client, role: &str) -> bool {
    client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .expect("pg_roles")
        .is_some()
}

/// A role named `tenant_<id>` that pebble did not create (an operator's,
/// another application's on the same cluster, a `TenantManager`'s) must not
/// be adopted as a tenant's login role: provisioning would hand out a new
/// password for it, and with it whatever the role was already granted.
/// Here it is a member of `pg_read_all_data`, which reads every schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_refuses_a_role_pebble_did_not_create() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .roles(true)
        .build()
        .unwrap();
    let victim = tenants.create(&id("victim")).await.unwrap();
    tenants
        .db(&id("victim"))
        .await
        .unwrap()
        .insert(task(1, "victim's secret"))
        .exec()
        .await
        .unwrap();

    let admin = raw(database.config()).await;
    let squatted = format!("tenant_{}", id("ops"));
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{squatted}\" NOLOGIN; GRANT pg_read_all_data TO \"{squatted}\""
        ))
        .await
        .unwrap();

    let result = tenants.create(&id("ops")).await;
    if let Ok(provisioned) = &result {
        // Show what adopting it gives away before failing.
        let role = provisioned.role.as_ref().expect("a role");
        let as_ops = raw(role.config(&database.config())).await;
        let read = async {
            as_ops.batch_execute("SET ROLE pg_read_all_data").await?;
            as_ops
                .query_one(&format!("SELECT title FROM {}.tasks", victim.schema), &[])
                .await
        }
        .await;
        panic!(
            "adopted foreign role {squatted}; reading the victim's schema with its new password: {:?}",
            read.map(|row| row.get::<_, String>(0))
        );
    }
    assert!(
        matches!(
            &result,
            Err(Error::RoleNotProvisionedByPebble { role, .. }) if *role == squatted
        ),
        "{result:?}"
    );
    // Nothing was created, and the role is as it was.
    assert!(tenants.db(&id("ops")).await.is_err());
    let member: bool = admin
        .query_one(
            "SELECT pg_has_role($1, 'pg_read_all_data', 'MEMBER') AND NOT rolcanlogin \
             FROM pg_roles WHERE rolname = $1",
            &[&squatted],
        )
        .await
        .unwrap()
        .get(0);
    assert!(member);
    admin
        .batch_execute(&format!("DROP ROLE \"{squatted}\""))
        .await
        .unwrap();
}

/// With roles off, dropping a tenant must not touch a role that merely
/// shares its schema's name: `DROP OWNED BY` would delete that role's
/// tables, and `DROP ROLE` the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_tenant_leaves_a_foreign_role_and_its_tables_alone() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    let admin = raw(database.config()).await;
    let foreign = format!("tenant_{}", id("ops"));
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{foreign}\" NOLOGIN; \
             CREATE TABLE public.ops_audit (entry text); \
             INSERT INTO public.ops_audit VALUES ('kept'); \
             ALTER TABLE public.ops_audit OWNER TO \"{foreign}\""
        ))
        .await
        .unwrap();

    tenants.create(&id("ops")).await.unwrap();
    assert!(tenants.drop_tenant(&id("ops")).await.unwrap());

    let still_there = role_exists(&admin, &foreign).await;
    let audit = admin
        .query_opt("SELECT to_regclass('public.ops_audit')::text", &[])
        .await
        .unwrap()
        .and_then(|row| row.get::<_, Option<String>>(0));
    // Clean up whatever is left before asserting.
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS public.ops_audit; DROP ROLE IF EXISTS \"{foreign}\""
        ))
        .await
        .unwrap();
    assert!(still_there, "drop_tenant dropped foreign role {foreign}");
    assert_eq!(
        audit.as_deref(),
        Some("ops_audit"),
        "drop_tenant deleted a table owned by foreign role {foreign}"
    );
}

/// Ids that would quote-escape, fold case, leave ASCII or pass the 63-byte
/// identifier limit are refused by both the handle and provisioning; the
/// longest valid ids still name distinct schemas (no truncation makes two
/// tenants share one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_are_refused_and_the_longest_ids_stay_distinct() {
    let (_database, owner) = owner().await;
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .build()
        .unwrap();
    // `tenant_` + 56 bytes = 63, the limit; one more byte would be truncated.
    let long_a = format!("{}a", "z".repeat(55));
    let long_b = format!("{}b", "z".repeat(55));
    let too_long = format!("{}c", "z".repeat(56));
    for bad in [
        "a\"b",
        "a\"; DROP SCHEMA public CASCADE; --",
        "Acme",
        "ACME",
        "acmé",
        "ａcme",
        "a\u{0}b",
        "a.b",
        "",
        "pg_temp",
        "public",
        &too_long,
    ] {
        assert!(
            matches!(owner.schema_tenant(bad), Err(Error::InvalidTenantId { .. })),
            "handle for {bad:?}"
        );
        assert!(
            matches!(
                tenants.create(bad).await,
                Err(Error::InvalidTenantId { .. })
            ),
            "create {bad:?}"
        );
        assert!(
            matches!(tenants.db(bad).await, Err(Error::InvalidTenantId { .. })),
            "db {bad:?}"
        );
        assert!(
            matches!(
                tenants.drop_tenant(bad).await,
                Err(Error::InvalidTenantId { .. })
            ),
            "drop {bad:?}"
        );
    }
    assert!(tenants.list().await.unwrap().is_empty());

    let a = tenants.create(&long_a).await.unwrap();
    let b = tenants.create(&long_b).await.unwrap();
    assert_eq!(a.schema.len(), 63);
    assert_ne!(a.schema, b.schema);
    let a = tenants.db(&long_a).await.unwrap();
    let b = tenants.db(&long_b).await.unwrap();
    a.insert(task(1, "a's")).exec().await.unwrap();
    assert!(all_tasks(&b).await.is_empty());
    b.insert(task(1, "b's")).exec().await.unwrap();
    assert_eq!(all_tasks(&a).await, vec![task(1, "a's")]);
    assert_eq!(all_tasks(&b).await, vec![task(1, "b's")]);
    tenants.drop_tenant(&long_a).await.unwrap();
    assert_eq!(all_tasks(&b).await, vec![task(1, "b's")]);
}

/// A tenant registered but not ready gets no handle; a handle kept past
/// `drop_tenant` fails instead of reaching anything, and once the id is
/// provisioned again the old handle sees the new, empty schema, never the
/// dropped rows or another tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_dropped_tenants_reach_nothing() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("other")).await.unwrap();
    let other = tenants.db(&id("other")).await.unwrap();
    other.insert(task(1, "other's")).exec().await.unwrap();

    let admin = raw(database.config()).await;
    for status in ["pending", "dropping"] {
        admin
            .execute(
                "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
                 VALUES ($1, 'schema', $2, 'home')",
                &[&id(status), &status],
            )
            .await
            .unwrap();
        let result = tenants.db(&id(status)).await;
        assert!(
            matches!(&result, Err(Error::TenantNotReady { status: s, .. }) if s == status),
            "{result:?}"
        );
    }

    tenants.create(&id("gone")).await.unwrap();
    let kept = tenants.db(&id("gone")).await.unwrap();
    kept.insert(task(1, "dropped")).exec().await.unwrap();
    assert!(tenants.drop_tenant(&id("gone")).await.unwrap());
    assert!(matches!(
        tenants.db(&id("gone")).await,
        Err(Error::UnknownTenant { .. })
    ));
    for result in [
        kept.select::<Task>().all().await.map(|_| ()),
        kept.insert(task(2, "late")).exec().await.map(|_| ()),
        kept.update::<Task>()
            .set(Task::DONE, true)
            .exec()
            .await
            .map(|_| ()),
        kept.delete::<Task>().exec().await.map(|_| ()),
    ] {
        assert!(result.is_err(), "a dropped tenant's handle ran a statement");
    }
    tenants.create(&id("gone")).await.unwrap();
    assert!(all_tasks(&kept).await.is_empty());
    assert_eq!(all_tasks(&other).await, vec![task(1, "other's")]);
}

/// `drop_tenant` racing `db(id)` and statements on the tenant: each caller
/// either works on the tenant's own schema or fails; none reaches the other
/// tenant, and afterwards the tenant is gone for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_racing_handles_never_reaches_another_tenant() {
    let (_database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("keep")).await.unwrap();
    tenants.create(&id("doomed")).await.unwrap();
    let keep = tenants.db(&id("keep")).await.unwrap();
    keep.insert(task(1, "kept")).exec().await.unwrap();

    let mut racers = Vec::new();
    for n in 0..8_i64 {
        let tenants = tenants.clone();
        let doomed = id("doomed");
        racers.push(tokio::spawn(async move {
            // Fresh values too, so the registry is read during the drop.
            let handle = if n % 2 == 0 {
                tenants.db(&doomed).await
            } else {
                let fresh = tenants.clone();
                fresh.db(&doomed).await
            };
            if let Ok(handle) = handle {
                let _ = handle
                    .insert(task(100 + n, &format!("racer {n}")))
                    .exec()
                    .await;
                let _ = handle.select::<Task>().all().await;
            }
        }));
    }
    let dropped = tenants.drop_tenant(&id("doomed")).await.unwrap();
    for racer in racers {
        racer.await.unwrap();
    }
    assert!(dropped);
    assert!(matches!(
        tenants.db(&id("doomed")).await,
        Err(Error::UnknownTenant { .. })
    ));
    assert_eq!(all_tasks(&keep).await, vec![task(1, "kept")]);
}

/// More distinct statements than the per-connection statement cache holds
/// (it is cleared at its bound), on one connection shared by two tenants:
/// every statement still runs the text built for its own schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_cache_past_its_bound_keeps_each_schema() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    // One connection: both tenants' statements share its cache.
    let one = Db::connect_with(database.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let a = one.schema_tenant(&id("a")).unwrap();
    let b = one.schema_tenant(&id("b")).unwrap();
    a.insert_many((1..=5).map(|n| task(n, &format!("a{n}"))))
        .exec()
        .await
        .unwrap();
    b.insert_many((1..=3).map(|n| task(n, &format!("b{n}"))))
        .exec()
        .await
        .unwrap();
    // IN lists of every length: a distinct text per length and tenant.
    for len in 1..=300_usize {
        let keys: Vec<i64> = (1..=len as i64).collect();
        let (tenant, expected) = if len % 2 == 0 { (&a, 5) } else { (&b, 3) };
        let found = tenant
            .select::<Task>()
            .filter(Task::ID.is_in(keys.clone()))
            .count()
            .await
            .unwrap();
        assert_eq!(found, expected.min(len as i64), "length {len}");
        // The same text's twin in the other tenant, right after.
        let other = if len % 2 == 0 { &b } else { &a };
        let twin = other
            .select::<Task>()
            .filter(Task::ID.is_in(keys))
            .all()
            .await
            .unwrap();
        let prefix = if len % 2 == 0 { "b" } else { "a" };
        assert!(twin.iter().all(|t| t.title.starts_with(prefix)), "{twin:?}");
    }
    assert_eq!(all_tasks(&a).await.len(), 5);
    assert_eq!(all_tasks(&b).await.len(), 3);
}

/// A stream dropped halfway inside a tenant's transaction leaves the
/// transaction usable, still confined to that tenant's schema; every write
/// path of the handle (upsert, returning, update_model, delete returning)
/// changes that schema only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_dropped_in_a_transaction_then_every_write_stays_in_schema() {
    let (_database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let a = tenants.db(&id("a")).await.unwrap();
    let b = tenants.db(&id("b")).await.unwrap();
    a.insert_many((1..=50).map(|n| task(n, &format!("t{n}"))))
        .exec()
        .await
        .unwrap();
    b.insert_many((1..=50).map(|n| task(n, &format!("t{n}"))))
        .exec()
        .await
        .unwrap();

    let tx = b.begin().await.unwrap();
    {
        let mut stream = tx.select::<Task>().order_by(Task::ID.asc()).stream();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.id, 1);
    }
    // Upsert on the unique title, in b's schema only.
    let upserted = tx
        .insert(task(999, "t1"))
        .on_conflict(Task::TITLE)
        .do_update(Task::DONE)
        .returning()
        .await
        .unwrap();
    assert_eq!(upserted, Some(task(1, "t1")));
    let stored = tx
        .update_model(&Task {
            id: 2,
            title: "b2".into(),
            done: true,
        })
        .await
        .unwrap();
    assert_eq!(stored.title, "b2");
    let deleted = tx
        .delete::<Task>()
        .filter(Task::ID.gt(40))
        .returning()
        .await
        .unwrap();
    assert_eq!(deleted.len(), 10);
    let locked = tx
        .select::<Task>()
        .filter(Task::ID.lte(3))
        .for_update()
        .all()
        .await
        .unwrap();
    assert_eq!(locked.len(), 3);
    let rest: Vec<Task> = tx.select::<Task>().stream().try_collect().await.unwrap();
    assert_eq!(rest.len(), 40);
    tx.commit().await.unwrap();

    // a is exactly as inserted.
    assert_eq!(
        all_tasks(&a).await,
        (1..=50)
            .map(|n| task(n, &format!("t{n}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(all_tasks(&b).await.len(), 40);
}

/// The database strategy had the same hole through
/// `TenantManager::reset_role_password`: it set a new password on any role
/// named `tenant_<id>` (here one that is no tenant at all, a login role
/// that is a member of `pg_read_all_data`) and handed it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_role_password_refuses_a_role_pebble_did_not_create() {
    let (database, _owner) = owner().await;
    let server = pebble_testkit::server().unwrap();
    let id = ids();
    let admin = raw(database.config()).await;
    let foreign = format!("tenant_{}", id("ops"));
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{foreign}\" LOGIN; GRANT pg_read_all_data TO \"{foreign}\""
        ))
        .await
        .unwrap();
    let manager = pebble::TenantManager::builder(server.config())
        .roles(true)
        .build()
        .unwrap();
    let result = manager.reset_role_password(&id("ops")).await;
    let leaked = match &result {
        Ok(role) => raw_connect(role.config(&database.config())).await.is_ok(),
        Err(_) => false,
    };
    admin
        .batch_execute(&format!("DROP ROLE \"{foreign}\""))
        .await
        .unwrap();
    assert!(
        !leaked,
        "reset_role_password gave out a login for foreign role {foreign}"
    );
    assert!(
        matches!(&result, Err(Error::RoleNotProvisionedByPebble { id: i, .. }) if *i == id("ops")),
        "{result:?}"
    );
}

async fn raw_connect(
    config: tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Database tenants: provisioning does not adopt a foreign `tenant_<id>`
/// role (it would grant it CONNECT and the tenant's rows); the staging
/// database is dropped and no tenant database is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_provisioning_refuses_a_role_pebble_did_not_create() {
    let (database, _owner) = owner().await;
    let server = pebble_testkit::server().unwrap();
    let id = ids();
    let admin = raw(database.config()).await;
    let foreign = format!("tenant_{}", id("ops"));
    admin
        .batch_execute(&format!("CREATE ROLE \"{foreign}\" LOGIN"))
        .await
        .unwrap();
    let manager = pebble::TenantManager::builder(server.config())
        .create_missing(true)
        .roles(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Task>().await })
        .build()
        .unwrap();
    let result = manager.create_tenant(&id("ops")).await;
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&format!("%{}%", id("ops"))],
        )
        .await
        .unwrap()
        .get(0);
    let created_ok = result.is_ok();
    if created_ok {
        let _ = manager.drop_tenant(&id("ops")).await;
    }
    let survived = role_exists(&admin, &foreign).await;
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS \"{foreign}\""))
        .await
        .unwrap();
    assert!(
        matches!(
            &result,
            Err(Error::RoleNotProvisionedByPebble { id: i, role }) if *i == id("ops") && *role == foreign
        ),
        "{result:?}"
    );
    assert_eq!(left, 0, "a tenant or staging database was left");
    assert!(survived);

    // pebble's own roles still work end to end: created, reset, dropped.
    let role = manager
        .create_tenant(&id("own"))
        .await
        .unwrap()
        .expect("a role");
    let reset = manager.reset_role_password(&id("own")).await.unwrap();
    assert_ne!(reset.password(), role.password());
    manager.drop_tenant(&id("own")).await.unwrap();
    assert!(!role_exists(&admin, role.name()).await);
}

/// A pool connected as tenant A's own role: pebble's schema handle for
/// tenant B is refused by the database on every path (the table check
/// included), and A's handle works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_role_through_pebble_cannot_use_another_schema_handle() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .roles(true)
        .build()
        .unwrap();
    let a = tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let b_owner = tenants.db(&id("b")).await.unwrap();
    b_owner.insert(task(1, "b's secret")).exec().await.unwrap();

    let role = a.role.expect("a's role");
    for mode in [
        pebble::StatementMode::Prepared,
        pebble::StatementMode::Unnamed,
    ] {
        let as_a = Db::connect_with(
            role.config(&database.config()),
            PoolOptions::default().max_size(1).statement_mode(mode),
        )
        .await
        .unwrap();
        let own = as_a.schema_tenant(&id("a")).unwrap();
        own.insert(task(7, "mine")).exec().await.unwrap();
        let b = as_a.schema_tenant(&id("b")).unwrap();
        let attempts = [
            b.select::<Task>().all().await.map(|_| ()),
            b.select::<Task>().count().await.map(|_| ()),
            b.insert(task(2, "planted")).exec().await.map(|_| ()),
            b.update::<Task>()
                .set(Task::DONE, true)
                .exec()
                .await
                .map(|_| ()),
            b.delete::<Task>().exec().await.map(|_| ()),
            b.select::<Task>()
                .stream()
                .try_collect::<Vec<_>>()
                .await
                .map(|_| ()),
        ];
        for (n, attempt) in attempts.into_iter().enumerate() {
            let err = attempt.expect_err(&format!("attempt {n} as a's role reached b"));
            assert!(
                err.code() == Some(&pebble::SqlState::INSUFFICIENT_PRIVILEGE),
                "{mode:?} attempt {n}: {err}"
            );
        }
        // The refused statements left A's pooled connection usable.
        assert_eq!(own.select::<Task>().count().await.unwrap(), 1);
        own.delete::<Task>().exec().await.unwrap();
    }
    assert_eq!(all_tasks(&b_owner).await, vec![task(1, "b's secret")]);
}

/// A stream dropped halfway on a one-connection pool: the next statement
/// on that connection, another tenant's, sees only its own rows, and the
/// first tenant's next stream starts from the beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_stream_dropped_halfway_leaves_nothing_for_the_next_tenant() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let one = Db::connect_with(database.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let a = one.schema_tenant(&id("a")).unwrap();
    let b = one.schema_tenant(&id("b")).unwrap();
    a.insert_many((1..=5_000).map(|n| task(n, &format!("a{n}"))))
        .exec()
        .await
        .unwrap();
    b.insert(task(1, "b1")).exec().await.unwrap();
    for _ in 0..3 {
        {
            let mut stream = a.select::<Task>().order_by(Task::ID.asc()).stream();
            for n in 1..=3 {
                assert_eq!(stream.next().await.unwrap().unwrap().id, n);
            }
        }
        assert_eq!(all_tasks(&b).await, vec![task(1, "b1")]);
        let streamed: Vec<Task> = b.select::<Task>().stream().try_collect().await.unwrap();
        assert_eq!(streamed, vec![task(1, "b1")]);
    }
    let again: Vec<Task> = a
        .select::<Task>()
        .order_by(Task::ID.asc())
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(again.len(), 5_000);
    assert_eq!(again[0].id, 1);
}

/// Every builder of a schema handle names the tenant's table, qualified,
/// and nothing unqualified: projections, aggregates, keyset pages, locks,
/// upserts, updates, deletes. Run as two tenants, each sees and changes its
/// own rows only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builder_names_the_tenant_table_and_stays_in_it() {
    let (_database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let a = tenants.db(&id("a")).await.unwrap();
    let b = tenants.db(&id("b")).await.unwrap();
    let qualified = format!("\"{}\".\"tasks\"", a.schema());
    let texts = [
        a.select::<Task>()
            .columns((Task::DONE, Task::ID.count()))
            .group_by(Task::DONE)
            .to_sql()
            .unwrap(),
        a.select::<Task>().after(Task::ID, 3).to_sql().unwrap(),
        a.select::<Task>()
            .for_update()
            .skip_locked()
            .to_sql()
            .unwrap(),
        a.insert(task(1, "x"))
            .on_conflict(Task::TITLE)
            .do_update(Task::DONE)
            .to_sql()
            .unwrap(),
        a.update::<Task>().set(Task::DONE, true).to_sql().unwrap(),
        a.delete::<Task>().filter(Task::ID.gt(1)).to_sql().unwrap(),
    ];
    for sql in &texts {
        assert!(sql.contains(&qualified), "{sql}");
        // No table named bare: every FROM / INTO / UPDATE names the schema.
        for keyword in ["FROM \"tasks\"", "INTO \"tasks\"", "UPDATE \"tasks\""] {
            assert!(!sql.contains(keyword), "{sql}");
        }
    }

    a.insert_many((1..=6).map(|n| task(n, &format!("t{n}"))))
        .exec()
        .await
        .unwrap();
    b.insert_many((1..=2).map(|n| task(n, &format!("t{n}"))))
        .exec()
        .await
        .unwrap();
    // b's writes on titles and keys a also has.
    b.insert(task(99, "t5"))
        .on_conflict(Task::TITLE)
        .do_update(Task::DONE)
        .exec()
        .await
        .unwrap();
    b.update::<Task>()
        .set(Task::DONE, true)
        .filter(Task::ID.lte(6))
        .exec()
        .await
        .unwrap();
    assert!(matches!(
        b.update_model(&Task {
            id: 4,
            title: "stolen".into(),
            done: true
        })
        .await,
        Err(Error::NotFound { .. })
    ));
    let counts: Vec<(bool, i64)> = b
        .select::<Task>()
        .columns((Task::DONE, Task::ID.count()))
        .group_by(Task::DONE)
        .all()
        .await
        .unwrap();
    let mut counts = counts;
    counts.sort();
    assert_eq!(counts, vec![(false, 1), (true, 2)]);
    let page: Vec<i64> = b
        .select::<Task>()
        .after(Task::ID, 0)
        .all()
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(page, vec![1, 2, 99]);
    b.delete::<Task>().exec().await.unwrap();
    assert_eq!(
        all_tasks(&a).await,
        (1..=6)
            .map(|n| task(n, &format!("t{n}")))
            .collect::<Vec<_>>()
    );
}

/// A shared twin of `Task`: the plain `Db` (and its transactions and
/// savepoints) queries shared models only.
#[derive(pebble::Model, Debug, Clone, PartialEq)]
#[pebble(table = "shared_tasks", shared)]
struct SharedTask {
    #[pebble(primary_key)]
    id: i64,
    title: String,
    done: bool,
}

fn shared_task(id: i64, title: &str) -> SharedTask {
    SharedTask {
        id,
        title: title.to_owned(),
        done: false,
    }
}

/// A savepoint ended (rolled back, refused, or dropped) while a stream it
/// started is still open: the parent's next statement must not hang
/// behind the queued `ROLLBACK TO SAVEPOINT` (it is refused while the
/// stream is open, and runs once the stream is dropped), and what the
/// savepoint wrote is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_dropped_with_its_stream_open_does_not_hang_the_parent() {
    let (_database, owner) = owner().await;
    owner.create_table::<SharedTask>().await.unwrap();
    owner
        .insert_many((1..=2_000).map(|n| shared_task(n, &format!("t{n}"))))
        .exec()
        .await
        .unwrap();
    let mut tx = owner.begin().await.unwrap();
    let mut stream = {
        let sp = tx.begin().await.unwrap();
        sp.insert(shared_task(5_000, "undone"))
            .exec()
            .await
            .unwrap();
        let mut stream = sp
            .select::<SharedTask>()
            .order_by(SharedTask::ID.asc())
            .stream();
        assert_eq!(stream.next().await.unwrap().unwrap().id, 1);
        // Refused (a stream is open): the savepoint is consumed, so dropped.
        let ended = sp.rollback().await;
        assert!(matches!(ended, Err(Error::StreamOpen)), "{ended:?}");
        stream
    };
    let limit = std::time::Duration::from_secs(20);
    let during = tokio::time::timeout(limit, tx.select::<SharedTask>().count())
        .await
        .expect("the parent's statement hung behind the dropped savepoint");
    assert!(matches!(during, Err(Error::StreamOpen)), "{during:?}");
    // The stream may go on or fail, but never hangs.
    let rest = tokio::time::timeout(limit, async {
        let mut n = 0;
        while let Some(row) = stream.next().await {
            if row.is_err() {
                break;
            }
            n += 1;
        }
        n
    })
    .await
    .expect("the stream hung");
    assert!(rest <= 2_000);
    drop(stream);
    let after = tokio::time::timeout(limit, tx.select::<SharedTask>().count())
        .await
        .expect("the parent hung after the stream ended")
        .unwrap();
    assert_eq!(after, 2_000, "the savepoint's insert was undone");

    // Dropped (not ended) with its stream open, then the stream dropped
    // unread: the parent goes on, without the savepoint's write.
    {
        let sp = tx.begin().await.unwrap();
        sp.insert(shared_task(6_000, "undone too"))
            .exec()
            .await
            .unwrap();
        let mut stream = sp
            .select::<SharedTask>()
            .order_by(SharedTask::ID.asc())
            .stream();
        assert_eq!(stream.next().await.unwrap().unwrap().id, 1);
        drop(sp);
        let during = tokio::time::timeout(limit, tx.select::<SharedTask>().count())
            .await
            .expect("the parent hung while the stream was open");
        assert!(matches!(during, Err(Error::StreamOpen)), "{during:?}");
        drop(stream);
    }
    let after = tokio::time::timeout(limit, tx.select::<SharedTask>().count())
        .await
        .expect("the parent hung after the stream was dropped")
        .unwrap();
    assert_eq!(after, 2_000);
    tx.commit().await.unwrap();
    assert_eq!(owner.select::<SharedTask>().count().await.unwrap(), 2_000);
}

/// The table check is cached per schema: tenant B's table passing first
/// does not let a statement through on tenant A's table, whose column was
/// changed behind pebble's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_check_is_per_schema() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    let a = tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let admin = raw(database.config()).await;
    admin
        .batch_execute(&format!(
            "ALTER TABLE \"{}\".tasks ALTER COLUMN done TYPE text",
            a.schema
        ))
        .await
        .unwrap();
    let b = tenants.db(&id("b")).await.unwrap();
    b.insert(task(1, "b's")).exec().await.unwrap();
    assert_eq!(all_tasks(&b).await, vec![task(1, "b's")]);
    let a = tenants.db(&id("a")).await.unwrap();
    for result in [
        a.select::<Task>().all().await.map(|_| ()),
        a.insert(task(1, "a's")).exec().await.map(|_| ()),
    ] {
        assert!(
            matches!(
                &result,
                Err(Error::ColumnTypeMismatch { column: "done", .. })
            ),
            "{result:?}"
        );
    }
    assert_eq!(all_tasks(&b).await, vec![task(1, "b's")]);
}

/// `copy_in` through a schema handle loads the tenant's table only, even
/// with a same-named table in `public` (what an unqualified `COPY` would
/// find through `search_path`); inside a transaction it rolls back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_through_a_schema_handle_stays_in_the_schema() {
    let (database, owner) = owner().await;
    let id = ids();
    // A same-named table in `public`, where an unqualified name would land.
    owner
        .batch_execute(&pebble::create_table_sql::<Task>())
        .await
        .unwrap();
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let a = tenants.db(&id("a")).await.unwrap();
    let b = tenants.db(&id("b")).await.unwrap();
    a.insert(task(1, "a's")).exec().await.unwrap();

    let loaded = b
        .copy_in((1..=1_000).map(|n| task(n, &format!("b{n}"))))
        .exec()
        .await
        .unwrap();
    assert_eq!(loaded, 1_000);
    assert_eq!(b.select::<Task>().count().await.unwrap(), 1_000);
    let public: i64 = raw(database.config())
        .await
        .query_one("SELECT count(*) FROM public.tasks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(public, 0, "public");
    assert_eq!(all_tasks(&a).await, vec![task(1, "a's")]);

    // A duplicate key fails the whole load; nothing of it stays.
    let err = b
        .copy_in([task(5_000, "new"), task(1, "dup")])
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(b.select::<Task>().count().await.unwrap(), 1_000);

    let tx = a.begin().await.unwrap();
    tx.copy_in((2..=10).map(|n| task(n, &format!("a{n}"))))
        .exec()
        .await
        .unwrap();
    assert_eq!(tx.select::<Task>().count().await.unwrap(), 10);
    tx.rollback().await.unwrap();
    assert_eq!(all_tasks(&a).await, vec![task(1, "a's")]);
    assert_eq!(b.select::<Task>().count().await.unwrap(), 1_000);
}

/// Two applications (databases) on one cluster with the same tenant id:
/// the second does not take over the first's role (roles are
/// cluster-wide), whose password keeps working and which gets nothing in
/// the second database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_in_another_database_does_not_take_over_the_role() {
    let (first_db, first) = owner().await;
    let (second_db, second) = owner().await;
    let id = ids();
    let first = SchemaTenants::builder(first)
        .table::<Task>()
        .roles(true)
        .build()
        .unwrap();
    let second = SchemaTenants::builder(second)
        .table::<Task>()
        .roles(true)
        .build()
        .unwrap();
    let acme = first.create(&id("acme")).await.unwrap();
    let role = acme.role.expect("a role");
    let result = second.create(&id("acme")).await;
    assert!(
        matches!(&result, Err(Error::RoleNotProvisionedByPebble { .. })),
        "{result:?}"
    );
    // The first application's credentials still work, in its database only.
    let as_acme = raw(role.config(&first_db.config())).await;
    as_acme
        .batch_execute(&format!("SELECT * FROM {}.tasks", acme.schema))
        .await
        .unwrap();
    let other = role.config(&second_db.config()).connect(NoTls).await;
    if let Ok((client, connection)) = other {
        tokio::spawn(connection);
        // PUBLIC may keep CONNECT on the second database; its schema must
        // not exist for this role.
        let err = client
            .batch_execute(&format!("SELECT * FROM {}.tasks", acme.schema))
            .await
            .expect_err("the first app's role read the second app's schema");
        assert!(err.code().is_some(), "{err}");
    }
    assert!(first.drop_tenant(&id("acme")).await.unwrap());
    // With the first one's role gone, the second can provision the id.
    assert!(second.create(&id("acme")).await.unwrap().created);
    assert!(second.drop_tenant(&id("acme")).await.unwrap());
}
