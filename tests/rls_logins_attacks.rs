//! Attacks on tenant logins found in review: each one makes tenant B's
//! login (or someone acting for it) reach tenant A's rows, and checks that
//! the audit reports the hole, so a deployment that runs
//! `audit_rls(..).check()` fails instead of leaking.

mod common;

use common::rls::tables;
use common::{setup, User};
use pebble::{Db, Error, LoginSecret, PoolOptions, RlsDb, StatementMode, TenantLogins};
use pebble_testkit::{PgBouncerOptions, TestDatabase};
use uuid::Uuid;

fn secret() -> LoginSecret {
    LoginSecret::new("a test secret of enough bytes").unwrap()
}

struct Fixture {
    test_db: TestDatabase,
    owner: Db,
    app: RlsDb,
    app_role: String,
    logins: TenantLogins,
    a: Uuid,
    b: Uuid,
}

impl Fixture {
    async fn new() -> Fixture {
        let (test_db, owner) = setup().await;
        owner.install_rls_tables(&tables()).await.unwrap();
        owner.grant_tenant_logins(&tables()).await.unwrap();
        let app_role = format!("app_{}", Uuid::new_v4().simple());
        let password = owner.create_app_role(&app_role, &tables()).await.unwrap();
        let mut config = test_db.config();
        config.user(&app_role).password(&password);
        let app = RlsDb::connect(config.clone()).await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for tenant in [a, b] {
            owner.create_tenant_login(&tenant, &secret()).await.unwrap();
        }
        let logins = TenantLogins::connect(config, secret(), PoolOptions::default().max_size(1), 8)
            .await
            .unwrap();
        for tenant in [a, b] {
            logins
                .tenant(tenant)
                .await
                .unwrap()
                .insert_many([User::new("ann", 31), User::new("bob", 42)])
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

    /// The tenants whose users `role` (logged in with `password`) sees.
    async fn tenants_seen_as(&self, role: &str, password: &str) -> Vec<Uuid> {
        let mut config = self.test_db.config();
        config.user(role).password(password);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let connection = tokio::spawn(connection);
        let rows = client
            .query("SELECT DISTINCT tenant_id FROM users ORDER BY 1", &[])
            .await
            .unwrap();
        drop(client);
        connection.await.unwrap().unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn audit_gaps(&self) -> String {
        let report = self.app.audit(&tables()).await.unwrap();
        match report.check() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    async fn cleanup(self) {
        self.logins.close();
        self.app.db().close();
        self.owner.drop_all_tenant_logins().await.unwrap();
        let role = &self.app_role;
        self.owner
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap();
        drop(self.test_db);
    }
}

/// A tenant login given CREATEROLE (directly, or through a role it can
/// `SET ROLE` to) resets another tenant's password and logs in as it.
#[tokio::test]
async fn a_tenant_login_with_createrole_takes_over_another_tenant() {
    let f = Fixture::new().await;
    assert_eq!(f.audit_gaps().await, "");
    let a_role = f.logins.role_name(&f.a).unwrap();
    let b_role = f.logins.role_name(&f.b).unwrap();
    f.owner
        .batch_execute(&format!("ALTER ROLE \"{b_role}\" CREATEROLE"))
        .await
        .unwrap();
    // As B's login: A's password, then A's rows.
    let b = f.logins.tenant(f.b).await.unwrap();
    b.execute(
        &format!("ALTER ROLE \"{a_role}\" PASSWORD 'chosen by b'"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(f.tenants_seen_as(&a_role, "chosen by b").await, [f.a]);
    let gaps = f.audit_gaps().await;
    assert!(
        gaps.contains(&b_role) && gaps.contains("CREATEROLE"),
        "{gaps:?}"
    );
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(report.tenant_logins[0].create_role, "{report}");

    // Creating the logins again takes the attribute and the password back.
    for tenant in [f.a, f.b] {
        f.owner
            .create_tenant_login(&tenant, &secret())
            .await
            .unwrap();
    }
    assert_eq!(f.audit_gaps().await, "");

    // The same through a role it may SET ROLE to.
    let admin = format!("admin_{}", Uuid::new_v4().simple());
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE {admin} NOLOGIN CREATEROLE; GRANT {admin} TO \"{b_role}\""
        ))
        .await
        .unwrap();
    let gaps = f.audit_gaps().await;
    assert!(gaps.contains(&b_role) && gaps.contains(&admin), "{gaps:?}");
    f.owner
        .batch_execute(&format!("DROP ROLE {admin}"))
        .await
        .unwrap();
    assert_eq!(f.audit_gaps().await, "");
    f.cleanup().await;
}

/// `pebble_tenant()` treats every session user under the database's prefix
/// as that tenant, whoever made the role: one made outside pebble (with a
/// password its maker knows) reads that tenant's rows.
#[tokio::test]
async fn a_role_under_the_login_prefix_not_made_by_pebble_is_a_gap() {
    let f = Fixture::new().await;
    let a_role = f.logins.role_name(&f.a).unwrap();
    let database = a_role.split('_').nth(1).unwrap().to_owned();
    // A tenant with rows but no login yet, and a role someone else made for it.
    let c = Uuid::new_v4();
    f.owner
        .cross_tenant()
        .insert(User {
            tenant_id: c,
            ..User::new("cy", 50)
        })
        .exec()
        .await
        .unwrap();
    let c_role = format!("pebble_{database}_{c}");
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE \"{c_role}\" LOGIN PASSWORD 'not pebble''s' \
             IN ROLE \"pebble_logins_{database}\""
        ))
        .await
        .unwrap();
    assert_eq!(f.tenants_seen_as(&c_role, "not pebble's").await, [c]);
    let gaps = f.audit_gaps().await;
    assert!(
        gaps.contains(&c_role) && gaps.contains("not created by pebble"),
        "{gaps:?}"
    );
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(report.tenant_logins[0].foreign, "{report}");
    f.owner
        .batch_execute(&format!("DROP ROLE \"{c_role}\""))
        .await
        .unwrap();
    assert_eq!(f.audit_gaps().await, "");
    f.cleanup().await;
}

/// The policy calls `pebble_tenant()` by oid, so a function of that name
/// in another schema changes nothing; but a body replaced in place (by its
/// owner, or a migration gone wrong) confines every login to the tenant it
/// names. The policy's text and digest are unchanged: only the function's
/// body tells.
#[tokio::test]
async fn a_replaced_pebble_tenant_body_is_a_gap_and_install_repairs_it() {
    let f = Fixture::new().await;
    let b = f.logins.tenant(f.b).await.unwrap();
    // Shadowing in a schema earlier on the search path: no effect.
    f.owner
        .batch_execute(&format!(
            "CREATE SCHEMA shadow; \
             CREATE FUNCTION shadow.pebble_tenant() RETURNS text LANGUAGE sql \
             AS $$ SELECT '{}' $$; \
             GRANT USAGE ON SCHEMA shadow TO PUBLIC",
            f.a
        ))
        .await
        .unwrap();
    // In a transaction, so the path holds for the statements after it;
    // pg_catalog named after the shadow, so even it is searched later.
    let tx = b.begin().await.unwrap();
    tx.execute("SET LOCAL search_path = shadow, pg_catalog, public", &[])
        .await
        .unwrap();
    let row = tx.query_one("SELECT pebble_tenant()", &[]).await.unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        f.a.to_string(),
        "the shadow is called"
    );
    let seen = tx.select::<User>().all().await.unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|u| u.tenant_id == f.b));
    let rows = tx
        .query("SELECT DISTINCT tenant_id FROM public.users", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Uuid>(0), f.b);
    tx.rollback().await.unwrap();
    assert_eq!(f.audit_gaps().await, "");

    // Replaced in place: B's login now reads A.
    f.owner
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION public.pebble_tenant() RETURNS text LANGUAGE sql STABLE \
             AS $$ SELECT '{}'::text $$",
            f.a
        ))
        .await
        .unwrap();
    let seen = b.select::<User>().all().await.unwrap();
    assert!(seen.iter().all(|u| u.tenant_id == f.a), "the attack works");
    let gaps = f.audit_gaps().await;
    assert!(gaps.contains("pebble_tenant()"), "{gaps:?}");
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(!report.tables[0].function_as_expected, "{report}");

    // The next install puts the body back.
    f.owner.install_rls_tables(&tables()).await.unwrap();
    assert_eq!(f.audit_gaps().await, "");
    let seen = b.select::<User>().all().await.unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|u| u.tenant_id == f.b));
    f.owner
        .batch_execute("DROP SCHEMA shadow CASCADE")
        .await
        .unwrap();
    f.cleanup().await;
}

