//! Adversarial isolation tests: two tenants hold the same data in the same
//! tables; every operation is run by each tenant while aiming at the other's
//! rows, and the other tenant's rows must be neither seen nor changed.

mod common;

use common::{two_tenants, Document, TwoTenants, User, ORG_A, ORG_B};
use pebble::Error;
use uuid::Uuid;

/// Both directions: (actor, victim) users and (actor, victim) orgs.
fn pairs(t: &TwoTenants) -> [((Uuid, Uuid), (i64, i64)); 2] {
    [((t.a, t.b), (ORG_A, ORG_B)), ((t.b, t.a), (ORG_B, ORG_A))]
}

#[tokio::test]
async fn select_returns_only_own_rows() {
    let t = two_tenants().await;
    for ((me, other), _) in pairs(&t) {
        let rows = t.db.tenant(me).select::<User>().all().await.unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|u| u.tenant_id == me));
        // A filter naming the other tenant's key directly finds nothing.
        let rows =
            t.db.tenant(me)
                .select::<User>()
                .filter(User::TENANT_ID.eq(other))
                .all()
                .await
                .unwrap();
        assert!(rows.is_empty(), "{rows:?}");
    }
}

#[tokio::test]
async fn or_filter_stays_inside_the_tenant() {
    let t = two_tenants().await;
    for ((me, other), (org, other_org)) in pairs(&t) {
        // Every clause of this OR matches the other tenant's rows.
        let wide = User::TENANT_ID
            .eq(other)
            .or(User::AGE.gt(0))
            .or(User::NAME.eq("bob").not());
        let rows =
            t.db.tenant(me)
                .select::<User>()
                .filter(wide)
                .all()
                .await
                .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|u| u.tenant_id == me), "{rows:?}");

        let docs =
            t.db.tenant(org)
                .select::<Document>()
                .filter(Document::ID.is_in([11, 12, 13, 1, 2, 3]) | Document::ORG_ID.eq(other_org))
                .all()
                .await
                .unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs.iter().all(|d| d.org_id == org), "{docs:?}");
    }
}

