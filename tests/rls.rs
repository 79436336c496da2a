//! Row-level security: the database confines tenant statements too. Every
//! test connects the application as a role created by `create_app_role`
//! (NOSUPERUSER, NOBYPASSRLS, not the owner), and checks what tenant B,
//! no tenant at all, and the owner can see and change of tenant A.

mod common;

use std::time::Duration;

use common::rls::{tables, Fixture, TenantSetting};
use common::{Document, Membership, User};
use pebble::{Db, Error, Model, PoolOptions, RlsTable, Severity, SqlState};
use uuid::Uuid;

#[tokio::test]
async fn without_a_tenant_every_table_is_empty_and_refuses_writes() {
    let f = Fixture::new().await;
    let plain = f.app.db();
    // The explicit unscoped door, as the app role: the database still confines it.
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
    let err = plain
        .cross_tenant()
        .insert(User {
            tenant_id: f.a,
            ..User::new("intruder", 1)
        })
        .exec()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    assert_eq!(
        plain
            .cross_tenant()
            .update::<User>()
            .set(User::AGE, 0)
            .exec()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        plain.cross_tenant().delete::<User>().exec().await.unwrap(),
        0
    );
    // Raw text as the app role, outside pebble's tenant handles.
    let err = plain
        .batch_execute(&format!(
            "INSERT INTO users (tenant_id, email, name, age) VALUES ('{}', 'x@y', 'x', 1)",
            f.a
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    plain
        .batch_execute("DELETE FROM users; UPDATE users SET age = 0")
        .await
        .unwrap();
    // A pebble tenant handle on the plain Db sets no tenant: nothing either.
    assert_eq!(plain.tenant(f.a).select::<User>().count().await.unwrap(), 0);
    assert_eq!(f.all_users().await.len(), 4, "nothing was changed");
    // TRUNCATE is not granted: it would empty every tenant.
    let err = plain.batch_execute("TRUNCATE users").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn builders_on_an_rls_handle_stay_in_their_tenant() {
    let f = Fixture::new().await;
    let before_a = f.users_of(f.a).await;
    let b = f.app.tenant(f.b);
    assert_eq!(b.select::<User>().count().await.unwrap(), 2);
    assert!(b
        .select::<User>()
        .all()
        .await
        .unwrap()
        .iter()
        .all(|u| u.tenant_id == f.b));
    assert_eq!(
        b.update::<User>().set(User::AGE, 99).exec().await.unwrap(),
        2
    );
    assert_eq!(
        b.delete::<User>()
            .filter(User::NAME.eq("bob"))
            .exec()
            .await
            .unwrap(),
        1
    );
    let stamped = b.insert(User::new("cy", 17)).returning().await.unwrap();
    assert_eq!(stamped.tenant_id, f.b);
    let err = b
        .insert(User {
            tenant_id: f.a,
            ..User::new("forged", 1)
        })
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert!(b
        .find::<User>(before_a[0].id)
        .optional()
        .await
        .unwrap()
        .is_none());
    assert_eq!(f.users_of(f.a).await, before_a, "nothing of A changed");

    // A transaction sets the tenant once, after BEGIN.
    let tx = b.begin().await.unwrap();
    tx.insert(User::new("dee", 20)).exec().await.unwrap();
    assert_eq!(tx.select::<User>().count().await.unwrap(), 3);
    let rows = tx.query("SELECT count(*) FROM users", &[]).await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        3,
        "raw SQL in the transaction sees only B"
    );
    tx.commit().await.unwrap();
    assert_eq!(f.users_of(f.b).await.len(), 3);
    assert_eq!(f.users_of(f.a).await, before_a);
    f.cleanup().await;
}

#[tokio::test]
async fn raw_sql_on_an_rls_handle_never_reaches_another_tenant() {
    let f = Fixture::new().await;
    let before_a = f.users_of(f.a).await;
    let b = f.app.tenant(f.b);

    // SELECT with no WHERE at all.
    let names: Vec<String> = b
        .query("SELECT name FROM users ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["ann", "bob"]);
    // Asking for A's rows by id, or by A's tenant id.
    let rows = b
        .query("SELECT * FROM users WHERE id = $1", &[&before_a[0].id])
        .await
        .unwrap();
    assert!(rows.is_empty());
    let rows = b
        .query("SELECT * FROM users WHERE tenant_id = $1", &[&f.a])
        .await
        .unwrap();
    assert!(rows.is_empty());
    // Decoded into models.
    let users: Vec<User> = b.query_as("SELECT * FROM users", &[]).await.unwrap();
    assert!(users.iter().all(|u| u.tenant_id == f.b) && users.len() == 2);
    // UPDATE and DELETE with no WHERE.
    assert_eq!(b.execute("UPDATE users SET age = 0", &[]).await.unwrap(), 2);
    assert_eq!(
        b.execute("DELETE FROM users WHERE name = 'bob'", &[])
            .await
            .unwrap(),
        1
    );
    // INSERT carrying A's tenant: refused by the policy's WITH CHECK.
    let err = b
        .execute(
            "INSERT INTO users (tenant_id, email, name, age) VALUES ($1, 'x@a', 'x', 1)",
            &[&f.a],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // UPDATE moving B's row to A: refused too.
    let err = b
        .execute("UPDATE users SET tenant_id = $1", &[&f.a])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // An upsert colliding with A's row by primary key: never A's row.
    let result = b
        .execute(
            "INSERT INTO users (id, tenant_id, email, name, age) VALUES ($1, $2, 'z@b', 'z', 1) \
             ON CONFLICT (id) DO UPDATE SET name = 'owned'",
            &[&before_a[0].id, &f.b],
        )
        .await;
    assert!(result.is_err(), "the conflicting row is A's: {result:?}");
    // A join written by hand, pairing users with documents across tenants.
    let pairs = b
        .query(
            "SELECT u.name, v.name FROM users u JOIN users v ON v.name <> u.name",
            &[],
        )
        .await
        .unwrap();
    assert!(pairs.is_empty(), "B has one user left, A's are invisible");
    assert_eq!(
        f.users_of(f.a).await,
        before_a,
        "nothing of A was seen or changed"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn every_tenant_key_type_and_renamed_columns_are_confined() {
    let f = Fixture::new().await;
    for org in [1_i64, 2] {
        f.app
            .tenant(org)
            .insert(Document::new(org * 10, "doc", 1))
            .exec()
            .await
            .unwrap();
        f.app
            .tenant(org as i32)
            .insert(Membership {
                org: 0,
                user_name: "ann".into(),
                role: "admin".into(),
            })
            .exec()
            .await
            .unwrap();
    }
    let docs: Vec<i64> = f
        .app
        .tenant(2_i64)
        .query("SELECT id FROM documents", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(docs, [20]);
    let members = f
        .app
        .tenant(2_i32)
        .query("SELECT org FROM memberships", &[])
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].get::<_, i32>(0), 2);
    // A text key: the policy compares the text exactly.
    let text = f.app.tenant("globex".to_owned());
    assert_eq!(
        text.execute("DELETE FROM sample", &[]).await.unwrap(),
        0,
        "no rows of another text tenant"
    );
    f.cleanup().await;
}

#[tokio::test]
async fn no_tenant_setting_survives_on_a_pooled_connection() {
    let options = PoolOptions::default()
        .max_size(2)
        .wait_timeout(Some(Duration::from_secs(60)));
    let f = Fixture::with_pool(options).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let app = f.app.clone();
            let tenant = if i % 2 == 0 { f.a } else { f.b };
            tokio::spawn(async move {
                let handle = app.tenant(tenant);
                for n in 0..125 {
                    match n % 3 {
                        0 => {
                            let users = handle.select::<User>().all().await.unwrap();
                            assert!(users.iter().all(|u| u.tenant_id == tenant));
                        }
                        1 => {
                            let rows = handle
                                .query("SELECT tenant_id FROM users", &[])
                                .await
                                .unwrap();
                            assert!(rows.iter().all(|r| r.get::<_, Uuid>(0) == tenant));
                        }
                        _ => {
                            // One row: concurrent updates of several rows
                            // could deadlock, which is not what this tests.
                            handle
                                .update::<User>()
                                .set(User::AGE, n)
                                .filter(User::NAME.eq("ann"))
                                .exec()
                                .await
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Both pooled connections at once (the pool holds two): each, asked in
    // a fresh transaction, carries no tenant.
    let plain = f.app.db();
    let (one, two) = (plain.begin().await.unwrap(), plain.begin().await.unwrap());
    for tx in [&one, &two] {
        let setting = tx.select::<TenantSetting>().one().await.unwrap();
        assert!(
            setting.value.as_deref().unwrap_or("").is_empty(),
            "a pooled connection carries {:?}",
            setting.value
        );
    }
    one.rollback().await.unwrap();
    two.rollback().await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn a_cancelled_statement_leaves_no_tenant_behind() {
    let options = PoolOptions::default()
        .max_size(1)
        .wait_timeout(Some(Duration::from_secs(60)));
    let f = Fixture::with_pool(options).await;
    let b = f.app.tenant(f.b);
    for _ in 0..5 {
        // Polled once (the pipelined BEGIN, set_config, statement and
        // COMMIT are sent), then dropped before any reply.
        let slow = b.query("SELECT pg_sleep(0.1), count(*) FROM users", &[]);
        tokio::pin!(slow);
        tokio::select! {
            biased;
            _ = &mut slow => panic!("cannot finish on its first poll"),
            () = std::future::ready(()) => {}
        }
    }
    let setting = f.app.select::<TenantSetting>().one().await.unwrap();
    assert!(
        setting.value.as_deref().unwrap_or("").is_empty(),
        "{:?}",
        setting.value
    );
    assert_eq!(
        f.app
            .db()
            .cross_tenant()
            .select::<User>()
            .count()
            .await
            .unwrap(),
        0,
        "the next statement without a tenant still sees nothing"
    );
    assert_eq!(b.select::<User>().count().await.unwrap(), 2);
    f.cleanup().await;
}

#[tokio::test]
async fn the_audit_passes_for_the_app_role_and_names_every_gap() {
    let f = Fixture::new().await;
    let report = f.app.audit(&tables()).await.unwrap();
    report.check().unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert!(!report.superuser && !report.bypass_rls);
    assert!(report
        .tables
        .iter()
        .all(|t| t.enabled && t.forced && t.policy_as_expected));
    // A global primary key tells a tenant that a value exists elsewhere.
    assert!(report
        .findings()
        .iter()
        .any(|f| f.severity == Severity::Warning && f.table.as_deref() == Some("users")));

    // The superuser the tests create tables with bypasses everything.
    let report = f.owner.audit_rls(&tables()).await.unwrap();
    assert!(report.superuser);
    assert!(matches!(report.check(), Err(Error::RlsAudit { .. })));

    // An owner that is not a superuser, on a table whose FORCE was removed:
    // it sees every tenant, and the audit says why.
    let owner_role = format!("owner_{}", Uuid::new_v4().simple());
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE {owner_role} LOGIN; ALTER TABLE users OWNER TO {owner_role}; \
             ALTER TABLE users NO FORCE ROW LEVEL SECURITY"
        ))
        .await
        .unwrap();
    let mut config = f.test_db.config();
    config.user(&owner_role);
    let table_owner = Db::connect(config).await.unwrap();
    assert_eq!(
        table_owner
            .cross_tenant()
            .select::<User>()
            .count()
            .await
            .unwrap(),
        4,
        "the owner bypasses row-level security without FORCE"
    );
    let report = table_owner
        .audit_rls(&[RlsTable::of::<User>()])
        .await
        .unwrap();
    let users = &report.tables[0];
    assert!(users.enabled && !users.forced && users.owned_by_role && users.can_truncate);
    let gaps: Vec<String> = report
        .findings()
        .into_iter()
        .filter(|f| f.severity == Severity::Gap)
        .map(|f| f.message)
        .collect();
    assert_eq!(gaps.len(), 3, "{gaps:#?}");
    assert!(gaps[0].contains("not FORCEd"));
    table_owner.close();
    // install_rls restores FORCE.
    f.owner.install_rls::<User>().await.unwrap();
    let report = f.owner.audit_rls(&[RlsTable::of::<User>()]).await.unwrap();
    assert!(report.tables[0].forced);
    f.owner
        .batch_execute(&format!(
            "ALTER TABLE users OWNER TO CURRENT_USER; DROP OWNED BY {owner_role}; DROP ROLE {owner_role}"
        ))
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn a_session_default_for_the_tenant_is_an_audit_gap() {
    let f = Fixture::new().await;
    // Tenant A's raw SQL cannot give the app role's sessions a default
    // tenant (PostgreSQL 15 lets only a superuser set a default for a
    // custom setting), but can set defaults of its own role otherwise.
    let a = f.app.tenant(f.a);
    let err = a
        .execute(
            &format!("ALTER ROLE CURRENT_USER SET pebble.tenant_id = '{}'", f.a),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    a.execute("ALTER ROLE CURRENT_USER SET statement_timeout = '60s'", &[])
        .await
        .unwrap();
    // A superuser's mistake, then: a default tenant for the app role.
    f.owner
        .batch_execute(&format!(
            "ALTER ROLE {} SET pebble.tenant_id = '{}'",
            f.role, f.a
        ))
        .await
        .unwrap();
    // What that does: a new session without tenant context is A, not
    // nobody (fail-open for the application's unscoped statements).
    let fresh = pebble::RlsDb::connect_with(f.app_config.clone(), PoolOptions::default())
        .await
        .unwrap();
    let unscoped = || fresh.db().cross_tenant().select::<User>().count();
    assert_eq!(unscoped().await.unwrap(), 2);
    fresh.db().close();

    let report = f.app.audit(&tables()).await.unwrap();
    assert!(
        report
            .session_defaults
            .contains(&format!("pebble.tenant_id={}", f.a)),
        "{report}"
    );
    let findings = report.findings();
    let gaps: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Gap)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(gaps.len(), 1, "{report}");
    assert!(gaps[0].contains("pebble.tenant_id"), "{report}");
    assert!(findings
        .iter()
        .any(|f| f.severity == Severity::Warning && f.message.contains("statement_timeout=60s")));
    assert!(matches!(report.check(), Err(Error::RlsAudit { .. })));

    // Reset by the owner: new sessions fail closed again, and the audit passes.
    f.owner
        .batch_execute(&format!("ALTER ROLE {} RESET ALL", f.role))
        .await
        .unwrap();
    let fresh = pebble::RlsDb::connect_with(f.app_config.clone(), PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(
        fresh
            .db()
            .cross_tenant()
            .select::<User>()
            .count()
            .await
            .unwrap(),
        0
    );
    fresh.db().close();
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(report.session_defaults.is_empty(), "{report}");
    report.check().unwrap_or_else(|e| panic!("{e}\n{report}"));
    f.cleanup().await;
}

#[tokio::test]
async fn installing_twice_changes_nothing_and_a_missing_policy_is_restored() {
    let f = Fixture::new().await;
    f.owner.install_rls_tables(&tables()).await.unwrap();
    f.owner
        .batch_execute("DROP POLICY pebble_tenant ON users")
        .await
        .unwrap();
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(!report.tables[0].policy_as_expected);
    // Without the restrictive policy the permissive base lets B see A.
    assert_eq!(
        f.app
            .tenant(f.b)
            .query("SELECT 1 FROM users", &[])
            .await
            .unwrap()
            .len(),
        4
    );
    f.owner.install_rls_tables(&tables()).await.unwrap();
    assert_eq!(
        f.app
            .tenant(f.b)
            .query("SELECT 1 FROM users", &[])
            .await
            .unwrap()
            .len(),
        2
    );
    f.app.audit(&tables()).await.unwrap().check().unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn the_audit_reports_tables_without_a_record_and_contradicting_ones() {
    #[derive(Model, Debug)]
    #[pebble(table = "notes")]
    struct Note {
        #[pebble(primary_key)]
        id: i64,
        #[tenant_id]
        org: i64,
    }
    /// A model naming another tenant column than `users` records.
    #[derive(Model, Debug)]
    #[pebble(table = "users")]
    struct UsersByEmail {
        #[pebble(primary_key)]
        id: Uuid,
        #[tenant_id]
        email: String,
    }
    let f = Fixture::new().await;
    // A table pebble did not create, whose comment is somebody else's.
    f.owner
        .batch_execute(
            "CREATE TABLE notes (id bigint PRIMARY KEY, org bigint NOT NULL); \
             COMMENT ON TABLE notes IS 'team notes'",
        )
        .await
        .unwrap();
    f.owner.install_rls::<Note>().await.unwrap();
    let report = f
        .owner
        .audit_rls(&[RlsTable::of::<Note>(), RlsTable::of::<UsersByEmail>()])
        .await
        .unwrap();
    assert_eq!(report.tables[0].recorded_tenant_column, None);
    assert!(report
        .findings()
        .iter()
        .any(|f| f.table.as_deref() == Some("notes")
            && f.severity == Severity::Warning
            && f.message.contains("no record")));
    assert_eq!(
        report.tables[1].recorded_tenant_column,
        Some(Some("tenant_id".to_owned()))
    );
    assert!(report
        .findings()
        .iter()
        .any(|f| f.table.as_deref() == Some("users")
            && f.severity == Severity::Gap
            && f.message.contains("`tenant_id`")));
    f.cleanup().await;
}

#[tokio::test]
async fn text_tenants_with_quotes_and_backslashes_are_exact() {
    #[derive(Model, Debug)]
    #[pebble(table = "team_notes")]
    struct TeamNote {
        #[pebble(primary_key, default)]
        id: i64,
        #[tenant_id]
        team: String,
        body: String,
    }
    let f = Fixture::new().await;
    f.owner.create_table::<TeamNote>().await.unwrap();
    f.owner.install_rls::<TeamNote>().await.unwrap();
    f.owner
        .grant_app_role(&f.role, &[RlsTable::of::<TeamNote>()])
        .await
        .unwrap();
    let tricky = [r"o'brien", r"o'brien\", r"a\'; SELECT 1; --", "plain"];
    for team in tricky {
        f.app
            .tenant(team.to_owned())
            .insert(TeamNote {
                id: 0,
                team: String::new(),
                body: format!("of {team}"),
            })
            .exec()
            .await
            .unwrap();
    }
    for team in tricky {
        let handle = f.app.tenant(team.to_owned());
        let notes = handle.select::<TeamNote>().all().await.unwrap();
        assert_eq!(notes.len(), 1, "{team}");
        assert_eq!(notes[0].team, team);
        let rows = handle
            .query("SELECT team FROM team_notes", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), team);
        let tx = handle.begin().await.unwrap();
        assert_eq!(
            tx.query("SELECT 1 FROM team_notes", &[])
                .await
                .unwrap()
                .len(),
            1
        );
        tx.rollback().await.unwrap();
    }
    f.cleanup().await;
}
