//! Bulk loads: `insert_many` past PostgreSQL's 65,535 bind parameters (split
//! into statements in one transaction), and binary `COPY` with `copy_in`;
//! stamped and refused like any insert, all or nothing, and as a second
//! tenant nothing of the first is seen or changed.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::rls::Fixture;
use common::{setup, Document, Sample, User};
use pebble::{Db, Error, Model};
use pebble_testkit::TestDatabase;

/// Four columns: 20,000 rows are 80,000 bind parameters.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "items")]
struct Item {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    name: String,
    qty: i32,
}

fn items(ids: std::ops::Range<i64>) -> Vec<Item> {
    ids.map(|id| Item {
        id,
        org: 0,
        name: format!("item {id}"),
        qty: (id % 7) as i32,
    })
    .collect()
}

const A: i64 = 1;
const B: i64 = 2;

async fn db_with_items() -> (TestDatabase, Db) {
    let (test_db, db) = setup().await;
    db.create_table::<Item>().await.unwrap();
    // Tenant B's own rows, which no load of A may touch.
    db.tenant(B)
        .insert_many(items(900_000..900_010))
        .exec()
        .await
        .unwrap();
    (test_db, db)
}

async fn all_items(db: &Db) -> Vec<Item> {
    db.cross_tenant()
        .select::<Item>()
        .order_by(Item::ID.asc())
        .all()
        .await
        .unwrap()
}

async fn b_untouched(db: &Db) {
    let b: Vec<Item> = all_items(db)
        .await
        .into_iter()
        .filter(|i| i.org == B)
        .collect();
    let mut expected = items(900_000..900_010);
    expected.iter_mut().for_each(|i| i.org = B);
    assert_eq!(b, expected, "tenant B's rows changed");
}

#[tokio::test]
async fn insert_many_splits_past_the_parameter_limit() {
    let (_test_db, db) = db_with_items().await;
    let insert = db.tenant(A).insert_many(items(0..20_000));
    let statements = insert.statements().unwrap();
    assert_eq!(statements.len(), 2);
    assert!(statements.iter().all(|s| s.params().len() <= 65_535));
    assert!(matches!(
        insert.build(),
        Err(Error::SplitInsert {
            rows: 20_000,
            statements: 2,
            ..
        })
    ));
    assert_eq!(insert.exec().await.unwrap(), 20_000);

    let stored = db
        .tenant(A)
        .select::<Item>()
        .order_by(Item::ID.asc())
        .all()
        .await
        .unwrap();
    let mut expected = items(0..20_000);
    expected.iter_mut().for_each(|i| i.org = A);
    assert_eq!(stored, expected, "every row, stamped with the tenant");
    b_untouched(&db).await;

    // returning() gives every row back, in order.
    let returned = db
        .tenant(A)
        .insert_many(items(100_000..120_000))
        .returning()
        .await
        .unwrap();
    let ids: Vec<i64> = returned.iter().map(|i| i.id).collect();
    assert_eq!(ids, (100_000..120_000).collect::<Vec<_>>());
    assert!(returned.iter().all(|i| i.org == A));

    // An upsert split the same way keeps its tenant condition in every statement.
    let renamed: Vec<Item> = items(0..20_000)
        .into_iter()
        .map(|mut i| {
            i.name = "renamed".into();
            i
        })
        .collect();
    let upserted = db
        .tenant(A)
        .insert_many(renamed)
        .on_conflict(Item::ID)
        .do_update(Item::NAME)
        .exec()
        .await
        .unwrap();
    assert_eq!(upserted, 20_000);
    let n = db
        .tenant(A)
        .select::<Item>()
        .filter(Item::NAME.eq("renamed"))
        .count()
        .await
        .unwrap();
    assert_eq!(n, 20_000);

    // As tenant B, the same ids conflict with A's rows: the split upsert
    // updates none of them, and returns none.
    let stolen = db
        .tenant(B)
        .insert_many(items(0..20_000))
        .on_conflict(Item::ID)
        .do_update(Item::NAME)
        .returning()
        .await
        .unwrap();
    assert!(stolen.is_empty());
    let n = db
        .tenant(A)
        .select::<Item>()
        .filter(Item::NAME.eq("renamed"))
        .count()
        .await
        .unwrap();
    assert_eq!(n, 20_000, "tenant A's rows unchanged");
    b_untouched(&db).await;
}

