//! A table knows its tenant column: a model that contradicts the table's
//! record (another `#[tenant_id]`, or none) is refused before anything is
//! sent; a tenant column that compares keys inexactly is refused; a field
//! whose type does not match its column is named instead of failing as a
//! protocol error.

mod common;

use common::{setup, two_tenants, User};
use pebble::{Db, Error, Model};
use uuid::Uuid;

/// A second model over `users` that names another column the tenant: it
/// would confine by `email`, reading every tenant's rows with that email.
#[derive(Model, Debug)]
#[pebble(table = "users")]
struct UsersByEmail {
    #[pebble(primary_key)]
    id: Uuid,
    #[tenant_id]
    email: String,
    name: String,
}

/// A slim struct over the tenant table `users` that claims to be shared:
/// through `Db` it would read every tenant's rows.
#[derive(Model, Debug)]
#[pebble(table = "users", shared)]
struct SlimUser {
    name: String,
}

fn is_mismatch(err: &Error, model: &str, declared: &str, recorded: &str) -> bool {
    matches!(err,
        Error::TenantColumnMismatch { model: m, table: "users", declared: d, recorded: r }
            if *m == model && d == declared && r == recorded)
}

#[tokio::test]
async fn a_model_naming_another_tenant_column_is_refused() {
    let t = two_tenants().await;
    let before = t.all_users().await;
    let ann = before[0].email.clone();
    let spoof = t.db.tenant(ann.clone());
    let results = [
        spoof.select::<UsersByEmail>().all().await.map(|_| ()),
        spoof.select::<UsersByEmail>().count().await.map(|_| ()),
        spoof
            .update::<UsersByEmail>()
            .set(UsersByEmail::NAME, "owned")
            .exec()
            .await
            .map(|_| ()),
        spoof.delete::<UsersByEmail>().exec().await.map(|_| ()),
        spoof
            .insert(UsersByEmail {
                id: Uuid::new_v4(),
                email: String::new(),
                name: "x".into(),
            })
            .exec()
            .await
            .map(|_| ()),
    ];
    for result in results {
        let err = result.unwrap_err();
        assert!(
            is_mismatch(
                &err,
                "UsersByEmail",
                "tenant column `email`",
                "tenant column `tenant_id`"
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("UsersByEmail"), "{err}");
    }
    // Also inside a transaction, and `create_table` does not rewrite the record.
    let tx = t.db.begin().await.unwrap();
    let err = tx
        .tenant(ann.clone())
        .select::<UsersByEmail>()
        .all()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err:?}");
    tx.rollback().await.unwrap();
    let err = t.db.create_table::<UsersByEmail>().await.unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err:?}");
    let err = spoof.select::<UsersByEmail>().all().await.unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err:?}");
    assert_eq!(t.all_users().await, before, "nothing was changed");
}

#[tokio::test]
async fn a_global_slim_struct_over_a_tenant_table_is_refused() {
    let t = two_tenants().await;
    let before = t.all_users().await;
    let err = t.db.select::<SlimUser>().all().await.unwrap_err();
    assert!(
        is_mismatch(
            &err,
            "SlimUser",
            "no tenant column",
            "tenant column `tenant_id`"
        ),
        "{err:?}"
    );
    let err = t.db.delete::<SlimUser>().exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err:?}");
    let err =
        t.db.insert(SlimUser { name: "x".into() })
            .exec()
            .await
            .unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err:?}");
    assert_eq!(t.all_users().await, before);
    // The declared model still works, on the same pool.
    assert_eq!(t.db.tenant(t.a).select::<User>().count().await.unwrap(), 3);
}

#[tokio::test]
async fn a_shared_table_refuses_a_model_that_claims_a_tenant_column() {
    #[derive(Model, Debug)]
    #[pebble(table = "plans")]
    struct PlanPerSeat {
        #[pebble(primary_key)]
        code: String,
        #[tenant_id]
        seats: i32,
    }
    let (_test_db, db) = setup().await;
    let err = db
        .tenant(1)
        .select::<PlanPerSeat>()
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TenantColumnMismatch { table: "plans", declared, recorded, .. }
            if declared == "tenant column `seats`" && recorded == "no tenant column"),
        "{err:?}"
    );
}

