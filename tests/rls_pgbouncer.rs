//! Row-level security through a real PgBouncer 1.18 in transaction mode
//! (which keeps no named prepared statements between transactions): pebble
//! sends unnamed typed statements (`StatementMode::Unnamed`), the tenant is
//! set per transaction, and 32 concurrent tasks alternating between two
//! tenants over 4 server connections never see a row of the other.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{setup, Document, User};
use pebble::{Db, Error, PoolOptions, RlsDb, RlsTable, SqlState, StatementMode};
use pebble_testkit::{PgBouncer, PgBouncerOptions, TestDatabase};
use uuid::Uuid;

const TASKS: usize = 32;

struct Fixture {
    test_db: TestDatabase,
    owner: Db,
    bouncer: PgBouncer,
    app: RlsDb,
    role: String,
}

async fn fixture() -> Fixture {
    let (test_db, owner) = setup().await;
    let tables = [RlsTable::of::<User>(), RlsTable::of::<Document>()];
    owner.install_rls_tables(&tables).await.unwrap();
    let role = format!("app_{}", Uuid::new_v4().simple());
    let password = owner.create_app_role(&role, &tables).await.unwrap();
    let bouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(4))
        .expect("a PgBouncer in front of the test server (apt-get install pgbouncer)");
    let mut config = bouncer.config_for(test_db.name());
    config.user(&role).password(&password);
    let options = PoolOptions::default()
        .max_size(TASKS)
        .wait_timeout(Some(Duration::from_secs(60)))
        .statement_mode(StatementMode::Unnamed);
    let app = RlsDb::connect_with(config, options).await.unwrap();
    Fixture {
        test_db,
        owner,
        bouncer,
        app,
        role,
    }
}

