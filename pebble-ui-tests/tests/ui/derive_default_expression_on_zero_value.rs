// `#[pebble(default = "sql")]` where the field's unset value (`0`, `false`,
// `""`, empty bytes) is also an ordinary value: inserts could never store it.
use pebble::Model;

#[derive(Model)]
#[pebble(shared)]
struct Task {
    #[pebble(primary_key, default = "nextval('task_ids')")]
    id: i64,
    #[pebble(default = "3")]
    priority: i32,
    #[pebble(default = "true")]
    active: bool,
    #[pebble(default = "'untitled'")]
    title: std::string::String,
    #[pebble(default = "'\\x00'")]
    payload: Vec<u8>,
    // Accepted: `None` takes the default, `Some(v)` stores `v`, and the
    // nil UUID and the epoch are nobody's real values.
    #[pebble(default = "3")]
    weight: Option<i32>,
    #[pebble(default = "gen_random_uuid()")]
    token: uuid::Uuid,
    #[pebble(default = "now() - interval '1 day'")]
    since: chrono::DateTime<chrono::Utc>,
    #[pebble(default)]
    seq: i32,
}

fn main() {}
