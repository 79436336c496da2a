//! Row locks (`FOR UPDATE`, `SKIP LOCKED`, `NOWAIT`, `FOR SHARE`) and keyset
//! pagination, each also as a second tenant: locking never reaches, waits
//! for or reveals another tenant's rows.

mod common;

use common::rls::Fixture;
use common::{two_tenants, Document, User, ORG_A, ORG_B};
use pebble::Error;

#[tokio::test]
async fn locking_sql_keeps_the_tenant_condition() {
    let t = two_tenants().await;
    let locked =
        t.db.tenant(ORG_A)
            .select::<Document>()
            .filter(Document::PAGES.gt(5).or(Document::TITLE.eq("memo")))
            .order_by(Document::ID.asc())
            .for_update()
            .skip_locked();
    assert_eq!(
        locked.to_sql().unwrap(),
        r#"SELECT "id", "org_id", "title", "pages", "created_at" FROM "documents" WHERE "org_id" = $1 AND ("pages" > $2 OR "title" = $3) ORDER BY "id" ASC FOR UPDATE SKIP LOCKED"#
    );
    let share = t.db.tenant(ORG_A).select::<Document>().for_share().nowait();
    assert!(share.to_sql().unwrap().ends_with("FOR SHARE NOWAIT"));
    let unset = t.db.tenant(0_i64).select::<Document>().for_update();
    assert!(matches!(
        unset.all().await,
        Err(Error::InvalidTenantId { .. })
    ));
}

#[tokio::test]
async fn skip_locked_skips_rows_another_transaction_holds() {
    let t = two_tenants().await;
    let a = t.db.tenant(ORG_A);

    // Worker 1 takes document 1 and keeps it locked.
    let worker1 = a.begin().await.unwrap();
    let taken = worker1
        .select::<Document>()
        .order_by(Document::ID.asc())
        .for_update()
        .skip_locked()
        .one()
        .await
        .unwrap();
    assert_eq!(taken.id, 1);

    // Worker 2 skips it and takes the next one.
    let worker2 = a.begin().await.unwrap();
    let next = worker2
        .select::<Document>()
        .order_by(Document::ID.asc())
        .for_update()
        .skip_locked()
        .optional()
        .await
        .unwrap()
        .expect("an unlocked document");
    assert_eq!(next.id, 2);
    let rest = worker2
        .select::<Document>()
        .order_by(Document::ID.asc())
        .for_update()
        .skip_locked()
        .all()
        .await
        .unwrap();
    let ids: Vec<i64> = rest.iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        [2, 3],
        "its own lock is no obstacle; document 1 is skipped"
    );

    // NOWAIT on the locked row fails at once instead of waiting.
    let worker3 = a.begin().await.unwrap();
    let err = worker3
        .select::<Document>()
        .filter(Document::ID.eq(1))
        .for_update()
        .nowait()
        .all()
        .await
        .unwrap_err();
    assert!(err.is_lock_not_available(), "{err}");
    worker3.rollback().await.unwrap();

    // The second tenant: locking everything it can reach neither waits for
    // tenant A's locks (NOWAIT succeeds) nor returns any of A's rows.
    let b = t.db.tenant(ORG_B).begin().await.unwrap();
    let mine = b
        .select::<Document>()
        .order_by(Document::ID.asc())
        .for_update()
        .nowait()
        .all()
        .await
        .unwrap();
    let ids: Vec<i64> = mine.iter().map(|d| d.id).collect();
    assert_eq!(ids, [11, 12, 13]);
    let foreign = b
        .select::<Document>()
        .filter(Document::ID.eq(1))
        .for_update()
        .nowait()
        .optional()
        .await
        .unwrap();
    assert_eq!(
        foreign, None,
        "tenant A's locked row is not B's to see or lock"
    );
    b.commit().await.unwrap();

    worker2.commit().await.unwrap();
    worker1.commit().await.unwrap();
    assert_eq!(t.documents_of(ORG_A).await.len(), 3, "nothing changed");
}

