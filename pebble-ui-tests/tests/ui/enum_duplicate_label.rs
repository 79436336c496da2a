// Two variants cannot share a label: decoding it would be ambiguous.
#[derive(pebble::Enum, Debug, Clone)]
enum Status {
    Todo,
    #[pebble(rename = "todo")]
    Later,
}

fn main() {}
