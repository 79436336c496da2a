//! `#[derive(pebble::Enum)]` on real PostgreSQL: native enum types and text
//! with a CHECK constraint, both directions, in filters, nullable, created
//! by `create_table` (idempotently, also concurrently), in both statement
//! modes, and confined to the tenant like any other column.

use pebble::{Db, Error, Model, SqlEnum, StatementMode};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

#[derive(pebble::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[pebble(type_name = "task_status")]
enum Status {
    Todo,
    InProgress,
    #[pebble(rename = "finished")]
    Done,
}

#[derive(pebble::Enum, Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Low,
    High,
}

#[derive(pebble::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[pebble(text, rename_all = "SCREAMING_SNAKE_CASE")]
enum Kind {
    Bug,
    FeatureRequest,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tasks")]
struct Task {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    title: String,
    status: Status,
    priority: Option<Priority>,
    kind: Kind,
    previous: Option<Status>,
}

/// A second model over a table of its own using the same native type.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "task_events")]
struct TaskEvent {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    status: Status,
}

fn task(title: &str, status: Status, priority: Option<Priority>, kind: Kind) -> Task {
    Task {
        id: 0,
        org: Uuid::nil(),
        title: title.to_owned(),
        status,
        priority,
        kind,
        previous: None,
    }
}

async fn database(mode: StatementMode) -> (TestDatabase, Db) {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config())
        .await
        .expect("connect")
        .statement_mode(mode);
    db.create_table::<Task>().await.expect("tasks");
    (test_db, db)
}

fn titles(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.title.as_str()).collect()
}

async fn round_trip(mode: StatementMode) {
    let (_test_db, db) = database(mode).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tenant_a = db.tenant(a);
    let stored = tenant_a
        .insert_many([
            task("write", Status::Todo, Some(Priority::High), Kind::Bug),
            task("review", Status::InProgress, None, Kind::FeatureRequest),
            task("ship", Status::Done, Some(Priority::Low), Kind::Bug),
        ])
        .returning()
        .await
        .expect("insert");
    assert_eq!(stored[2].status, Status::Done);
    assert_eq!(stored[1].priority, None);
    assert_eq!(stored[1].kind, Kind::FeatureRequest);

    // The database holds the labels, and the native column has its own type.
    let row = db
        .cross_tenant()
        .select::<Task>()
        .filter(Task::TITLE.eq("ship"))
        .one()
        .await
        .expect("ship");
    assert_eq!(row.status, Status::Done);

    let ordered = |filter| {
        let select = tenant_a
            .select::<Task>()
            .filter(filter)
            .order_by(Task::TITLE.asc());
        async move { select.all().await.expect("select") }
    };
    assert_eq!(
        titles(&ordered(Task::STATUS.eq(Status::Done)).await),
        ["ship"]
    );
    assert_eq!(
        titles(&ordered(Task::STATUS.is_in([Status::Todo, Status::Done])).await),
        ["ship", "write"]
    );
    assert_eq!(
        titles(&ordered(Task::STATUS.not_in([Status::Todo])).await),
        ["review", "ship"]
    );
    assert_eq!(
        titles(&ordered(Task::STATUS.is_in(Vec::<Status>::new())).await),
        Vec::<&str>::new()
    );
    assert_eq!(titles(&ordered(Task::PRIORITY.is_null()).await), ["review"]);
    assert_eq!(
        titles(&ordered(Task::PRIORITY.eq(Priority::High)).await),
        ["write"]
    );
    assert_eq!(
        titles(&ordered(Task::PRIORITY.is_in([Priority::Low, Priority::High])).await),
        ["ship", "write"]
    );
    assert_eq!(
        titles(&ordered(Task::KIND.eq(Kind::FeatureRequest)).await),
        ["review"]
    );
    // Native enums order by declaration, not alphabetically.
    assert_eq!(
        titles(&ordered(Task::STATUS.gt(Status::Todo)).await),
        ["review", "ship"]
    );

    // Updates set enums, plain and nullable (NULL included).
    let changed = tenant_a
        .update::<Task>()
        .set(Task::STATUS, Status::Done)
        .set(Task::PREVIOUS, Status::Todo)
        .set(Task::PRIORITY, None::<Priority>)
        .filter(Task::TITLE.eq("write"))
        .returning()
        .await
        .expect("update");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status, Status::Done);
    assert_eq!(changed[0].previous, Some(Status::Todo));
    assert_eq!(changed[0].priority, None);

    // A second tenant sees none of it, and its writes by the same filters
    // change nothing of the first tenant's.
    let tenant_b = db.tenant(b);
    tenant_b
        .insert(task("other", Status::Done, None, Kind::Bug))
        .exec()
        .await
        .expect("b insert");
    let b_done = tenant_b
        .select::<Task>()
        .filter(Task::STATUS.eq(Status::Done))
        .all()
        .await
        .expect("b select");
    assert_eq!(titles(&b_done), ["other"]);
    let b_changed = tenant_b
        .update::<Task>()
        .set(Task::STATUS, Status::Todo)
        .filter(Task::STATUS.is_in([Status::Done, Status::InProgress]))
        .exec()
        .await
        .expect("b update");
    assert_eq!(b_changed, 1);
    let b_deleted = tenant_b
        .delete::<Task>()
        .filter(Task::KIND.eq(Kind::FeatureRequest))
        .exec()
        .await
        .expect("b delete");
    assert_eq!(b_deleted, 0);
    let a_after = ordered(Task::TITLE.ne("")).await;
    assert_eq!(titles(&a_after), ["review", "ship", "write"]);
    assert!(a_after
        .iter()
        .all(|t| t.status != Status::Todo && t.org == a));
}

