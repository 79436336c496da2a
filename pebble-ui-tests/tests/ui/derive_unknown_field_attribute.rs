use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Doc {
    #[pebble(primary_key, indexed)]
    id: i64,
}

fn main() {}
