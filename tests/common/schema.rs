//! The schema-per-tenant fixture shared by tests/schema.rs and
//! tests/schema_adversarial.rs: a per-tenant model, ids unique per test,
//! an owner connection and a raw one for looking behind pebble's back.

use pebble::{Db, Model, SchemaDb};
use tokio_postgres::NoTls;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tasks", per_tenant)]
pub struct Task {
    #[pebble(primary_key)]
    pub id: i64,
    #[pebble(unique)]
    pub title: String,
    pub done: bool,
}

pub fn task(id: i64, title: &str) -> Task {
    Task {
        id,
        title: title.to_owned(),
        done: false,
    }
}

/// Tenant ids unique to this process and test, starting with `tag`: roles
/// are cluster-wide, and the test binaries share one server.
pub fn ids(tag: &str) -> impl Fn(&str) -> String {
    super::servers::ids(tag)
}

/// A fresh database and the owner's `Db` on it.
pub async fn owner() -> (pebble_testkit::TestDatabase, Db) {
    let database = pebble_testkit::database().await.expect("test database");
    let db = Db::connect(database.config()).await.expect("connect");
    (database, db)
}

/// A raw connection, for checking what exists behind pebble's back.
pub async fn raw(config: tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.expect("raw connect");
    tokio::spawn(connection);
    client
}

/// Every task of a tenant, by id.
pub async fn all_tasks(tenant: &SchemaDb) -> Vec<Task> {
    tenant
        .select::<Task>()
        .order_by(Task::ID.asc())
        .all()
        .await
        .expect("select")
}
