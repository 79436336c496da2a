//! What pebble traces (target `pebble::sql`): every statement with its
//! table, tenant, strategy, duration and row count, transaction
//! boundaries alike, and bound values only when the pool opted in.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pebble::{Db, Model, PoolOptions};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "secrets")]
struct Secret {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    #[pebble(unique)]
    token: String,
}

const VALUE: &str = "s3cret-token-value";

/// One captured event: its level and fields (the message as `message`).
#[derive(Debug, Clone)]
struct Event {
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Event {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Event>>>);

impl Capture {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "pebble::sql" {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// A database, a `Db` on it with `options`, the table, and a capture of
/// what happens from then on.
async fn setup(
    options: PoolOptions,
) -> (
    pebble_testkit::TestDatabase,
    Db,
    Capture,
    tracing::subscriber::DefaultGuard,
) {
    let test_db = pebble_testkit::database().await.expect("database");
    let db = Db::connect_with(test_db.config(), options)
        .await
        .expect("db");
    db.create_table::<Secret>().await.expect("table");
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (test_db, db, capture, guard)
}

fn secret(token: &str) -> Secret {
    Secret {
        id: 0,
        org: 0,
        token: token.into(),
    }
}

fn statements(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.get("message").is_some_and(|m| m.starts_with("statement")))
        .collect()
}

#[tokio::test]
async fn statements_carry_tenant_table_duration_and_rows_but_no_values() {
    let (_test_db, db, capture, _guard) = setup(PoolOptions::default()).await;
    let (a, b) = (db.tenant(1_i64), db.tenant(2_i64));
    a.insert(secret(VALUE)).exec().await.expect("insert");
    a.insert(secret("other")).exec().await.expect("insert");
    assert_eq!(a.select::<Secret>().all().await.expect("select").len(), 2);
    // The second tenant, aiming at the first's rows: nothing seen, nothing changed.
    let seen = b
        .select::<Secret>()
        .filter(Secret::TOKEN.eq(VALUE.to_string()))
        .all()
        .await
        .expect("select");
    assert!(seen.is_empty());
    let changed = b
        .update::<Secret>()
        .set(Secret::TOKEN, "stolen".to_string())
        .exec()
        .await
        .expect("update");
    assert_eq!(changed, 0);

    let events = capture.take();
    let stmts = statements(&events);
    assert_eq!(stmts.len(), 5, "{events:#?}");
    let expected = [("1", "1"), ("1", "1"), ("1", "2"), ("2", "0"), ("2", "0")];
    for (event, (tenant, rows)) in stmts.iter().zip(expected) {
        assert_eq!(event.level, Level::DEBUG);
        assert_eq!(event.get("table"), Some("secrets"), "{event:?}");
        assert_eq!(event.get("tenant"), Some(tenant), "{event:?}");
        assert_eq!(event.get("strategy"), Some("row"), "{event:?}");
        assert_eq!(event.get("rows"), Some(rows), "{event:?}");
        assert!(
            event.get("sql").is_some_and(|s| s.contains("\"secrets\"")),
            "{event:?}"
        );
        assert!(
            event
                .get("elapsed_us")
                .is_some_and(|d| d.parse::<u64>().is_ok()),
            "{event:?}"
        );
    }
    // The value the statements bound appears nowhere, at any level.
    for event in &events {
        assert!(event.level != Level::TRACE, "{event:?}");
        for value in event.fields.values() {
            assert!(
                !value.contains(VALUE) && !value.contains("stolen"),
                "{event:?}"
            );
        }
    }
}

#[tokio::test]
async fn transactions_log_begin_commit_and_rollback() {
    let (_test_db, db, capture, _guard) = setup(PoolOptions::default()).await;
    let tenant = db.tenant(7_i64);
    let tx = tenant.begin().await.expect("begin");
    tx.insert(secret("kept")).exec().await.expect("insert");
    tx.commit().await.expect("commit");
    let tx = tenant.begin().await.expect("begin");
    tx.insert(secret("undone")).exec().await.expect("insert");
    tx.rollback().await.expect("rollback");
    let tx = tenant.begin().await.expect("begin");
    drop(tx);

    let events = capture.take();
    let boundaries: Vec<&str> = events
        .iter()
        .filter(|e| e.get("message").is_some_and(|m| m.contains("transaction")))
        .filter_map(|e| e.get("sql"))
        .collect();
    assert_eq!(
        boundaries,
        ["BEGIN", "COMMIT", "BEGIN", "ROLLBACK", "BEGIN", "ROLLBACK"],
        "{events:#?}"
    );
    let inserts = statements(&events);
    assert_eq!(inserts.len(), 2);
    assert!(inserts.iter().all(|e| e.get("tenant") == Some("7")));
    assert_eq!(
        db.tenant(7_i64)
            .select::<Secret>()
            .count()
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn failures_are_traced_with_their_error() {
    let (_test_db, db, capture, _guard) = setup(PoolOptions::default()).await;
    let tenant = db.tenant(3_i64);
    tenant.insert(secret(VALUE)).exec().await.expect("insert");
    let e = tenant
        .insert(secret(VALUE))
        .exec()
        .await
        .expect_err("duplicate");
    assert!(e.is_unique_violation());
    let events = capture.take();
    let failed = events
        .iter()
        .find(|e| e.get("message") == Some("statement failed"))
        .expect("a failure event");
    assert!(
        failed.get("error").is_some_and(|m| m.contains("23505")),
        "{failed:?}"
    );
    assert_eq!(failed.get("tenant"), Some("3"));
    assert!(
        !failed.fields.values().any(|v| v.contains(VALUE)),
        "{failed:?}"
    );
}

#[tokio::test]
async fn values_are_traced_only_when_opted_in_and_at_trace_level() {
    let (_test_db, db, capture, _guard) = setup(PoolOptions::default().log_values(true)).await;
    db.tenant(4_i64)
        .insert(secret(VALUE))
        .exec()
        .await
        .expect("insert");
    let events = capture.take();
    let with_value: Vec<&Event> = events
        .iter()
        .filter(|e| e.fields.values().any(|v| v.contains(VALUE)))
        .collect();
    assert_eq!(with_value.len(), 1, "{events:#?}");
    assert_eq!(with_value[0].level, Level::TRACE);
    assert!(with_value[0].get("values").is_some());
    // The DEBUG event is the same as without the option.
    assert_eq!(statements(&events).len(), 1);
}

#[tokio::test]
async fn cross_tenant_statements_say_so() {
    let (_test_db, db, capture, _guard) = setup(PoolOptions::default()).await;
    db.tenant(5_i64)
        .insert(secret("x"))
        .exec()
        .await
        .expect("insert");
    db.tenant(6_i64)
        .insert(secret("y"))
        .exec()
        .await
        .expect("insert");
    let all = db
        .cross_tenant()
        .select::<Secret>()
        .all()
        .await
        .expect("all");
    assert_eq!(all.len(), 2);
    let events = capture.take();
    let last = statements(&events).pop().expect("event").clone();
    assert_eq!(last.get("strategy"), Some("cross_tenant"));
    assert_eq!(last.get("tenant"), None);
    assert_eq!(last.get("rows"), Some("2"));
}

/// Under row-level security: the strategy says so, the tenant is the
/// transaction's, and raw SQL (which the database confines) is traced with
/// its tenant too; the second tenant's events carry only its own rows.
#[tokio::test]
async fn row_level_security_statements_carry_their_tenant() {
    use common::rls::Fixture;
    use common::User;

    let f = Fixture::new().await;
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let a_users = f
        .app
        .tenant(f.a)
        .select::<User>()
        .all()
        .await
        .expect("select");
    assert_eq!(a_users.len(), 2);
    let rows = f
        .app
        .tenant(f.b)
        .query("SELECT name FROM users WHERE name = $1", &[&"ann"])
        .await
        .expect("raw");
    assert_eq!(rows.len(), 1, "b's own ann only");

    let events = capture.take();
    let stmt = statements(&events)[0].clone();
    assert_eq!(stmt.get("strategy"), Some("rls"), "{stmt:?}");
    assert_eq!(stmt.get("tenant"), Some(f.a.to_string().as_str()));
    assert_eq!(stmt.get("rows"), Some("2"));
    let raw = events
        .iter()
        .find(|e| e.get("message") == Some("raw SQL under row-level security"))
        .expect("raw SQL event");
    assert_eq!(raw.get("tenant"), Some(f.b.to_string().as_str()), "{raw:?}");
    assert!(raw.get("elapsed_us").is_some());
    // The bound value of the raw statement is not recorded.
    assert!(events.iter().all(|e| !e.fields.contains_key("values")));
}