impl Fixture {
    async fn cleanup(self) {
        self.app.db().close();
        let role = &self.role;
        self.owner
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap();
        drop(self.bouncer);
        drop(self.test_db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_alternating_tenants_through_pgbouncer_see_no_other_tenant() {
    let f = fixture().await;
    let tenants = [Uuid::new_v4(), Uuid::new_v4()];
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let app = f.app.clone();
            tokio::spawn(async move {
                let mut foreign = 0_usize;
                for n in 0..20 {
                    // Each task alternates tenants, so consecutive statements
                    // of one client connection belong to different tenants.
                    let tenant = tenants[(i + n) % 2];
                    let handle = app.tenant(tenant);
                    match n % 5 {
                        0 => {
                            handle
                                .insert(User::new(&format!("u{i}-{n}"), n as i32))
                                .exec()
                                .await
                                .unwrap();
                        }
                        1 => {
                            let users = handle.select::<User>().all().await.unwrap();
                            foreign += users.iter().filter(|u| u.tenant_id != tenant).count();
                        }
                        2 => {
                            let rows = handle
                                .query("SELECT tenant_id FROM users", &[])
                                .await
                                .unwrap();
                            foreign += rows
                                .iter()
                                .filter(|r| r.get::<_, Uuid>(0) != tenant)
                                .count();
                        }
                        3 => {
                            let tx = handle.begin().await.unwrap();
                            // Only this task's rows: two tasks updating the
                            // same rows in different orders would deadlock.
                            tx.update::<User>()
                                .set(User::AGE, n as i32)
                                .filter(User::NAME.like(format!("u{i}-%")))
                                .exec()
                                .await
                                .unwrap();
                            let rows = tx
                                .query("SELECT DISTINCT tenant_id FROM users", &[])
                                .await
                                .unwrap();
                            foreign += rows
                                .iter()
                                .filter(|r| r.get::<_, Uuid>(0) != tenant)
                                .count();
                            tx.commit().await.unwrap();
                        }
                        _ => {
                            // Raw SQL aiming at the other tenant changes nothing.
                            let other = tenants[(i + n + 1) % 2];
                            let changed = handle
                                .execute(
                                    "UPDATE users SET name = 'owned' WHERE tenant_id = $1",
                                    &[&other],
                                )
                                .await
                                .unwrap();
                            foreign += changed as usize;
                        }
                    }
                }
                foreign
            })
        })
        .collect();
    let mut foreign = 0;
    for task in tasks {
        foreign += task.await.unwrap();
    }
    assert_eq!(foreign, 0, "cross-tenant rows seen or changed");

    // As the superuser, directly: every row is where it was written.
    let all = f.owner.cross_tenant().select::<User>().all().await.unwrap();
    assert_eq!(all.len(), TASKS * 4, "every insert landed, once");
    assert!(all.iter().all(|u| u.name != "owned"));
    for tenant in tenants {
        let mine = all.iter().filter(|u| u.tenant_id == tenant).count();
        assert_eq!(mine, TASKS * 2);
        assert_eq!(
            f.app.tenant(tenant).select::<User>().count().await.unwrap(),
            mine as i64
        );
    }
    f.cleanup().await;
}

#[tokio::test]
async fn through_pgbouncer_no_tenant_means_no_rows_and_nothing_survives() {
    let f = fixture().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for tenant in [a, b] {
        f.app
            .tenant(tenant)
            .insert_many([User::new("ann", 1), User::new("bob", 2)])
            .exec()
            .await
            .unwrap();
    }
    // Many tenant statements over few server connections, then statements
    // without a tenant: whatever server connection PgBouncer picks carries none.
    for i in 0..100 {
        let tenant = if i % 2 == 0 { a } else { b };
        f.app.tenant(tenant).select::<User>().count().await.unwrap();
    }
    let plain = f.app.db();
    for _ in 0..20 {
        assert_eq!(
            plain.cross_tenant().select::<User>().count().await.unwrap(),
            0
        );
    }
    let err = plain
        .cross_tenant()
        .insert(User {
            tenant_id: a,
            ..User::new("intruder", 1)
        })
        .exec()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // Documents of another tenant key type, and a forged row, through the same pool.
    f.app
        .tenant(7_i64)
        .insert(Document::new(1, "seven", 1))
        .exec()
        .await
        .unwrap();
    assert_eq!(
        f.app
            .tenant(8_i64)
            .select::<Document>()
            .count()
            .await
            .unwrap(),
        0
    );
    let err = f
        .app
        .tenant(8_i64)
        .insert(Document {
            org_id: 7,
            ..Document::new(2, "forged", 1)
        })
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    // The audit runs through PgBouncer too.
    f.app
        .audit(&[RlsTable::of::<User>(), RlsTable::of::<Document>()])
        .await
        .unwrap()
        .check()
        .unwrap();
    let seen: HashSet<Uuid> = f
        .owner
        .cross_tenant()
        .select::<User>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.tenant_id)
        .collect();
    assert_eq!(seen, HashSet::from([a, b]));
    f.cleanup().await;
}

#[tokio::test]
async fn raw_sql_cannot_leave_a_tenant_on_a_server_connection_behind_pgbouncer() {
    let f = fixture().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    f.app
        .tenant(a)
        .insert(User::new("ann", 1))
        .exec()
        .await
        .unwrap();
    // Tenant B's raw SQL sets A as the *session's* tenant, and creates a
    // temporary table shadowing `users`; both must end with the statement.
    for _ in 0..8 {
        f.app
            .tenant(b)
            .execute(
                "SELECT set_config('pebble.tenant_id', $1, false)",
                &[&a.to_string()],
            )
            .await
            .unwrap();
        f.app
            .tenant(b)
            .execute(
                "CREATE TEMP TABLE users (LIKE public.users INCLUDING DEFAULTS)",
                &[],
            )
            .await
            .unwrap();
    }
    // Whatever server connection PgBouncer hands out now carries no tenant.
    for _ in 0..40 {
        let seen = f
            .app
            .db()
            .cross_tenant()
            .select::<User>()
            .count()
            .await
            .unwrap();
        assert_eq!(seen, 0, "a context-less statement saw tenant A's rows");
    }
    f.app
        .tenant(b)
        .insert(User::new("bob", 1))
        .exec()
        .await
        .unwrap();
    let bs = f.owner.cross_tenant().select::<User>().all().await.unwrap();
    assert_eq!(
        bs.iter().filter(|u| u.tenant_id == b).count(),
        1,
        "B's insert is in the real table"
    );
    f.cleanup().await;
}
