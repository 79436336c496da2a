// Raw SQL is only offered on tenant handles under row-level security, where
// the database confines it; on a row-scoped handle nothing would.
use pebble::{Db, Model};
use uuid::Uuid;

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    tenant_id: Uuid,
}

async fn leak(db: Db, tenant: Uuid) {
    let _ = db.tenant(tenant).query("SELECT * FROM user", &[]).await;
    let tx = db.tenant(tenant).begin().await.unwrap();
    let _ = tx.execute("DELETE FROM user", &[]).await;
}

fn main() {}
