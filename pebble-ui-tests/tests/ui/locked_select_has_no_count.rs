// A row lock on a count or an existence check means nothing: a locked
// select only offers what returns rows.
use pebble::{Db, Model};

#[derive(Model)]
struct Job {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    done: bool,
}

async fn count_locked(db: Db) {
    let _ = db.tenant(1_i64).select::<Job>().for_update().count().await;
    let _ = db.tenant(1_i64).select::<Job>().for_share().exists().await;
}

fn main() {}