/// The logins' group holds the grants and is not under the login prefix,
/// so `pebble_tenant()` reads the setting for it: given LOGIN (or granted
/// to another login role), it picks any tenant with `set_config`.
#[tokio::test]
async fn a_login_holding_the_groups_grants_outside_the_prefix_is_a_gap() {
    let f = Fixture::new().await;
    let a_role = f.logins.role_name(&f.a).unwrap();
    let database = a_role.split('_').nth(1).unwrap().to_owned();
    let group = format!("pebble_logins_{database}");
    let seen_with_setting = |role: String, password: &'static str| {
        let mut config = f.test_db.config();
        config.user(&role).password(password);
        let a = f.a.to_string();
        async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            let connection = tokio::spawn(connection);
            client
                .query("SELECT set_config('pebble.tenant_id', $1, false)", &[&a])
                .await
                .unwrap();
            let rows = client
                .query("SELECT DISTINCT tenant_id FROM users", &[])
                .await
                .unwrap();
            drop(client);
            connection.await.unwrap().unwrap();
            rows.iter().map(|r| r.get(0)).collect::<Vec<Uuid>>()
        }
    };

    // The group itself, given LOGIN.
    f.owner
        .batch_execute(&format!("ALTER ROLE \"{group}\" LOGIN PASSWORD 'group pw'"))
        .await
        .unwrap();
    assert_eq!(seen_with_setting(group.clone(), "group pw").await, [f.a]);
    let gaps = f.audit_gaps().await;
    assert!(
        gaps.contains(&group) && gaps.contains("setting"),
        "{gaps:?}"
    );
    let report = f.app.audit(&tables()).await.unwrap();
    assert!(report.tenant_logins[0].unconfined, "{report}");
    // Granting the logins again takes LOGIN back.
    f.owner.grant_tenant_logins(&tables()).await.unwrap();
    assert_eq!(f.audit_gaps().await, "");

    // Another login role made a member of the group.
    let helper = format!("helper_{}", Uuid::new_v4().simple());
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE {helper} LOGIN PASSWORD 'helper pw' IN ROLE \"{group}\""
        ))
        .await
        .unwrap();
    assert_eq!(seen_with_setting(helper.clone(), "helper pw").await, [f.a]);
    let gaps = f.audit_gaps().await;
    assert!(gaps.contains(&helper), "{gaps:?}");
    f.owner
        .batch_execute(&format!("DROP ROLE {helper}"))
        .await
        .unwrap();
    assert_eq!(f.audit_gaps().await, "");
    f.cleanup().await;
}

