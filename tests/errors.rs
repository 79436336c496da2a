//! Bad input and bad conditions give a clear error, lose nothing, and never panic.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use common::{setup, User};
use pebble::{Db, Error, PoolOptions, SqlState};
use uuid::Uuid;

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn server_down_is_a_connection_error() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let err = Db::connect(url.as_str()).await.unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(err.to_string().starts_with("connection:"), "{err}");

    // A lazy handle fails per statement, with the same error, and keeps working after.
    let db = Db::connect_lazy(url.as_str(), PoolOptions::default()).unwrap();
    let err = db
        .tenant(Uuid::new_v4())
        .select::<User>()
        .count()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
}

#[tokio::test]
async fn missing_database_has_its_sqlstate() {
    let server = pebble_testkit::server().unwrap();
    let err = Db::connect(server.config_for("no_such_database"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err:?}");
    assert!(err.to_string().contains("no_such_database"), "{err}");
}

#[tokio::test]
async fn invalid_connection_string() {
    let err = Db::connect("postgres://host:not-a-port/db")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn exhausted_pool_times_out_and_recovers() {
    let (test_db, _) = setup().await;
    let options = PoolOptions::default()
        .max_size(1)
        .wait_timeout(Some(Duration::from_millis(200)));
    let db = Db::connect_with(test_db.config(), options).await.unwrap();
    let tenant = db.tenant(Uuid::new_v4());

    let holder = tenant.begin().await.unwrap(); // takes the only connection
    let err = tenant.select::<User>().count().await.unwrap_err();
    assert!(matches!(err, Error::Pool(_)), "{err:?}");
    assert!(err.to_string().contains("connection pool"), "{err}");
    holder.rollback().await.unwrap();

    assert_eq!(tenant.select::<User>().count().await.unwrap(), 0);
}

#[tokio::test]
async fn unique_violation_is_recognisable_and_writes_nothing() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    tenant.insert(User::new("ann", 1)).exec().await.unwrap();
    let err = tenant
        .insert_many([User::new("new", 2), User::new("ann", 3)])
        .exec()
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(tenant.select::<User>().count().await.unwrap(), 1);
}

#[tokio::test]
async fn schema_and_model_disagreeing_is_a_decode_error() {
    let (_test_db, db) = setup().await;
    db.batch_execute(
        "DROP TABLE users; CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
         tenant_id uuid NOT NULL, email text NOT NULL, name text NOT NULL, age bigint NOT NULL, \
         nickname text)",
    )
    .await
    .unwrap();
    let tenant = db.tenant(Uuid::new_v4());
    db.batch_execute(&format!(
        "INSERT INTO users (tenant_id, email, name, age) VALUES ('{}', 'a@x', 'a', 1)",
        tenant.key()
    ))
    .await
    .unwrap();
    let err = tenant.select::<User>().all().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                table: "users",
                column: "age",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("users.age"), "{err}");
}

#[tokio::test]
async fn text_that_looks_like_sql_is_only_ever_a_value() {
    let (_test_db, db) = setup().await;
    let tenant = db.tenant(Uuid::new_v4());
    let nasty = "x'); DROP TABLE users; --";
    let stored = tenant
        .insert(User::new(nasty, 1))
        .returning()
        .await
        .unwrap();
    assert_eq!(stored.name, nasty);
    assert_eq!(
        tenant
            .select::<User>()
            .filter(User::NAME.eq(nasty))
            .count()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tenant
            .select::<User>()
            .filter(User::NAME.like("%' OR '1'='1"))
            .count()
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_handle_keyed_by_the_unset_value_runs_nothing() {
    let (_test_db, db) = setup().await;
    let nil = db.tenant(Uuid::nil());
    for err in [
        nil.select::<User>().count().await.unwrap_err(),
        nil.insert(User::new("ghost", 1)).exec().await.unwrap_err(),
        nil.update::<User>()
            .set(User::AGE, 1)
            .exec()
            .await
            .unwrap_err(),
        nil.delete::<User>().exec().await.unwrap_err(),
        db.tenant(0_i64)
            .select::<common::Document>()
            .count()
            .await
            .unwrap_err(),
        db.tenant(String::new())
            .select::<common::Sample>()
            .count()
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
    }
    assert_eq!(db.cross_tenant().select::<User>().count().await.unwrap(), 0);
}

/// A tenant model with hand-written `GlobalModel` and `SharedModel` impls:
/// deliberate misuse the types cannot stop, so `Db` refuses it at run time.
#[derive(pebble::Model, Debug)]
#[pebble(table = "users")]
struct Leaky {
    #[pebble(primary_key)]
    id: Uuid,
    #[tenant_id]
    tenant_id: Uuid,
}

impl pebble::GlobalModel for Leaky {}
impl pebble::SharedModel for Leaky {}

#[tokio::test]
async fn a_hand_made_global_impl_on_a_tenant_model_runs_nothing() {
    let (_test_db, db) = setup().await;
    db.tenant(Uuid::new_v4())
        .insert(User::new("ann", 1))
        .exec()
        .await
        .unwrap();
    let err = db.select::<Leaky>().count().await.unwrap_err();
    assert!(matches!(err, Error::TenantModelThroughDb { .. }), "{err:?}");
    let err = db.delete::<Leaky>().exec().await.unwrap_err();
    assert!(matches!(err, Error::TenantModelThroughDb { .. }), "{err:?}");
    let tx = db.begin().await.unwrap();
    assert!(tx.select::<Leaky>().all().await.is_err());
    tx.rollback().await.unwrap();
    assert_eq!(db.cross_tenant().select::<User>().count().await.unwrap(), 1);
}