/// A table pebble did not create, with the given tenant column type.
async fn hand_made(db: &Db, table: &str, tenant_type: &str) {
    db.batch_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, tenant {tenant_type} NOT NULL, body text NOT NULL)"
    ))
    .await
    .unwrap();
    db.batch_execute(&format!(
        "INSERT INTO {table} VALUES (1, 'GLOBEX', 'theirs'), (2, 'globex', 'ours')"
    ))
    .await
    .unwrap();
}

#[derive(Model, Debug)]
#[pebble(table = "ci_notes")]
struct CiNote {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant: String,
    body: String,
}

#[derive(Model, Debug)]
#[pebble(table = "padded_notes")]
struct PaddedNote {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant: String,
    body: String,
}

#[derive(Model, Debug)]
#[pebble(table = "exact_notes")]
struct ExactNote {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant: String,
    body: String,
}

#[tokio::test]
async fn tenant_columns_that_compare_keys_inexactly_are_refused() {
    let (_test_db, db) = setup().await;
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS citext")
        .await
        .unwrap();
    hand_made(&db, "ci_notes", "citext").await;
    hand_made(&db, "padded_notes", "char(8)").await;
    hand_made(&db, "exact_notes", "text").await;

    let err = db
        .tenant("globex".to_owned())
        .select::<CiNote>()
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeTenantColumn { table: "ci_notes", column: "tenant", column_type }
            if column_type == "citext"),
        "{err:?}"
    );
    let err = db
        .tenant("globex".to_owned())
        .select::<PaddedNote>()
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeTenantColumn { table: "padded_notes", column_type, .. }
            if column_type == "character(8)"),
        "{err:?}"
    );
    // A plain text tenant column (no record: pebble did not create it) works,
    // and compares exactly.
    let ours = db
        .tenant("globex".to_owned())
        .select::<ExactNote>()
        .all()
        .await
        .unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].body, "ours");
}

#[tokio::test]
async fn a_nondeterministic_collation_on_the_tenant_column_is_refused() {
    let (_test_db, db) = setup().await;
    db.batch_execute(
        "CREATE COLLATION case_blind (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
    )
    .await
    .unwrap();
    hand_made(&db, "exact_notes", "text COLLATE case_blind").await;
    let err = db
        .tenant("globex".to_owned())
        .select::<ExactNote>()
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsafeTenantColumn { column_type, .. }
            if column_type.contains("case_blind")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_field_type_that_disagrees_with_its_column_is_named() {
    #[derive(Model, Debug)]
    #[pebble(table = "counters")]
    struct Counter {
        #[pebble(primary_key)]
        id: i64,
        #[tenant_id]
        org: i64,
        hits: i32, // the column is bigint
    }
    let (_test_db, db) = setup().await;
    db.batch_execute(
        "CREATE TABLE counters (id bigint PRIMARY KEY, org bigint NOT NULL, hits bigint NOT NULL)",
    )
    .await
    .unwrap();
    let tenant = db.tenant(7_i64);
    for result in [
        tenant
            .insert(Counter {
                id: 1,
                org: 0,
                hits: 1,
            })
            .exec()
            .await
            .map(|_| ()),
        tenant.select::<Counter>().all().await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::ColumnTypeMismatch { model: "Counter", table: "counters", column: "hits", field_type: "integer", column_type }
                if column_type == "bigint"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("i64"),
            "the message says the fix: {message}"
        );
    }
}

#[tokio::test]
async fn tables_created_by_pebble_carry_their_record() {
    let (_test_db, db) = setup().await;
    #[derive(Model, Debug)]
    #[pebble(table = "record_probe", shared)]
    struct RecordProbe {
        comment: Option<String>,
    }
    db.batch_execute(
        "CREATE VIEW record_probe AS SELECT obj_description('users'::regclass, 'pg_class') AS comment \
         UNION ALL SELECT obj_description('plans'::regclass, 'pg_class')",
    )
    .await
    .unwrap();
    let comments: Vec<Option<String>> = db
        .select::<RecordProbe>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.comment)
        .collect();
    assert_eq!(
        comments,
        [
            Some("pebble: tenant column tenant_id".to_owned()),
            Some("pebble: no tenant column".to_owned())
        ]
    );
}
