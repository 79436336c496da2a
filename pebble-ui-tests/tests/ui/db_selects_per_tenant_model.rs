// A plain `Db` is the application's database: a per-tenant model's table
// is not there (it is in each tenant's database or schema), so reading it
// through `Db` would silently read `public.notes`, no tenant's table.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
    body: String,
}

async fn leak(db: Db) -> pebble::Result<()> {
    let _ = db.select::<Note>().count().await?;
    let _ = db.find::<Note>(1).optional().await?;
    Ok(())
}

fn main() {
    let _ = leak;
}
