//! `Db::verify` / `pebble::verify!` on real PostgreSQL: tables made by
//! `create_table` (or by hand with other spellings of the same types) give
//! an empty report; deliberately drifted tables report every mismatch, by
//! model and column.

use pebble::{Db, Error, MismatchKind, Model, ModelSchema, SchemaReport, StatementMode};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

#[derive(pebble::Enum, Debug, Clone, Copy, PartialEq)]
#[pebble(type_name = "task_state")]
enum State {
    Todo,
    InProgress,
    Done,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "tasks")]
struct Task {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    #[pebble(unique)]
    code: String,
    title: String,
    votes: i32,
    note: Option<String>,
    estimate: Option<f64>,
    state: State,
    #[pebble(default)]
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "plans", shared)]
struct Plan {
    #[pebble(primary_key)]
    code: String,
    seats: i16,
}

/// A tenant model keyed by text, for the unsafe tenant column check.
#[derive(Model, Debug, Clone)]
#[pebble(table = "accounts")]
struct Account {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: String,
    balance: i64,
}

async fn database(mode: StatementMode) -> (TestDatabase, Db) {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config())
        .await
        .expect("connect")
        .statement_mode(mode);
    (test_db, db)
}

/// `(column, kind)` of each mismatch of `model`, in report order.
fn kinds<'a>(report: &'a SchemaReport, model: &'a str) -> Vec<(Option<&'a str>, &'a MismatchKind)> {
    report
        .of_model(model)
        .map(|m| (m.column.as_deref(), &m.kind))
        .collect()
}

#[tokio::test]
async fn tables_from_create_table_match() {
    for mode in [StatementMode::Prepared, StatementMode::Unnamed] {
        let (_test_db, db) = database(mode).await;
        db.create_table::<Task>().await.expect("tasks");
        db.create_table::<Plan>().await.expect("plans");
        db.create_table::<Account>().await.expect("accounts");
        let report = pebble::verify!(db, [Task, Plan, Account])
            .await
            .expect("verify");
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.to_string(), "every model matches its table");
        report.check().expect("no mismatch");
        assert!(db.verify::<Task>().await.expect("verify").is_ok());
    }
}

