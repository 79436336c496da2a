// An enum column stores one label per variant: variants cannot carry data.
#[derive(pebble::Enum, Debug, Clone)]
enum Status {
    Todo,
    Blocked(String),
}

fn main() {}
