//! Generated `New*` insert types on real PostgreSQL: no placeholder ids,
//! tenants or timestamps; stamped with the handle's tenant and refused
//! like a model; one or many rows, in transactions and upserts, for tenant
//! and shared models; `returning()` gives the whole stored model.

use chrono::{DateTime, Utc};
use pebble::{Db, Error, Model};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tickets", insert = "NewTicket")]
struct Ticket {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    #[pebble(unique)]
    code: String,
    title: String,
    estimate: Option<i32>,
    #[pebble(default)]
    created_at: DateTime<Utc>,
    #[pebble(default = "'{}'::text[]::text")]
    labels: Option<String>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "plans", shared, insert, insert_derive(PartialEq))]
struct Plan {
    #[pebble(primary_key, default)]
    id: Uuid,
    name: String,
    seats: i16,
}

async fn database() -> (TestDatabase, Db) {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config()).await.expect("connect");
    db.create_table::<Ticket>().await.expect("tickets");
    db.create_table::<Plan>().await.expect("plans");
    (test_db, db)
}

fn new_ticket(code: &str, title: &str) -> NewTicket {
    NewTicket {
        code: code.to_owned(),
        title: title.to_owned(),
        estimate: None,
    }
}

#[tokio::test]
async fn a_new_value_is_stamped_and_filled_by_the_database() {
    let (_test_db, db) = database().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let before = Utc::now();
    let stored = db
        .tenant(a)
        .insert(NewTicket {
            code: "T-1".into(),
            title: "login fails".into(),
            estimate: Some(3),
        })
        .returning()
        .await
        .expect("insert");
    assert_eq!(stored.org, a);
    assert!(stored.id > 0);
    assert!(stored.created_at >= before - chrono::Duration::seconds(5));
    assert_eq!(stored.labels.as_deref(), Some("{}"));
    assert_eq!((stored.code.as_str(), stored.estimate), ("T-1", Some(3)));

    // The second tenant inserts the same code (unique per tenant) and
    // sees only its own row; the first tenant's row is untouched.
    let theirs = db
        .tenant(b)
        .insert(new_ticket("T-1", "theirs"))
        .returning()
        .await
        .expect("b insert");
    assert_eq!(theirs.org, b);
    assert_ne!(theirs.id, stored.id);
    let b_rows = db.tenant(b).select::<Ticket>().all().await.expect("b rows");
    assert_eq!(b_rows, [theirs]);
    let a_rows = db.tenant(a).select::<Ticket>().all().await.expect("a rows");
    assert_eq!(a_rows, [stored]);
}

#[tokio::test]
async fn many_new_values_in_one_statement() {
    let (_test_db, db) = database().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = db
        .tenant(a)
        .insert_many([new_ticket("A-1", "one"), new_ticket("A-2", "two")])
        .returning()
        .await
        .expect("insert_many");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.org == a && r.id > 0));
    let written = db
        .tenant(b)
        .insert_many(vec![new_ticket("B-1", "three")])
        .exec()
        .await
        .expect("b insert_many");
    assert_eq!(written, 1);
    // Nothing to insert sends nothing.
    let none = db
        .tenant(a)
        .insert_many(Vec::<NewTicket>::new())
        .exec()
        .await
        .expect("no rows");
    assert_eq!(none, 0);

    assert_eq!(db.tenant(a).select::<Ticket>().count().await.expect("a"), 2);
    assert_eq!(db.tenant(b).select::<Ticket>().count().await.expect("b"), 1);
    let all = db
        .cross_tenant()
        .select::<Ticket>()
        .all()
        .await
        .expect("all");
    assert_eq!(all.iter().filter(|t| t.org == a).count(), 2);
    assert_eq!(all.iter().filter(|t| t.org == b).count(), 1);
}

#[tokio::test]
async fn a_handle_without_a_tenant_refuses_new_values() {
    let (_test_db, db) = database().await;
    let unset = db.tenant(Uuid::nil());
    let refused = unset
        .insert(new_ticket("X-1", "nobody's"))
        .exec()
        .await
        .expect_err("unset tenant");
    assert!(
        matches!(refused, Error::InvalidTenantId { .. }),
        "{refused:?}"
    );
    let refused = unset
        .insert_many([new_ticket("X-2", "nobody's")])
        .exec()
        .await
        .expect_err("unset tenant");
    assert!(
        matches!(refused, Error::InvalidTenantId { .. }),
        "{refused:?}"
    );
    let stored = db
        .cross_tenant()
        .select::<Ticket>()
        .count()
        .await
        .expect("count");
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn new_values_in_transactions_and_upserts() {
    let (_test_db, db) = database().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tx = db.tenant(a).begin().await.expect("begin");
    tx.insert(new_ticket("A-1", "draft"))
        .exec()
        .await
        .expect("tx insert");
    tx.rollback().await.expect("rollback");
    assert_eq!(db.tenant(a).select::<Ticket>().count().await.expect("a"), 0);

    let tx = db.tenant(a).begin().await.expect("begin");
    tx.insert(new_ticket("A-1", "kept"))
        .exec()
        .await
        .expect("tx insert");
    tx.commit().await.expect("commit");

    // The same code from the other tenant is a new row, never an update of
    // the first tenant's.
    let upserted = db
        .tenant(b)
        .insert(new_ticket("A-1", "b's"))
        .on_conflict((Ticket::ORG, Ticket::CODE))
        .do_update(Ticket::TITLE)
        .returning()
        .await
        .expect("b upsert")
        .expect("a row");
    assert_eq!((upserted.org, upserted.title.as_str()), (b, "b's"));
    let upserted = db
        .tenant(a)
        .insert(new_ticket("A-1", "renamed"))
        .on_conflict((Ticket::ORG, Ticket::CODE))
        .do_update(Ticket::TITLE)
        .returning()
        .await
        .expect("a upsert")
        .expect("a row");
    assert_eq!((upserted.org, upserted.title.as_str()), (a, "renamed"));
    let a_rows = db.tenant(a).select::<Ticket>().all().await.expect("a rows");
    assert_eq!(a_rows.len(), 1);
    let b_rows = db.tenant(b).select::<Ticket>().all().await.expect("b rows");
    assert_eq!(b_rows.len(), 1);
    assert_eq!(b_rows[0].title, "b's");
}

#[tokio::test]
async fn shared_models_have_new_values_too() {
    let (_test_db, db) = database().await;
    let starter = NewPlan {
        name: "starter".into(),
        seats: 3,
    };
    assert_eq!(starter.clone(), starter); // insert_derive(PartialEq)
    let stored = db.insert(starter).returning().await.expect("plan");
    assert!(!stored.id.is_nil());
    assert_eq!((stored.name.as_str(), stored.seats), ("starter", 3));
    let plans = db
        .insert_many([
            NewPlan {
                name: "team".into(),
                seats: 10,
            },
            NewPlan {
                name: "firm".into(),
                seats: 50,
            },
        ])
        .returning()
        .await
        .expect("plans");
    assert_eq!(plans.len(), 2);
    assert_eq!(db.select::<Plan>().count().await.expect("count"), 3);
    // A whole model still inserts as before.
    db.insert(Plan {
        id: Uuid::nil(),
        name: "solo".into(),
        seats: 1,
    })
    .exec()
    .await
    .expect("model insert");
}
