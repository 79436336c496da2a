//! The builders tell the truth: a value a caller set is stored (and an unset
//! `#[pebble(default)]` field gets the database default), `update_model`
//! stamps an unset tenant like insert does, and `to_sql()` is exactly the
//! text the server receives, or the reason nothing would be sent.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{setup, Membership};
use pebble::{Column, Db, Error, Model, PoolOptions};
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
    assert_eq!(
        (updated.title.as_str(), updated.priority),
        ("second", Some(9))
    );

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
        matches!(
            err,
            Error::NotFound {
                table: "memberships"
            }
        ),
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

/// A pool of one connection whose statements a second connection can read
/// back from `pg_stat_activity`, inside a transaction so that nothing else
/// runs on that connection between the statement and the look.
struct Probe {
    db: Db,
    observer: tokio_postgres::Client,
    _test_db: TestDatabase,
}

const PROBE: &str = "pebble_builders_probe";

async fn probe() -> Probe {
    let (test_db, setup_db) = tickets().await;
    setup_db.close();
    let mut config = test_db.config();
    config.application_name(PROBE);
    let db = Db::connect_with(config, PoolOptions::default().max_size(1))
        .await
        .unwrap();
    let (observer, connection) = test_db
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    Probe {
        db,
        observer,
        _test_db: test_db,
    }
}

impl Probe {
    /// The text of the last statement the probe connection received.
    async fn last_sent(&self) -> String {
        let row = self
            .observer
            .query_one(
                "SELECT query FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1",
                &[&PROBE],
            )
            .await
            .unwrap();
        row.get(0)
    }
}

fn returning_all() -> String {
    let columns: Vec<String> = Ticket::COLUMNS
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    format!(" RETURNING {}", columns.join(", "))
}

