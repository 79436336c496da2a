//! `TenantDatabase`, the handle `TenantManager::db(id)` gives: every path a
//! per-tenant model enters it (queries, writes, bulk, streams, aggregates,
//! joins, transactions, savepoints, DDL, verification) runs on that
//! tenant's database only, checked each time against a second tenant; and
//! the plain `Db`'s run-time refusal of a per-tenant model in a hand-built
//! verification list.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use pebble::{
    count, Db, Error, Model, ModelSchema, TenantDatabase, TenantManager, TenantManagerBuilder,
};
use tokio_postgres::NoTls;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
    author: String,
    kind_id: i64,
}

/// A table every tenant database has (a per-database lookup table).
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "kinds", shared)]
struct Kind {
    #[pebble(primary_key)]
    id: i64,
    name: String,
}

/// The deprecated spelling of `shared`: still a shared model, accepted by
/// the plain `Db` and by a tenant database alike.
#[allow(deprecated)]
mod legacy {
    use pebble::Model;

    #[derive(Model, Debug, Clone, PartialEq)]
    #[pebble(table = "legacy", global)]
    pub struct Legacy {
        #[pebble(primary_key)]
        pub id: i64,
    }
}
use legacy::Legacy;

fn note(id: i64, author: &str) -> Note {
    Note {
        id,
        author: author.to_owned(),
        kind_id: 1,
    }
}

/// Tenant ids unique to one test of one run.
fn ids() -> impl Fn(&str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "td{}n{}_",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    move |name| format!("{prefix}{name}")
}

fn builder() -> TenantManagerBuilder {
    let server = pebble_testkit::server().expect("a test server");
    TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: TenantDatabase, _tenant| async move {
            db.create_table::<Kind>().await?;
            db.create_table::<Note>().await?;
            db.create_table::<Legacy>().await?;
            db.insert(Kind {
                id: 1,
                name: "memo".into(),
            })
            .exec()
            .await?;
            Ok(())
        })
}

