// A schema handle names its tables with the tenant's schema: a shared
// table (one for all tenants, in `public`) is not in it.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "plans", shared)]
struct Plan {
    #[pebble(primary_key)]
    id: i64,
    name: String,
}

async fn plans(db: Db) -> pebble::Result<Vec<Plan>> {
    db.schema_tenant("acme")?.select::<Plan>().all().await
}

fn main() {
    let _ = plans;
}
