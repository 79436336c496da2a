// A misspelt option is an error, not silently a test without tables.
#[pebble::test(model(Task))]
async fn misspelt(db: pebble::Db) {
    let _ = db;
}

fn main() {}