/// Every note of a tenant, read behind pebble's back on its database.
async fn raw_authors(id: &str) -> BTreeSet<String> {
    let server = pebble_testkit::server().unwrap();
    let (client, connection) = server
        .config_for(&format!("tenant_{id}"))
        .connect(NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let rows = client.query("SELECT author FROM notes", &[]).await.unwrap();
    drop(client);
    let _ = connection.await;
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_stays_in_the_tenants_database() {
    let id = ids();
    let manager = builder().build().unwrap();
    let (a_id, b_id) = (id("a"), id("b"));
    let a = manager.db(&a_id).await.unwrap();
    let b = manager.db(&b_id).await.unwrap();
    assert_eq!(a.id(), a_id);

    a.insert(note(1, "a")).exec().await.unwrap();
    a.insert_many([note(2, "a"), note(3, "a")])
        .exec()
        .await
        .unwrap();
    a.copy_in((4..=10).map(|n| note(n, "a")))
        .exec()
        .await
        .unwrap();
    // Tenant B, on its own database, does the same with the same keys.
    b.insert(note(1, "b")).exec().await.unwrap();
    b.copy_in([note(2, "b")]).exec().await.unwrap();
    assert_eq!(a.select::<Note>().count().await.unwrap(), 10);
    assert_eq!(b.select::<Note>().count().await.unwrap(), 2);

    // B's writes by keys A also has touch B's rows only.
    assert_eq!(
        b.update::<Note>()
            .set(Note::AUTHOR, "b2")
            .filter(Note::ID.lte(10))
            .exec()
            .await
            .unwrap(),
        2
    );
    b.update_model(&note(1, "b3")).await.unwrap();
    assert!(matches!(
        b.update_model(&note(7, "b")).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        b.delete::<Note>()
            .filter(Note::ID.eq(2))
            .exec()
            .await
            .unwrap(),
        1
    );
    assert_eq!(raw_authors(&a_id).await, BTreeSet::from(["a".to_owned()]));
    assert_eq!(raw_authors(&b_id).await, BTreeSet::from(["b3".to_owned()]));

    // Reads: find, stream, aggregate, a join with the database's shared table.
    assert!(b.find::<Note>(5).optional().await.unwrap().is_none());
    assert_eq!(a.find::<Note>(5).one().await.unwrap(), note(5, "a"));
    let streamed: Vec<Note> = a
        .select::<Note>()
        .order_by(Note::ID.asc())
        .stream()
        .map(|row| row.unwrap())
        .collect()
        .await;
    assert_eq!(streamed.len(), 10);
    let per_author: Vec<(String, i64)> = b
        .select::<Note>()
        .columns((Note::AUTHOR, count()))
        .group_by(Note::AUTHOR)
        .all()
        .await
        .unwrap();
    assert_eq!(per_author, vec![("b3".to_owned(), 1)]);
    let joined = b
        .select::<Note>()
        .join::<Kind>()
        .on(Note::KIND_ID.eq_col(Kind::ID))
        .all()
        .await
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].0.author, "b3");

    // Shared models (and the deprecated `global`) on the tenant database.
    b.insert(Legacy { id: 1 }).exec().await.unwrap();
    assert_eq!(b.select::<Legacy>().count().await.unwrap(), 1);
    assert_eq!(a.select::<Legacy>().count().await.unwrap(), 0);

    // Verification of the tenant's own tables.
    assert!(a.verify::<Note>().await.unwrap().is_ok());
    assert!(pebble::verify!(b, [Note, Kind]).await.unwrap().is_ok());
    b.batch_execute("ALTER TABLE notes ADD COLUMN extra int")
        .await
        .unwrap();
    assert!(!b.verify::<Note>().await.unwrap().is_ok());
    assert!(
        a.verify::<Note>().await.unwrap().is_ok(),
        "A's table is its own"
    );

    for tenant in [&a_id, &b_id] {
        manager.drop_tenant(tenant).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_savepoints_stay_in_the_tenants_database() {
    let id = ids();
    let manager = builder().build().unwrap();
    let (a_id, b_id) = (id("a"), id("b"));
    let a = manager.db(&a_id).await.unwrap();
    let b = manager.db(&b_id).await.unwrap();
    a.insert(note(1, "a")).exec().await.unwrap();

    let mut tx = b.begin().await.unwrap();
    assert_eq!(tx.id(), b_id);
    tx.insert(note(1, "b")).exec().await.unwrap();
    tx.copy_in([note(2, "b")]).exec().await.unwrap();
    assert_eq!(tx.select::<Note>().count().await.unwrap(), 2);
    {
        let savepoint = tx.begin().await.unwrap();
        savepoint.delete::<Note>().exec().await.unwrap();
        assert_eq!(savepoint.select::<Note>().count().await.unwrap(), 0);
        savepoint.rollback().await.unwrap();
    }
    tx.update::<Note>()
        .set(Note::AUTHOR, "b2")
        .exec()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(raw_authors(&b_id).await, BTreeSet::from(["b2".to_owned()]));
    assert_eq!(raw_authors(&a_id).await, BTreeSet::from(["a".to_owned()]));

    // A rolled-back transaction of A leaves both as they were.
    let tx = a.begin().await.unwrap();
    tx.delete::<Note>().exec().await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(a.select::<Note>().count().await.unwrap(), 1);
    assert_eq!(b.select::<Note>().count().await.unwrap(), 2);

    for tenant in [&a_id, &b_id] {
        manager.drop_tenant(tenant).await.unwrap();
    }
}

/// A hand-built verification list (which the types cannot check) with a
/// per-tenant model is refused by the plain `Db`, and nothing is checked.
#[tokio::test]
async fn a_plain_db_refuses_to_verify_a_per_tenant_model() {
    let database = pebble_testkit::database().await.unwrap();
    let db = Db::connect(database.config()).await.unwrap();
    db.create_table::<Kind>().await.unwrap();
    let err = db
        .verify_all(&[ModelSchema::of::<Kind>(), ModelSchema::of::<Note>()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PerTenantModelThroughDb { model: "Note" }),
        "{err:?}"
    );
    assert!(db
        .verify_all(&[ModelSchema::of::<Kind>()])
        .await
        .unwrap()
        .is_ok());
    // The deprecated `global` is `shared`: the plain `Db` takes it.
    db.create_table::<Legacy>().await.unwrap();
    assert_eq!(db.select::<Legacy>().count().await.unwrap(), 0);
}