#[tokio::test]
async fn enums_round_trip_with_prepared_statements() {
    round_trip(StatementMode::Prepared).await;
}

#[tokio::test]
async fn enums_round_trip_with_unnamed_statements() {
    round_trip(StatementMode::Unnamed).await;
}

#[tokio::test]
async fn create_table_makes_the_type_and_the_check() {
    let (test_db, db) = database(StatementMode::Prepared).await;
    // Again, and another table with the same type: nothing fails.
    db.create_table::<Task>().await.expect("again");
    db.create_table::<TaskEvent>().await.expect("events");
    let labels = db
        .cross_tenant()
        .select::<Task>()
        .count()
        .await
        .expect("count");
    assert_eq!(labels, 0);

    let client = raw_client(&test_db).await;
    let rows = client
        .query(
            "SELECT e.enumlabel::text FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
             WHERE t.typname = $1 ORDER BY e.enumsortorder",
            &[&"task_status"],
        )
        .await
        .expect("labels");
    let labels: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(labels, Status::DEF.labels);
    let column_type: String = client
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'tasks'::regclass AND attname = 'kind'",
            &[],
        )
        .await
        .expect("kind type")
        .get(0);
    assert_eq!(column_type, "text");

    // The CHECK constraint refuses a label the enum does not have.
    let refused = db
        .batch_execute(&format!(
            "INSERT INTO tasks (org, title, status, kind) VALUES ('{}', 'x', 'todo', 'CHORE')",
            Uuid::new_v4()
        ))
        .await
        .expect_err("not a label");
    assert!(matches!(&refused, Error::Database { .. }), "{refused:?}");
}

#[tokio::test]
async fn concurrent_create_table_creates_the_type_once() {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config()).await.expect("connect");
    let (tasks, events) = tokio::join!(db.create_table::<Task>(), db.create_table::<TaskEvent>());
    tasks.expect("tasks");
    events.expect("events");
    let a = Uuid::new_v4();
    db.tenant(a)
        .insert(TaskEvent {
            id: 0,
            org: Uuid::nil(),
            status: Status::InProgress,
        })
        .exec()
        .await
        .expect("event");
    let event = db
        .tenant(a)
        .select::<TaskEvent>()
        .one()
        .await
        .expect("read back");
    assert_eq!(event.status, Status::InProgress);
}