#[tokio::test]
async fn for_share_lets_readers_share_and_blocks_writers() {
    let t = two_tenants().await;
    let a = t.db.tenant(ORG_A);
    let reader1 = a.begin().await.unwrap();
    let reader2 = a.begin().await.unwrap();
    for reader in [&reader1, &reader2] {
        let doc = reader
            .select::<Document>()
            .filter(Document::ID.eq(2))
            .for_share()
            .nowait()
            .one()
            .await
            .unwrap();
        assert_eq!(doc.title, "report");
    }
    let writer = a.begin().await.unwrap();
    let err = writer
        .select::<Document>()
        .filter(Document::ID.eq(2))
        .for_update()
        .nowait()
        .one()
        .await
        .unwrap_err();
    assert!(err.is_lock_not_available(), "{err}");
    writer.rollback().await.unwrap();
    reader1.commit().await.unwrap();
    reader2.commit().await.unwrap();

    // Tenant B asking for A's shared row gets nothing, not a lock error.
    let b = t.db.tenant(ORG_B).begin().await.unwrap();
    let found = b
        .select::<Document>()
        .filter(Document::ID.eq(2))
        .for_update()
        .nowait()
        .optional()
        .await
        .unwrap();
    assert_eq!(found, None);
    b.commit().await.unwrap();
}

