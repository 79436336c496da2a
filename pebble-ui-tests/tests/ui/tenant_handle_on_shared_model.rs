// A tenant handle cannot run an unscoped statement on a model without a tenant column.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
}

fn confused(db: Db) {
    let _ = db.tenant(1_i64).select::<Plan>();
}

fn main() {}
