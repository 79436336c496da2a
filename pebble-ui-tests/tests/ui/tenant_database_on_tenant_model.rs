// A tenant's own database (`TenantManager::db(id)`) queries per-tenant and
// shared models; a model with a #[tenant_id] field is not one of them.
use pebble::{Model, TenantDatabase};

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: i64,
}

async fn users(db: TenantDatabase) -> pebble::Result<()> {
    let _ = db.select::<User>().all().await?;
    db.create_table::<User>().await?;
    Ok(())
}

fn main() {
    let _ = users;
}
