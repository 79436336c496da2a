// models(...) creates tables on the test's plain `Db`: a per-tenant
// model's table belongs in each tenant's database or schema, not there.
use pebble::Model;

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
}

#[pebble::test(models(Note))]
async fn creates(db: pebble::Db) {
    let _ = db;
}

fn main() {}