#[tokio::test]
async fn keyset_pages_cover_the_tenant_exactly_once() {
    let t = two_tenants().await;
    for (org, base) in [(ORG_A, 100), (ORG_B, 200)] {
        let docs = (1..=10).map(|i| Document::new(base + i, "page", i as i32));
        t.db.tenant(org).insert_many(docs).exec().await.unwrap();
    }
    for (org, expected_len) in [(ORG_A, 13), (ORG_B, 13)] {
        let tenant = t.db.tenant(org);
        let mut seen = Vec::new();
        let mut last = None;
        loop {
            let mut page = tenant.select::<Document>();
            if let Some(last) = last {
                page = page.after(Document::ID, last);
            }
            let rows = page
                .order_by(Document::ID.asc())
                .limit(4)
                .all()
                .await
                .unwrap();
            let Some(tail) = rows.last() else { break };
            last = Some(tail.id);
            seen.extend(rows.iter().map(|d| (d.org_id, d.id)));
        }
        assert_eq!(seen.len(), expected_len);
        assert!(
            seen.iter().all(|(o, _)| *o == org),
            "only the tenant's own rows"
        );
        assert!(
            seen.windows(2).all(|w| w[0].1 < w[1].1),
            "in order, no repeats"
        );
    }

    // Backwards with `before` and a descending order.
    let back =
        t.db.tenant(ORG_B)
            .select::<Document>()
            .before(Document::ID, 205)
            .order_by(Document::ID.desc())
            .limit(3)
            .all()
            .await
            .unwrap();
    let ids: Vec<i64> = back.iter().map(|d| d.id).collect();
    assert_eq!(ids, [204, 203, 202]);

    // A cursor taken from the other tenant's ids reveals none of its rows.
    let after_foreign =
        t.db.tenant(ORG_B)
            .select::<Document>()
            .after(Document::ID, 0)
            .before(Document::ID, 150)
            .all()
            .await
            .unwrap();
    let ids: Vec<i64> = after_foreign.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 3, "B's own documents 11..=13 only: {ids:?}");
    assert!(ids.iter().all(|id| (11..=13).contains(id)));

    // Keyset on a text column, typed by it; then locked on a transaction.
    let tx = t.db.tenant(t.a).begin().await.unwrap();
    let after_ann = tx
        .select::<User>()
        .after(User::NAME, "ann")
        .order_by(User::NAME.asc())
        .for_update()
        .all()
        .await
        .unwrap();
    let names: Vec<&str> = after_ann.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["bob", "cy"]);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn keyset_pages_on_a_column_that_is_not_unique() {
    let t = two_tenants().await;
    // Ten documents each, three to a page count: ties on `pages`, broken
    // by the id. Tenant B's ids interleave with A's.
    for (org, base) in [(ORG_A, 300), (ORG_B, 301)] {
        let docs = (0..10).map(|i| Document::new(base + 2 * i, "tie", (i % 4) as i32));
        t.db.tenant(org).insert_many(docs).exec().await.unwrap();
    }
    for org in [ORG_A, ORG_B] {
        let tenant = t.db.tenant(org);
        let every: Vec<(i32, i64)> = tenant
            .select::<Document>()
            .filter(Document::TITLE.eq("tie"))
            .order_by(Document::PAGES.asc())
            .order_by(Document::ID.asc())
            .all()
            .await
            .unwrap()
            .iter()
            .map(|d| (d.pages, d.id))
            .collect();
        assert_eq!(every.len(), 10);
        // Forwards, pages of 3, the boundary a (pages, id) pair.
        let mut seen = Vec::new();
        let mut last: Option<(i32, i64)> = None;
        loop {
            let mut page = tenant
                .select::<Document>()
                .filter(Document::TITLE.eq("tie"));
            if let Some(last) = last {
                page = page.after((Document::PAGES, Document::ID), last);
            }
            let rows = page
                .order_by(Document::PAGES.asc())
                .order_by(Document::ID.asc())
                .limit(3)
                .all()
                .await
                .unwrap();
            let Some(tail) = rows.last() else { break };
            last = Some((tail.pages, tail.id));
            assert!(rows.iter().all(|d| d.org_id == org), "only its own rows");
            seen.extend(rows.iter().map(|d| (d.pages, d.id)));
        }
        assert_eq!(seen, every, "every row once, in order, ties included");
        // Backwards from the end, with `before` and descending order.
        let (pages, id) = every[every.len() - 1];
        let back: Vec<(i32, i64)> = tenant
            .select::<Document>()
            .filter(Document::TITLE.eq("tie"))
            .before((Document::PAGES, Document::ID), (pages, id))
            .order_by(Document::PAGES.desc())
            .order_by(Document::ID.desc())
            .limit(4)
            .all()
            .await
            .unwrap()
            .iter()
            .map(|d| (d.pages, d.id))
            .collect();
        let expected: Vec<(i32, i64)> = every[every.len() - 5..every.len() - 1]
            .iter()
            .rev()
            .copied()
            .collect();
        assert_eq!(back, expected);
    }
    // Three columns, and a boundary taken from the other tenant's rows:
    // B's page holds none of A's documents.
    let after_a: Vec<i64> =
        t.db.tenant(ORG_B)
            .select::<Document>()
            .filter(Document::TITLE.eq("tie"))
            .after(
                (Document::TITLE, Document::PAGES, Document::ID),
                ("tie", 0, 300),
            )
            .order_by(Document::ID.asc())
            .all()
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
    let b_ids: Vec<i64> = (0..10).map(|i| 301 + 2 * i).collect();
    assert_eq!(after_a, b_ids, "B's own documents, all of them");
}

#[tokio::test]
async fn locking_under_row_level_security() {
    let f = Fixture::new().await;
    let a = f.app.tenant(f.a).begin().await.unwrap();
    let locked = a
        .select::<User>()
        .order_by(User::NAME.asc())
        .for_update()
        .all()
        .await
        .unwrap();
    assert_eq!(locked.len(), 2);
    assert!(locked.iter().all(|u| u.tenant_id == f.a));

    // Tenant B's NOWAIT lock does not meet A's locks: it sees only its own rows.
    let b = f.app.tenant(f.b).begin().await.unwrap();
    let mine = b
        .select::<User>()
        .for_update()
        .nowait()
        .all()
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|u| u.tenant_id == f.b));
    // Another transaction of A skips every locked row.
    let a2 = f.app.tenant(f.a).begin().await.unwrap();
    let skipped = a2
        .select::<User>()
        .for_update()
        .skip_locked()
        .all()
        .await
        .unwrap();
    assert!(skipped.is_empty());
    a2.commit().await.unwrap();
    b.commit().await.unwrap();
    a.commit().await.unwrap();
    f.cleanup().await;
}
