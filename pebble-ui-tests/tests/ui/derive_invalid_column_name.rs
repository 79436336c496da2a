use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[pebble(column = "Title")]
    title: String,
}

fn main() {}