#[tokio::test]
async fn a_failing_statement_of_a_split_insert_writes_nothing() {
    let (_test_db, db) = db_with_items().await;
    // Row 19,000 repeats row 1's id: the second statement fails after the first ran.
    let mut rows = items(0..20_000);
    rows[19_000].id = 1;
    let err = db.tenant(A).insert_many(rows).exec().await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(
        db.tenant(A).select::<Item>().count().await.unwrap(),
        0,
        "all or nothing"
    );

    // A foreign row at 15,000 refuses the whole insert before anything is sent.
    let mut rows = items(0..20_000);
    rows[15_000].org = B;
    let err = db.tenant(A).insert_many(rows).exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert_eq!(db.tenant(A).select::<Item>().count().await.unwrap(), 0);

    // Tenant B's load colliding with its own ids fails whole, and A is untouched.
    db.tenant(A).insert_many(items(0..10)).exec().await.unwrap();
    let err = db
        .tenant(B)
        .insert_many(items(900_005..920_000))
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    b_untouched(&db).await;
    assert_eq!(db.tenant(A).select::<Item>().count().await.unwrap(), 10);

    // Inside a transaction the split insert uses it: rolled back, nothing stays.
    let tx = db.tenant(A).begin().await.unwrap();
    assert_eq!(
        tx.insert_many(items(20..20_020)).exec().await.unwrap(),
        20_000
    );
    assert_eq!(tx.select::<Item>().count().await.unwrap(), 20_010);
    tx.rollback().await.unwrap();
    assert_eq!(db.tenant(A).select::<Item>().count().await.unwrap(), 10);
}

#[tokio::test]
async fn copy_loads_100_000_rows() {
    let (_test_db, db) = setup().await;
    db.tenant(B)
        .insert_many([Document::new(1, "b's own", 1)])
        .exec()
        .await
        .unwrap();
    let docs = (10..100_010).map(|i| Document::new(i, "copied", (i % 50) as i32));
    assert_eq!(db.tenant(A).copy_in(docs).exec().await.unwrap(), 100_000);

    let a = db.tenant(A);
    assert_eq!(a.select::<Document>().count().await.unwrap(), 100_000);
    let sample = a.find::<Document>(77).one().await.unwrap();
    assert_eq!(
        (sample.org_id, sample.title.as_str(), sample.pages),
        (A, "copied", 27)
    );
    // created_at was unset in every row: left out, filled by the database.
    assert!(sample.created_at > DateTime::<Utc>::UNIX_EPOCH);
    let b = db.tenant(B).select::<Document>().all().await.unwrap();
    assert_eq!(b.len(), 1, "tenant B sees none of A's rows");
    assert_eq!(b[0].title, "b's own");

    // A foreign row refuses the whole load: nothing written.
    let mut docs: Vec<Document> = (200_000..250_000)
        .map(|i| Document::new(i, "x", 1))
        .collect();
    docs[30_000].org_id = B;
    let err = db.tenant(A).copy_in(docs).exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert_eq!(a.select::<Document>().count().await.unwrap(), 100_000);

    // A failure on the server (a duplicate key) writes nothing either.
    let dup = (300_000..300_100)
        .chain([10])
        .map(|i| Document::new(i, "dup", 1));
    let err = db.tenant(A).copy_in(dup).exec().await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(a.select::<Document>().count().await.unwrap(), 100_000);

    // As tenant B: a load colliding with A's ids fails whole and changes nothing of A.
    let err = db
        .tenant(B)
        .copy_in((50..60).map(|i| Document::new(i, "b", 1)))
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(db.tenant(B).select::<Document>().count().await.unwrap(), 1);
    assert_eq!(a.find::<Document>(55).one().await.unwrap().title, "copied");
}