#[tokio::test]
async fn count_and_exists_see_only_own_rows() {
    let t = two_tenants().await;
    for ((me, other), (org, _)) in pairs(&t) {
        let tenant = t.db.tenant(me);
        assert_eq!(tenant.select::<User>().count().await.unwrap(), 3);
        let everything = User::AGE.gte(0).or(User::TENANT_ID.eq(other));
        assert_eq!(
            tenant
                .select::<User>()
                .filter(everything)
                .count()
                .await
                .unwrap(),
            3
        );
        assert!(!tenant
            .select::<User>()
            .filter(User::TENANT_ID.eq(other))
            .exists()
            .await
            .unwrap());

        // The other org's document ids exist, but not for this org.
        let other_ids = if org == ORG_A {
            [11, 12, 13]
        } else {
            [1, 2, 3]
        };
        let docs = t.db.tenant(org);
        assert!(!docs
            .select::<Document>()
            .filter(Document::ID.is_in(other_ids))
            .exists()
            .await
            .unwrap());
        assert_eq!(
            docs.select::<Document>()
                .filter(Document::ID.is_in(other_ids))
                .count()
                .await
                .unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn find_by_key_does_not_reach_other_tenants() {
    let t = two_tenants().await;
    for ((me, other), (org, other_org)) in pairs(&t) {
        let theirs = t.users_of(other).await;
        for user in &theirs {
            let found =
                t.db.tenant(me)
                    .find::<User>(user.id)
                    .optional()
                    .await
                    .unwrap();
            assert_eq!(found, None);
            assert!(matches!(
                t.db.tenant(me).find::<User>(user.id).one().await,
                Err(Error::NotFound { table: "users" })
            ));
        }
        for doc in t.documents_of(other_org).await {
            assert_eq!(
                t.db.tenant(org)
                    .find::<Document>(doc.id)
                    .optional()
                    .await
                    .unwrap(),
                None
            );
        }
        // Its own rows are found.
        let mine = t.users_of(me).await;
        assert_eq!(
            t.db.tenant(me)
                .find::<User>(mine[0].id)
                .one()
                .await
                .unwrap(),
            mine[0]
        );
    }
}

#[tokio::test]
async fn update_never_touches_other_tenants() {
    let t = two_tenants().await;
    for ((me, other), (org, other_org)) in pairs(&t) {
        let theirs = t.users_of(other).await;
        let their_docs = t.documents_of(other_org).await;

        // Aimed at the other tenant's rows by key: nothing matches.
        let changed =
            t.db.tenant(me)
                .update::<User>()
                .set(User::NAME, "pwned")
                .filter(User::ID.is_in(theirs.iter().map(|u| u.id)))
                .exec()
                .await
                .unwrap();
        assert_eq!(changed, 0);

        // Unfiltered, and with an OR that matches everything: only own rows change.
        let changed =
            t.db.tenant(me)
                .update::<User>()
                .set(User::NICKNAME, Some(format!("of {me}")))
                .filter(User::TENANT_ID.eq(other).or(User::AGE.gte(0)))
                .returning()
                .await
                .unwrap();
        assert_eq!(changed.len(), 3);
        assert!(changed.iter().all(|u| u.tenant_id == me));
        let changed =
            t.db.tenant(org)
                .update::<Document>()
                .set(Document::PAGES, 0)
                .exec()
                .await
                .unwrap();
        assert_eq!(changed, 3);

        assert_eq!(
            t.users_of(other).await,
            theirs,
            "other tenant's users changed"
        );
        assert_eq!(
            t.documents_of(other_org).await,
            their_docs,
            "other org's documents changed"
        );
    }
}

#[tokio::test]
async fn update_model_refuses_or_misses_other_tenants_rows() {
    let t = two_tenants().await;
    for ((me, other), _) in pairs(&t) {
        let theirs = t.users_of(other).await;

        // Their row as is: it carries their tenant, so it is refused unsent.
        let mut stolen = theirs[0].clone();
        stolen.name = "pwned".into();
        let err = t.db.tenant(me).update_model(&stolen).await.unwrap_err();
        assert!(
            matches!(err, Error::TenantMismatch { table: "users", .. }),
            "{err}"
        );

        // Their key, relabelled as ours: no such row in our scope.
        stolen.tenant_id = me;
        let err = t.db.tenant(me).update_model(&stolen).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { table: "users" }), "{err}");

        assert_eq!(t.users_of(other).await, theirs);
    }
}

#[tokio::test]
async fn delete_never_removes_other_tenants_rows() {
    let t = two_tenants().await;
    let ((me, other), (org, other_org)) = pairs(&t)[0];
    let theirs = t.users_of(other).await;
    let their_docs = t.documents_of(other_org).await;

    let removed =
        t.db.tenant(me)
            .delete::<User>()
            .filter(User::ID.is_in(theirs.iter().map(|u| u.id)))
            .exec()
            .await
            .unwrap();
    assert_eq!(removed, 0);

    // Delete everything the handle can reach, with a filter that matches all.
    let removed =
        t.db.tenant(me)
            .delete::<User>()
            .filter(User::TENANT_ID.eq(other).or(User::AGE.gte(0)))
            .returning()
            .await
            .unwrap();
    assert_eq!(removed.len(), 3);
    assert!(removed.iter().all(|u| u.tenant_id == me));
    assert_eq!(
        t.db.tenant(org).delete::<Document>().exec().await.unwrap(),
        3
    );

    assert!(t.users_of(me).await.is_empty());
    assert_eq!(t.users_of(other).await, theirs);
    assert_eq!(t.documents_of(other_org).await, their_docs);

    // And the other way round, on what is left.
    let removed = t.db.tenant(other).delete::<User>().exec().await.unwrap();
    assert_eq!(removed, 3);
    assert!(t.all_users().await.is_empty());
}

#[tokio::test]
async fn upsert_does_not_update_or_return_another_tenants_row() {
    let t = two_tenants().await;
    for (_, (org, other_org)) in pairs(&t) {
        let their_docs = t.documents_of(other_org).await;
        let target = their_docs[0].id;

        // Same primary key as their document: the conflict is with their row.
        let upserted =
            t.db.tenant(org)
                .insert(Document::new(target, "hijacked", 666))
                .on_conflict(Document::ID)
                .do_update((Document::TITLE, Document::PAGES))
                .returning()
                .await
                .unwrap();
        assert_eq!(upserted, None);

        let skipped =
            t.db.tenant(org)
                .insert_many([Document::new(target, "again", 1)])
                .on_conflict(Document::ID)
                .do_nothing()
                .returning()
                .await
                .unwrap();
        assert!(skipped.is_empty());

        let written =
            t.db.tenant(org)
                .insert(Document::new(target, "hijacked", 666))
                .on_conflict(Document::ID)
                .do_update(Document::TITLE)
                .exec()
                .await
                .unwrap();
        assert_eq!(written, 0);

        assert_eq!(t.documents_of(other_org).await, their_docs);
        assert!(t
            .db
            .tenant(org)
            .find::<Document>(target)
            .optional()
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn upsert_updates_own_row_on_per_tenant_unique_key() {
    let t = two_tenants().await;
    // Both tenants have ann@example.com; the unique index is (tenant_id, email).
    let mut ann = User::new("ann", 99);
    ann.name = "Ann Updated".into();
    let updated =
        t.db.tenant(t.a)
            .insert(ann)
            .on_conflict((User::TENANT_ID, User::EMAIL))
            .do_update((User::NAME, User::AGE))
            .returning()
            .await
            .unwrap()
            .expect("own row updated");
    assert_eq!((updated.tenant_id, updated.age), (t.a, 99));

    let theirs =
        t.db.tenant(t.b)
            .select::<User>()
            .filter(User::EMAIL.eq("ann@example.com"))
            .one()
            .await
            .unwrap();
    assert_eq!((theirs.name.as_str(), theirs.age), ("ann", 31));
}

#[tokio::test]
async fn insert_stamped_for_another_tenant_is_refused_and_writes_nothing() {
    let t = two_tenants().await;
    for ((me, other), (org, other_org)) in pairs(&t) {
        let before = t.all_users().await;
        let docs_before = t.all_documents().await;

        let mut forged = User::new("mallory", 30);
        forged.tenant_id = other;
        let err =
            t.db.tenant(me)
                .insert(forged.clone())
                .exec()
                .await
                .unwrap_err();
        assert!(
            matches!(err, Error::TenantMismatch { table: "users", .. }),
            "{err}"
        );
        assert!(err.is_tenant_error());
        let err =
            t.db.tenant(me)
                .insert(forged.clone())
                .returning()
                .await
                .unwrap_err();
        assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
        let err =
            t.db.tenant(me)
                .insert(forged.clone())
                .on_conflict((User::TENANT_ID, User::EMAIL))
                .do_nothing()
                .exec()
                .await
                .unwrap_err();
        assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");

        // One forged row among good ones: none is written.
        let err =
            t.db.tenant(me)
                .insert_many([User::new("ok1", 1), forged, User::new("ok2", 2)])
                .exec()
                .await
                .unwrap_err();
        assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");

        let mut forged_doc = Document::new(500, "forged", 1);
        forged_doc.org_id = other_org;
        let err =
            t.db.tenant(org)
                .insert(forged_doc)
                .exec()
                .await
                .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TenantMismatch {
                    table: "documents",
                    ..
                }
            ),
            "{err}"
        );

        assert_eq!(t.all_users().await, before);
        assert_eq!(t.all_documents().await, docs_before);
    }
}

#[tokio::test]
async fn inserts_are_stamped_with_the_handle_tenant() {
    let t = two_tenants().await;
    let stored =
        t.db.tenant(t.a)
            .insert(User::new("dee", 50))
            .returning()
            .await
            .unwrap();
    assert_eq!(stored.tenant_id, t.a);
    assert_ne!(stored.id, Uuid::nil(), "the database filled the key");

    // A row already carrying the handle's tenant is accepted as is.
    let mut explicit = User::new("eve", 51);
    explicit.tenant_id = t.b;
    let stored = t.db.tenant(t.b).insert(explicit).returning().await.unwrap();
    assert_eq!(stored.tenant_id, t.b);

    let docs =
        t.db.tenant(ORG_B)
            .insert_many([Document::new(21, "x", 1), Document::new(22, "y", 2)])
            .returning()
            .await
            .unwrap();
    assert!(docs.iter().all(|d| d.org_id == ORG_B));
    assert!(docs
        .iter()
        .all(|d| d.created_at > chrono::DateTime::<chrono::Utc>::UNIX_EPOCH));
    assert_eq!(t.users_of(t.a).await.len(), 4);
    assert_eq!(t.users_of(t.b).await.len(), 4);
}

#[tokio::test]
async fn transactions_keep_the_scope() {
    let t = two_tenants().await;
    let theirs = t.users_of(t.b).await;

    let tx = t.db.tenant(t.a).begin().await.unwrap();
    assert_eq!(tx.select::<User>().count().await.unwrap(), 3);
    let all = User::TENANT_ID.eq(t.b).or(User::AGE.gte(0));
    assert_eq!(
        tx.update::<User>()
            .set(User::AGE, 1)
            .filter(all)
            .exec()
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        tx.delete::<User>()
            .filter(User::NAME.eq("bob"))
            .exec()
            .await
            .unwrap(),
        1
    );
    let mut forged = User::new("mallory", 1);
    forged.tenant_id = t.b;
    assert!(matches!(
        tx.insert(forged).exec().await,
        Err(Error::TenantMismatch { .. })
    ));
    tx.commit().await.unwrap();

    assert_eq!(t.users_of(t.a).await.len(), 2);
    assert!(t.users_of(t.a).await.iter().all(|u| u.age == 1));
    assert_eq!(t.users_of(t.b).await, theirs);

    // A global transaction scoped per statement keeps each scope apart.
    let tx = t.db.begin().await.unwrap();
    assert_eq!(
        tx.tenant(t.b)
            .update::<User>()
            .set(User::AGE, 7)
            .exec()
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        tx.tenant(t.a)
            .select::<User>()
            .filter(User::AGE.eq(7))
            .count()
            .await
            .unwrap(),
        0
    );
    tx.rollback().await.unwrap();
    assert_eq!(t.users_of(t.b).await, theirs);
}

#[tokio::test]
async fn cross_tenant_is_the_explicit_way_to_see_everything() {
    let t = two_tenants().await;
    let cross = t.db.cross_tenant();
    assert_eq!(cross.select::<User>().count().await.unwrap(), 6);
    assert_eq!(
        cross
            .select::<User>()
            .filter(User::TENANT_ID.is_in([t.a, t.b]))
            .count()
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        cross
            .update::<Document>()
            .set(Document::PAGES, 5)
            .exec()
            .await
            .unwrap(),
        6
    );
}

#[tokio::test]
async fn a_builder_kept_in_a_variable_keeps_its_scope() {
    let t = two_tenants().await;
    let mut query = t.db.tenant(t.a).select::<User>();
    for name in ["ann", "bob"] {
        query = query.filter(User::NAME.ne(name));
    }
    let rows = query.all().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].name.as_str(), rows[0].tenant_id), ("cy", t.a));
}
