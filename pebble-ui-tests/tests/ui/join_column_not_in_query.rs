// A filter, an order, a join condition or a selected column on a model the
// query does not select or join does not compile.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    project_id: i64,
    assignee_id: i64,
}

#[derive(Model)]
struct Project {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    name: String,
}

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    name: String,
}

fn filter_on_a_model_not_joined(db: Db) {
    let _ = db
        .tenant(1_i64)
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .filter(User::NAME.eq("ann"));
}

fn order_by_a_model_not_joined(db: Db) {
    let _ = db
        .tenant(1_i64)
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .order_by(User::NAME.asc());
}

fn join_condition_on_a_third_model(db: Db) {
    let _ = db
        .tenant(1_i64)
        .select::<Task>()
        .join::<Project>()
        .on(Task::ASSIGNEE_ID.eq_col(User::ID));
}

fn select_a_column_of_a_model_not_joined(db: Db) {
    let _ = db.tenant(1_i64).select::<Task>().columns((Task::ID, Project::NAME));
}

fn main() {}
