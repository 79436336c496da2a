use pebble::Model;

#[derive(Model)]
#[pebble(table = "docs", global, schema = "app")]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
}

fn main() {}
