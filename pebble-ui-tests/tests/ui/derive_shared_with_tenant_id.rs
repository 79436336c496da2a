use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
}

fn main() {}