/// An operator may make one tenant login a member of another's; `SET ROLE`
/// to it changes `current_user`, not `session_user`, so the tenant stays.
#[tokio::test]
async fn a_login_made_a_member_of_another_tenants_login_stays_its_tenant() {
    let f = Fixture::new().await;
    let a_role = f.logins.role_name(&f.a).unwrap();
    let b_role = f.logins.role_name(&f.b).unwrap();
    f.owner
        .batch_execute(&format!("GRANT \"{a_role}\" TO \"{b_role}\""))
        .await
        .unwrap();
    let b = f.logins.tenant(f.b).await.unwrap();
    let tx = b.begin().await.unwrap();
    tx.execute(&format!("SET LOCAL ROLE \"{a_role}\""), &[])
        .await
        .unwrap();
    let rows = tx
        .query("SELECT current_user::text, pebble_tenant()", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), a_role);
    assert_eq!(rows[0].get::<_, String>(1), f.b.to_string());
    let seen = tx.select::<User>().all().await.unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|u| u.tenant_id == f.b));
    assert_eq!(
        tx.execute("UPDATE users SET age = 0", &[]).await.unwrap(),
        2,
        "only B's two users"
    );
    tx.rollback().await.unwrap();
    f.owner
        .batch_execute(&format!("REVOKE \"{a_role}\" FROM \"{b_role}\""))
        .await
        .unwrap();
    f.cleanup().await;
}

