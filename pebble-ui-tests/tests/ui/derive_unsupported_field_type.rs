use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    pages: u32,
}

fn main() {}
