// A row-scoped model (shared table, tenant column) is confined by
// `db.tenant(id)`, not by a schema.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "users")]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
}

async fn remove(db: Db) -> pebble::Result<u64> {
    db.schema_tenant("acme")?.delete::<User>().exec().await
}

fn main() {
    let _ = remove;
}
