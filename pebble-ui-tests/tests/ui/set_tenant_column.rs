// An update cannot move a row to another tenant: the tenant column is not a `Column`.
use pebble::{Db, Model};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
    name: String,
}

fn move_rows(db: Db) {
    let _ = db.tenant(1_i64).update::<User>().set(User::TENANT_ID, 2_i64);
}

fn main() {}
