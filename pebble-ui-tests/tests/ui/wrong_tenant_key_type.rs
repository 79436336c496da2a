// A handle keyed by `i64` cannot query a model whose tenant column is a `Uuid`.
use pebble::{Db, Model};
use uuid::Uuid;

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: Uuid,
}

fn mixed_up(db: Db) {
    let _ = db.tenant(42_i64).select::<User>();
}

fn main() {}
