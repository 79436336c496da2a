// Every write of a plain `Db` refuses a per-tenant model: insert,
// insert_many, copy_in, update, update_model and delete.
use pebble::{Db, Model};

#[derive(Model, Clone)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
    body: String,
}

async fn writes(db: Db, note: Note) -> pebble::Result<()> {
    db.insert(note.clone()).exec().await?;
    db.insert_many([note.clone()]).exec().await?;
    db.copy_in([note.clone()]).exec().await?;
    db.update::<Note>().set(Note::BODY, "x").exec().await?;
    db.update_model(&note).await?;
    db.delete::<Note>().exec().await?;
    Ok(())
}

fn main() {
    let _ = writes;
}
