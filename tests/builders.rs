//! The builders tell the truth: a value a caller set is stored (and an unset
//! `#[pebble(default)]` field gets the database default), and `update_model`
//! stamps an unset tenant like insert does.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{setup, Membership};
use pebble::{Db, Error, Model};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

/// Every kind of database-filled column: identity key, `gen_random_uuid()`,
/// `now()`, `CURRENT_DATE`, and explicit expressions on `Option` fields.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tickets")]
struct Ticket {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
    #[pebble(default)]
    token: Uuid,
    #[pebble(default)]
    opened_at: DateTime<Utc>,
    #[pebble(default)]
    due: NaiveDate,
    #[pebble(default = "'open'")]
    status: Option<String>,
    #[pebble(default = "3")]
    priority: Option<i32>,
}

const ORG: i64 = 7;

/// A ticket whose every defaulted field is unset: the database fills them.
fn unset(title: &str) -> Ticket {
    Ticket {
        id: 0,
        org: 0,
        title: title.to_owned(),
        token: Uuid::nil(),
        opened_at: DateTime::<Utc>::UNIX_EPOCH,
        due: DateTime::<Utc>::UNIX_EPOCH.date_naive(),
        status: None,
        priority: None,
    }
}

/// A ticket whose every defaulted field holds a value, `Some(0)` included.
/// Tests give it ids above 100, clear of the few the identity generates.
fn set(id: i64, title: &str) -> Ticket {
    Ticket {
        id,
        org: 0,
        title: title.to_owned(),
        token: Uuid::new_v4(),
        opened_at: Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("a valid time"),
        due: NaiveDate::from_ymd_opt(2024, 12, 24).expect("a valid date"),
        status: Some("closed".into()),
        priority: Some(0),
    }
}

async fn tickets() -> (TestDatabase, Db) {
    let (test_db, db) = setup().await;
    db.create_table::<Ticket>().await.expect("tickets");
    (test_db, db)
}

/// The row as stored must be `expected` with the tenant stamped.
fn assert_stored_as_set(stored: &Ticket, expected: &Ticket) {
    assert_eq!(
        stored,
        &Ticket {
            org: ORG,
            ..expected.clone()
        }
    );
}

/// The database filled every defaulted column of `stored`.
fn assert_filled_by_database(stored: &Ticket) {
    assert!(stored.id > 0, "{stored:?}");
    assert!(!stored.token.is_nil(), "{stored:?}");
    assert!(stored.opened_at > DateTime::<Utc>::UNIX_EPOCH, "{stored:?}");
    assert!(
        stored.due > DateTime::<Utc>::UNIX_EPOCH.date_naive(),
        "{stored:?}"
    );
    assert_eq!(stored.status.as_deref(), Some("open"));
    assert_eq!(stored.priority, Some(3));
}

#[tokio::test]
async fn a_set_default_field_is_stored_and_an_unset_one_gets_the_database_default() {
    let (_test_db, db) = tickets().await;
    let tenant = db.tenant(ORG);

    let given = set(1000, "given");
    let stored = tenant.insert(given.clone()).returning().await.unwrap();
    assert_stored_as_set(&stored, &given);
    // Read back, not just echoed by RETURNING.
    assert_stored_as_set(&tenant.find::<Ticket>(1000).one().await.unwrap(), &given);

    let filled = tenant.insert(unset("filled")).returning().await.unwrap();
    assert_filled_by_database(&filled);
    assert_eq!(filled.org, ORG);

    // `exec` sends the same statement as `returning`.
    let given = set(1001, "exec");
    assert_eq!(tenant.insert(given.clone()).exec().await.unwrap(), 1);
    assert_stored_as_set(&tenant.find::<Ticket>(1001).one().await.unwrap(), &given);
    assert_eq!(tenant.insert(unset("exec")).exec().await.unwrap(), 1);
    assert_eq!(tenant.select::<Ticket>().count().await.unwrap(), 4);
}

