//! pebble's per-connection statement cache against what raw SQL and
//! schema changes do to the server's prepared statements behind it.
//!
//! Raw SQL on a row-level-security tenant handle runs on a pooled
//! connection that the next tenant gets: it must never be able to leave a
//! statement there that another tenant's builder statement then runs
//! (found by a review of the cache; the deadpool-postgres cache before it
//! had the same hole).

mod common;

use common::rls::Fixture;
use common::{Plan, User};
use pebble::PoolOptions;

/// Finds, through tenant A's raw SQL, the name under which pebble cached
/// the select of `users`, and the parameter types it was prepared with.
async fn cached_select(a: &pebble::TenantDb<uuid::Uuid, pebble::RlsDb>) -> (String, String) {
    let row = a
        .query_one(
            "SELECT name, array_to_string(parameter_types, ',') FROM pg_prepared_statements \
             WHERE NOT from_sql AND statement LIKE 'SELECT%' AND statement LIKE '%users%' \
             AND statement NOT LIKE '%pg_prepared_statements%'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Through tenant A's raw SQL: deallocates the statement pebble cached
/// for the select of `users` and prepares `text` under its name, with its
/// parameter types. Either may fail once pebble guards against it: what
/// matters is what B's statement does next.
async fn plant(a: &pebble::TenantDb<uuid::Uuid, pebble::RlsDb>, text: &str) {
    let (name, types) = cached_select(a).await;
    let _ = a.execute(&format!("DEALLOCATE {name}"), &[]).await;
    let _ = a
        .execute(&format!("PREPARE {name} ({types}) AS {text}"), &[])
        .await;
}

/// Tenant A's raw SQL replaces a statement pebble cached for a builder
/// shape; tenant B's next builder statement must not run A's text inside
/// B's transaction (B's tenant context, B's rows).
#[tokio::test]
async fn raw_sql_of_one_tenant_cannot_plant_a_statement_another_tenant_runs() {
    // One connection, so that A's raw SQL and B's statements share it.
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    assert_eq!(b.select::<User>().all().await.unwrap().len(), 2);

    plant(
        &a,
        "UPDATE users SET name = 'planted by A' \
         RETURNING id, tenant_id, email, name, age, nickname",
    )
    .await;

    let seen = b.select::<User>().all().await;
    let after = f.users_of(f.b).await;
    assert!(
        after.iter().all(|u| u.name != "planted by A"),
        "tenant A's text ran as tenant B's select: B's rows are now {after:?} (B saw {seen:?})"
    );
    assert_eq!(seen.unwrap().len(), 2);
    f.cleanup().await;
}

/// The same hole as a read leak: a planted statement that returns B's own
/// rows (B would notice nothing) and copies B's data into a session
/// setting, which would survive B's transaction on the pooled connection.
#[tokio::test]
async fn raw_sql_of_one_tenant_cannot_read_another_tenants_rows_through_the_statement_cache() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    b.select::<User>().all().await.unwrap();

    plant(
        &a,
        "SELECT id, tenant_id, email, name, age, nickname \
         FROM users WHERE set_config('loot.rows', \
         (SELECT string_agg(tenant_id::text || ' ' || email, ',') FROM users), false) \
         IS NOT NULL",
    )
    .await;

    let seen = b.select::<User>().all().await.unwrap();
    assert_eq!(seen.len(), 2);

    let loot: Option<String> = a
        .query_one("SELECT current_setting('loot.rows', true)", &[])
        .await
        .unwrap()
        .get(0);
    let loot = loot.unwrap_or_default();
    assert!(
        !loot.contains(&f.b.to_string()),
        "tenant A read tenant B's rows: {loot}"
    );
    f.cleanup().await;
}

/// `DEALLOCATE ALL` through an RLS tenant handle: the server forgets every
/// statement; the connection must not go back to the pool with a cache
/// that still lists them (every later statement on it would fail).
#[tokio::test]
async fn raw_deallocate_all_does_not_break_the_connection_for_everyone() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    assert_eq!(b.select::<User>().all().await.unwrap().len(), 2);

    a.execute("DEALLOCATE ALL", &[]).await.unwrap();

    for attempt in 0..3 {
        let result = b.select::<User>().all().await;
        assert_eq!(
            result.as_ref().map(Vec::len).ok(),
            Some(2),
            "attempt {attempt}: tenant B's select after tenant A's raw DEALLOCATE ALL: {result:?}"
        );
    }
    f.cleanup().await;
}

