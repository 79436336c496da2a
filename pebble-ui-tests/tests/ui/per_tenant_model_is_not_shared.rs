// The kinds are distinct traits: code written for shared tables does not
// take a table that lives in each tenant's database.
use pebble::{Model, SharedModel};

#[derive(Model)]
#[pebble(per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
}

fn seed_shared<M: SharedModel>() {}

fn main() {
    seed_shared::<Note>();
}
