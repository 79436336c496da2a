//! Nothing is lost and nothing leaks through state a connection carries:
//! raw SQL text that leaves a transaction open or changes settings, builders
//! that outlive their transaction, statements over the protocol's limits.
//! Every "next statement" here runs on the very connection the previous
//! one used (a pool of one), and every write is read back from a second pool.

mod common;

use std::time::Duration;

use common::{setup, Plan, User};
use pebble::{Db, Error, PoolOptions, SqlState};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

/// A pool of exactly one connection, so "the next statement" runs on the
/// connection the previous one used.
async fn single_connection_db() -> (TestDatabase, Db) {
    let (test_db, _) = setup().await;
    let options = PoolOptions::default()
        .max_size(1)
        .wait_timeout(Some(Duration::from_secs(30)));
    let db = Db::connect_with(test_db.config(), options).await.unwrap();
    (test_db, db)
}

/// 100 inserts through `db`, each checked durable from a second pool.
async fn writes_are_durable(test_db: &TestDatabase, db: &Db) {
    let tenant = Uuid::new_v4();
    let witness = Db::connect(test_db.config()).await.unwrap();
    for i in 0..100 {
        db.tenant(tenant)
            .insert(User::new(&format!("u{i}"), i))
            .exec()
            .await
            .unwrap();
    }
    let seen = witness
        .tenant(tenant)
        .select::<User>()
        .count()
        .await
        .unwrap();
    assert_eq!(
        seen, 100,
        "every write is committed, none held by a stray transaction"
    );
}

/// Runs a statement that takes 50 ms on the server: with a leftover
/// `statement_timeout = 25` it would fail, on a fresh session it succeeds.
/// (Not 1 ms: PostgreSQL 15 can deliver a timeout that fires as the reset
/// after raw text completes to the session's next statement, which made
/// this check fail now and then on a loaded machine.)
async fn no_statement_timeout(db: &Db) {
    db.batch_execute("SELECT pg_sleep(0.05)")
        .await
        .expect("no statement_timeout carried over from an earlier session");
}

#[tokio::test]
async fn raw_text_leaving_a_transaction_open_is_refused_and_loses_nothing_else() {
    let (test_db, db) = single_connection_db().await;
    let err = db.batch_execute("BEGIN").await.unwrap_err();
    assert!(matches!(err, Error::UnterminatedTransaction), "{err}");
    writes_are_durable(&test_db, &db).await;

    // What the text wrote after its BEGIN is rolled back, as the error says.
    let err = db
        .batch_execute("BEGIN; INSERT INTO plans VALUES ('ghost', 1, 1)")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnterminatedTransaction), "{err}");
    assert_eq!(db.select::<Plan>().count().await.unwrap(), 0);
    writes_are_durable(&test_db, &db).await;
}

#[tokio::test]
async fn settings_changed_by_raw_text_do_not_outlive_it() {
    let (test_db, db) = single_connection_db().await;
    db.batch_execute("SET statement_timeout = 25").await.unwrap();
    no_statement_timeout(&db).await;
    db.batch_execute(
        "PREPARE p AS SELECT 1; CREATE TEMP TABLE t (n int); SET SESSION statement_timeout = 25",
    )
    .await
    .unwrap();
    no_statement_timeout(&db).await;
    // The statement cache forgot what DISCARD ALL deallocated.
    writes_are_durable(&test_db, &db).await;
    db.batch_execute("CREATE TEMP TABLE t (n int)")
        .await
        .expect("the earlier temporary table is gone");
}

#[tokio::test]
async fn an_aborted_raw_transaction_is_reported_and_cleaned_up() {
    let (test_db, db) = single_connection_db().await;
    let err = db.batch_execute("BEGIN; SELECT 1 / 0").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
    writes_are_durable(&test_db, &db).await;
    no_statement_timeout(&db).await;
}

