// An upsert cannot overwrite the tenant column either.
use pebble::{Db, Model};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
    name: String,
}

fn move_rows(db: Db, user: User) {
    let _ = db
        .tenant(1_i64)
        .insert(user)
        .on_conflict(User::ID)
        .do_update((User::NAME, User::TENANT_ID));
}

fn main() {}
