//! What each builder does, on real PostgreSQL: filters, ordering, paging,
//! returning, upserts, shared models, composite keys and every column type.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{setup, two_tenants, Document, Membership, Plan, Sample, User, ORG_A};
use pebble::{Error, Model};
use uuid::Uuid;

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

#[tokio::test]
async fn comparison_filters() {
    let t = two_tenants().await;
    let tenant = t.db.tenant(t.a);
    // Builders own their connection source, so the future outlives the closure.
    let query = |filter| {
        let select = tenant
            .select::<User>()
            .filter(filter)
            .order_by(User::NAME.asc());
        async move {
            let users = select.all().await.unwrap();
            users.into_iter().map(|u| u.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(query(User::AGE.eq(31)).await, ["ann"]);
    assert_eq!(query(User::AGE.ne(31)).await, ["bob", "cy"]);
    assert_eq!(query(User::AGE.gt(31)).await, ["bob"]);
    assert_eq!(query(User::AGE.gte(31)).await, ["ann", "bob"]);
    assert_eq!(query(User::AGE.lt(31)).await, ["cy"]);
    assert_eq!(query(User::AGE.lte(31)).await, ["ann", "cy"]);
    assert_eq!(query(User::AGE.between(17, 31)).await, ["ann", "cy"]);
    assert_eq!(
        query(User::NAME.is_in(["bob", "cy", "zed"])).await,
        ["bob", "cy"]
    );
    assert_eq!(
        query(User::NAME.is_in(Vec::<String>::new())).await,
        Vec::<String>::new()
    );
    assert_eq!(query(User::NAME.not_in(["bob"])).await, ["ann", "cy"]);
    assert_eq!(
        query(User::NAME.not_in(Vec::<&str>::new())).await,
        ["ann", "bob", "cy"]
    );
    assert_eq!(query(User::NAME.like("a%")).await, ["ann"]);
    assert_eq!(query(User::NAME.like("A%")).await, Vec::<String>::new());
    assert_eq!(query(User::NAME.ilike("A%")).await, ["ann"]);
    assert_eq!(query(User::NICKNAME.is_null()).await, ["ann", "bob", "cy"]);
    assert_eq!(
        query(User::NICKNAME.is_not_null()).await,
        Vec::<String>::new()
    );
    assert_eq!(
        query(!User::AGE.gt(20) & User::NAME.ne("zed")).await,
        ["cy"]
    );
    assert_eq!(
        query(User::AGE.lt(18).or(User::AGE.gt(40))).await,
        ["bob", "cy"]
    );
    assert_eq!(
        query(User::AGE.lt(18).and(User::AGE.gt(40))).await,
        Vec::<String>::new()
    );

    // A nullable column compared with a plain value.
    tenant
        .update::<User>()
        .set(User::NICKNAME, "annie")
        .filter(User::NAME.eq("ann"))
        .exec()
        .await
        .unwrap();
    assert_eq!(query(User::NICKNAME.eq("annie")).await, ["ann"]);
    assert_eq!(query(User::NICKNAME.is_not_null()).await, ["ann"]);
}

#[tokio::test]
async fn order_limit_offset_one_optional() {
    let t = two_tenants().await;
    let tenant = t.db.tenant(t.a);
    let by_age = tenant
        .select::<User>()
        .order_by(User::AGE.desc())
        .all()
        .await
        .unwrap();
    assert_eq!(names(&by_age), ["bob", "ann", "cy"]);

    let page = tenant
        .select::<User>()
        .order_by(User::AGE.asc())
        .limit(2)
        .offset(1)
        .all()
        .await
        .unwrap();
    assert_eq!(names(&page), ["ann", "bob"]);

    let oldest = tenant
        .select::<User>()
        .order_by(User::AGE.desc())
        .one()
        .await
        .unwrap();
    assert_eq!(oldest.name, "bob");
    let none = tenant
        .select::<User>()
        .filter(User::AGE.gt(100))
        .optional()
        .await
        .unwrap();
    assert_eq!(none, None);
    assert!(matches!(
        tenant
            .select::<User>()
            .filter(User::AGE.gt(100))
            .one()
            .await,
        Err(Error::NotFound { table: "users" })
    ));

    // Huge pages mean "everything", not a server error.
    let all = tenant
        .select::<User>()
        .limit(u64::MAX)
        .offset(0)
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(tenant
        .select::<User>()
        .offset(u64::MAX)
        .all()
        .await
        .unwrap()
        .is_empty());

    // Count ignores paging and order.
    let counted = tenant
        .select::<User>()
        .order_by(User::AGE.asc())
        .limit(1)
        .offset(1)
        .count()
        .await
        .unwrap();
    assert_eq!(counted, 3);
    assert!(tenant
        .select::<User>()
        .limit(1)
        .offset(5)
        .exists()
        .await
        .unwrap());
}

#[tokio::test]
async fn update_set_returning_and_update_model() {
    let t = two_tenants().await;
    let tenant = t.db.tenant(t.a);
    let changed = tenant
        .update::<User>()
        .set(User::AGE, 18)
        .set(User::NICKNAME, Some("kid".to_owned()))
        .filter(User::NAME.eq("cy"))
        .returning()
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].age, changed[0].nickname.as_deref()),
        (18, Some("kid"))
    );

    let cleared = tenant
        .update::<User>()
        .set(User::NICKNAME, None)
        .exec()
        .await
        .unwrap();
    assert_eq!(cleared, 3);

    let mut ann = tenant
        .select::<User>()
        .filter(User::NAME.eq("ann"))
        .one()
        .await
        .unwrap();
    ann.age = 32;
    ann.email = "ann@new.example".into();
    let stored = tenant.update_model(&ann).await.unwrap();
    assert_eq!(stored, ann);
    assert_eq!(tenant.find::<User>(ann.id).one().await.unwrap(), ann);

    let mut ghost = ann.clone();
    ghost.id = Uuid::new_v4();
    assert!(matches!(
        tenant.update_model(&ghost).await,
        Err(Error::NotFound { .. })
    ));

    let err = tenant
        .update::<User>()
        .filter(User::AGE.gt(1))
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NothingToSet { .. }), "{err}");
}