#[tokio::test]
async fn unknown_labels_are_decode_errors() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    let a = Uuid::new_v4();
    // The type gains a label the Rust enum does not know (a newer
    // deployment, a hand-made migration).
    db.batch_execute("ALTER TYPE task_status ADD VALUE 'archived'")
        .await
        .expect("new label");
    db.batch_execute(&format!(
        "INSERT INTO tasks (org, title, status, kind) VALUES ('{a}', 'old', 'archived', 'BUG')"
    ))
    .await
    .expect("drift");
    let err = db
        .tenant(a)
        .select::<Task>()
        .all()
        .await
        .expect_err("unknown label");
    match &err {
        Error::Decode { table, column, .. } => {
            assert_eq!((*table, *column), ("tasks", "status"));
            assert!(
                err.to_string().contains(
                    "`archived` is not a label of task_status (known: todo, in_progress, finished)"
                ),
                "{err}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Another tenant's reads are unaffected by the first tenant's row.
    assert!(db
        .tenant(Uuid::new_v4())
        .select::<Task>()
        .all()
        .await
        .expect("b reads")
        .is_empty());
}

/// A plain client on the test database, for catalog queries; its
/// connection task ends when the client is dropped.
async fn raw_client(test_db: &TestDatabase) -> pebble::tokio_postgres::Client {
    let (client, connection) = test_db
        .config()
        .connect(pebble::tokio_postgres::NoTls)
        .await
        .expect("raw connection");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn enums_under_row_level_security_and_in_raw_sql() {
    use pebble::{RlsDb, RlsTable};

    let (test_db, owner) = database(StatementMode::Prepared).await;
    let tables = [RlsTable::of::<Task>()];
    owner.install_rls_tables(&tables).await.expect("rls");
    let role = format!("app_{}", Uuid::new_v4().simple());
    let password = owner
        .create_app_role(&role, &tables)
        .await
        .expect("app role");
    let mut config = test_db.config();
    config.user(&role).password(&password);
    let app = RlsDb::connect(config).await.expect("app");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    app.tenant(a)
        .insert_many([
            task("write", Status::Todo, Some(Priority::Low), Kind::Bug),
            task("ship", Status::Done, None, Kind::FeatureRequest),
        ])
        .exec()
        .await
        .expect("insert");
    let done = app
        .tenant(a)
        .select::<Task>()
        .filter(Task::STATUS.eq(Status::Done))
        .all()
        .await
        .expect("select");
    assert_eq!(titles(&done), ["ship"]);

    // The derive's ToSql / FromSql: an enum as a raw parameter and column,
    // confined by the database to the tenant.
    let rows = app
        .tenant(a)
        .query(
            "SELECT status, priority FROM tasks WHERE status = $1",
            &[&Status::Todo],
        )
        .await
        .expect("raw");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Status>(0), Status::Todo);
    assert_eq!(rows[0].get::<_, Option<Priority>>(1), Some(Priority::Low));

    // The second tenant sees none of it, raw or typed, and cannot change it.
    let theirs = app
        .tenant(b)
        .query(
            "SELECT status FROM tasks WHERE status = $1",
            &[&Status::Todo],
        )
        .await
        .expect("b raw");
    assert!(theirs.is_empty());
    let changed = app
        .tenant(b)
        .update::<Task>()
        .set(Task::STATUS, Status::InProgress)
        .filter(Task::STATUS.is_in([Status::Todo, Status::Done]))
        .exec()
        .await
        .expect("b update");
    assert_eq!(changed, 0);
    let a_rows = app.tenant(a).select::<Task>().all().await.expect("a rows");
    assert!(a_rows.iter().all(|t| t.status != Status::InProgress));
}
