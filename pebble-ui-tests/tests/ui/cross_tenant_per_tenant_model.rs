// `cross_tenant()` reaches every tenant's rows in the tables they share;
// a per-tenant model has no such table (each tenant has its own).
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
}

async fn all_tenants(db: Db) -> pebble::Result<i64> {
    db.cross_tenant().select::<Note>().count().await
}

fn main() {
    let _ = all_tenants;
}
