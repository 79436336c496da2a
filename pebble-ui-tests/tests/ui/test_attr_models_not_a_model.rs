// models(...) names models: anything else has no table to create.
struct NotAModel;

#[pebble::test(models(NotAModel))]
async fn creates(db: pebble::Db) {
    let _ = db;
}

fn main() {}
