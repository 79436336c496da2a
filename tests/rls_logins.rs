//! Tenant logins: row-level security with the tenant bound to the
//! connection. Every tenant handle here logs in as its tenant's own role
//! (made by `create_tenant_login`); each test checks, as tenant B's login,
//! that nothing of tenant A is seen or changed, whatever the SQL sent says.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::rls::tables;
use common::{setup, Document, Membership, User};
use pebble::{
    Db, Error, LoginSecret, Model, PoolOptions, RlsDb, RlsTable, SqlState, StatementMode,
    TenantLogins,
};
use pebble_testkit::{PgBouncer, PgBouncerOptions, TestDatabase};
use uuid::Uuid;

/// A text-keyed tenant model.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "notes")]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    team: String,
    body: String,
}

fn all_tables() -> Vec<RlsTable> {
    let mut all = tables();
    all.push(RlsTable::of::<Note>());
    all
}

fn secret() -> LoginSecret {
    LoginSecret::new("a test secret of enough bytes").unwrap()
}

struct Fixture {
    test_db: TestDatabase,
    owner: Db,
    /// The shared application role, in setting mode.
    app: RlsDb,
    app_role: String,
    logins: TenantLogins,
    a: Uuid,
    b: Uuid,
}

impl Fixture {
    async fn new(options: PoolOptions, max_open_pools: usize) -> Fixture {
        let (test_db, owner) = setup().await;
        Fixture::on(test_db, owner, options, max_open_pools).await
    }

    async fn on(
        test_db: TestDatabase,
        owner: Db,
        options: PoolOptions,
        max_open_pools: usize,
    ) -> Fixture {
        owner.create_table::<Note>().await.unwrap();
        owner.install_rls_tables(&all_tables()).await.unwrap();
        owner.grant_tenant_logins(&all_tables()).await.unwrap();
        let app_role = format!("app_{}", Uuid::new_v4().simple());
        let password = owner
            .create_app_role(&app_role, &all_tables())
            .await
            .unwrap();
        let mut config = test_db.config();
        config.user(&app_role).password(&password);
        let app = RlsDb::connect(config.clone()).await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for tenant in [a, b] {
            owner.create_tenant_login(&tenant, &secret()).await.unwrap();
        }
        for org in [1_i64, 2] {
            owner.create_tenant_login(&org, &secret()).await.unwrap();
        }
        let logins = TenantLogins::connect(config, secret(), options, max_open_pools)
            .await
            .unwrap();
        for (tenant, org) in [(a, 1_i64), (b, 2)] {
            logins
                .tenant(tenant)
                .await
                .unwrap()
                .insert_many([User::new("ann", 31), User::new("bob", 42)])
                .exec()
                .await
                .unwrap();
            let base = org * 10;
            logins
                .tenant(org)
                .await
                .unwrap()
                .insert_many([
                    Document::new(base + 1, "plan", 10),
                    Document::new(base + 2, "memo", 1),
                ])
                .exec()
                .await
                .unwrap();
        }
        Fixture {
            test_db,
            owner,
            app,
            app_role,
            logins,
            a,
            b,
        }
    }

    async fn users_of(&self, tenant: Uuid) -> Vec<User> {
        let mut users = self
            .owner
            .cross_tenant()
            .select::<User>()
            .filter(User::TENANT_ID.eq(tenant))
            .all()
            .await
            .unwrap();
        users.sort_by_key(|u| u.name.clone());
        users
    }

    async fn documents_of(&self, org: i64) -> Vec<Document> {
        self.owner
            .cross_tenant()
            .select::<Document>()
            .filter(Document::ORG_ID.eq(org))
            .order_by(Document::ID.asc())
            .all()
            .await
            .unwrap()
    }

    /// Drops every login of the database (and their group), and checks
    /// they are gone: a new pool for `a` cannot log in.
    async fn cleanup(self) {
        self.logins.close();
        self.app.db().close();
        let dropped = self.owner.drop_all_tenant_logins().await.unwrap();
        assert!(dropped >= 4, "{dropped} logins dropped");
        let err = self.logins.tenant(self.a).await.unwrap_err();
        assert!(matches!(err, Error::TenantLoginRefused { .. }), "{err}");
        assert_eq!(self.owner.drop_all_tenant_logins().await.unwrap(), 0);
        let role = &self.app_role;
        self.owner
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap();
        drop(self.test_db);
    }
}