/// A login is made for a key's text, and the policy casts that text to
/// the column's type, so a login created for another spelling of a
/// tenant's key (the upper-case text of A's uuid; `"042"`, `"+42"`, `" 42"`
/// for integer keys) would be confined to A: `create_tenant_login` refuses
/// such text, and creates nothing. Text that is no value of any tenant
/// column's type, or is written as PostgreSQL writes it, is accepted.
#[tokio::test]
async fn a_login_for_another_spelling_of_a_key_is_refused() {
    let f = Fixture::new().await;
    let upper = f.a.to_string().to_uppercase();
    for alias in [
        upper.clone(),
        format!("{{{}}}", f.a),
        f.a.simple().to_string(),
    ] {
        let err = f
            .owner
            .create_tenant_login(&alias, &secret())
            .await
            .unwrap_err();
        match err {
            Error::TenantLoginKeyNotCanonical { id, sql_type } => {
                assert_eq!(id, alias);
                assert_eq!(sql_type, "uuid");
            }
            e => panic!("{alias}: {e}"),
        }
        let err = f.logins.tenant(alias.clone()).await.unwrap_err();
        assert!(matches!(err, Error::TenantLoginRefused { .. }), "{err}");
    }
    // documents.org_id is bigint (and other tables' tenant columns integer).
    for alias in ["042", "+42", " 42", "42 "] {
        let err = f
            .owner
            .create_tenant_login(&alias.to_owned(), &secret())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::TenantLoginKeyNotCanonical { sql_type, .. } if sql_type == "bigint" || sql_type == "integer"),
            "{alias:?}: {err}"
        );
    }
    for fine in ["42", "acme", "A-team"] {
        f.owner
            .create_tenant_login(&fine.to_owned(), &secret())
            .await
            .unwrap();
    }
    f.owner
        .create_tenant_login(&42_i64, &secret())
        .await
        .unwrap();
    assert_eq!(f.audit_gaps().await, "");

    // A login renamed to an alias (or made before the check) is an audit gap.
    let forty_two = f.logins.role_name(&42_i64).unwrap();
    let a_role = f.logins.role_name(&f.a).unwrap();
    let upper_a = format!(
        "{}{}",
        &a_role[..a_role.len() - 36],
        f.a.to_string().to_uppercase()
    );
    for (original, alias, sql_type) in [
        (&forty_two, forty_two.replace("_42", "_042"), "bigint"),
        (&a_role, upper_a, "uuid"),
    ] {
        f.owner
            .batch_execute(&format!("ALTER ROLE \"{original}\" RENAME TO \"{alias}\""))
            .await
            .unwrap();
        let report = f.app.audit(&tables()).await.unwrap();
        let login = report
            .tenant_logins
            .iter()
            .find(|l| l.role == alias)
            .unwrap_or_else(|| panic!("{alias} not reported: {report}"));
        assert!(login.aliases.iter().any(|t| t == sql_type), "{report}");
        assert!(f.audit_gaps().await.contains(alias.as_str()));
        f.owner
            .batch_execute(&format!("ALTER ROLE \"{alias}\" RENAME TO \"{original}\""))
            .await
            .unwrap();
    }
    assert_eq!(f.audit_gaps().await, "");
    f.cleanup().await;
}

