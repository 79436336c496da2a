// `like` is for text columns and `is_null` for nullable ones.
use pebble::{Db, Model};

#[derive(Model)]
struct Document {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org_id: i64,
    pages: i32,
    title: String,
}

fn misuse(db: Db) {
    let _ = db.tenant(1_i64).select::<Document>().filter(Document::PAGES.like("1%"));
    let _ = db.tenant(1_i64).select::<Document>().filter(Document::TITLE.is_null());
}

fn main() {}
