// A `New*` insert type has no tenant field: the tenant handle stamps the
// tenant, so a caller cannot name another one.
use pebble::{Db, Model};

#[derive(Model)]
#[pebble(insert = "NewTicket")]
struct Ticket {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
}

fn insert_for_another_tenant(db: Db) {
    let _ = db.tenant(1_i64).insert(NewTicket { org: 2, title: "x".into() });
}

fn main() {}
