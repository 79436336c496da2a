// An enum is stored either as a native type or as text, not both.
#[derive(pebble::Enum, Debug, Clone)]
#[pebble(type_name = "status", text)]
enum Status {
    Todo,
    Done,
}

fn main() {}