#[tokio::test]
async fn builders_as_tenant_b_never_see_or_change_tenant_a() {
    let f = Fixture::new(PoolOptions::default(), 8).await;
    let (a_users, a_docs) = (f.users_of(f.a).await, f.documents_of(1).await);
    let b = f.logins.tenant(f.b).await.unwrap();
    let users = b.select::<User>().all().await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u.tenant_id == f.b));
    // A's row by its primary key is not found.
    let a_id = a_users[0].id;
    assert!(b.find::<User>(a_id).optional().await.unwrap().is_none());
    // Updates and deletes reach B's rows only.
    assert_eq!(
        b.update::<User>().set(User::AGE, 0).exec().await.unwrap(),
        2
    );
    assert_eq!(
        b.delete::<User>()
            .filter(User::ID.eq(a_id))
            .exec()
            .await
            .unwrap(),
        0
    );
    // An insert carrying A's id is refused before it is sent.
    let err = b
        .insert(User {
            tenant_id: f.a,
            ..User::new("intruder", 1)
        })
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    // An upsert on A's document key: the conflicting row is A's, invisible
    // to B, and the database refuses to update it.
    let org_b = f.logins.tenant(2_i64).await.unwrap();
    let result = org_b
        .insert(Document::new(11, "taken over", 999))
        .on_conflict(Document::ID)
        .do_update((Document::TITLE, Document::PAGES))
        .exec()
        .await;
    assert!(result.is_err() || result.unwrap() == 0);
    assert_eq!(f.users_of(f.a).await, a_users);
    assert_eq!(f.documents_of(1).await, a_docs);
    f.cleanup().await;
}

