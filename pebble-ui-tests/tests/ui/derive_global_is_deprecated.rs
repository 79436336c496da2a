// `global` still means `shared`, but warns: denied here, the warning shows.
#![deny(deprecated)]

use pebble::Model;

#[derive(Model)]
#[pebble(table = "plans", global)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
}

fn main() {}
