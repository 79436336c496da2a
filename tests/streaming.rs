//! Row streams: every row of the tenant and none of another's, on pooled
//! handles, in transactions and under row-level security; a stream dropped
//! halfway leaves the pool usable and no tenant setting behind.

mod common;

use std::time::Duration;

use common::rls::{Fixture, TenantSetting};
use common::{two_tenants, Document, User, ORG_A, ORG_B};
use futures_util::StreamExt;
use pebble::{Db, Error, PoolOptions, StatementMode};
use uuid::Uuid;

const ROWS: i64 = 50_000;

/// `ROWS` more documents for each of the two orgs (ids interleaved, so an
/// unconfined scan would meet both tenants' rows all along).
async fn many_documents(db: &Db) {
    db.batch_execute(&format!(
        "INSERT INTO documents (id, org_id, title, pages) \
         SELECT g, CASE WHEN g % 2 = 0 THEN {ORG_A} ELSE {ORG_B} END, 'row ' || g, (g % 100)::int \
         FROM generate_series(1000, 1000 + 2 * {ROWS} - 1) g"
    ))
    .await
    .unwrap();
}

/// `ROWS` users for `tenant`, written as the table owner.
async fn many_users(owner: &Db, tenant: Uuid) {
    owner
        .batch_execute(&format!(
            "INSERT INTO users (tenant_id, email, name, age) \
             SELECT '{tenant}', 'u' || g || '@example.com', 'u' || g, (g % 90)::int \
             FROM generate_series(1, {ROWS}) g"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_yields_every_row_of_the_tenant_and_none_of_another() {
    let t = two_tenants().await;
    many_documents(&t.db).await;
    for org in [ORG_A, ORG_B] {
        let mut stream =
            t.db.tenant(org)
                .select::<Document>()
                .order_by(Document::ID.asc())
                .stream();
        let (mut n, mut last) = (0_i64, i64::MIN);
        while let Some(doc) = stream.next().await {
            let doc = doc.unwrap();
            assert_eq!(doc.org_id, org, "another tenant's row in the stream");
            assert!(doc.id > last, "in order, each row once");
            last = doc.id;
            n += 1;
        }
        assert_eq!(n, ROWS + 3);
    }
    // Filters and a locked stream in a transaction, as tenant B.
    let tx = t.db.tenant(ORG_B).begin().await.unwrap();
    let odd: Vec<Document> = tx
        .select::<Document>()
        .filter(Document::PAGES.eq(7))
        .for_update()
        .stream()
        .map(|d| d.unwrap())
        .collect()
        .await;
    assert_eq!(
        odd.len(),
        (2 * ROWS / 100) as usize,
        "B's own: every other id of 2 * ROWS"
    );
    assert!(odd.iter().all(|d| d.org_id == ORG_B && d.pages == 7));
    tx.commit().await.unwrap();
    // A stream of an unset tenant yields the refusal, sending nothing.
    let mut refused = t.db.tenant(0_i64).select::<Document>().stream();
    assert!(matches!(
        refused.next().await,
        Some(Err(Error::InvalidTenantId { .. }))
    ));
    assert!(refused.next().await.is_none());
}

#[tokio::test]
async fn a_dropped_stream_leaves_the_pool_usable() {
    let (test_db, owner) = common::setup().await;
    many_documents(&owner).await;
    let options = PoolOptions::default()
        .max_size(1)
        .wait_timeout(Some(Duration::from_secs(30)));
    let db = Db::connect_with(test_db.config(), options).await.unwrap();
    let mut stream = db.tenant(ORG_A).select::<Document>().stream();
    for _ in 0..100 {
        assert_eq!(stream.next().await.unwrap().unwrap().org_id, ORG_A);
    }
    drop(stream);
    // The one connection is free again and answers the next statement.
    assert_eq!(
        db.tenant(ORG_B).select::<Document>().count().await.unwrap(),
        ROWS
    );
    let first = db
        .tenant(ORG_B)
        .select::<Document>()
        .order_by(Document::ID.asc())
        .optional()
        .await;
    assert_eq!(first.unwrap().unwrap().id, 1001);
}

#[tokio::test]
async fn a_transaction_refuses_other_statements_while_its_stream_is_open() {
    let t = two_tenants().await;
    many_documents(&t.db).await;
    let tx = t.db.tenant(ORG_A).begin().await.unwrap();
    let mut stream = tx.select::<Document>().stream();
    assert!(stream.next().await.unwrap().is_ok());
    assert!(matches!(
        tx.select::<Document>().count().await,
        Err(Error::StreamOpen)
    ));
    let mut second = tx.select::<Document>().stream();
    assert!(matches!(second.next().await, Some(Err(Error::StreamOpen))));
    drop(stream);
    // Dropped halfway: the transaction goes on.
    tx.insert(Document::new(5, "after the stream", 1))
        .exec()
        .await
        .unwrap();
    let rest = tx.select::<Document>().stream().count().await;
    assert_eq!(rest as i64, ROWS + 4);
    tx.commit().await.unwrap();
    assert_eq!(t.documents_of(ORG_A).await.len() as i64, ROWS + 4);

    // A stream that ran to its end frees the transaction by itself.
    let tx = t.db.tenant(ORG_A).begin().await.unwrap();
    tx.delete::<Document>().exec().await.unwrap();
    let mut stream = tx.select::<Document>().stream();
    assert!(
        stream.next().await.is_none(),
        "everything was deleted in the transaction"
    );
    tx.commit().await.unwrap();
    // A stream of a transaction that has ended sends nothing.
    let ended =
        t.db.tenant(ORG_A)
            .begin()
            .await
            .unwrap()
            .select::<Document>();
    let mut late = ended.stream();
    assert!(matches!(
        late.next().await,
        Some(Err(Error::TransactionEnded))
    ));
    assert_eq!(t.documents_of(ORG_A).await.len(), 0);
    assert_eq!(
        t.documents_of(ORG_B).await.len() as i64,
        ROWS + 3,
        "tenant B untouched"
    );
}

#[tokio::test]
async fn commit_with_an_open_stream_is_refused() {
    let t = two_tenants().await;
    let tx = t.db.tenant(ORG_A).begin().await.unwrap();
    tx.insert(Document::new(7, "pending", 1))
        .exec()
        .await
        .unwrap();
    let mut stream = tx.select::<Document>().stream();
    assert!(stream.next().await.unwrap().is_ok());
    assert!(matches!(tx.commit().await, Err(Error::StreamOpen)));
    drop(stream);
    assert_eq!(
        t.documents_of(ORG_A).await.len(),
        3,
        "rolled back, not committed"
    );
}

async fn stream_under_rls(options: PoolOptions) {
    let f = Fixture::with_pool(
        options
            .max_size(1)
            .wait_timeout(Some(Duration::from_secs(30))),
    )
    .await;
    many_users(&f.owner, f.a).await;
    many_users(&f.owner, f.b).await;

    let mut n = 0;
    let mut stream = f.app.tenant(f.a).select::<User>().stream();
    while let Some(user) = stream.next().await {
        assert_eq!(user.unwrap().tenant_id, f.a);
        n += 1;
    }
    assert_eq!(n, ROWS + 2);
    drop(stream);

    // Dropped halfway: the one pooled connection comes back outside any
    // transaction, with no tenant setting left on it.
    let mut stream = f.app.tenant(f.b).select::<User>().stream();
    for _ in 0..1000 {
        assert_eq!(stream.next().await.unwrap().unwrap().tenant_id, f.b);
    }
    drop(stream);
    let setting = f.app.select::<TenantSetting>().one().await.unwrap();
    assert!(
        setting.value.as_deref().unwrap_or("").is_empty(),
        "a tenant survived on the pooled connection: {:?}",
        setting.value
    );
    // With no tenant set the app role sees nothing: the connection is clean.
    let unset = f
        .app
        .db()
        .tenant(f.a)
        .select::<User>()
        .count()
        .await
        .unwrap();
    assert_eq!(unset, 0);
    // And a stream in an RLS transaction, as tenant B, sees only B.
    let tx = f.app.tenant(f.b).begin().await.unwrap();
    let seen: Vec<User> = tx
        .select::<User>()
        .filter(User::AGE.eq(1))
        .stream()
        .map(|u| u.unwrap())
        .collect()
        .await;
    assert!(!seen.is_empty() && seen.iter().all(|u| u.tenant_id == f.b));
    tx.commit().await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn streams_under_row_level_security() {
    stream_under_rls(PoolOptions::default()).await;
}

#[tokio::test]
async fn streams_under_row_level_security_with_unnamed_statements() {
    stream_under_rls(PoolOptions::default().statement_mode(StatementMode::Unnamed)).await;
}

/// `LIMIT` / `OFFSET` under unnamed statements (PgBouncer): their bind value
/// is typed as a `bigint`, so `one()` finds its row.
#[tokio::test]
async fn limit_with_unnamed_statements() {
    let t = two_tenants().await;
    let db = t.db.clone().statement_mode(StatementMode::Unnamed);
    let doc = db
        .tenant(ORG_A)
        .select::<Document>()
        .order_by(Document::ID.asc())
        .offset(1)
        .one()
        .await;
    assert_eq!(doc.unwrap().id, 2);
    let page = db
        .tenant(ORG_B)
        .select::<Document>()
        .order_by(Document::ID.asc())
        .limit(2)
        .all()
        .await;
    assert_eq!(page.unwrap().len(), 2);
}

/// Through a real PgBouncer in transaction mode (unnamed statements):
/// concurrent streams alternating tenants over 2 server connections, some
/// dropped halfway, never see another tenant's row; split inserts and
/// `copy_in` land whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_bulk_loads_through_pgbouncer() {
    use pebble::{RlsDb, RlsTable};
    use pebble_testkit::PgBouncerOptions;

    let (test_db, owner) = common::setup().await;
    let tables = [RlsTable::of::<User>(), RlsTable::of::<Document>()];
    owner.install_rls_tables(&tables).await.unwrap();
    let role = format!("app_{}", Uuid::new_v4().simple());
    let password = owner.create_app_role(&role, &tables).await.unwrap();
    let bouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(2))
        .expect("a PgBouncer in front of the test server (apt-get install pgbouncer)");
    let mut config = bouncer.config_for(test_db.name());
    config.user(&role).password(&password);
    let options = PoolOptions::default()
        .max_size(8)
        .wait_timeout(Some(Duration::from_secs(60)))
        .statement_mode(StatementMode::Unnamed);
    let app = RlsDb::connect_with(config, options).await.unwrap();

    let tenants = [Uuid::new_v4(), Uuid::new_v4()];
    // 12,000 users of 6 columns each: a split insert under RLS, through the pooler.
    for tenant in tenants {
        let users = (0..12_000).map(|i| User::new(&format!("u{i}"), i % 90));
        assert_eq!(
            app.tenant(tenant).insert_many(users).exec().await.unwrap(),
            12_000
        );
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let tenant = tenants[i % 2];
                let mut stream = app.tenant(tenant).select::<User>().stream();
                let mut n = 0;
                while let Some(user) = stream.next().await {
                    assert_eq!(user.unwrap().tenant_id, tenant, "another tenant's row");
                    n += 1;
                    if i % 4 == 3 && n == 500 {
                        return n; // dropped halfway
                    }
                }
                n
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let n = task.await.unwrap();
        assert_eq!(n, if i % 4 == 3 { 500 } else { 12_000 });
    }
    // No connection came back with a tenant on it: with no tenant set, nothing shows.
    for _ in 0..8 {
        assert_eq!(
            app.db()
                .tenant(tenants[0])
                .select::<User>()
                .count()
                .await
                .unwrap(),
            0
        );
    }
    // COPY through the pooler, as the owner (no RLS): one statement, whole.
    let mut owner_config = bouncer.config_for(test_db.name());
    owner_config.user(test_db.config().get_user().unwrap_or("postgres"));
    if let Some(password) = test_db.config().get_password() {
        owner_config.password(password);
    }
    let owner_bounced = Db::connect_with(
        owner_config,
        PoolOptions::default().statement_mode(StatementMode::Unnamed),
    )
    .await
    .unwrap();
    let docs = (1..=30_000).map(|i| Document::new(i, "bounced", 1));
    assert_eq!(
        owner_bounced
            .tenant(ORG_A)
            .copy_in(docs)
            .exec()
            .await
            .unwrap(),
        30_000
    );
    assert_eq!(
        owner
            .tenant(ORG_A)
            .select::<Document>()
            .count()
            .await
            .unwrap(),
        30_000
    );
    assert_eq!(
        owner
            .tenant(ORG_B)
            .select::<Document>()
            .count()
            .await
            .unwrap(),
        0
    );

    owner_bounced.close();
    app.db().close();
    owner
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
    drop(bouncer);
}
