// A transaction (and a savepoint) from a plain `Db`, and a plain `RlsDb`,
// are on the application's database too: no per-tenant model there.
use pebble::{Db, Model, RlsDb};

#[derive(Model, Clone)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
}

async fn in_transaction(db: Db, rls: RlsDb, note: Note) -> pebble::Result<()> {
    let mut tx = db.begin().await?;
    let _ = tx.select::<Note>().all().await?;
    tx.copy_in([note.clone()]).exec().await?;
    let savepoint = tx.begin().await?;
    savepoint.delete::<Note>().exec().await?;
    savepoint.commit().await?;
    tx.commit().await?;
    let _ = rls.select::<Note>().all().await?;
    Ok(())
}

fn main() {
    let _ = in_transaction;
}
