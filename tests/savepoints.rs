//! Savepoints (nested `begin()` on a transaction) and isolation levels,
//! each also as a second tenant.

mod common;

use common::rls::Fixture;
use common::{two_tenants, Document, Plan, ORG_A, ORG_B};
use pebble::{Error, IsolationLevel, TransactionOptions};

fn titles(docs: &[Document]) -> Vec<&str> {
    docs.iter().map(|d| d.title.as_str()).collect()
}

#[tokio::test]
async fn savepoint_rollback_keeps_outer_writes() {
    let t = two_tenants().await;
    let before_b = t.documents_of(ORG_B).await;
    let mut tx = t.db.tenant(ORG_A).begin().await.unwrap();
    tx.insert(Document::new(50, "outer", 1))
        .exec()
        .await
        .unwrap();
    let inner = tx.begin().await.unwrap();
    inner
        .insert(Document::new(51, "inner", 1))
        .exec()
        .await
        .unwrap();
    inner
        .update::<Document>()
        .set(Document::PAGES, 0)
        .exec()
        .await
        .unwrap();
    assert_eq!(inner.select::<Document>().count().await.unwrap(), 5);
    inner.rollback().await.unwrap();
    // The transaction goes on after the savepoint.
    tx.insert(Document::new(52, "after", 1))
        .exec()
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let docs = t.documents_of(ORG_A).await;
    assert_eq!(titles(&docs), ["plan", "report", "memo", "outer", "after"]);
    assert!(
        docs.iter().all(|d| d.pages != 0),
        "the savepoint's update was undone"
    );
    assert_eq!(t.documents_of(ORG_B).await, before_b);
}

#[tokio::test]
async fn nested_twice_and_dropped_savepoints() {
    let t = two_tenants().await;
    let mut tx = t.db.tenant(ORG_A).begin().await.unwrap();
    tx.insert(Document::new(60, "level0", 1))
        .exec()
        .await
        .unwrap();
    {
        let mut one = tx.begin().await.unwrap();
        one.insert(Document::new(61, "level1", 1))
            .exec()
            .await
            .unwrap();
        {
            let mut two = one.begin().await.unwrap();
            two.insert(Document::new(62, "level2", 1))
                .exec()
                .await
                .unwrap();
            let three = two.begin().await.unwrap();
            three
                .insert(Document::new(63, "level3", 1))
                .exec()
                .await
                .unwrap();
            three.commit().await.unwrap(); // released into level 2
            two.rollback().await.unwrap(); // undoes levels 2 and 3
        }
        {
            let dropped = one.begin().await.unwrap();
            dropped
                .insert(Document::new(64, "dropped", 1))
                .exec()
                .await
                .unwrap();
            // dropped without commit or rollback: rolled back before the next statement
        }
        assert_eq!(
            one.select::<Document>()
                .filter(Document::ID.gt(59))
                .count()
                .await
                .unwrap(),
            2
        );
        one.commit().await.unwrap();
    }
    {
        let _forgotten = tx.begin().await.unwrap();
        // dropped with no statement after it but the commit: rolled back there
    }
    let in_forgotten = {
        let sp = tx.begin().await.unwrap();
        sp.insert(Document::new(65, "forgotten", 1))
            .exec()
            .await
            .unwrap();
        sp
    };
    drop(in_forgotten);
    tx.commit().await.unwrap();
    let docs = t.documents_of(ORG_A).await;
    assert_eq!(
        titles(&docs),
        ["plan", "report", "memo", "level0", "level1"]
    );
    assert_eq!(t.documents_of(ORG_B).await.len(), 3);
}

#[tokio::test]
async fn a_failed_statement_aborts_only_its_savepoint() {
    let t = two_tenants().await;
    let mut tx = t.db.tenant(ORG_A).begin().await.unwrap();
    tx.insert(Document::new(70, "kept", 1))
        .exec()
        .await
        .unwrap();
    let attempt = tx.begin().await.unwrap();
    let err = attempt
        .insert(Document::new(1, "duplicate id", 1))
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert!(matches!(
        attempt.commit().await,
        Err(Error::SavepointAborted)
    ));
    // The transaction is usable again and commits what it had.
    tx.insert(Document::new(71, "also kept", 1))
        .exec()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let docs = t.documents_of(ORG_A).await;
    assert_eq!(
        titles(&docs),
        ["plan", "report", "memo", "kept", "also kept"]
    );

    // As tenant B: a savepoint cannot reach A's rows either.
    let mut b = t.db.tenant(ORG_B).begin().await.unwrap();
    let sp = b.begin().await.unwrap();
    assert_eq!(
        sp.delete::<Document>()
            .filter(Document::ID.eq(70))
            .exec()
            .await
            .unwrap(),
        0
    );
    assert_eq!(sp.select::<Document>().count().await.unwrap(), 3);
    sp.commit().await.unwrap();
    b.commit().await.unwrap();
    assert_eq!(t.documents_of(ORG_A).await.len(), 5);
}