#[tokio::test]
async fn to_sql_is_what_the_server_receives_and_returning_only_adds_returning() {
    let p = probe().await;
    let tx = p.db.tenant(ORG).begin().await.unwrap();
    let returning = returning_all();

    let insert = tx.insert(set(101, "a"));
    let sql = insert.to_sql().unwrap();
    insert.exec().await.unwrap();
    assert_eq!(p.last_sent().await, sql);

    let insert = tx.insert_many([unset("b"), set(102, "c")]);
    let sql = insert.to_sql().unwrap();
    assert_eq!(insert.returning().await.unwrap().len(), 2);
    assert_eq!(p.last_sent().await, sql.clone() + &returning);

    let upsert = tx
        .insert(set(101, "d"))
        .on_conflict(Ticket::ID)
        .do_update(Ticket::TITLE);
    let sql = upsert.to_sql().unwrap();
    assert!(upsert.returning().await.unwrap().is_some());
    assert_eq!(p.last_sent().await, sql.clone() + &returning);

    let select = tx
        .select::<Ticket>()
        .filter(Ticket::TITLE.ne("x") | Ticket::PRIORITY.is_null())
        .order_by(Ticket::ID.asc())
        .limit(5);
    let sql = select.to_sql().unwrap();
    assert_eq!(select.all().await.unwrap().len(), 3);
    assert_eq!(p.last_sent().await, sql);

    let update = tx
        .update::<Ticket>()
        .set(Ticket::PRIORITY, 1)
        .filter(Ticket::ID.eq(101));
    let sql = update.to_sql().unwrap();
    assert_eq!(update.exec().await.unwrap(), 1);
    assert_eq!(p.last_sent().await, sql);

    let update = tx
        .update::<Ticket>()
        .set(Ticket::STATUS, "done")
        .filter(Ticket::ID.eq(102));
    let sql = update.to_sql().unwrap();
    assert_eq!(update.returning().await.unwrap().len(), 1);
    assert_eq!(p.last_sent().await, sql.clone() + &returning);

    let delete = tx.delete::<Ticket>().filter(Ticket::ID.eq(102));
    let sql = delete.to_sql().unwrap();
    assert_eq!(delete.returning().await.unwrap().len(), 1);
    assert_eq!(p.last_sent().await, sql.clone() + &returning);

    let delete = tx.delete::<Ticket>().filter(Ticket::ID.eq(101));
    let sql = delete.to_sql().unwrap();
    assert_eq!(delete.exec().await.unwrap(), 1);
    assert_eq!(p.last_sent().await, sql);

    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn an_update_without_set_says_so_in_to_sql_and_sends_nothing() {
    let p = probe().await;
    let tx = p.db.tenant(ORG).begin().await.unwrap();
    tx.insert(set(101, "kept")).exec().await.unwrap();
    let before = p.last_sent().await;

    let update = tx.update::<Ticket>().filter(Ticket::ID.eq(101));
    let why = update.to_sql().unwrap_err();
    assert!(matches!(why, Error::NothingToSet { .. }), "{why}");
    assert!(why.to_string().contains("at least one `set`"), "{why}");
    assert!(update.build().is_err());
    let err = update.exec().await.unwrap_err();
    assert_eq!(err.to_string(), why.to_string());
    let err = tx
        .update::<Ticket>()
        .filter(Ticket::ID.eq(101))
        .returning()
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), why.to_string());

    assert_eq!(p.last_sent().await, before, "nothing was sent");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_forged_tenant_set_is_refused_by_to_sql_as_by_exec() {
    let p = probe().await;
    let tx = p.db.tenant(ORG).begin().await.unwrap();
    tx.insert(set(101, "kept")).exec().await.unwrap();
    let before = p.last_sent().await;

    // `set` does not take `Ticket::ORG` (a `TenantColumn`); a hand-made
    // `Column` naming the tenant column is the forgery.
    let forged: Column<Ticket, i64> = Column::new("org");
    let forge = || {
        tx.update::<Ticket>()
            .set(Ticket::TITLE, "moved")
            .set(forged, 8)
            .filter(Ticket::ID.eq(101))
    };
    let why = forge().to_sql().unwrap_err();
    assert!(
        why.to_string()
            .contains("the tenant column cannot be updated"),
        "{why}"
    );
    assert_eq!(
        forge().exec().await.unwrap_err().to_string(),
        why.to_string()
    );
    assert_eq!(
        forge().returning().await.unwrap_err().to_string(),
        why.to_string()
    );
    assert_eq!(p.last_sent().await, before, "nothing was sent");

    let kept = tx.find::<Ticket>(101).one().await.unwrap();
    assert_eq!((kept.org, kept.title.as_str()), (ORG, "kept"));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn refused_inserts_say_why_in_to_sql() {
    let (_test_db, db) = tickets().await;
    let tenant = db.tenant(ORG);

    // A row of another tenant: the refusal `exec` reports, every time.
    let foreign = Ticket {
        org: 8,
        ..set(101, "foreign")
    };
    let insert = tenant.insert_many([set(102, "mine"), foreign.clone()]);
    for _ in 0..2 {
        let why = insert.to_sql().unwrap_err();
        assert!(matches!(why, Error::TenantMismatch { .. }), "{why}");
    }
    let upsert = tenant
        .insert(foreign.clone())
        .on_conflict(Ticket::ID)
        .do_nothing();
    assert!(matches!(upsert.to_sql(), Err(Error::TenantMismatch { .. })));
    let err = insert.exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
    assert_eq!(tenant.select::<Ticket>().count().await.unwrap(), 0);

    // No rows: nothing to send, which running does not treat as an error.
    let none = tenant.insert_many(Vec::<Ticket>::new());
    let why = none.to_sql().unwrap_err();
    assert!(
        matches!(why, Error::NothingToInsert { table: "tickets" }),
        "{why}"
    );
    assert_eq!(none.exec().await.unwrap(), 0);
    let none = tenant
        .insert_many(Vec::<Ticket>::new())
        .on_conflict(Ticket::ID)
        .do_nothing();
    assert!(matches!(none.to_sql(), Err(Error::NothingToInsert { .. })));
    assert!(none.returning().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unset_tenant_handle_has_no_sql_to_show() {
    let (_test_db, db) = tickets().await;
    let nobody = db.tenant(0_i64);
    let is_invalid_tenant =
        |result: pebble::Result<String>| matches!(result, Err(Error::InvalidTenantId { .. }));
    assert!(is_invalid_tenant(nobody.select::<Ticket>().to_sql()));
    assert!(is_invalid_tenant(nobody.delete::<Ticket>().to_sql()));
    assert!(is_invalid_tenant(
        nobody.update::<Ticket>().set(Ticket::TITLE, "x").to_sql()
    ));
    assert!(is_invalid_tenant(nobody.insert(unset("x")).to_sql()));
    assert!(is_invalid_tenant(
        nobody
            .insert(unset("x"))
            .on_conflict(Ticket::ID)
            .do_nothing()
            .to_sql()
    ));
    // Running them is refused the same way.
    let err = nobody.select::<Ticket>().all().await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err}");
    let err = nobody.insert(unset("x")).exec().await.unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err}");
}
