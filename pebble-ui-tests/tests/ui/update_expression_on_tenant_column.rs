// No expression can be assigned to the tenant column either.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    owner: i64,
}

fn move_rows(db: Db) {
    let _ = db.tenant(1_i64).update::<Task>().set_expr(Task::ORG, Task::OWNER);
}

fn main() {}