#[tokio::test]
async fn a_set_inside_a_transaction_does_not_outlive_it() {
    let (test_db, db) = single_connection_db().await;
    for commit in [true, false] {
        let tx = db.begin().await.unwrap();
        tx.batch_execute("SET statement_timeout = 25").await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        no_statement_timeout(&db).await;
    }
    let tx = db.begin().await.unwrap();
    tx.batch_execute("SET statement_timeout = 25").await.unwrap();
    drop(tx);
    no_statement_timeout(&db).await;
    writes_are_durable(&test_db, &db).await;
}

#[tokio::test]
async fn raw_text_ending_its_transaction_ends_it_for_every_builder() {
    let (test_db, db) = single_connection_db().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = db.begin().await.unwrap();
    let scoped = tx.tenant(*tenant.key());
    scoped.insert(User::new("before", 1)).exec().await.unwrap();
    let err = tx.batch_execute("COMMIT").await.unwrap_err();
    assert!(matches!(err, Error::TransactionEnded), "{err}");
    // Without the refusal this would autocommit, and a rollback undo nothing.
    let err = scoped
        .insert(User::new("after", 1))
        .exec()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionEnded), "{err}");
    let err = tx.rollback().await.unwrap_err();
    assert!(matches!(err, Error::TransactionEnded), "{err}");
    let names: Vec<String> = tenant
        .select::<User>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(
        names,
        ["before"],
        "the text's COMMIT committed; nothing after it ran"
    );
    writes_are_durable(&test_db, &db).await;
}

/// How the transaction of the builder under test ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Dropped,
    Committed,
    RolledBack,
}

#[tokio::test]
async fn a_builder_outliving_its_transaction_writes_nothing() {
    let (test_db, db) = single_connection_db().await;
    let tenant = db.tenant(Uuid::new_v4());
    for end in [End::Dropped, End::Committed, End::RolledBack] {
        let tx = tenant.begin().await.unwrap();
        let insert = tx.insert(User::new(&format!("late {end:?}"), 1));
        let update = tx.update::<User>().set(User::AGE, 99);
        let delete = tx.delete::<User>();
        let select = tx.select::<User>();
        match end {
            End::Dropped => drop(tx),
            End::Committed => tx.commit().await.unwrap(),
            End::RolledBack => tx.rollback().await.unwrap(),
        }
        for result in [
            insert.exec().await,
            update.exec().await,
            delete.exec().await,
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::TransactionEnded), "{end:?}: {err}");
        }
        let err = select.all().await.unwrap_err();
        assert!(matches!(err, Error::TransactionEnded), "{end:?}: {err}");
        assert_eq!(tenant.select::<User>().count().await.unwrap(), 0, "{end:?}");
    }
    writes_are_durable(&test_db, &db).await;
}

#[tokio::test]
async fn a_dropped_transaction_ends_even_while_a_builder_holds_it() {
    let (test_db, db) = single_connection_db().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = tenant.begin().await.unwrap();
    tx.insert(User::new("uncommitted", 1)).exec().await.unwrap();
    let kept = tx.insert(User::new("late", 1));
    drop(tx);
    // The connection went back to the pool (size 1) rolled back, although
    // `kept` still holds the transaction: this would otherwise wait forever.
    writes_are_durable(&test_db, &db).await;
    let err = kept.exec().await.unwrap_err();
    assert!(matches!(err, Error::TransactionEnded), "{err}");
    let names: Vec<String> = tenant
        .select::<User>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "uncommitted" || n == "late"),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_insert_over_the_parameter_limit_is_split_never_sent_whole() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    // 6 columns a row: 13,108 rows would need 78,648 parameters in one statement.
    let rows = (0..13_108).map(|i| User::new(&format!("u{i}"), 1));
    let insert = tenant.insert_many(rows);
    let statements = insert.statements().unwrap();
    assert_eq!(statements.len(), 2);
    assert!(statements.iter().all(|s| s.params().len() <= 65_535));
    assert!(matches!(insert.build(), Err(Error::SplitInsert { .. })));
    assert_eq!(insert.exec().await.unwrap(), 13_108);
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 13_108);
}