#[tokio::test]
async fn update_refuses_a_hand_made_tenant_column() {
    let t = two_tenants().await;
    // The derive's constant for the tenant column is a `TenantColumn`, which
    // `set` does not take; a `Column` forged by hand is refused at run time.
    let forged: pebble::Column<User, Uuid> = pebble::Column::new("tenant_id");
    let err =
        t.db.tenant(t.a)
            .update::<User>()
            .set(forged, t.b)
            .exec()
            .await
            .unwrap_err();
    assert!(matches!(err, Error::TenantColumnAssigned { .. }), "{err}");
    assert_eq!(t.users_of(t.a).await.len(), 3);
    assert_eq!(t.users_of(t.b).await.len(), 3);
}

#[tokio::test]
async fn delete_returning() {
    let t = two_tenants().await;
    let gone =
        t.db.tenant(ORG_A)
            .delete::<Document>()
            .filter(Document::PAGES.gt(5))
            .returning()
            .await
            .unwrap();
    let mut titles: Vec<_> = gone.iter().map(|d| d.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["plan", "report"]);
    assert_eq!(t.documents_of(ORG_A).await.len(), 1);
}

#[tokio::test]
async fn upserts_within_a_tenant() {
    let t = two_tenants().await;
    let docs = t.db.tenant(ORG_A);
    let updated = docs
        .insert(Document::new(1, "plan v2", 11))
        .on_conflict(Document::ID)
        .do_update((Document::TITLE, Document::PAGES))
        .returning()
        .await
        .unwrap()
        .expect("own row updated");
    assert_eq!((updated.title.as_str(), updated.pages), ("plan v2", 11));

    let inserted = docs
        .insert(Document::new(4, "new", 4))
        .on_conflict(Document::ID)
        .do_update(Document::TITLE)
        .returning()
        .await
        .unwrap()
        .expect("inserted");
    assert_eq!(inserted.org_id, ORG_A);

    let skipped = docs
        .insert(Document::new(4, "ignored", 0))
        .on_conflict(Document::ID)
        .do_nothing()
        .returning()
        .await
        .unwrap();
    assert_eq!(skipped, None);

    let many = docs
        .insert_many([Document::new(4, "four", 4), Document::new(5, "five", 5)])
        .on_conflict(Document::ID)
        .do_update(Document::TITLE)
        .returning()
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(docs.find::<Document>(4).one().await.unwrap().title, "four");
}

