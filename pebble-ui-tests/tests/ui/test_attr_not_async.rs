// #[pebble::test] runs an async fn on a runtime of its own: a plain fn is a mistake.
#[pebble::test]
fn not_async(db: pebble::Db) {
    let _ = db;
}

fn main() {}
