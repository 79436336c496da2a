// A per-tenant table belongs in each tenant's database or schema: a plain
// `Db` neither creates nor verifies one (the manager's `setup` hook gets a
// `TenantDatabase`, whose `create_table` does).
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
}

async fn setup(db: Db) -> pebble::Result<()> {
    db.create_table::<Note>().await?;
    let _ = db.verify::<Note>().await?;
    Ok(())
}

fn main() {
    let _ = setup;
}
