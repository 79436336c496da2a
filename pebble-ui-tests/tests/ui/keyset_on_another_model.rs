// A keyset boundary takes columns of the selected model, with values of their types.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
}

#[derive(Model)]
struct Invoice {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    total: i64,
}

fn pages(db: Db) {
    // A page boundary on a column of another model.
    let _ = db.tenant(7_i64).select::<Task>().after((Task::TITLE, Invoice::ID), ("a", 1_i64));
    // A value of the wrong type for the column.
    let _ = db.tenant(7_i64).select::<Task>().after((Task::TITLE, Task::ID), ("a", "b"));
}

fn main() {}
