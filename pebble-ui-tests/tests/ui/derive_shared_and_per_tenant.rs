// A model lives in one place: shared by all tenants, or in each tenant's.
use pebble::Model;

#[derive(Model)]
#[pebble(shared, per_tenant)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
}

fn main() {}