#[tokio::test]
async fn raw_sql_as_tenant_b_never_reaches_tenant_a() {
    let f = Fixture::new(PoolOptions::default(), 8).await;
    let (a_users, a_docs) = (f.users_of(f.a).await, f.documents_of(1).await);
    let b = f.logins.tenant(f.b).await.unwrap();
    let org_b = f.logins.tenant(2_i64).await.unwrap();

    // A select with no WHERE, and one naming A.
    let rows = b.query("SELECT tenant_id FROM users", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == f.b));
    let rows = b
        .query("SELECT * FROM users WHERE tenant_id = $1", &[&f.a])
        .await
        .unwrap();
    assert!(rows.is_empty());
    // Decoded into models.
    let users: Vec<User> = b.query_as("SELECT * FROM users", &[]).await.unwrap();
    assert!(users.iter().all(|u| u.tenant_id == f.b));
    // A hand-written join (a cross join: every pair the policy lets through).
    let rows = b
        .query(
            "SELECT u.tenant_id, v.tenant_id FROM users u CROSS JOIN users v",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r.get::<_, Uuid>(0) == f.b && r.get::<_, Uuid>(1) == f.b));
    let rows = org_b
        .query(
            "SELECT d.org_id FROM documents d JOIN documents e ON e.id <> d.id",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.get::<_, i64>(0) == 2));
    // Updates and deletes aimed at A change nothing.
    assert_eq!(
        b.execute("UPDATE users SET age = 0 WHERE tenant_id = $1", &[&f.a])
            .await
            .unwrap(),
        0
    );
    assert_eq!(b.execute("UPDATE users SET age = 1", &[]).await.unwrap(), 2);
    assert_eq!(
        org_b
            .execute("DELETE FROM documents WHERE org_id = 1", &[])
            .await
            .unwrap(),
        0
    );
    // An insert with A's id: the policy's WITH CHECK refuses it.
    let err = b
        .execute(
            "INSERT INTO users (tenant_id, email, name, age) VALUES ($1, 'x@y', 'x', 1)",
            &[&f.a],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // An upsert onto A's document: refused, A's row unchanged.
    let err = org_b
        .execute(
            "INSERT INTO documents (id, org_id, title, pages) VALUES (11, 2, 'mine', 1) \
             ON CONFLICT (id) DO UPDATE SET title = 'mine'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // `query_one` on nothing visible is NotFound.
    let err = b
        .query_one("SELECT 1 FROM users WHERE tenant_id = $1", &[&f.a])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    assert_eq!(f.users_of(f.a).await, a_users);
    assert_eq!(f.documents_of(1).await, a_docs);
    f.cleanup().await;
}

#[tokio::test]
async fn a_tenant_login_cannot_switch_tenants_with_settings_or_roles() {
    // One connection, so a session-level change would reach the next statement.
    let f = Fixture::new(PoolOptions::default().max_size(1), 8).await;
    let a_users = f.users_of(f.a).await;
    let b = f.logins.tenant(f.b).await.unwrap();
    let a_text = f.a.to_string();

    // The setting, session-wide, then a select on the same connection.
    b.query(
        "SELECT set_config('pebble.tenant_id', $1, false)",
        &[&a_text],
    )
    .await
    .unwrap();
    let users = b.select::<User>().all().await.unwrap();
    assert!(users.iter().all(|u| u.tenant_id == f.b));

    // Inside one transaction: set_config, SET, SET LOCAL, then raw SQL and builders.
    let tx = b.begin().await.unwrap();
    tx.query(
        "SELECT set_config('pebble.tenant_id', $1, true)",
        &[&a_text],
    )
    .await
    .unwrap();
    let rows = tx.query("SELECT tenant_id FROM users", &[]).await.unwrap();
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == f.b));
    assert_eq!(rows.len(), 2);
    tx.execute(&format!("SET pebble.tenant_id = '{a_text}'"), &[])
        .await
        .unwrap();
    let users = tx.select::<User>().all().await.unwrap();
    assert!(users.iter().all(|u| u.tenant_id == f.b));
    tx.execute(&format!("SET LOCAL pebble.tenant_id = '{a_text}'"), &[])
        .await
        .unwrap();
    assert_eq!(
        tx.execute("UPDATE users SET age = 7", &[]).await.unwrap(),
        2
    );
    let row = tx.query_one("SELECT pebble_tenant()", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), f.b.to_string());
    tx.commit().await.unwrap();

    // Roles: B's login is a member of the logins' group only.
    let a_role = f.logins.role_name(&f.a).unwrap();
    for attempt in [
        format!("SET ROLE \"{a_role}\""),
        format!("SET SESSION AUTHORIZATION \"{a_role}\""),
        format!("SET ROLE \"{}\"", f.app_role),
        "SET ROLE postgres".to_owned(),
    ] {
        let err = b.execute(&attempt, &[]).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{attempt}: {err}"
        );
    }
    // `SET ROLE` to the group it is a member of, and `RESET ROLE`: the
    // session user, and so the tenant, stays B's.
    // `pebble_<oid>_<tenant>`: the group is `pebble_logins_<oid>`.
    let database = a_role.split('_').nth(1).unwrap();
    let group = format!("pebble_logins_{database}");
    let tx = b.begin().await.unwrap();
    tx.execute(&format!("SET ROLE \"{group}\""), &[])
        .await
        .unwrap();
    let rows = tx.query("SELECT tenant_id FROM users", &[]).await.unwrap();
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == f.b));
    tx.execute("RESET ROLE", &[]).await.unwrap();
    let rows = tx.query("SELECT tenant_id FROM users", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == f.b));
    tx.rollback().await.unwrap();

    assert_eq!(f.users_of(f.a).await, a_users);
    f.cleanup().await;
}

#[tokio::test]
async fn the_shared_app_role_without_context_still_sees_nothing() {
    let f = Fixture::new(PoolOptions::default(), 8).await;
    let plain = f.app.db();
    assert_eq!(
        plain.cross_tenant().select::<User>().count().await.unwrap(),
        0
    );
    assert_eq!(
        plain
            .cross_tenant()
            .select::<Document>()
            .count()
            .await
            .unwrap(),
        0
    );
    // Setting mode works as before beside the logins.
    assert_eq!(f.app.tenant(f.a).select::<User>().count().await.unwrap(), 2);
    let rows = f
        .app
        .tenant(f.b)
        .query("SELECT tenant_id FROM users", &[])
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == f.b));
    f.cleanup().await;
}

