use pebble::Model;

#[derive(Model)]
#[pebble(table = "docs; DROP TABLE users", shared)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
}

fn main() {}
