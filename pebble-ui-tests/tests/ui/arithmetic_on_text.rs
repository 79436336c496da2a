// Arithmetic only applies to numeric columns, with values of their type.
use pebble::Model;

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
    votes: i32,
}

fn main() {
    let _ = Task::TITLE + 1;
    let _ = Task::VOTES + 1_i64;
}
