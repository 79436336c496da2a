//! An adversarial review's attacks, kept as tests: raw SQL that leaves a
//! tenant setting or a temporary table on a pooled connection, text that
//! ends a transaction (`COMMIT; BEGIN`), a NUL byte in a tenant key, a
//! neutered policy behind pebble's comment, a role that can `SET ROLE` to
//! a superuser, `install_rls` against a contradicting record, client-side
//! errors passed off as outages; and what held (escaping, cancellation,
//! session resets, concurrent installs, table records on every path).

mod common;

use std::time::Duration;

use common::rls::{tables, Fixture, TenantSetting};
use common::{setup, User};
use pebble::{Db, Error, Model, PoolOptions};
use uuid::Uuid;

#[derive(Model, Debug)]
#[pebble(table = "rv", shared)]
struct Rv {
    x: i32,
}

// 1. Raw SQL on an RlsDb tenant handle leaves a session-level setting on the pooled connection.
#[tokio::test]
async fn raw_rls_execute_leaves_session_tenant() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    f.app
        .tenant(f.a)
        .execute(
            "SELECT set_config('pebble.tenant_id', $1, false)",
            &[&f.b.to_string()],
        )
        .await
        .unwrap();
    let setting = f.app.select::<TenantSetting>().one().await.unwrap();
    let seen = f
        .app
        .db()
        .cross_tenant()
        .select::<User>()
        .count()
        .await
        .unwrap();
    println!(
        "after raw execute: setting={:?}, cross_tenant sees {seen}",
        setting.value
    );
    assert_eq!(
        setting.value.as_deref().unwrap_or(""),
        "",
        "session tenant survived"
    );
    assert_eq!(seen, 0, "a statement without tenant context sees rows");
    f.cleanup().await;
}