#[tokio::test]
async fn other_spellings_of_the_same_types_match() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    db.batch_execute(
        "CREATE TYPE task_state AS ENUM ('todo', 'in_progress', 'done');
         CREATE TABLE tasks (
             id int8 GENERATED ALWAYS AS IDENTITY,
             org uuid NOT NULL,
             code varchar(40) NOT NULL,
             title character varying NOT NULL,
             votes int4 NOT NULL,
             note text,
             estimate float8,
             state task_state NOT NULL,
             created_at timestamp with time zone NOT NULL DEFAULT now(),
             PRIMARY KEY (id)
         );
         CREATE UNIQUE INDEX tasks_code ON tasks (code, org);
         CREATE INDEX tasks_by_org ON tasks (org, created_at);
         CREATE TABLE plans (code text PRIMARY KEY, seats int2 NOT NULL);",
    )
    .await
    .expect("hand-made tables");
    let report = db
        .verify_all(&[ModelSchema::of::<Task>(), ModelSchema::of::<Plan>()])
        .await
        .expect("verify");
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn every_kind_of_drift_is_reported() {
    let (_test_db, db) = database(StatementMode::Prepared).await;
    db.batch_execute(
        "CREATE TYPE task_state AS ENUM ('todo', 'done', 'archived');
         CREATE TABLE tasks (
             id bigint NOT NULL,
             org uuid NOT NULL,
             code text NOT NULL,
             title text,
             votes bigint NOT NULL,
             note text NOT NULL,
             state task_state NOT NULL,
             created_at timestamp NOT NULL DEFAULT now(),
             legacy text NOT NULL,
             archived boolean DEFAULT false
         );
         COMMENT ON TABLE tasks IS 'pebble: tenant column owner';
         CREATE INDEX tasks_code_idx ON tasks (code);
         CREATE TABLE accounts (
             id bigint PRIMARY KEY,
             org character(8) NOT NULL,
             balance bigint NOT NULL
         );
         CREATE INDEX accounts_org_idx ON accounts (org);",
    )
    .await
    .expect("drifted tables");
    let report = pebble::verify!(db, [Task, Plan, Account])
        .await
        .expect("verify");
    assert!(!report.is_ok());

    let task = kinds(&report, "Task");
    let expected: Vec<(Option<&str>, MismatchKind)> = vec![
        (
            None,
            MismatchKind::TenantRecord {
                declared: Some("org"),
                recorded: Some("owner".into()),
            },
        ),
        (
            Some("id"),
            MismatchKind::MissingDefault {
                expected: "GENERATED BY DEFAULT AS IDENTITY",
            },
        ),
        (
            Some("title"),
            MismatchKind::Nullability {
                model_nullable: false,
                column_nullable: true,
            },
        ),
        (
            Some("votes"),
            MismatchKind::TypeMismatch {
                expected: "integer",
                found: "bigint".into(),
            },
        ),
        (
            Some("note"),
            MismatchKind::Nullability {
                model_nullable: true,
                column_nullable: false,
            },
        ),
        (
            Some("estimate"),
            MismatchKind::MissingColumn {
                expected_type: "double precision",
            },
        ),
        (
            Some("state"),
            MismatchKind::EnumLabels {
                expected: vec!["todo", "in_progress", "done"],
                found: vec!["todo".into(), "done".into(), "archived".into()],
            },
        ),
        (
            Some("created_at"),
            MismatchKind::TypeMismatch {
                expected: "timestamptz",
                found: "timestamp without time zone".into(),
            },
        ),
        (
            Some("legacy"),
            MismatchKind::ExtraColumn {
                column_type: "text".into(),
                nullable: false,
                has_default: false,
            },
        ),
        (
            Some("archived"),
            MismatchKind::ExtraColumn {
                column_type: "boolean".into(),
                nullable: true,
                has_default: true,
            },
        ),
        (
            None,
            MismatchKind::PrimaryKey {
                expected: vec!["id"],
                found: vec![],
            },
        ),
        (Some("org"), MismatchKind::MissingTenantIndex),
        (Some("code"), MismatchKind::MissingUniqueIndex),
    ];
    let expected: Vec<(Option<&str>, &MismatchKind)> =
        expected.iter().map(|(c, k)| (*c, k)).collect();
    assert_eq!(task, expected, "{report}");

    assert_eq!(
        kinds(&report, "Plan"),
        [(None, &MismatchKind::MissingTable)]
    );
    assert_eq!(
        kinds(&report, "Account"),
        [(
            Some("org"),
            &MismatchKind::UnsafeTenantColumn {
                column_type: "character(8)".into()
            }
        )]
    );

    // The printed report names every model and column, one line each.
    let printed = report.to_string();
    assert_eq!(printed.lines().count(), report.mismatches().len());
    assert!(
        printed.contains("Task (`tasks.votes`): the model expects integer, the column is bigint")
    );
    assert!(printed.contains("Plan (`plans`): the table does not exist"));
    assert!(printed.contains("NOT NULL without a default: inserts will fail"));

    let err = report.check().expect_err("drift");
    match &err {
        Error::SchemaMismatch { report } => assert_eq!(report.mismatches().len(), 15),
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("the schema does not match the models (15 mismatch(es))"));
}

#[tokio::test]
async fn a_fixed_table_verifies_again() {
    let (_test_db, db) = database(StatementMode::Unnamed).await;
    db.batch_execute("CREATE TABLE plans (code text PRIMARY KEY, seats integer NOT NULL)")
        .await
        .expect("plans");
    let report = db.verify::<Plan>().await.expect("verify");
    assert_eq!(
        kinds(&report, "Plan"),
        [(
            Some("seats"),
            &MismatchKind::TypeMismatch {
                expected: "smallint",
                found: "integer".into()
            }
        )]
    );
    db.batch_execute("ALTER TABLE plans ALTER COLUMN seats TYPE smallint")
        .await
        .expect("fix");
    assert!(db.verify::<Plan>().await.expect("verify").is_ok());
}