#[tokio::test]
async fn insert_many_mixes_set_and_unset_rows_in_one_statement() {
    let (_test_db, db) = tickets().await;
    let tenant = db.tenant(ORG);
    let rows = [set(500, "a"), unset("b"), set(501, "c"), unset("d")];

    let insert = tenant.insert_many(rows.clone());
    let sql = insert.to_sql().unwrap();
    assert_eq!(sql.matches("INSERT").count(), 1, "{sql}");
    assert!(
        sql.contains(
            r#"("id", "org", "title", "token", "opened_at", "due", "status", "priority")"#
        ),
        "{sql}"
    );
    assert!(
        sql.contains("(DEFAULT, $9, $10, DEFAULT, DEFAULT, DEFAULT, DEFAULT, DEFAULT)"),
        "{sql}"
    );

    let mut stored = insert.returning().await.unwrap();
    assert_eq!(stored.len(), 4);
    stored.sort_by(|x, y| x.title.cmp(&y.title));
    assert_stored_as_set(&stored[0], &rows[0]);
    assert_filled_by_database(&stored[1]);
    assert_stored_as_set(&stored[2], &rows[2]);
    assert_filled_by_database(&stored[3]);
    assert_ne!(stored[1].id, stored[3].id);
    assert_ne!(stored[1].token, stored[3].token);
}

#[tokio::test]
async fn upserts_send_set_values_and_defaults_alike() {
    let (_test_db, db) = tickets().await;
    let tenant = db.tenant(ORG);
    tenant.insert(set(42, "first")).exec().await.unwrap();

    // A conflict on a set key: the new values overwrite the stored ones.
    let mut second = set(42, "second");
    second.priority = Some(9);
    let updated = tenant
        .insert(second.clone())
        .on_conflict(Ticket::ID)
        .do_update((Ticket::TITLE, Ticket::PRIORITY))
        .returning()
        .await
        .unwrap()
        .expect("the tenant's own row is updated");
    assert_eq!((updated.title.as_str(), updated.priority), ("second", Some(9)));

    // A conflicting row whose status is unset: `excluded` carries the
    // database default, as the plain insert would have stored.
    let mut reopened = set(42, "third");
    reopened.status = None;
    let updated = tenant
        .insert(reopened)
        .on_conflict(Ticket::ID)
        .do_update(Ticket::STATUS)
        .returning()
        .await
        .unwrap()
        .expect("the tenant's own row is updated");
    assert_eq!(updated.status.as_deref(), Some("open"));
    assert_eq!(updated.title, "second");

    // An unset key never conflicts: the database generates a new one.
    let fresh = tenant
        .insert(unset("fresh"))
        .on_conflict(Ticket::ID)
        .do_nothing()
        .returning()
        .await
        .unwrap()
        .expect("a new row");
    assert_filled_by_database(&fresh);
    assert_ne!(fresh.id, 42);

    // do_nothing on a set key leaves the stored row as it was.
    let skipped = tenant
        .insert_many([set(42, "ignored"), unset("new")])
        .on_conflict(Ticket::ID)
        .do_nothing()
        .returning()
        .await
        .unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].title, "new");
    assert_eq!(
        tenant.find::<Ticket>(42).one().await.unwrap().title,
        "second"
    );
}

#[tokio::test]
async fn update_model_stamps_an_unset_tenant_in_the_primary_key() {
    let (_test_db, db) = setup().await;
    let (mine, theirs) = (db.tenant(7_i32), db.tenant(8_i32));
    let member = |org, role: &str| Membership {
        org,
        user_name: "ann".into(),
        role: role.into(),
    };
    mine.insert(member(0, "member")).exec().await.unwrap();
    theirs.insert(member(0, "member")).exec().await.unwrap();

    // The tenant part of the key is unset, as on a row built for insert.
    let stored = mine.update_model(&member(0, "admin")).await.unwrap();
    assert_eq!(stored, member(7, "admin"));
    assert_eq!(
        mine.find::<Membership>((7, "ann".into()))
            .one()
            .await
            .unwrap(),
        member(7, "admin")
    );
    // The other tenant's row with the same user name is untouched.
    assert_eq!(
        theirs
            .find::<Membership>((8, "ann".into()))
            .one()
            .await
            .unwrap(),
        member(8, "member")
    );

    // Stamped, not widened: a key this tenant does not have is still not found.
    let ghost = Membership {
        user_name: "ghost".into(),
        ..member(0, "admin")
    };
    let err = mine.update_model(&ghost).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { table: "memberships" }),
        "{err}"
    );
    // And a key naming the other tenant is refused before anything is sent.
    let err = mine.update_model(&member(8, "owner")).await.unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert_eq!(
        theirs
            .find::<Membership>((8, "ann".into()))
            .one()
            .await
            .unwrap()
            .role,
        "member"
    );
}
