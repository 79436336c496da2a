// An update expression must compute the column's own type.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
    votes: i32,
    stock: i64,
}

fn mistyped(db: Db) {
    let tenant = db.tenant(1_i64);
    let _ = tenant.update::<Task>().set_expr(Task::TITLE, pebble::now());
    let _ = tenant.update::<Task>().set_expr(Task::VOTES, Task::STOCK + 1);
    let _ = tenant.update::<Task>().set_expr(Task::STOCK, Task::TITLE);
}

fn main() {}
