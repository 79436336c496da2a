// Every `Db` entry point refuses tenant models, not just `select`.
use pebble::{Db, Model};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
}

fn leak(db: Db, user: User) {
    let _ = db.delete::<User>();
    let _ = db.insert(user);
}

fn main() {}
