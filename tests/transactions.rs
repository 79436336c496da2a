//! Transactions: commit, rollback, rollback on drop, aborted transactions,
//! and that no pooled connection is ever handed out inside a transaction.

mod common;

use std::time::Duration;

use common::{setup, User};
use pebble::{Db, Error, PoolOptions};
use uuid::Uuid;

/// A pool of exactly one connection, so "the next statement" runs on the
/// connection the transaction used.
async fn single_connection_db() -> (pebble_testkit::TestDatabase, Db) {
    let (test_db, _) = setup().await;
    let options = PoolOptions::default()
        .max_size(1)
        .wait_timeout(Some(Duration::from_secs(10)));
    let db = Db::connect_with(test_db.config(), options).await.unwrap();
    (test_db, db)
}

#[tokio::test]
async fn commit_persists_and_rollback_leaves_nothing() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());

    let tx = tenant.begin().await.unwrap();
    tx.insert(User::new("kept", 1)).exec().await.unwrap();
    tx.commit().await.unwrap();

    let tx = tenant.begin().await.unwrap();
    tx.insert(User::new("undone", 2)).exec().await.unwrap();
    tx.update::<User>().set(User::AGE, 99).exec().await.unwrap();
    tx.delete::<User>()
        .filter(User::NAME.eq("kept"))
        .exec()
        .await
        .unwrap();
    assert_eq!(
        tx.select::<User>().count().await.unwrap(),
        1,
        "visible inside"
    );
    tx.rollback().await.unwrap();

    let users = tenant.select::<User>().all().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!((users[0].name.as_str(), users[0].age), ("kept", 1));
}

#[tokio::test]
async fn uncommitted_writes_are_invisible_to_other_connections() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = tenant.begin().await.unwrap();
    tx.insert(User::new("pending", 1)).exec().await.unwrap();
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 1);
}

#[tokio::test]
async fn dropping_a_transaction_rolls_it_back_before_reuse() {
    let (_test_db, db) = single_connection_db().await;
    let tenant = db.tenant(Uuid::new_v4());
    {
        let tx = tenant.begin().await.unwrap();
        tx.insert(User::new("dropped", 1)).exec().await.unwrap();
        // No commit: dropped here, e.g. by an early `?` return.
    }
    // The same (only) connection: were it still inside the transaction, the
    // row would be visible and this insert would vanish with it.
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
    tenant.insert(User::new("after", 2)).exec().await.unwrap();
    let other = Db::connect(_test_db.config()).await.unwrap();
    assert_eq!(
        other
            .tenant(*tenant.key())
            .select::<User>()
            .count()
            .await
            .unwrap(),
        1,
        "the later insert was autocommitted"
    );
}

#[tokio::test]
async fn a_failed_statement_makes_commit_report_the_rollback() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = tenant.begin().await.unwrap();
    tx.insert(User::new("first", 1)).exec().await.unwrap();
    // Same (tenant, email): unique violation, which aborts the transaction.
    let err = tx.insert(User::new("first", 2)).exec().await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::TransactionAborted), "{err}");
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_refused_row_does_not_abort_the_transaction() {
    let (_test_db, db) = setup().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tx = db.tenant(a).begin().await.unwrap();
    tx.insert(User::new("ok", 1)).exec().await.unwrap();
    let mut forged = User::new("forged", 1);
    forged.tenant_id = b;
    assert!(matches!(
        tx.insert(forged).exec().await,
        Err(Error::TenantMismatch { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(db.tenant(a).select::<User>().count().await.unwrap(), 1);
    assert_eq!(db.tenant(b).select::<User>().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_builder_outliving_its_transaction_is_refused() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = tenant.begin().await.unwrap();
    let late = tx.insert(User::new("late", 1));
    tx.commit().await.unwrap();
    let err = late.exec().await.unwrap_err();
    assert!(matches!(err, Error::TransactionEnded), "{err}");
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
}

#[tokio::test]
async fn global_transactions() {
    let (_test_db, db) = setup().await;
    let tx = db.begin().await.unwrap();
    tx.insert(common::Plan {
        code: "x".into(),
        price_cents: 1,
        seats: 1,
    })
    .exec()
    .await
    .unwrap();
    tx.batch_execute("CREATE TABLE scratch (n int)")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(db.select::<common::Plan>().count().await.unwrap(), 0);
    let err = db.batch_execute("SELECT * FROM scratch").await.unwrap_err();
    assert_eq!(err.code(), Some(&pebble::SqlState::UNDEFINED_TABLE));
}

#[tokio::test]
async fn a_cancelled_begin_never_leaves_a_pooled_connection_in_a_transaction() {
    let (test_db, db) = single_connection_db().await;
    let tenant = db.tenant(Uuid::new_v4());
    for i in 0..20 {
        // Dropped after BEGIN was queued on the connection but before it returned.
        let _ = tokio::time::timeout(Duration::ZERO, tenant.begin()).await;
        tenant
            .insert(User::new(&format!("u{i}"), 1))
            .exec()
            .await
            .unwrap();
    }
    let other = Db::connect(test_db.config()).await.unwrap();
    assert_eq!(
        other
            .tenant(*tenant.key())
            .select::<User>()
            .count()
            .await
            .unwrap(),
        20,
        "every insert was autocommitted, none swallowed by a stray transaction"
    );
}

#[tokio::test]
async fn a_statement_racing_rollback_runs_inside_or_is_refused() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    for i in 0..20 {
        let tx = tenant.begin().await.unwrap();
        let late = tx.insert(User::new(&format!("racer{i}"), 1)).exec();
        let (inserted, rolled_back) = tokio::join!(late, tx.rollback());
        rolled_back.unwrap();
        if let Err(e) = inserted {
            assert!(matches!(e, Error::TransactionEnded), "{e}");
        }
    }
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_cancelled_statement_that_fails_still_makes_commit_report_it() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    let tx = db.begin().await.unwrap();
    tx.tenant(*tenant.key())
        .insert(User::new("kept?", 1))
        .exec()
        .await
        .unwrap();
    // Polled once (which sends it), then abandoned before the server
    // answers; it fails there. No timing involved: `biased` polls the
    // statement exactly once before the ready branch wins.
    {
        let failing = tx.batch_execute("SELECT pg_sleep(0.2); SELECT 1 / 0");
        tokio::pin!(failing);
        tokio::select! {
            biased;
            _ = &mut failing => panic!("the statement cannot have finished on its first poll"),
            () = std::future::ready(()) => {}
        }
    }
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::TransactionAborted), "{err}");
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
}
