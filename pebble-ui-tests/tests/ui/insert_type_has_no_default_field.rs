// A `New*` insert type leaves out what the database fills.
use pebble::Model;

#[derive(Model)]
#[pebble(insert = "NewTicket")]
struct Ticket {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
}

fn main() {
    let _ = NewTicket { id: 7, title: "x".into() };
}