#[tokio::test]
async fn every_tenant_key_type_is_confined_by_its_login() {
    let f = Fixture::new(PoolOptions::default(), 16).await;
    // integer (memberships.org) and text (notes.team), beside uuid and bigint above.
    for org in [7_i32, 8] {
        f.owner.create_tenant_login(&org, &secret()).await.unwrap();
        f.logins
            .tenant(org)
            .await
            .unwrap()
            .insert(Membership {
                org: 0,
                user_name: format!("member of {org}"),
                role: "admin".into(),
            })
            .exec()
            .await
            .unwrap();
    }
    let teams = ["blue team".to_owned(), "O'Brien \\ co".to_owned()];
    for team in &teams {
        f.owner.create_tenant_login(team, &secret()).await.unwrap();
        f.logins
            .tenant(team.clone())
            .await
            .unwrap()
            .insert(Note {
                id: 0,
                team: String::new(),
                body: format!("note of {team}"),
            })
            .exec()
            .await
            .unwrap();
    }
    let eight = f.logins.tenant(8_i32).await.unwrap();
    let members = eight.select::<Membership>().all().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].org, 8);
    let rows = eight
        .query("SELECT org FROM memberships", &[])
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        [8]
    );
    assert_eq!(
        eight
            .execute("DELETE FROM memberships WHERE org = 7", &[])
            .await
            .unwrap(),
        0
    );
    let obrien = f.logins.tenant(teams[1].clone()).await.unwrap();
    let notes = obrien.select::<Note>().all().await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].team, teams[1]);
    let rows = obrien.query("SELECT team FROM notes", &[]).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>(),
        [teams[1].clone()]
    );
    assert_eq!(
        obrien
            .execute("UPDATE notes SET body = 'x' WHERE team = $1", &[&teams[0]])
            .await
            .unwrap(),
        0
    );
    // Nothing of the other changed.
    let all_notes = f.owner.cross_tenant().select::<Note>().all().await.unwrap();
    assert!(all_notes
        .iter()
        .all(|n| n.body == format!("note of {}", n.team)));
    for org in [7_i32, 8] {
        assert!(f.owner.drop_tenant_login(&org).await.unwrap());
    }
    for team in &teams {
        assert!(f.owner.drop_tenant_login(team).await.unwrap());
    }
    f.cleanup().await;
}

