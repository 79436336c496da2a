//! Schema per tenant against real PostgreSQL: qualified names, isolation of
//! every operation between two tenants with identical tables, pooled
//! connections that never carry a `search_path`, provisioning (atomic,
//! concurrent, validated), drop, cleanup after a crash, per-tenant roles.

use std::collections::BTreeSet;
use std::time::Duration;

use pebble::{Db, Error, Model, PoolOptions, SchemaTenants, TenantStatus};

mod common;

use common::schema::{all_tasks, owner, raw, task, Task};

/// Tenant ids unique to this process and test (see `common::schema::ids`).
fn ids() -> impl Fn(&str) -> String {
    common::schema::ids("s")
}

/// Schema tenants of `Task`, each with its own role.
fn with_roles(owner: Db) -> SchemaTenants {
    SchemaTenants::builder(owner)
        .table::<Task>()
        .roles(true)
        .build()
        .expect("builder")
}

/// A shared view of the session's `search_path`: read through a pooled
/// connection, it shows what that connection carries.
#[derive(Model, Debug)]
#[pebble(table = "session_path", shared)]
struct SessionPath {
    path: String,
}

async fn schemas(client: &tokio_postgres::Client, prefix: &str) -> BTreeSet<String> {
    client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1",
            &[&format!("tenant_{prefix}%")],
        )
        .await
        .expect("schemas")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_name_the_tenant_schema() {
    let (_database, db) = owner().await;
    let acme = db.schema_tenant("acme").expect("valid id");
    assert_eq!(acme.schema(), "tenant_acme");
    assert_eq!(
        acme.select::<Task>()
            .filter(Task::DONE.eq(false))
            .to_sql()
            .unwrap(),
        r#"SELECT "id", "title", "done" FROM "tenant_acme"."tasks" WHERE "done" = $1"#
    );
    assert_eq!(
        acme.insert(task(1, "a")).to_sql().unwrap(),
        r#"INSERT INTO "tenant_acme"."tasks" ("id", "title", "done") VALUES ($1, $2, $3)"#
    );
    assert_eq!(
        acme.update::<Task>()
            .set(Task::DONE, true)
            .filter(Task::ID.eq(1))
            .to_sql()
            .unwrap(),
        r#"UPDATE "tenant_acme"."tasks" SET "done" = $1 WHERE "id" = $2"#
    );
    assert_eq!(
        acme.delete::<Task>()
            .filter(Task::ID.eq(1))
            .to_sql()
            .unwrap(),
        r#"DELETE FROM "tenant_acme"."tasks" WHERE "id" = $1"#
    );
    assert_eq!(
        acme.insert(task(1, "a"))
            .on_conflict(Task::ID)
            .do_update(Task::TITLE)
            .to_sql()
            .unwrap(),
        r#"INSERT INTO "tenant_acme"."tasks" ("id", "title", "done") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET "title" = "excluded"."title""#
    );
    for bad in [
        "",
        "Acme",
        "ac-me",
        "ac\"me",
        "ac me",
        "public",
        "pg_catalog",
        "é",
    ] {
        assert!(
            matches!(db.schema_tenant(bad), Err(Error::InvalidTenantId { .. })),
            "{bad:?} accepted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_one_tenant_leaves_the_other_alone() {
    let (_database, db) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(db.clone())
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    tenants.create(&id("b")).await.unwrap();
    let a = tenants.db(&id("a")).await.unwrap();
    let b = tenants.db(&id("b")).await.unwrap();

    // Identical keys and unique values in both: any leak would collide.
    let rows = vec![task(1, "one"), task(2, "two"), task(3, "three")];
    a.insert_many(rows.clone()).exec().await.unwrap();
    let a_before = all_tasks(&a).await;
    assert_eq!(a_before, rows);

    // Every operation, as b.
    assert_eq!(b.insert_many(rows.clone()).exec().await.unwrap(), 3);
    assert_eq!(b.insert(task(4, "four")).exec().await.unwrap(), 1);
    assert_eq!(b.select::<Task>().count().await.unwrap(), 4);
    assert!(b
        .select::<Task>()
        .filter(Task::ID.eq(4))
        .exists()
        .await
        .unwrap());
    assert_eq!(b.find::<Task>(4).one().await.unwrap().title, "four");
    assert_eq!(
        b.update::<Task>()
            .set(Task::DONE, true)
            .exec()
            .await
            .unwrap(),
        4
    );
    let mut renamed = task(1, "uno");
    renamed.done = true;
    assert_eq!(b.update_model(&renamed).await.unwrap(), renamed);
    let upserted = b
        .insert(task(2, "dos"))
        .on_conflict(Task::ID)
        .do_update(Task::TITLE)
        .returning()
        .await
        .unwrap();
    assert_eq!(upserted.map(|t| t.title).as_deref(), Some("dos"));
    assert_eq!(
        b.insert(task(3, "ignored"))
            .on_conflict(Task::ID)
            .do_nothing()
            .exec()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        b.delete::<Task>()
            .filter(Task::ID.eq(3))
            .returning()
            .await
            .unwrap(),
        vec![Task {
            id: 3,
            title: "three".into(),
            done: true
        }]
    );
    let tx = b.begin().await.unwrap();
    tx.delete::<Task>().exec().await.unwrap();
    assert_eq!(tx.select::<Task>().count().await.unwrap(), 0);
    tx.rollback().await.unwrap();
    let tx = b.begin().await.unwrap();
    tx.insert(task(5, "five")).exec().await.unwrap();
    tx.update::<Task>()
        .set(Task::TITLE, "cinq")
        .filter(Task::ID.eq(5))
        .exec()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A transaction of the plain Db reaching b's schema too.
    let tx = db.begin().await.unwrap();
    tx.schema_tenant(&id("b"))
        .unwrap()
        .delete::<Task>()
        .filter(Task::ID.eq(4))
        .exec()
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        all_tasks(&b)
            .await
            .iter()
            .map(|t| t.title.as_str())
            .collect::<Vec<_>>(),
        ["uno", "dos", "cinq"]
    );
    assert_eq!(all_tasks(&a).await, a_before, "tenant a was touched by b");
    // And the other way round: a's view never had b's rows.
    assert!(a.find::<Task>(5).optional().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_never_carry_a_search_path() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .build()
        .unwrap();
    let names: Vec<String> = (0..50).map(|n| id(&format!("t{n}"))).collect();
    for name in &names {
        tenants.create(name).await.unwrap();
    }
    owner
        .batch_execute(
            "CREATE VIEW public.session_path AS SELECT current_setting('search_path') AS path",
        )
        .await
        .unwrap();
    let db = Db::connect_with(database.config(), PoolOptions::default().max_size(4))
        .await
        .unwrap();
    let default_path = db.select::<SessionPath>().one().await.unwrap().path;

    // 1,000 statements over 50 tenants, 8 tasks at once on 4 connections:
    // 504 inserts (even n) and 496 counts.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let db = db.clone();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..125 {
                let name = &names[(worker * 125 + n) % names.len()];
                let tenant = db.schema_tenant(name).unwrap();
                if n % 2 == 0 {
                    tenant
                        .insert(task((worker * 1000 + n) as i64, &format!("w{worker}n{n}")))
                        .exec()
                        .await
                        .unwrap();
                } else {
                    tenant.select::<Task>().count().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Four open transactions hold all four pooled connections.
    let mut txs = Vec::new();
    for _ in 0..4 {
        txs.push(db.begin().await.unwrap());
    }
    for tx in &txs {
        assert_eq!(
            tx.select::<SessionPath>().one().await.unwrap().path,
            default_path
        );
    }
    assert_eq!(db.status().size, 4);
    drop(txs);
    // Each tenant got exactly its own rows.
    let mut total = 0;
    for name in &names {
        total += db
            .schema_tenant(name)
            .unwrap()
            .select::<Task>()
            .count()
            .await
            .unwrap();
    }
    assert_eq!(total, 8 * 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tasks_provisioning_ten_tenants_make_ten() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let tenants = tenants.clone();
        let name = id(&format!("c{}", n % 10));
        tasks.push(tokio::spawn(async move { tenants.create(&name).await }));
    }
    let mut created = 0;
    for task in tasks {
        let provisioned = task.await.unwrap().expect("no provisioning error");
        created += usize::from(provisioned.created);
    }
    assert_eq!(created, 10);
    let client = raw(database.config()).await;
    assert_eq!(schemas(&client, &id("")).await.len(), 10);
    let records = tenants.list().await.unwrap();
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.status == TenantStatus::Ready));
    // Processes, not only tasks: a second provisioner on its own pool.
    let other = SchemaTenants::builder(Db::connect(database.config()).await.unwrap())
        .table::<Task>()
        .build()
        .unwrap();
    assert!(!other.create(&id("c3")).await.unwrap().created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_ids_create_nothing() {
    let (database, owner) = owner().await;
    let tenants = SchemaTenants::builder(owner)
        .table::<Task>()
        .build()
        .unwrap();
    let too_long = "a".repeat(57);
    for bad in [
        "",
        "Acme",
        "ac-me",
        "ac'me",
        "ac\"me",
        "ac me",
        "public",
        "pg_catalog",
        "information_schema",
        &too_long,
        "é",
        "ü_x",
    ] {
        assert!(
            matches!(
                tenants.create(bad).await,
                Err(Error::InvalidTenantId { .. })
            ),
            "{bad:?} accepted"
        );
        assert!(matches!(
            tenants.db(bad).await,
            Err(Error::InvalidTenantId { .. })
        ));
        assert!(matches!(
            tenants.drop_tenant(bad).await,
            Err(Error::InvalidTenantId { .. })
        ));
    }
    let client = raw(database.config()).await;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    // Not even the registry was created: nothing reached the server.
    let registry: Option<String> = client
        .query_one("SELECT to_regclass('public.pebble_tenants')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(registry, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_removes_schema_role_and_row_and_refuses_foreign_schemas() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = with_roles(owner.clone());
    let made = tenants.create(&id("gone")).await.unwrap();
    let role = made.role.expect("a role");
    tenants.create(&id("stays")).await.unwrap();
    let gone = tenants.db(&id("gone")).await.unwrap();
    gone.insert(task(1, "x")).exec().await.unwrap();
    tenants
        .db(&id("stays"))
        .await
        .unwrap()
        .insert(task(1, "x"))
        .exec()
        .await
        .unwrap();

    assert!(tenants.drop_tenant(&id("gone")).await.unwrap());
    assert!(
        !tenants.drop_tenant(&id("gone")).await.unwrap(),
        "second drop"
    );
    let client = raw(database.config()).await;
    assert_eq!(
        schemas(&client, &id("")).await,
        BTreeSet::from([format!("tenant_{}", id("stays"))])
    );
    let roles: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&role.name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0);
    assert!(matches!(
        tenants.db(&id("gone")).await,
        Err(Error::UnknownTenant { .. })
    ));
    assert!(
        gone.select::<Task>().count().await.is_err(),
        "the old handle's schema is gone"
    );
    assert_eq!(
        tenants
            .db(&id("stays"))
            .await
            .unwrap()
            .select::<Task>()
            .count()
            .await
            .unwrap(),
        1
    );

    // A `tenant_<id>` schema pebble did not make is never dropped nor used.
    let foreign = id("foreign");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA tenant_{foreign}; CREATE TABLE tenant_{foreign}.keep (x int)"
        ))
        .await
        .unwrap();
    assert!(matches!(
        tenants.create(&foreign).await,
        Err(Error::SchemaNotProvisionedByPebble { .. })
    ));
    client
        .execute(
            "UPDATE pebble_tenants SET status = 'ready' WHERE id = $1",
            &[&foreign],
        )
        .await
        .unwrap();
    assert!(matches!(
        tenants.drop_tenant(&foreign).await,
        Err(Error::SchemaNotProvisionedByPebble { .. })
    ));
    assert!(client
        .query_one(
            &format!("SELECT to_regclass('tenant_{foreign}.keep')::text"),
            &[]
        )
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_role_cannot_reach_another_tenant() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = with_roles(owner);
    let a = tenants.create(&id("a")).await.unwrap();
    let b = tenants.create(&id("b")).await.unwrap();
    tenants
        .db(&id("b"))
        .await
        .unwrap()
        .insert(task(1, "b's secret"))
        .exec()
        .await
        .unwrap();
    let role = a.role.expect("a's role");
    assert!(!format!("{role:?}").contains(role.password()));
    assert!(b.role.is_some());

    let as_a = raw(role.config(&database.config())).await;
    // Its own schema, through raw SQL.
    as_a.execute(
        &format!("INSERT INTO {}.tasks VALUES (1, 'mine', false)", a.schema),
        &[],
    )
    .await
    .unwrap();
    let mine: i64 = as_a
        .query_one(&format!("SELECT count(*) FROM {}.tasks", a.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mine, 1);
    // Another tenant's schema, the registry: refused by the database.
    for sql in [
        format!("SELECT * FROM {}.tasks", b.schema),
        format!("DELETE FROM {}.tasks", b.schema),
        "SELECT * FROM public.pebble_tenants".to_owned(),
        format!("CREATE TABLE {}.extra (x int)", a.schema),
    ] {
        let err = as_a.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    // A second provisioning does not hand out (or change) the password again.
    assert!(tenants.create(&id("a")).await.unwrap().role.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_later_reaches_its_tenant_role_only() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = with_roles(owner.clone());
    let a = tenants.create(&id("a")).await.unwrap();
    let b = tenants.create(&id("b")).await.unwrap();
    // What a later migration does, as the role that provisioned: a table
    // and a sequence in each tenant's schema.
    for schema in [&a.schema, &b.schema] {
        owner
            .batch_execute(&format!(
                "CREATE TABLE {schema}.notes (id bigserial PRIMARY KEY, body text NOT NULL)"
            ))
            .await
            .unwrap();
    }
    let a_role = a.role.expect("a's role");
    let as_a = raw(a_role.config(&database.config())).await;
    let as_b = raw(b.role.expect("b's role").config(&database.config())).await;
    let as_owner = raw(database.config()).await;
    // Each role reads and writes its own new table, the sequence included.
    for (client, schema, body) in [
        (&as_a, &a.schema, "a's note"),
        (&as_b, &b.schema, "b's note"),
    ] {
        client
            .execute(
                &format!("INSERT INTO {schema}.notes (body) VALUES ($1)"),
                &[&body],
            )
            .await
            .unwrap();
        let bodies: Vec<String> = client
            .query(&format!("SELECT body FROM {schema}.notes"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(bodies, [body]);
    }
    // The other tenant's new table stays out of reach, whichever way.
    for sql in [
        format!("SELECT * FROM {}.notes", a.schema),
        format!("UPDATE {}.notes SET body = 'b was here'", a.schema),
        format!("DELETE FROM {}.notes", a.schema),
        format!("SELECT nextval('{}.notes_id_seq')", a.schema),
    ] {
        let err = as_b.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    let left: Vec<String> = as_owner
        .query(&format!("SELECT body FROM {}.notes", a.schema), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, ["a's note"]);
    // Dropping a tenant takes its default privileges with it: nothing in
    // pg_default_acl names its role any more.
    let naming_a = || async {
        as_owner
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_default_acl \
                 WHERE defaclacl::text LIKE '%' || $1::text || '%'",
                &[&a_role.name()],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(naming_a().await, 2, "tables and sequences");
    tenants.drop_tenant(&id("a")).await.unwrap();
    assert_eq!(naming_a().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provisioning_leaves_no_ready_tenant_and_cleanup_removes_it() {
    let (database, owner) = owner().await;
    let id = ids();
    let client = raw(database.config()).await;
    // Every provisioning sleeps inside its transaction: long enough to be
    // caught halfway.
    let slow = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .sql(|_| "SELECT pg_sleep(60)".to_owned())
        .build()
        .unwrap();
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("ready")).await.unwrap();

    let killed = {
        let slow = slow.clone();
        let name = id("killed");
        tokio::spawn(async move { slow.create(&name).await })
    };
    let sleeper = wait_for_sleeper(&client, database.name(), 0).await;
    // The process dies: its task is gone and its server sessions end.
    killed.abort();
    let _ = killed.await;
    client
        .execute("SELECT pg_terminate_backend($1)", &[&sleeper])
        .await
        .unwrap();

    // Another provisioning still running: cleanup must leave it alone.
    let running = {
        let slow = slow.clone();
        let name = id("running");
        tokio::spawn(async move { slow.create(&name).await })
    };
    let running_sleeper = wait_for_sleeper(&client, database.name(), sleeper).await;

    assert!(matches!(
        tenants.db(&id("killed")).await,
        Err(Error::TenantNotReady { .. })
    ));
    let statuses: Vec<(String, TenantStatus)> = tenants
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert!(statuses.contains(&(id("killed"), TenantStatus::Pending)));
    assert!(statuses.contains(&(id("ready"), TenantStatus::Ready)));
    // Until the killed session's rollback lands, its row may still be held.
    let mut cleaned = Vec::new();
    for _ in 0..200 {
        cleaned.extend(tenants.cleanup().await.unwrap());
        if cleaned.contains(&id("killed")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cleaned, vec![id("killed")]);
    let left: Vec<String> = tenants
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![id("ready"), id("running")]);
    assert_eq!(
        schemas(&client, &id("")).await,
        BTreeSet::from([format!("tenant_{}", id("ready"))])
    );

    // The running one, ended the same way, is cleaned by the next call.
    client
        .execute("SELECT pg_terminate_backend($1)", &[&running_sleeper])
        .await
        .unwrap();
    assert!(running.await.unwrap().is_err());
    let mut cleaned = Vec::new();
    for _ in 0..200 {
        cleaned.extend(tenants.cleanup().await.unwrap());
        if !cleaned.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cleaned, vec![id("running")]);
    assert_eq!(tenants.list().await.unwrap().len(), 1);
}

/// The pid of the backend running `pg_sleep` in `database`, once there is one.
async fn wait_for_sleeper(client: &tokio_postgres::Client, database: &str, except: i32) -> i32 {
    for _ in 0..1000 {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
                 AND wait_event = 'PgSleep' AND pid <> pg_backend_pid() AND pid <> $2",
                &[&database, &except],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no provisioning reached its sleep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_reach_the_schema_too() {
    let (database, owner) = owner().await;
    let id = ids();
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .build()
        .unwrap();
    tenants.create(&id("a")).await.unwrap();
    owner
        .schema_tenant(&id("a"))
        .unwrap()
        .insert(task(0, "zero"))
        .exec()
        .await
        .unwrap();
    let unnamed = Db::connect_with(
        database.config(),
        PoolOptions::default().statement_mode(pebble::StatementMode::Unnamed),
    )
    .await
    .unwrap();
    let a = unnamed.schema_tenant(&id("a")).unwrap();
    // `one()` sends `LIMIT $n`: a `u64` bound as `int8`, not `numeric`.
    assert_eq!(a.find::<Task>(0).one().await.unwrap().title, "zero");
    assert_eq!(
        a.select::<Task>()
            .offset(0)
            .limit(5)
            .all()
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(a.select::<Task>().count().await.unwrap(), 1);
}
