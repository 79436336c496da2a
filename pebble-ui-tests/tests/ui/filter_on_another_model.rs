// A filter on one model's column cannot be applied to another model's query.
use pebble::{Db, Model};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
}

#[derive(Model)]
struct Document {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
}

fn wrong_table(db: Db) {
    let _ = db.tenant(1_i64).select::<User>().filter(Document::ID.eq(1));
}

fn main() {}
