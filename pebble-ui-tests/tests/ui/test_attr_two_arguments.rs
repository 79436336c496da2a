// The test gets one thing: the Db of its database.
#[pebble::test]
async fn two(db: pebble::Db, other: pebble::Db) {
    let _ = (db, other);
}

fn main() {}
