// Only models of the handle's tenant key type, or shared models, can be
// joined: a model keyed by another type (or living in each tenant's own
// schema) does not compile; a query on a shared model joins no tenant model.
use pebble::{Db, Model};
use uuid::Uuid;

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    project_id: i64,
}

#[derive(Model)]
struct LegacyProject {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i32,
}

#[derive(Model)]
#[pebble(per_tenant)]
struct Setting {
    #[pebble(primary_key)]
    id: i64,
}

fn other_key_type(db: Db, acme: Uuid) {
    let _ = db.tenant(acme).select::<Task>().join::<LegacyProject>();
}

fn per_tenant_model(db: Db, acme: Uuid) {
    let _ = db.tenant(acme).select::<Task>().left_join::<Setting>();
}

#[derive(Model)]
#[pebble(shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
}

fn shared_base_joins_a_tenant_model(db: Db) {
    let _ = db.select::<Plan>().join::<Task>();
}

fn main() {}