/// Raw SQL that prepares nothing keeps the connection and its statements:
/// the check costs no reconnect in the common case.
#[tokio::test]
async fn ordinary_raw_sql_keeps_the_connection_and_its_statements() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    b.select::<User>().all().await.unwrap();
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let before = pid(a.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    let (name, _) = cached_select(&a).await;
    let after = pid(a.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    assert_eq!(before, after, "the same connection");
    assert_eq!(
        cached_select(&a).await.0,
        name,
        "the statement is still prepared"
    );
    f.cleanup().await;
}

/// The number of statements prepared on the session that reads it.
#[derive(pebble::Model, Debug)]
#[pebble(table = "prepared_count", shared)]
struct PreparedCount {
    n: i64,
}

/// The per-connection bound holds on the server, over many more texts.
#[tokio::test]
async fn the_statement_cache_bound_holds_on_the_server() {
    let (test_db, owner) = common::setup().await;
    owner
        .batch_execute(
            "CREATE VIEW prepared_count AS \
             SELECT count(*)::bigint AS n FROM pg_prepared_statements",
        )
        .await
        .unwrap();
    let one = pebble::Db::connect_with(test_db.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let mut most = 0;
    for len in 1..=1200_i64 {
        // A distinct text per number: one `>` or `<` term per bit.
        let mut filter = Plan::SEATS.gt(0_i16);
        for bit in 0..11 {
            let term = if len & (1 << bit) != 0 {
                Plan::PRICE_CENTS.gt(bit)
            } else {
                Plan::PRICE_CENTS.lt(bit)
            };
            filter = filter.or(term);
        }
        one.select::<Plan>().filter(filter).all().await.unwrap();
        if len % 50 == 0 {
            let count = one.select::<PreparedCount>().one().await.unwrap().n;
            most = most.max(count);
        }
    }
    assert!(most <= 520, "{most} statements prepared on one connection");
    assert!(most >= 400, "the cache was used: {most}");
}

/// A database, its owner's handle, a handle on a pool of one connection,
/// and two tenants with a user each ("ann" and "bob").
async fn two_tenants_on_one_connection() -> (
    pebble_testkit::TestDatabase,
    pebble::Db,
    pebble::Db,
    uuid::Uuid,
    uuid::Uuid,
) {
    let (test_db, owner) = common::setup().await;
    let one = pebble::Db::connect_with(test_db.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let (tenant, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (key, name, age) in [(tenant, "ann", 31), (other, "bob", 40)] {
        one.tenant(key)
            .insert(User::new(name, age))
            .exec()
            .await
            .unwrap();
    }
    (test_db, owner, one, tenant, other)
}

/// A compatible column type change (`text` to `varchar`): a cached
/// statement's plan can no longer give its result type. The statement is
/// prepared again, not failed until its connection closes.
#[tokio::test]
async fn a_compatible_column_type_change_does_not_break_cached_statements() {
    let (_test_db, owner, one, tenant, other) = two_tenants_on_one_connection().await;
    assert_eq!(
        one.tenant(tenant)
            .select::<User>()
            .all()
            .await
            .unwrap()
            .len(),
        1
    );
    owner
        .batch_execute("ALTER TABLE users ALTER COLUMN nickname TYPE varchar(100)")
        .await
        .unwrap();
    for attempt in 0..3 {
        let result = one.tenant(tenant).select::<User>().all().await;
        let names: Option<Vec<String>> = result
            .as_ref()
            .ok()
            .map(|users| users.iter().map(|u| u.name.clone()).collect());
        assert_eq!(
            names,
            Some(vec!["ann".to_owned()]),
            "attempt {attempt}: {result:?}"
        );
    }
    // The other tenant's statements, through the same connection, too.
    let theirs = one.tenant(other).select::<User>().all().await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].name, "bob");
}

/// Many statements of one transaction preparing one new text at once:
/// every one succeeds, and no more than a few statements are left.
#[tokio::test]
async fn one_transaction_preparing_one_text_concurrently() {
    let (test_db, owner) = common::setup().await;
    owner
        .batch_execute(
            "CREATE VIEW prepared_count AS \
             SELECT count(*)::bigint AS n FROM pg_prepared_statements",
        )
        .await
        .unwrap();
    let one = pebble::Db::connect_with(test_db.config(), PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let tx = one.begin().await.unwrap();
    let runs = (0..32).map(|n| {
        tx.select::<Plan>()
            .filter(Plan::SEATS.gt(n as i16).and(Plan::PRICE_CENTS.lt(7_i64)))
            .all()
    });
    let results = futures_util::future::join_all(runs).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let count = tx.select::<PreparedCount>().one().await.unwrap().n;
    assert!(count <= 4, "{count}");
    tx.commit().await.unwrap();
}

/// The same column type change under row-level security: the tenant's
/// pipelined transaction is refused at the stale statement (nothing ran,
/// and `COMMIT` rolled it back), so it is sent again with the statement
/// prepared afresh; each tenant still sees only its own rows.
#[tokio::test]
async fn a_column_type_change_under_row_level_security_is_prepared_again() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let (a, b) = (f.app.tenant(f.a), f.app.tenant(f.b));
    assert_eq!(b.select::<User>().all().await.unwrap().len(), 2);
    f.owner
        .batch_execute("ALTER TABLE users ALTER COLUMN nickname TYPE varchar(100)")
        .await
        .unwrap();
    for attempt in 0..3 {
        let theirs = b.select::<User>().all().await;
        let mine = a.select::<User>().all().await;
        assert!(
            theirs
                .as_ref()
                .is_ok_and(|users| users.len() == 2 && users.iter().all(|u| u.tenant_id == f.b)),
            "attempt {attempt}: {theirs:?}"
        );
        assert!(
            mine.as_ref()
                .is_ok_and(|users| users.iter().all(|u| u.tenant_id == f.a)),
            "attempt {attempt}: {mine:?}"
        );
    }
    f.cleanup().await;
}

/// The check of the session's prepared statements cannot be fooled by
/// raw SQL that shadows the aggregates it calls (a `count` and a
/// `string_agg` of its own, reached through a `search_path` it set) while
/// it plants a statement. (Found by a second review.)
#[tokio::test]
async fn shadowed_aggregates_do_not_fool_the_statements_check() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    f.owner
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {}", f.role))
        .await
        .unwrap();
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    assert_eq!(b.select::<User>().all().await.unwrap().len(), 2);
    let (name, types) = cached_select(&a).await;
    for sql in [
        "CREATE FUNCTION public.zero_sfunc(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT 0::bigint'",
        "CREATE AGGREGATE public.count(*) (SFUNC = public.zero_sfunc, STYPE = bigint, INITCOND = '0')",
        "CREATE FUNCTION public.names_sfunc(text, text, text) RETURNS text LANGUAGE sql AS 'SELECT NULL::text'",
        "CREATE FUNCTION public.names_final(text) RETURNS text LANGUAGE sql STABLE AS $$SELECT current_setting('loot.names')$$",
        "CREATE AGGREGATE public.string_agg(text, text) (SFUNC = public.names_sfunc, STYPE = text, FINALFUNC = public.names_final)",
        "CREATE FUNCTION public.plant(victim text, types text) RETURNS text LANGUAGE plpgsql AS $f$ \
         BEGIN \
           PERFORM pg_catalog.set_config('loot.names', (SELECT pg_catalog.string_agg(name, ',' ORDER BY name) \
             FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql), false); \
           PERFORM pg_catalog.set_config('search_path', 'public, pg_catalog', false); \
           EXECUTE pg_catalog.format('DEALLOCATE %I', victim); \
           EXECUTE pg_catalog.format('PREPARE %I (%s) AS UPDATE public.users SET name = %L \
             RETURNING id, tenant_id, email, name, age, nickname', victim, types, 'planted by A'); \
           RETURN 'planted'; \
         END $f$",
    ] {
        a.execute(sql, &[]).await.unwrap();
    }
    let planted: String = a
        .query_one("SELECT public.plant($1, $2)", &[&name, &types])
        .await
        .unwrap()
        .get(0);
    assert_eq!(planted, "planted");
    let seen = b.select::<User>().all().await;
    let after = f.users_of(f.b).await;
    assert!(
        after.iter().all(|u| u.name != "planted by A"),
        "the check was fooled: tenant A's text ran as tenant B's select: \
         B's rows are now {after:?} (B saw {seen:?})"
    );
    assert_eq!(seen.unwrap().len(), 2);
    f.cleanup().await;
}

/// A `SET ROLE` in one tenant's raw SQL does not survive into the next
/// tenant's statements on the connection (`RESET ALL` alone keeps it).
#[tokio::test]
async fn set_role_in_raw_sql_does_not_survive_the_session_reset() {
    let f = Fixture::with_pool(PoolOptions::default().max_size(1)).await;
    let other = format!("{}_reports", f.role);
    f.owner
        .batch_execute(&format!(
            "CREATE ROLE {other} NOLOGIN; GRANT {other} TO {}; GRANT SELECT ON users TO {other}",
            f.role
        ))
        .await
        .unwrap();
    let a = f.app.tenant(f.a);
    let b = f.app.tenant(f.b);
    a.execute(&format!("SET ROLE {other}"), &[]).await.unwrap();
    let who: String = b
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    let insert = b.insert(User::new("carl", 50)).exec().await;
    f.owner
        .batch_execute(&format!(
            "REVOKE {other} FROM {}; DROP OWNED BY {other}; DROP ROLE {other}",
            f.role
        ))
        .await
        .unwrap();
    assert_eq!(who, f.role, "tenant B ran as {who}; B's insert: {insert:?}");
    assert_eq!(insert.unwrap(), 1);
    f.cleanup().await;
}

/// Streams meet stale statements too: after a compatible column type
/// change a stream's statement is prepared again, not failed until its
/// connection closes.
#[tokio::test]
async fn a_stream_after_a_compatible_column_type_change() {
    use futures_util::StreamExt;
    let (_test_db, owner, one, tenant, _other) = two_tenants_on_one_connection().await;
    let first: Vec<_> = one.tenant(tenant).select::<User>().stream().collect().await;
    assert!(first.iter().all(|r| r.is_ok()));
    owner
        .batch_execute("ALTER TABLE users ALTER COLUMN nickname TYPE varchar(100)")
        .await
        .unwrap();
    for attempt in 0..3 {
        let rows: Vec<_> = one.tenant(tenant).select::<User>().stream().collect().await;
        let names: Vec<String> = rows
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|u| u.name.clone()))
            .collect();
        assert!(
            rows.len() == 1 && names == ["ann"],
            "attempt {attempt}: {rows:?}"
        );
    }
}
