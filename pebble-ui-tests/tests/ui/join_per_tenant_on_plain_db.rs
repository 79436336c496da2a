// A shared model's query on a plain `Db` cannot join a per-tenant model in
// (its table is not on that database).
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(table = "plans", shared)]
struct Plan {
    #[pebble(primary_key)]
    id: i64,
}

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
    plan_id: i64,
}

async fn joined(db: Db) -> pebble::Result<()> {
    let _ = db
        .select::<Plan>()
        .join::<Note>()
        .on(Note::PLAN_ID.eq_col(Plan::ID))
        .all()
        .await?;
    Ok(())
}

fn main() {
    let _ = joined;
}