#[tokio::test]
async fn empty_insert_many_is_a_no_op() {
    let t = two_tenants().await;
    let tenant = t.db.tenant(t.a);
    assert_eq!(
        tenant.insert_many(Vec::<User>::new()).exec().await.unwrap(),
        0
    );
    assert!(tenant
        .insert_many(Vec::<User>::new())
        .returning()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn global_models_through_db() {
    let (_test_db, db) = setup().await;
    let plans = [
        Plan {
            code: "free".into(),
            price_cents: 0,
            seats: 1,
        },
        Plan {
            code: "team".into(),
            price_cents: 4900,
            seats: 10,
        },
    ];
    assert_eq!(db.insert_many(plans.clone()).exec().await.unwrap(), 2);
    let stored = db
        .select::<Plan>()
        .order_by(Plan::PRICE_CENTS.asc())
        .all()
        .await
        .unwrap();
    assert_eq!(stored, plans);
    assert_eq!(
        db.find::<Plan>("team".to_owned()).one().await.unwrap(),
        plans[1]
    );

    let mut team = plans[1].clone();
    team.seats = 25;
    assert_eq!(db.update_model(&team).await.unwrap(), team);
    assert_eq!(
        db.update::<Plan>()
            .set(Plan::PRICE_CENTS, 100)
            .filter(Plan::CODE.eq("free"))
            .exec()
            .await
            .unwrap(),
        1
    );
    let upserted = db
        .insert(Plan {
            code: "free".into(),
            price_cents: 1,
            seats: 2,
        })
        .on_conflict(Plan::CODE)
        .do_update(Plan::SEATS)
        .returning()
        .await
        .unwrap()
        .expect("updated");
    assert_eq!((upserted.price_cents, upserted.seats), (100, 2));
    assert_eq!(
        db.delete::<Plan>()
            .filter(Plan::SEATS.lt(5))
            .exec()
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.select::<Plan>().count().await.unwrap(), 1);
}

#[tokio::test]
async fn composite_primary_key_with_the_tenant_in_it() {
    let (_test_db, db) = setup().await;
    let org = db.tenant(7_i32);
    org.insert_many([
        Membership {
            org: 0,
            user_name: "ann".into(),
            role: "admin".into(),
        },
        Membership {
            org: 0,
            user_name: "bob".into(),
            role: "member".into(),
        },
    ])
    .exec()
    .await
    .unwrap();
    db.tenant(8_i32)
        .insert(Membership {
            org: 0,
            user_name: "ann".into(),
            role: "owner".into(),
        })
        .exec()
        .await
        .unwrap();

    let ann = org
        .find::<Membership>((7, "ann".to_owned()))
        .one()
        .await
        .unwrap();
    assert_eq!(ann.role, "admin");
    // The key names tenant 8, but the handle is tenant 7: not found.
    assert!(org
        .find::<Membership>((8, "ann".to_owned()))
        .optional()
        .await
        .unwrap()
        .is_none());

    let mut promoted = ann.clone();
    promoted.role = "owner".into();
    assert_eq!(org.update_model(&promoted).await.unwrap(), promoted);
    let other = db
        .tenant(8_i32)
        .find::<Membership>((8, "ann".to_owned()))
        .one()
        .await
        .unwrap();
    assert_eq!(other.role, "owner");
    assert_eq!(
        db.tenant(8_i32)
            .select::<Membership>()
            .count()
            .await
            .unwrap(),
        1
    );
}

fn sample(tenant: &str, seed: i32) -> Sample {
    Sample {
        id: 0,
        tenant: tenant.to_owned(),
        uuid: Uuid::new_v4(),
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
        maybe_uuid: Some(Uuid::new_v4()),
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

fn nulls(mut s: Sample) -> Sample {
    s.maybe_uuid = None;
    s.maybe_text = None;
    s.maybe_small = None;
    s.maybe_int = None;
    s.maybe_big = None;
    s.maybe_real = None;
    s.maybe_double = None;
    s.maybe_flag = None;
    s.maybe_bytes = None;
    s.maybe_at = None;
    s.maybe_day = None;
    s.maybe_doc = None;
    s
}

#[tokio::test]
async fn every_column_type_round_trips() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant("acme".to_owned());
    let full = sample("", 1);
    let empty = nulls(sample("acme", 2));
    let stored = tenant
        .insert_many([full.clone(), empty.clone()])
        .returning()
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
        assert_eq!(
            tenant.find::<Sample>(stored.id).one().await.unwrap(),
            expected
        );
    }

    // Filters on each kind of column.
    let s = &stored[0];
    let hits = |filter| {
        let count = tenant.select::<Sample>().filter(filter).count();
        async move { count.await.unwrap() }
    };
    assert_eq!(hits(Sample::UUID.eq(s.uuid)).await, 1);
    assert_eq!(hits(Sample::BYTES.eq(vec![0u8, 1, 2, 255])).await, 2);
    assert_eq!(hits(Sample::AT.lt(Utc::now())).await, 2);
    assert_eq!(
        hits(Sample::DAY.between(
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2100, 1, 1).unwrap()
        ))
        .await,
        2
    );
    assert_eq!(hits(Sample::DOC.eq(s.doc.clone())).await, 1);
    assert_eq!(hits(Sample::DOUBLE.lt(0.0)).await, 2);
    assert_eq!(hits(Sample::FLAG.eq(true)).await, 2);
    assert_eq!(hits(Sample::SMALL.eq(i16::MIN)).await, 2);
    assert_eq!(hits(Sample::MAYBE_BIG.is_in([i64::MAX])).await, 1);
    assert_eq!(hits(Sample::MAYBE_UUID.is_null()).await, 1);
    assert_eq!(hits(Sample::MAYBE_TEXT.like("%")).await, 1);
    assert_eq!(
        hits(Sample::MAYBE_AT.eq(DateTime::<Utc>::UNIX_EPOCH)).await,
        1
    );

    // Another String tenant sees none of it.
    assert_eq!(
        db.tenant("globex".to_owned())
            .select::<Sample>()
            .count()
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn create_table_is_idempotent_and_matches_the_metadata() {
    let (_test_db, db) = setup().await;
    db.create_table::<User>().await.unwrap();
    db.create_table::<Sample>().await.unwrap();
    assert_eq!(<Sample as Model>::COLUMNS.len(), 26);
    assert_eq!(<User as Model>::TABLE, "users");
    assert_eq!(<Sample as Model>::TABLE, "sample");
}

#[tokio::test]
async fn scoped_sql_text() {
    let t = two_tenants().await;
    let tenant = t.db.tenant(t.a);
    assert_eq!(
        tenant
            .select::<User>()
            .filter(User::AGE.gt(30).or(User::NAME.eq("ann")))
            .order_by(User::NAME.asc())
            .limit(10)
            .to_sql()
            .unwrap(),
        r#"SELECT "id", "tenant_id", "email", "name", "age", "nickname" FROM "users" WHERE "tenant_id" = $1 AND ("age" > $2 OR "name" = $3) ORDER BY "name" ASC LIMIT $4"#
    );
    assert_eq!(
        tenant
            .update::<User>()
            .set(User::AGE, 1)
            .filter(User::NAME.eq("ann"))
            .to_sql()
            .unwrap(),
        r#"UPDATE "users" SET "age" = $1 WHERE "tenant_id" = $2 AND "name" = $3"#
    );
    assert_eq!(
        tenant
            .delete::<User>()
            .filter(User::AGE.lt(1))
            .to_sql()
            .unwrap(),
        r#"DELETE FROM "users" WHERE "tenant_id" = $1 AND "age" < $2"#
    );
    assert_eq!(
        tenant.insert(User::new("x", 1)).to_sql().unwrap(),
        r#"INSERT INTO "users" ("id", "tenant_id", "email", "name", "age", "nickname") VALUES (DEFAULT, $1, $2, $3, $4, $5)"#
    );
    assert_eq!(
        t.db.tenant(ORG_A)
            .insert(Document::new(1, "x", 1))
            .on_conflict(Document::ID)
            .do_update(Document::TITLE)
            .to_sql()
            .unwrap(),
        r#"INSERT INTO "documents" ("id", "org_id", "title", "pages", "created_at") VALUES ($1, $2, $3, $4, DEFAULT) ON CONFLICT ("id") DO UPDATE SET "title" = "excluded"."title" WHERE "documents"."org_id" = $5"#
    );
}

/// A model whose every column the database fills.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(shared)]
struct Tick {
    #[pebble(primary_key, default)]
    id: i64,
    #[pebble(default)]
    at: DateTime<Utc>,
}

#[tokio::test]
async fn inserting_rows_the_database_fills_entirely() {
    let (_test_db, db) = setup().await;
    db.create_table::<Tick>().await.unwrap();
    let blank = || Tick {
        id: 0,
        at: DateTime::<Utc>::UNIX_EPOCH,
    };
    let one = db.insert(blank()).returning().await.unwrap();
    let many = db
        .insert_many([blank(), blank(), blank()])
        .returning()
        .await
        .unwrap();
    let mut ids: Vec<i64> = many.iter().map(|t| t.id).chain([one.id]).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert!(many.iter().all(|t| t.at > DateTime::<Utc>::UNIX_EPOCH));
    assert_eq!(db.select::<Tick>().count().await.unwrap(), 4);
}
