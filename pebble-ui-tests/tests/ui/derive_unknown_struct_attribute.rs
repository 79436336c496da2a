use pebble::Model;

#[derive(Model)]
#[pebble(table = "docs", shared, schema = "app")]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
}

fn main() {}
