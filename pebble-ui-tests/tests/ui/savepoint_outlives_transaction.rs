// A savepoint borrows its transaction: the transaction cannot be used,
// committed or dropped while the savepoint is open.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
}

async fn commit_under_savepoint(db: Db) -> pebble::Result<()> {
    let mut tx = db.begin().await?;
    let savepoint = tx.begin().await?;
    tx.commit().await?;
    savepoint.commit().await
}

async fn parent_used_inside_savepoint(db: Db) -> pebble::Result<()> {
    let mut tx = db.begin().await?;
    let savepoint = tx.begin().await?;
    tx.select::<Plan>().all().await?;
    savepoint.rollback().await
}

fn main() {}
