use pebble::Model;

#[derive(Model)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: Option<i64>,
}

fn main() {}
