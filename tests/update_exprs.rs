//! Updates with typed expressions on real PostgreSQL: `now()`, arithmetic,
//! `COALESCE`, another column; confined to the tenant like `set`, in both
//! statement modes; the tenant column never assignable.

use chrono::{DateTime, NaiveDate, Utc};
use pebble::{coalesce, now, Column, Db, Error, Model, StatementMode};
use pebble_testkit::TestDatabase;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "counters")]
struct Counter {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    #[pebble(primary_key)]
    org: i64,
    votes: i32,
    stock: Option<i64>,
    score: f64,
    note: Option<String>,
    summary: String,
    updated_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    started: NaiveDate,
    due: NaiveDate,
}

const A: i64 = 1;
const B: i64 = 2;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("a date")
}

fn counter(id: i64, votes: i32, stock: Option<i64>, note: Option<&str>) -> Counter {
    Counter {
        id,
        org: 0,
        votes,
        stock,
        score: 1.5,
        note: note.map(str::to_owned),
        summary: String::new(),
        updated_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(1),
        done_at: None,
        started: day(1),
        due: day(20),
    }
}

/// Tenants A and B with the same ids and values.
async fn database(mode: StatementMode) -> (TestDatabase, Db) {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config())
        .await
        .expect("connect")
        .statement_mode(mode);
    db.create_table::<Counter>().await.expect("counters");
    for org in [A, B] {
        db.tenant(org)
            .insert_many([
                counter(1, 5, None, None),
                counter(2, 7, Some(3), Some("fragile")),
            ])
            .exec()
            .await
            .expect("rows");
    }
    (test_db, db)
}

async fn rows(db: &Db, org: i64) -> Vec<Counter> {
    db.tenant(org)
        .select::<Counter>()
        .order_by(Counter::ID.asc())
        .all()
        .await
        .expect("rows")
}

async fn expressions(mode: StatementMode) {
    let (_test_db, db) = database(mode).await;
    let b_before = rows(&db, B).await;
    let before = Utc::now();
    let changed = db
        .tenant(A)
        .update::<Counter>()
        .set_expr(Counter::VOTES, Counter::VOTES + 1)
        .set_expr(Counter::STOCK, coalesce(Counter::STOCK, 0) + 10)
        .set_expr(Counter::SCORE, Counter::SCORE.times(2.0).minus(0.5))
        .set_expr(Counter::SUMMARY, coalesce(Counter::NOTE, "(none)"))
        .set_expr(Counter::UPDATED_AT, now())
        .set_expr(Counter::DONE_AT, Counter::UPDATED_AT)
        .set_expr(Counter::DUE, Counter::STARTED)
        .returning()
        .await
        .expect("update");
    assert_eq!(changed.len(), 2);

    let a = rows(&db, A).await;
    assert_eq!(a.iter().map(|c| c.votes).collect::<Vec<_>>(), [6, 8]);
    assert_eq!(
        a.iter().map(|c| c.stock).collect::<Vec<_>>(),
        [Some(10), Some(13)]
    );
    assert!(a.iter().all(|c| c.score == 2.5));
    assert_eq!(
        a.iter().map(|c| c.summary.as_str()).collect::<Vec<_>>(),
        ["(none)", "fragile"]
    );
    for c in &a {
        assert!(c.updated_at >= before - chrono::Duration::seconds(5));
        // SET expressions read the row as it was before the update.
        assert_eq!(
            c.done_at,
            Some(DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(1))
        );
        assert_eq!(c.due, day(1));
        assert_eq!(c.org, A);
    }
    assert_eq!(changed, a);

    // The second tenant's rows, same ids and values, did not change.
    assert_eq!(rows(&db, B).await, b_before);

    // And the second tenant's own expression update changes only its rows.
    let b_changed = db
        .tenant(B)
        .update::<Counter>()
        .set_expr(Counter::VOTES, Counter::VOTES * 10)
        .filter(Counter::ID.eq(1))
        .exec()
        .await
        .expect("b update");
    assert_eq!(b_changed, 1);
    assert_eq!(rows(&db, B).await[0].votes, 50);
    assert_eq!(
        rows(&db, A)
            .await
            .iter()
            .map(|c| c.votes)
            .collect::<Vec<_>>(),
        [6, 8]
    );
}

#[tokio::test]
async fn expressions_with_prepared_statements() {
    expressions(StatementMode::Prepared).await;
}

#[tokio::test]
async fn expressions_with_unnamed_statements() {
    expressions(StatementMode::Unnamed).await;
}

#[tokio::test]
async fn expressions_mix_with_values_and_filters() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    let changed = db
        .tenant(A)
        .update::<Counter>()
        .set(Counter::NOTE, "checked")
        .set_expr(Counter::VOTES, Counter::VOTES.plus(100))
        .filter(Counter::VOTES.gt(6))
        .exec()
        .await
        .expect("update");
    assert_eq!(changed, 1);
    let a = rows(&db, A).await;
    assert_eq!(
        a.iter()
            .map(|c| (c.votes, c.note.as_deref()))
            .collect::<Vec<_>>(),
        [(5, None), (107, Some("checked"))]
    );
    assert_eq!(rows(&db, B).await[1].votes, 7);
}

#[tokio::test]
async fn an_overflowing_expression_fails_and_changes_nothing() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    let err = db
        .tenant(A)
        .update::<Counter>()
        .set_expr(Counter::VOTES, Counter::VOTES + i32::MAX)
        .exec()
        .await
        .expect_err("integer out of range");
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert_eq!(
        rows(&db, A)
            .await
            .iter()
            .map(|c| c.votes)
            .collect::<Vec<_>>(),
        [5, 7]
    );
}

#[tokio::test]
async fn the_tenant_column_is_never_assigned_by_expression() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    // `TenantColumn` is not a `Column`, so only a hand-made handle can try.
    let forged: Column<Counter, i64> = Column::new("org");
    let err = db
        .tenant(A)
        .update::<Counter>()
        .set_expr(forged, Counter::ID + B)
        .exec()
        .await
        .expect_err("tenant column");
    assert!(
        matches!(err, Error::TenantColumnAssigned { column: "org", .. }),
        "{err:?}"
    );
    let err = db
        .tenant(A)
        .update::<Counter>()
        .set_expr(Counter::VOTES, Counter::VOTES + 1)
        .set_expr(forged, Counter::ID)
        .returning()
        .await
        .expect_err("tenant column");
    assert!(matches!(err, Error::TenantColumnAssigned { .. }), "{err:?}");
    assert_eq!(rows(&db, A).await.len(), 2);
    assert_eq!(rows(&db, B).await.len(), 2);
    assert_eq!(
        rows(&db, A)
            .await
            .iter()
            .map(|c| c.votes)
            .collect::<Vec<_>>(),
        [5, 7]
    );
}

#[tokio::test]
async fn a_column_assigned_twice_is_refused_before_sending() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    let update = db
        .tenant(A)
        .update::<Counter>()
        .set(Counter::VOTES, 1)
        .set_expr(Counter::VOTES, Counter::VOTES + 1);
    assert!(matches!(
        update.to_sql(),
        Err(Error::ColumnAssignedTwice {
            table: "counters",
            column: "votes"
        })
    ));
    let err = update.exec().await.expect_err("assigned twice");
    assert!(matches!(err, Error::ColumnAssignedTwice { .. }), "{err:?}");
    assert_eq!(
        rows(&db, A)
            .await
            .iter()
            .map(|c| c.votes)
            .collect::<Vec<_>>(),
        [5, 7]
    );
}
