// A reference between tenant models needs the same tenant key type, and a
// referenced model with one key column besides its tenant column; a shared
// model references no tenant model.
use pebble::Model;
use uuid::Uuid;

#[derive(Model)]
struct Project {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i32,
}

#[derive(Model)]
struct Pair {
    #[pebble(primary_key)]
    left: i64,
    #[pebble(primary_key)]
    right: i64,
    #[tenant_id]
    org: Uuid,
}

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    #[pebble(references = Project)]
    project_id: i64,
    #[pebble(references = Pair)]
    pair: i64,
}

#[derive(Model)]
#[pebble(shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
    #[pebble(references = Task)]
    example_task: i64,
}

fn main() {}
