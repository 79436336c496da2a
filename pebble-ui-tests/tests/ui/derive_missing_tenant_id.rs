// A model without #[tenant_id] must say what it is (shared or per_tenant): forgetting the tenant
// field (say, on a slim struct over a tenant table) must not compile into an
// unscoped model.
use pebble::Model;

#[derive(Model)]
#[pebble(table = "users")]
struct UserName {
    #[pebble(primary_key)]
    id: i64,
    name: String,
}

fn main() {}
