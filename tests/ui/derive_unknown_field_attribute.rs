use pebble::Model;

#[derive(Model)]
struct Doc {
    #[pebble(primary_key, indexed)]
    id: i64,
}

fn main() {}
