use pebble::Model;

#[derive(Model)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    #[tenant_id]
    team: i64,
}

fn main() {}
