// An update expression reads the row being updated: a column of another
// model is not one of its columns.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    votes: i32,
}

#[derive(Model)]
struct Project {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    votes: i32,
}

fn across(db: Db) {
    let _ = db.tenant(1_i64).update::<Task>().set_expr(Task::VOTES, Project::VOTES + 1);
}

fn main() {}