/// A pooler that logs every client in to the server as one user (here
/// PgBouncer with `user=` on its databases entry, as the application role)
/// makes the session user someone else than the tenant login: its sessions
/// pick their tenant with a setting (or, as a superuser, read every
/// tenant). The pool must not open.
#[tokio::test]
async fn a_pooler_that_logs_in_as_another_user_is_refused() {
    let f = Fixture::new().await;
    let password = format!("pw{}", Uuid::new_v4().simple());
    f.owner
        .batch_execute(&format!("ALTER ROLE {} PASSWORD '{password}'", f.app_role))
        .await
        .unwrap();
    let bouncer = f
        .test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().forced_user(&f.app_role, &password))
        .expect("a PgBouncer in front of the test server (apt-get install pgbouncer)");
    let options = PoolOptions::default().statement_mode(StatementMode::Unnamed);
    let logins = TenantLogins::connect(bouncer.config_for(f.test_db.name()), secret(), options, 4)
        .await
        .unwrap();
    let b_role = f.logins.role_name(&f.b).unwrap();
    match logins.tenant(f.b).await {
        Err(Error::TenantLoginNotInEffect { role, session_user }) => {
            assert_eq!(role, b_role);
            assert_ne!(session_user, b_role);
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(b) => {
            let tx = b.begin().await.unwrap();
            tx.query(
                "SELECT set_config('pebble.tenant_id', $1, true)",
                &[&f.a.to_string()],
            )
            .await
            .unwrap();
            let rows = tx
                .query("SELECT DISTINCT tenant_id FROM users", &[])
                .await
                .unwrap();
            let seen: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
            panic!(
                "B's pool opened as another user and sees tenants {seen:?} (A is {})",
                f.a
            );
        }
    }
    assert_eq!(logins.open_pools(), 0);
    logins.close();
    drop(bouncer);
    f.cleanup().await;
}

/// A base configuration without a database name connects to the database
/// named after its user (libpq's default); tenant logins must go to that
/// same database, not to one named after each login role.
#[tokio::test]
async fn a_base_configuration_without_a_database_name_is_followed() {
    let f = Fixture::new().await;
    // A role named like the test database, so its default database is it.
    let named = f.test_db.name().to_owned();
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE \"{named}\" LOGIN PASSWORD 'named pw'"
        ))
        .await
        .unwrap();
    let source = f.test_db.config();
    let mut base = tokio_postgres::Config::new();
    for host in source.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(name) => base.host(name),
            tokio_postgres::config::Host::Unix(path) => base.host_path(path),
        };
    }
    for port in source.get_ports() {
        base.port(*port);
    }
    base.user(&named).password("named pw");
    let logins = TenantLogins::connect(base, secret(), PoolOptions::default(), 4)
        .await
        .unwrap();
    let b = logins.tenant(f.b).await.unwrap();
    let seen = b.select::<User>().all().await.unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|u| u.tenant_id == f.b));
    logins.close();
    f.owner
        .batch_execute(&format!("DROP ROLE \"{named}\""))
        .await
        .unwrap();
    f.cleanup().await;
}

/// Text keys are embedded in `DO $pebble$ ... $pebble$` blocks of the
/// owner's DDL; a key containing the tag closed the block early, so the
/// owner's statement failed with a syntax error (and the rest of the text
/// was parsed as the owner's SQL). Such a key is a role name like any
/// other: its login is created, works, is confined, and is dropped.
#[tokio::test]
async fn a_key_containing_the_dollar_quote_tag_is_just_text() {
    let f = Fixture::new().await;
    let key = "$pebble$;CREATE ROLE pwned SUPERUSER;--".to_owned();
    let role = f.owner.create_tenant_login(&key, &secret()).await.unwrap();
    assert!(role.ends_with(&key));
    let handle = f.logins.tenant(key.clone()).await.unwrap();
    let row = handle
        .query_one("SELECT pebble_tenant()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), key);
    // users is keyed by uuid: the policy's cast of this tenant fails, closed.
    let err = handle
        .query("SELECT count(*) FROM users", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&pebble::SqlState::INVALID_TEXT_REPRESENTATION)
    );
    let (client, connection) = f
        .test_db
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let pwned = client
        .query("SELECT 1 FROM pg_roles WHERE rolname = 'pwned'", &[])
        .await
        .unwrap();
    drop(client);
    connection.await.unwrap().unwrap();
    assert!(pwned.is_empty());
    f.logins.close_tenant(&key).unwrap();
    assert!(f.owner.drop_tenant_login(&key).await.unwrap());
    f.cleanup().await;
}