#[tokio::test]
async fn builders_cannot_cross_savepoint_boundaries() {
    let t = two_tenants().await;
    let mut tx = t.db.begin().await.unwrap();
    let parent_builder = tx.select::<Plan>();
    let kept_builder;
    {
        let sp = tx.begin().await.unwrap();
        kept_builder = sp.insert(Plan {
            code: "late".into(),
            price_cents: 1,
            seats: 1,
        });
        // The parent's builder would run inside the savepoint: refused.
        assert!(matches!(
            parent_builder.all().await,
            Err(Error::SavepointOpen)
        ));
        sp.commit().await.unwrap();
    }
    // The savepoint's builder, after it ended, would run in the parent: refused.
    assert!(matches!(
        kept_builder.exec().await,
        Err(Error::TransactionEnded)
    ));
    tx.insert(Plan {
        code: "ok".into(),
        price_cents: 1,
        seats: 1,
    })
    .exec()
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let plans = t.db.select::<Plan>().all().await.unwrap();
    assert_eq!(plans.len(), 1);
}

#[tokio::test]
async fn read_only_transactions_refuse_writes() {
    let t = two_tenants().await;
    let tx =
        t.db.tenant(ORG_A)
            .begin_with(TransactionOptions::new().read_only())
            .await
            .unwrap();
    assert_eq!(tx.select::<Document>().count().await.unwrap(), 3);
    let err = tx
        .insert(Document::new(80, "nope", 1))
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_read_only_violation(), "{err}");
    assert_eq!(err.code().map(|c| c.code()), Some("25006"));
    assert!(!err.is_retryable());
    assert!(matches!(tx.commit().await, Err(Error::TransactionAborted)));
    assert_eq!(t.documents_of(ORG_A).await.len(), 3);
}

#[tokio::test]
async fn serializable_conflict_is_retryable() {
    let t = two_tenants().await;
    let options = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    let a = t.db.tenant(ORG_A);
    // Write skew: each reads the other's insert range, then writes into it.
    let tx1 = a.begin_with(options).await.unwrap();
    let tx2 = a.begin_with(options).await.unwrap();
    let n1 = tx1.select::<Document>().count().await.unwrap();
    let n2 = tx2.select::<Document>().count().await.unwrap();
    tx1.insert(Document::new(90 + n1, "one", 1))
        .exec()
        .await
        .unwrap();
    let second = async {
        tx2.insert(Document::new(95 + n2, "two", 1)).exec().await?;
        tx1.commit().await?;
        tx2.commit().await
    };
    let err = second.await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("40001"), "{err}");
    assert!(err.is_retryable());

    // Tenant B, serializable at the same time, never conflicts with A.
    let b = t.db.tenant(ORG_B).begin_with(options).await.unwrap();
    assert_eq!(b.select::<Document>().count().await.unwrap(), 3);
    b.insert(Document::new(99, "b", 1)).exec().await.unwrap();
    b.commit().await.unwrap();
}

#[tokio::test]
async fn savepoints_and_options_under_row_level_security() {
    let f = Fixture::new().await;
    let mut tx = f
        .app
        .tenant(f.a)
        .begin_with(TransactionOptions::new().isolation(IsolationLevel::RepeatableRead))
        .await
        .unwrap();
    let sp = tx.begin().await.unwrap();
    sp.insert(common::User::new("cat", 3)).exec().await.unwrap();
    assert_eq!(sp.select::<common::User>().count().await.unwrap(), 3);
    // Raw SQL inside the savepoint: still confined by the database to A.
    let raw = sp.query("SELECT count(*) FROM users", &[]).await.unwrap();
    assert_eq!(
        raw[0].get::<_, i64>(0),
        3,
        "A's two users and cat, none of B's"
    );
    sp.execute(
        "INSERT INTO users (tenant_id, email, name, age) VALUES ($1, 'raw@x', 'raw', 1)",
        &[&f.a],
    )
    .await
    .unwrap();
    let foreign = sp
        .execute(
            "INSERT INTO users (tenant_id, email, name, age) VALUES ($1, 'evil@x', 'evil', 1)",
            &[&f.b],
        )
        .await
        .unwrap_err();
    assert_eq!(foreign.code().map(|c| c.code()), Some("42501"), "{foreign}");
    // The policy's refusal aborted the savepoint only.
    sp.rollback().await.unwrap();
    // The tenant set at BEGIN survives the rollback to the savepoint.
    let rows = tx
        .query("SELECT current_setting('pebble.tenant_id')", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), f.a.to_string());
    let mut sp = tx.begin().await.unwrap();
    let nested = sp.begin().await.unwrap();
    nested
        .insert(common::User::new("dan", 4))
        .exec()
        .await
        .unwrap();
    nested.commit().await.unwrap();
    sp.commit().await.unwrap();
    tx.commit().await.unwrap();
    let names: Vec<String> = f.users_of(f.a).await.into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["ann", "bob", "dan"]);
    assert_eq!(f.users_of(f.b).await.len(), 2, "tenant B untouched");

    let ro = f
        .app
        .tenant(f.b)
        .begin_with(TransactionOptions::new().read_only())
        .await
        .unwrap();
    let err = ro
        .insert(common::User::new("eve", 5))
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_read_only_violation(), "{err}");
    drop(ro);
    assert_eq!(f.users_of(f.b).await.len(), 2);
    f.cleanup().await;
}
