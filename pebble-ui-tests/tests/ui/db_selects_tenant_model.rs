// A plain `Db` cannot query a tenant-scoped model.
use pebble::{Db, Model};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: uuid::Uuid,
    name: String,
}

fn leak(db: Db) {
    let _ = db.select::<User>();
}

fn main() {}
