// `#[pebble(default)]` on a type the database has no natural default for.
use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[pebble(default)]
    title: String,
    #[pebble(default)]
    subtitle: Option<String>,
}

fn main() {}