#[tokio::test]
async fn copy_and_database_defaults() {
    let (_test_db, db) = setup().await;
    let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let mut set = Document::new(1, "dated", 1);
    set.created_at = at;
    let unset = Document::new(2, "undated", 1);

    // Some rows set a defaulted column and others leave it unset: refused.
    let err = db
        .tenant(A)
        .copy_in([set.clone(), unset.clone()])
        .exec()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CopyMixedDefaults {
                column: "created_at",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(db.tenant(A).select::<Document>().count().await.unwrap(), 0);

    // Every row sets it: stored as given.
    db.tenant(A).copy_in([set]).exec().await.unwrap();
    assert_eq!(
        db.tenant(A)
            .find::<Document>(1)
            .one()
            .await
            .unwrap()
            .created_at,
        at
    );
    // No rows: nothing sent.
    assert_eq!(
        db.tenant(A)
            .copy_in(Vec::<Document>::new())
            .exec()
            .await
            .unwrap(),
        0
    );

    // Users: the uuid key is generated by the database for every row.
    let users = (0..1000).map(|i| User::new(&format!("u{i}"), i));
    assert_eq!(
        db.tenant(uuid::Uuid::new_v4())
            .copy_in(users)
            .exec()
            .await
            .unwrap(),
        1000
    );

    // Inside a transaction: rolled back with it.
    let tx = db.tenant(A).begin().await.unwrap();
    tx.copy_in([unset]).exec().await.unwrap();
    assert_eq!(tx.select::<Document>().count().await.unwrap(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(db.tenant(A).select::<Document>().count().await.unwrap(), 1);
    // An unset tenant runs nothing.
    let err = db
        .tenant(0_i64)
        .copy_in([Document::new(3, "x", 1)])
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err}");
}

#[tokio::test]
async fn bulk_loads_under_row_level_security() {
    let f = Fixture::new().await;
    let users = |prefix: &str| -> Vec<User> {
        (0..30_000)
            .map(|i| User::new(&format!("{prefix}{i}"), i % 90))
            .collect()
    };
    // COPY FROM is refused to a role under RLS: copy_in goes as chunked INSERTs.
    assert_eq!(
        f.app.tenant(f.a).copy_in(users("c")).exec().await.unwrap(),
        30_000
    );
    // 30,000 rows of 6 columns: 180,000 parameters, three statements.
    assert_eq!(
        f.app
            .tenant(f.a)
            .insert_many(users("i"))
            .exec()
            .await
            .unwrap(),
        30_000
    );
    assert_eq!(f.users_of(f.a).await.len(), 60_002);
    assert_eq!(f.users_of(f.b).await.len(), 2, "tenant B untouched");

    // A duplicate in the last statement: nothing of the load stays.
    let mut rows = users("d");
    rows[29_999].email = rows[0].email.clone();
    let err = f
        .app
        .tenant(f.b)
        .insert_many(rows)
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(f.users_of(f.b).await.len(), 2);
    // A foreign row refuses the load under RLS too.
    let mut rows = users("e");
    rows[20_000].tenant_id = f.a;
    let err = f.app.tenant(f.b).copy_in(rows).exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert_eq!(f.users_of(f.b).await.len(), 2);
    assert_eq!(f.users_of(f.a).await.len(), 60_002);

    // In an RLS transaction, the split insert runs in it and rolls back with it.
    let tx = f.app.tenant(f.b).begin().await.unwrap();
    tx.copy_in(users("t")).exec().await.unwrap();
    assert_eq!(tx.select::<User>().count().await.unwrap(), 30_002);
    tx.rollback().await.unwrap();
    assert_eq!(f.users_of(f.b).await.len(), 2);
    f.cleanup().await;
}

fn sample(seed: i32) -> Sample {
    Sample {
        id: 0,
        tenant: String::new(),
        uuid: uuid::Uuid::new_v4(),
        text: format!("text {seed} ünïcødé ✓"),
        small: i16::MIN,
        int: i32::MAX - seed,
        big: i64::MIN + 1,
        real: 1.5,
        double: -2.25e300,
        flag: true,
        bytes: vec![0, 1, 2, 255],
        at: Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap(),
        day: NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
        doc: serde_json::json!({"seed": seed, "nested": [1, "two", null]}),
        maybe_uuid: Some(uuid::Uuid::new_v4()),
        maybe_text: Some(String::new()),
        maybe_small: Some(-1),
        maybe_int: Some(0),
        maybe_big: Some(i64::MAX),
        maybe_real: Some(f32::MIN_POSITIVE),
        maybe_double: Some(0.1),
        maybe_flag: Some(false),
        maybe_bytes: Some(Vec::new()),
        maybe_at: Some(DateTime::<Utc>::UNIX_EPOCH),
        maybe_day: Some(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()),
        maybe_doc: Some(serde_json::json!([])),
    }
}

/// Every column type goes through binary COPY as it goes through INSERT
/// (the binary format must match each column's type exactly: jsonb, dates,
/// bytea, NULLs of every type).
#[tokio::test]
async fn copy_round_trips_every_column_type() {
    let (_test_db, db) = setup().await;
    let full = sample(1);
    let mut empty = sample(2);
    empty.maybe_uuid = None;
    empty.maybe_text = None;
    empty.maybe_small = None;
    empty.maybe_int = None;
    empty.maybe_big = None;
    empty.maybe_real = None;
    empty.maybe_double = None;
    empty.maybe_flag = None;
    empty.maybe_bytes = None;
    empty.maybe_at = None;
    empty.maybe_day = None;
    empty.maybe_doc = None;
    let tenant = db.tenant("acme".to_owned());
    let rows = vec![full.clone(), empty.clone()];
    assert_eq!(tenant.copy_in(rows).exec().await.unwrap(), 2);
    let stored = tenant
        .select::<Sample>()
        .order_by(Sample::ID.asc())
        .all()
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (original, stored) in [full, empty].into_iter().zip(&stored) {
        let expected = Sample {
            id: stored.id,
            tenant: "acme".into(),
            ..original
        };
        assert_eq!(stored, &expected);
    }
    let other = db
        .tenant("globex".to_owned())
        .select::<Sample>()
        .count()
        .await
        .unwrap();
    assert_eq!(other, 0);
}
