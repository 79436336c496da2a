// `Joinable` is a public trait: a hand-written impl makes the `Joinable`
// bound of `#[pebble(references = Task)]` hold for a shared model, but the
// derive also checks the columns, so a shared row still cannot point at
// (and reveal the existence of) a tenant's row.
use pebble::Model;
use uuid::Uuid;

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: Uuid,
}

impl pebble::Joinable<pebble::join_key::Shared> for Task {}

#[derive(Model)]
#[pebble(shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
    #[pebble(references = Task)]
    example_task: i64,
}

fn main() {}