#[tokio::test]
async fn a_login_of_one_database_reads_nothing_in_another() {
    let x = Fixture::new(PoolOptions::default(), 8).await;
    let (y_db, y_owner) = setup().await;
    let y = Fixture::on(y_db, y_owner, PoolOptions::default(), 8).await;
    // The same tenant id in both databases, different login roles.
    let x_role = x.logins.role_name(&x.a).unwrap();
    assert_ne!(x_role, y.logins.role_name(&x.a).unwrap());
    y.owner.create_tenant_login(&x.a, &secret()).await.unwrap();
    y.logins
        .tenant(x.a)
        .await
        .unwrap()
        .insert(User::new("yann", 5))
        .exec()
        .await
        .unwrap();
    // X's login of tenant `a`, connected to Y: PostgreSQL lets it in (CONNECT
    // is PUBLIC by default), but Y's function does not take it for a
    // tenant, and Y granted it nothing.
    let mut config = y.test_db.config();
    config.user(&x_role);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    let tenant: Option<String> = client
        .query_one("SELECT pebble_tenant()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tenant, None);
    let err = client.query("SELECT * FROM users", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    // Even a setting it chooses gets it nothing.
    let err = client
        .batch_execute(&format!(
            "SET pebble.tenant_id = '{}'; SELECT * FROM users",
            x.a
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    drop(client);
    task.await.unwrap().unwrap();
    // Each database's login sees its own row only.
    let in_x = x.logins.tenant(x.a).await.unwrap();
    let names: Vec<String> = in_x
        .select::<User>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(!names.contains(&"yann".to_owned()));
    let in_y = y.logins.tenant(x.a).await.unwrap();
    let names: Vec<String> = in_y
        .select::<User>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["yann"]);
    y.owner.drop_tenant_login(&x.a).await.unwrap();
    x.cleanup().await;
    y.cleanup().await;
}

#[tokio::test]
async fn logins_are_idempotent_concurrent_and_refuse_what_they_must() {
    let f = Fixture::new(PoolOptions::default(), 8).await;
    // Eight concurrent creates of one login: one role, every call succeeds.
    let tenant = Uuid::new_v4();
    let creates: Vec<_> = (0..8)
        .map(|_| {
            let owner = f.owner.clone();
            tokio::spawn(async move { owner.create_tenant_login(&tenant, &secret()).await })
        })
        .collect();
    let mut names = HashSet::new();
    for create in creates {
        names.insert(create.await.unwrap().unwrap());
    }
    assert_eq!(names.len(), 1);
    assert_eq!(
        f.logins
            .tenant(tenant)
            .await
            .unwrap()
            .select::<User>()
            .count()
            .await
            .unwrap(),
        0
    );
    // Sixteen tasks asking for one cold tenant open one pool.
    f.logins.close();
    let opens: Vec<_> = (0..16)
        .map(|_| {
            let logins = f.logins.clone();
            let a = f.a;
            tokio::spawn(async move { logins.tenant(a).await.map(drop) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    assert_eq!(f.logins.open_pools(), 1);

    // The unset value, and a key too long for a role name.
    let err = f
        .owner
        .create_tenant_login(&Uuid::nil(), &secret())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err}");
    let long = "x".repeat(60);
    let err = f
        .owner
        .create_tenant_login(&long, &secret())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantLoginNameTooLong { .. }), "{err}");
    let err = f.logins.tenant(long).await.unwrap_err();
    assert!(matches!(err, Error::TenantLoginNameTooLong { .. }), "{err}");
    // A login never created, and one dropped: refused with the role named.
    let err = f.logins.tenant(Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(err, Error::TenantLoginRefused { .. }), "{err}");
    assert!(f.owner.drop_tenant_login(&tenant).await.unwrap());
    assert!(!f.owner.drop_tenant_login(&tenant).await.unwrap());
    f.logins.close_tenant(&tenant).unwrap();
    let err = f.logins.tenant(tenant).await.unwrap_err();
    assert!(
        matches!(&err, Error::TenantLoginRefused { role, .. } if *role == f.logins.role_name(&tenant).unwrap()),
        "{err}"
    );
    // A role of a login's name that pebble did not create is not adopted.
    let squatter = Uuid::new_v4();
    let name = f.logins.role_name(&squatter).unwrap();
    f.owner
        .batch_execute(&format!("CREATE ROLE \"{name}\" LOGIN"))
        .await
        .unwrap();
    let err = f
        .owner
        .create_tenant_login(&squatter, &secret())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RoleNotProvisionedByPebble { .. }),
        "{err}"
    );
    let err = f.owner.drop_tenant_login(&squatter).await.unwrap_err();
    assert!(
        matches!(err, Error::RoleNotProvisionedByPebble { .. }),
        "{err}"
    );
    f.owner
        .batch_execute(&format!("DROP ROLE \"{name}\""))
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_over_eight_tenants_and_four_pools_see_no_other_tenant() {
    const TASKS: usize = 32;
    let options = PoolOptions::default()
        .max_size(2)
        .wait_timeout(Some(Duration::from_secs(60)));
    let f = Fixture::new(options, 4).await;
    let tenants: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for tenant in &tenants {
        f.owner
            .create_tenant_login(tenant, &secret())
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let logins = f.logins.clone();
            let tenants = tenants.clone();
            tokio::spawn(async move {
                let (mut foreign, mut most_open) = (0, 0);
                for n in 0..12 {
                    let tenant = tenants[(i + n) % tenants.len()];
                    let handle = logins.tenant(tenant).await.unwrap();
                    most_open = most_open.max(logins.open_pools());
                    match n % 3 {
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
                        _ => {
                            let rows = handle
                                .query("SELECT tenant_id FROM users", &[])
                                .await
                                .unwrap();
                            foreign += rows
                                .iter()
                                .filter(|r| r.get::<_, Uuid>(0) != tenant)
                                .count();
                        }
                    }
                }
                (foreign, most_open)
            })
        })
        .collect();
    for task in tasks {
        let (foreign, most_open) = task.await.unwrap();
        assert_eq!(foreign, 0);
        assert!(most_open <= 4, "{most_open} pools open");
    }
    // Every row landed in its tenant.
    let users = f.owner.cross_tenant().select::<User>().all().await.unwrap();
    for tenant in &tenants {
        let mine = users.iter().filter(|u| u.tenant_id == *tenant).count();
        assert_eq!(mine, TASKS * 4 / tenants.len());
    }
    assert!(f.logins.open_pools() <= 4);
    f.logins.close();
    assert_eq!(f.logins.open_pools(), 0);
    for tenant in &tenants {
        f.owner.drop_tenant_login(tenant).await.unwrap();
    }
    f.cleanup().await;
}

#[tokio::test]
async fn the_audit_is_clean_and_reports_logins_that_escape() {
    let f = Fixture::new(PoolOptions::default(), 8).await;
    let report = f.app.audit(&all_tables()).await.unwrap();
    assert!(report.tenant_logins.is_empty(), "{report}");
    report.check().unwrap();
    let b_role = f.logins.role_name(&f.b).unwrap();
    f.owner
        .batch_execute(&format!(
            "ALTER ROLE \"{b_role}\" BYPASSRLS; ALTER TABLE notes OWNER TO \"{b_role}\""
        ))
        .await
        .unwrap();
    let report = f.app.audit(&all_tables()).await.unwrap();
    assert_eq!(report.tenant_logins.len(), 1, "{report}");
    let login = &report.tenant_logins[0];
    assert_eq!(login.role, b_role);
    assert!(login.bypass_rls);
    assert_eq!(login.owns, ["notes"]);
    let err = report.check().unwrap_err();
    assert!(err.to_string().contains(&b_role), "{err}");
    f.owner
        .batch_execute(&format!(
            "ALTER TABLE notes OWNER TO postgres; ALTER ROLE \"{b_role}\" SUPERUSER"
        ))
        .await
        .unwrap();
    let report = f.app.audit(&all_tables()).await.unwrap();
    assert!(report.tenant_logins[0].superuser, "{report}");
    assert!(report.check().is_err());
    // Creating the login again takes the attributes back.
    f.owner.create_tenant_login(&f.b, &secret()).await.unwrap();
    f.app.audit(&all_tables()).await.unwrap().check().unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn an_installation_of_an_older_pebble_upgrades_on_the_next_install() {
    let (test_db, owner) = setup().await;
    owner.create_table::<Note>().await.unwrap();
    owner.install_rls_tables(&all_tables()).await.unwrap();
    // The function as pebble installed it before tenant logins.
    owner
        .batch_execute(
            "CREATE OR REPLACE FUNCTION pebble_tenant() RETURNS text LANGUAGE sql STABLE \
             PARALLEL SAFE AS 'SELECT NULLIF(pg_catalog.current_setting(''pebble.tenant_id'', true), '''')'",
        )
        .await
        .unwrap();
    owner.grant_tenant_logins(&all_tables()).await.unwrap();
    let tenant = Uuid::new_v4();
    owner.create_tenant_login(&tenant, &secret()).await.unwrap();
    let logins = TenantLogins::connect(test_db.config(), secret(), PoolOptions::default(), 2)
        .await
        .unwrap();
    // Under the old function a login has no tenant: fail-closed.
    let handle = logins.tenant(tenant).await.unwrap();
    let err = handle
        .insert(User::new("early", 1))
        .exec()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    owner.install_rls_tables(&all_tables()).await.unwrap();
    handle.insert(User::new("late", 1)).exec().await.unwrap();
    assert_eq!(handle.select::<User>().count().await.unwrap(), 1);
    // The function is still inlined: a plain SQL function, no SECURITY DEFINER.
    let row = handle
        .query_one(
            "SELECT prosecdef, provolatile::text, prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql') \
             FROM pg_proc WHERE proname = 'pebble_tenant'",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "s");
    assert!(row.get::<_, bool>(2));
    logins.close();
    owner.drop_tenant_login(&tenant).await.unwrap();
    drop(test_db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_in_transaction_mode_with_unnamed_statements() {
    const TASKS: usize = 32;
    let (test_db, owner) = setup().await;
    let bouncer: PgBouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(2))
        .expect("a PgBouncer in front of the test server (apt-get install pgbouncer)");
    owner.create_table::<Note>().await.unwrap();
    owner.install_rls_tables(&all_tables()).await.unwrap();
    owner.grant_tenant_logins(&all_tables()).await.unwrap();
    let tenants: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for tenant in &tenants {
        owner.create_tenant_login(tenant, &secret()).await.unwrap();
    }
    let options = PoolOptions::default()
        .max_size(8)
        .wait_timeout(Some(Duration::from_secs(60)))
        .statement_mode(StatementMode::Unnamed);
    let logins = TenantLogins::connect(bouncer.config_for(test_db.name()), secret(), options, 4)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let logins = logins.clone();
            let tenants = tenants.clone();
            tokio::spawn(async move {
                let mut foreign = 0_usize;
                for n in 0..12 {
                    let tenant = tenants[(i + n) % tenants.len()];
                    let other = tenants[(i + n + 1) % tenants.len()];
                    let handle = logins.tenant(tenant).await.unwrap();
                    match n % 4 {
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
                            // Raw SQL naming another tenant, and setting it.
                            let tx = handle.begin().await.unwrap();
                            tx.query(
                                "SELECT set_config('pebble.tenant_id', $1, false)",
                                &[&other.to_string()],
                            )
                            .await
                            .unwrap();
                            let rows = tx
                                .query(
                                    "SELECT tenant_id FROM users WHERE tenant_id = $1",
                                    &[&other],
                                )
                                .await
                                .unwrap();
                            foreign += rows.len();
                            tx.commit().await.unwrap();
                        }
                        _ => {
                            foreign += handle
                                .execute(
                                    "UPDATE users SET name = 'owned' WHERE tenant_id = $1",
                                    &[&other],
                                )
                                .await
                                .unwrap() as usize;
                        }
                    }
                }
                foreign
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
    let users = owner.cross_tenant().select::<User>().all().await.unwrap();
    assert!(users.iter().all(|u| u.name != "owned"));
    assert_eq!(users.len(), TASKS * 3);
    logins.close();
    for tenant in &tenants {
        owner.drop_tenant_login(tenant).await.unwrap();
    }
    drop(bouncer);
    drop(test_db);
}

#[tokio::test]
async fn an_owner_with_createrole_but_no_superuser_manages_logins() {
    let test_db = pebble_testkit::database().await.unwrap();
    let admin = Db::connect(test_db.config()).await.unwrap();
    let deployer = format!("deployer_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {deployer} LOGIN CREATEROLE; GRANT CREATE ON SCHEMA public TO {deployer}"
        ))
        .await
        .unwrap();
    let mut config = test_db.config();
    config.user(&deployer);
    let owner = Db::connect(config).await.unwrap();
    owner.create_table::<Note>().await.unwrap();
    let tables = [RlsTable::of::<Note>()];
    owner.install_rls_tables(&tables).await.unwrap();
    owner.grant_tenant_logins(&tables).await.unwrap();
    let (blue, red) = ("blue".to_owned(), "red".to_owned());
    for team in [&blue, &red, &blue] {
        owner.create_tenant_login(team, &secret()).await.unwrap();
    }
    let logins = TenantLogins::connect(test_db.config(), secret(), PoolOptions::default(), 2)
        .await
        .unwrap();
    for team in [&blue, &red] {
        logins
            .tenant(team.clone())
            .await
            .unwrap()
            .insert(Note {
                id: 0,
                team: String::new(),
                body: format!("{team}'s"),
            })
            .exec()
            .await
            .unwrap();
    }
    let rows = logins
        .tenant(blue.clone())
        .await
        .unwrap()
        .query("SELECT body FROM notes", &[])
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>(),
        ["blue's"]
    );
    logins.close();
    for team in [&blue, &red] {
        assert!(owner.drop_tenant_login(team).await.unwrap());
    }
    owner.close();
    admin.drop_all_tenant_logins().await.unwrap();
    admin
        .batch_execute(&format!("DROP OWNED BY {deployer}; DROP ROLE {deployer}"))
        .await
        .unwrap();
}
