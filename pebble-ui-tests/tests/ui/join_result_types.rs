// Rows decode into the types the query says: a left-joined model is an
// Option, a projection's tuple has its columns' types, aggregates theirs.
use pebble::{Db, Model};

#[derive(Model)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
    assignee_id: Option<i64>,
}

#[derive(Model)]
struct User {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
}

async fn left_join_is_optional(db: Db) -> pebble::Result<()> {
    let _rows: Vec<(Task, User)> = db
        .tenant(1_i64)
        .select::<Task>()
        .left_join::<User>()
        .on(Task::ASSIGNEE_ID.eq_col(User::ID))
        .all()
        .await?;
    Ok(())
}

async fn projection_types(db: Db) -> pebble::Result<()> {
    let _rows: Vec<(i64, i32)> = db
        .tenant(1_i64)
        .select::<Task>()
        .columns((Task::ID, Task::TITLE))
        .all()
        .await?;
    Ok(())
}

async fn sum_of_bigint_is_optional(db: Db) -> pebble::Result<()> {
    let _total: i64 = db
        .tenant(1_i64)
        .select::<Task>()
        .columns(Task::ID.sum())
        .one()
        .await?;
    Ok(())
}

fn no_sum_of_text(db: Db) {
    let _ = db.tenant(1_i64).select::<Task>().columns(Task::TITLE.sum());
}

fn main() {}