// 1b. Same through a transaction from begin(): raw query does not mark raw_used.
#[tokio::test]
async fn raw_rls_tx_query_leaves_session_tenant() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let tx = f.app.tenant(f.a).begin().await.unwrap();
    tx.query(
        "SET pebble.tenant_id = '00000000-0000-0000-0000-000000000001'",
        &[],
    )
    .await
    .unwrap();
    tx.query(
        "SELECT set_config('pebble.tenant_id', $1, false)",
        &[&f.b.to_string()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let setting = f.app.select::<TenantSetting>().one().await.unwrap();
    let seen = f
        .app
        .db()
        .tenant(f.a)
        .select::<User>()
        .count()
        .await
        .unwrap();
    println!(
        "after tx: setting={:?}, plain Db tenant(a) handle sees {seen}",
        setting.value
    );
    assert_eq!(
        setting.value.as_deref().unwrap_or(""),
        "",
        "session tenant survived commit"
    );
    f.cleanup().await;
}

// 1c. A NUL byte in a text tenant: BEGIN/set_config is never sent but the statement runs anyway.
#[tokio::test]
async fn nul_tenant_statement_runs_outside_transaction() {
    let f = Fixture::new().await;
    f.owner
        .batch_execute(&format!(
            "CREATE TABLE rv (x int); GRANT SELECT, INSERT ON rv TO {}",
            f.role
        ))
        .await
        .unwrap();
    let err = f
        .app
        .tenant("evil\0".to_string())
        .execute("INSERT INTO rv VALUES (1)", &[])
        .await
        .unwrap_err();
    let n = f.owner.select::<Rv>().count().await.unwrap();
    println!(
        "nul tenant: err={err:?} retryable={} rows inserted={n}",
        err.is_retryable()
    );
    assert_eq!(n, 0, "the statement ran although the call failed");
    f.cleanup().await;
}

// 2. Error classification: a client-side parameter type error is `Connection` and retryable.
#[tokio::test]
async fn wrong_param_type_is_not_connection_error() {
    let f = Fixture::new().await;
    let err = f
        .app
        .tenant(f.a)
        .query("SELECT $1::int4", &[&"x"])
        .await
        .unwrap_err();
    println!(
        "wrong type: {err:?} connection={} retryable={}",
        err.is_connection_error(),
        err.is_retryable()
    );
    assert!(!err.is_connection_error());
    assert!(!err.is_retryable());
    f.cleanup().await;
}

// 3. COMMIT; BEGIN in Transaction::batch_execute is not detected.
#[tokio::test]
async fn commit_begin_in_tx_batch() {
    let f = Fixture::new().await;
    f.owner
        .batch_execute("CREATE TABLE rv (x int)")
        .await
        .unwrap();
    let tx = f.owner.begin().await.unwrap();
    tx.batch_execute("INSERT INTO rv VALUES (1)").await.unwrap();
    // The text's COMMIT commits (only the server could stop it); pebble
    // reports it, and refuses to pretend the rollback undid anything.
    let r = tx.batch_execute("COMMIT; BEGIN").await;
    assert!(matches!(r, Err(Error::TransactionEnded)), "{r:?}");
    assert!(matches!(tx.rollback().await, Err(Error::TransactionEnded)));
    assert_eq!(f.owner.select::<Rv>().count().await.unwrap(), 1);
    // ROLLBACK; BEGIN: commit() must not report success for rolled-back work.
    let tx = f.owner.begin().await.unwrap();
    tx.batch_execute("INSERT INTO rv VALUES (2)").await.unwrap();
    let r2 = tx.batch_execute("ROLLBACK; BEGIN").await;
    assert!(matches!(r2, Err(Error::TransactionEnded)), "{r2:?}");
    assert!(matches!(tx.commit().await, Err(Error::TransactionEnded)));
    assert_eq!(f.owner.select::<Rv>().count().await.unwrap(), 1);
    f.cleanup().await;
}

// 4. Audit + install trust the marker comment: an altered policy keeps it.
#[tokio::test]
async fn altered_policy_passes_audit_and_install() {
    let f = Fixture::new().await;
    f.owner
        .batch_execute("ALTER POLICY pebble_tenant ON users USING (true) WITH CHECK (true)")
        .await
        .unwrap();
    // The comment still says pebble's; the definition does not: a gap.
    let audit = f.app.audit(&tables()).await.unwrap();
    assert!(!audit.tables[0].policy_as_expected);
    assert!(audit.check().is_err(), "audit passes a neutered policy");
    // Install sees the same and restores the policy.
    f.owner.install_rls_tables(&tables()).await.unwrap();
    let seen = f
        .app
        .tenant(f.b)
        .query("SELECT 1 FROM users", &[])
        .await
        .unwrap()
        .len();
    assert_eq!(seen, 2, "only B's rows once the policy is restored");
    f.app.audit(&tables()).await.unwrap().check().unwrap();
    f.cleanup().await;
}

// 5. Audit misses a role the app can SET ROLE to (NOINHERIT membership in a superuser / owner).
#[tokio::test]
async fn audit_misses_noinherit_membership() {
    let f = Fixture::new().await;
    f.owner
        .batch_execute(&format!(
            "ALTER ROLE {0} NOINHERIT; GRANT postgres TO {0}",
            f.role
        ))
        .await
        .unwrap();
    let audit = f.app.audit(&tables()).await.unwrap();
    let tx = f.app.tenant(f.b).begin().await.unwrap();
    tx.execute("SET LOCAL ROLE postgres", &[]).await.unwrap();
    let seen = tx.query("SELECT 1 FROM users", &[]).await.unwrap().len();
    tx.rollback().await.unwrap();
    println!(
        "noinherit member: audit ok = {}; tenant b tx sees {seen} rows",
        audit.check().is_ok()
    );
    f.owner
        .batch_execute(&format!("REVOKE postgres FROM {0}", f.role))
        .await
        .unwrap();
    assert!(
        audit.check().is_err(),
        "audit passes a role that can become superuser"
    );
    f.cleanup().await;
}

// 6. Temp table planted by raw SQL of tenant A captures tenant B's inserts on the same pooled connection.
#[tokio::test]
async fn temp_table_shadows_across_tenants() {
    let f = Fixture::with_pool(
        PoolOptions::default()
            .max_size(1)
            .statement_mode(pebble::StatementMode::Unnamed),
    )
    .await;
    f.app
        .tenant(f.a)
        .execute(
            "CREATE TEMP TABLE users (LIKE public.users INCLUDING DEFAULTS)",
            &[],
        )
        .await
        .unwrap();
    f.app
        .tenant(f.b)
        .insert(User::new("secret-of-b", 1))
        .exec()
        .await
        .unwrap();
    let stolen = f
        .app
        .tenant(f.a)
        .query("SELECT name, tenant_id FROM users", &[])
        .await
        .unwrap();
    let names: Vec<String> = stolen.iter().map(|r| r.get(0)).collect();
    assert!(!names.iter().any(|n| n == "secret-of-b"), "{names:?}");
    assert_eq!(f.users_of(f.b).await.len(), 3, "B's row is in B's table");
    f.cleanup().await;
}

#[derive(Model, Debug)]
#[pebble(table = "users")]
struct ByEmail {
    #[pebble(primary_key, default)]
    id: Uuid,
    #[tenant_id]
    email: String,
}

// 7. install_rls of a model contradicting the table's record rewrites the policy onto the wrong column.
#[tokio::test]
async fn install_rls_ignores_record() {
    let f = Fixture::new().await;
    let r = f.owner.install_rls::<ByEmail>().await;
    let rows = f
        .app
        .tenant("ann@example.com".to_string())
        .query("SELECT tenant_id FROM users", &[])
        .await;
    let tenants: std::collections::HashSet<Uuid> = rows
        .as_ref()
        .map(|v| v.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let own = f.app.tenant(f.a).select::<User>().count().await;
    println!("install_rls::<ByEmail> = {r:?}; raw as tenant 'ann@example.com' sees tenants {tenants:?}; tenant a sees own rows: {own:?}");
    assert!(
        r.is_err(),
        "install_rls accepted a model contradicting the record"
    );
    f.cleanup().await;
}

// 8. COMMIT as parameterised raw SQL inside an RlsDb transaction is not detected: rollback() undoes nothing.
#[tokio::test]
async fn rls_tx_raw_commit_undetected() {
    let f = Fixture::new().await;
    let tx = f.app.tenant(f.a).begin().await.unwrap();
    tx.insert(User::new("carl", 5)).exec().await.unwrap();
    let c = tx.execute("COMMIT", &[]).await;
    assert!(matches!(c, Err(Error::TransactionEnded)), "{c:?}");
    // Nothing more runs on the connection, which would be outside any transaction.
    let after = tx.select::<User>().count().await;
    assert!(matches!(after, Err(Error::TransactionEnded)), "{after:?}");
    assert!(matches!(tx.rollback().await, Err(Error::TransactionEnded)));
    assert_eq!(
        f.users_of(f.a).await.len(),
        3,
        "the raw COMMIT committed carl, and said so"
    );
    f.cleanup().await;
}

// 9. Cancellation after one poll, then check what the single pooled connection carries.
#[tokio::test]
async fn cancel_after_one_poll() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    for i in 0..20 {
        let t = f.app.tenant(f.a);
        let _ = tokio::time::timeout(Duration::ZERO, t.query("SELECT pg_sleep(0.01)", &[])).await;
        let _ = tokio::time::timeout(Duration::ZERO, t.select::<User>().count()).await;
        let _ = tokio::time::timeout(Duration::ZERO, t.begin()).await;
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let s = f.app.select::<TenantSetting>().one().await.unwrap();
        assert_eq!(s.value.as_deref().unwrap_or(""), "", "iteration {i}");
        let seen = f
            .app
            .db()
            .cross_tenant()
            .select::<User>()
            .count()
            .await
            .unwrap();
        assert_eq!(seen, 0);
    }
    f.cleanup().await;
}

#[derive(Model, Debug)]
#[pebble(table = "sess", shared)]
struct Sess {
    u: String,
    st: String,
    locks: i64,
    temps: i64,
    prepared: i64,
    listens: i64,
    in_tx: bool,
}

// 10. Db::batch_execute: session state after various texts.
#[tokio::test]
async fn batch_execute_session_state() {
    let f = Fixture::new().await;
    f.owner.batch_execute(&format!("CREATE ROLE r_{0}; CREATE VIEW sess AS SELECT current_user::text AS u, current_setting('statement_timeout') AS st, \
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks, \
        (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temps, \
        (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared, \
        (SELECT count(*) FROM pg_listening_channels()) AS listens, \
        (now() <> statement_timestamp()) AS in_tx; GRANT SELECT ON sess TO PUBLIC", f.role)).await.unwrap();
    let db = Db::connect_with(f.test_db.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    for text in [
        "SET statement_timeout = 1234",
        &format!("SET ROLE r_{}", f.role),
        &format!("SET SESSION AUTHORIZATION r_{}", f.role),
        "LISTEN foo",
        "SELECT pg_advisory_lock(7)",
        "CREATE TEMP TABLE tt (x int)",
        "PREPARE p AS SELECT 1",
        "BEGIN; SELECT 1/0",
        "BEGIN; SELECT 1",
        "SELECT 1; BEGIN",
        "DO $$ BEGIN PERFORM set_config('statement_timeout', '999', false); END $$",
        "COMMIT; BEGIN; SET LOCAL statement_timeout = 5; COMMIT",
    ] {
        let r = db.batch_execute(text).await;
        let s = db.select::<Sess>().one().await;
        println!("{text:?} -> {r:?} ; session {s:?}");
    }
    let tx = db.begin().await.unwrap();
    let r = tx
        .batch_execute("SET statement_timeout = 4321; SELECT pg_advisory_lock(8); LISTEN bar")
        .await;
    let c = tx.commit().await;
    println!(
        "tx batch {r:?} commit {c:?}; session {:?}",
        db.select::<Sess>().one().await
    );
    db.close();
    f.cleanup().await;
}

#[tokio::test]
async fn escape_and_57p01() {
    let f = Fixture::new().await;
    for t in [
        "a'b",
        "a\\'b",
        "\\",
        "x'); SELECT set_config('pebble.tenant_id','y',false); --",
        "$$",
        "ü\u{2019}\u{FF07}",
        "a\\\\'",
    ] {
        let rows = f
            .app
            .tenant(t.to_string())
            .query("SELECT current_setting('pebble.tenant_id', true)", &[])
            .await
            .unwrap();
        let got: Option<String> = rows[0].get(0);
        assert_eq!(got.as_deref(), Some(t));
        let s = f.app.select::<TenantSetting>().one().await.unwrap();
        assert_eq!(s.value.as_deref().unwrap_or(""), "");
    }
    let app = f.app.clone();
    let a = f.a;
    let h = tokio::spawn(async move { app.tenant(a).query("SELECT pg_sleep(5)", &[]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.owner
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
            f.role
        ))
        .await
        .unwrap();
    let err = h.await.unwrap().unwrap_err();
    println!(
        "terminated: {err:?} connection={}",
        err.is_connection_error()
    );
    assert!(err.is_connection_error());
    f.cleanup().await;
}

#[tokio::test]
async fn concurrent_install() {
    let (_t, owner) = setup().await;
    let mut hs = vec![];
    for _ in 0..4 {
        let o = owner.clone();
        hs.push(tokio::spawn(async move {
            o.install_rls_tables(&tables()).await
        }));
    }
    for h in hs {
        h.await.unwrap().unwrap();
    }
    owner.install_rls_tables(&tables()).await.unwrap();
    assert!(owner
        .audit_rls(&tables())
        .await
        .unwrap()
        .tables
        .iter()
        .all(|_| true));
}

#[derive(Model, Debug)]
#[pebble(table = "users", shared)]
struct Slim {
    name: String,
}

#[tokio::test]
async fn table_record_paths() {
    let f = Fixture::new().await;
    let mut out = vec![];
    out.push((
        "owner slim",
        f.owner.select::<Slim>().count().await.map(|_| ()),
    ));
    out.push((
        "owner cross slim",
        f.owner
            .cross_tenant()
            .select::<Slim>()
            .count()
            .await
            .map(|_| ()),
    ));
    let tx = f.owner.begin().await.unwrap();
    out.push((
        "owner tx slim",
        tx.select::<Slim>().count().await.map(|_| ()),
    ));
    out.push((
        "owner tx cross",
        tx.cross_tenant()
            .select::<ByEmail>()
            .count()
            .await
            .map(|_| ()),
    ));
    out.push((
        "owner tx tenant byemail",
        tx.tenant("ann@example.com".to_string())
            .select::<ByEmail>()
            .count()
            .await
            .map(|_| ()),
    ));
    out.push((
        "owner tx tenant byemail delete",
        tx.tenant("ann@example.com".to_string())
            .delete::<ByEmail>()
            .exec()
            .await
            .map(|_| ()),
    ));
    drop(tx);
    out.push(("rls slim", f.app.select::<Slim>().count().await.map(|_| ())));
    out.push((
        "rls tenant byemail",
        f.app
            .tenant("ann@example.com".to_string())
            .select::<ByEmail>()
            .count()
            .await
            .map(|_| ()),
    ));
    let rtx = f
        .app
        .tenant("ann@example.com".to_string())
        .begin()
        .await
        .unwrap();
    out.push((
        "rls tx byemail",
        rtx.select::<ByEmail>().count().await.map(|_| ()),
    ));

    for (k, v) in out {
        println!(
            "{k}: {}",
            match v {
                Ok(()) => "ALLOWED".to_string(),
                Err(e) => format!("{e}"),
            }
        );
    }
    f.cleanup().await;
}
