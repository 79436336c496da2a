// A value of the wrong type for the column never reaches the server.
use pebble::{Db, Model};

#[derive(Model)]
struct Document {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org_id: i64,
    title: String,
}

fn typo(db: Db) {
    let small: i32 = 5;
    let _ = db.tenant(1_i64).select::<Document>().filter(Document::ID.eq(small));
    let _ = db.tenant(1_i64).select::<Document>().filter(Document::TITLE.eq(5_i64));
}

fn main() {}
