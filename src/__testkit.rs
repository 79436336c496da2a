//! What `#[pebble::test]` expands to calls (feature `testkit`). Not a
//! public API: only the macro's output uses it.

use std::future::Future;

use crate::{Db, SingleTableModel};

/// Runs one test: a tokio runtime (current-thread, or multi-thread when
/// `multi_thread`), a fresh database on the
/// process's test server (`DATABASE_URL`, or a throwaway cluster shared by
/// the test binary), a `Db` on it; the database is dropped afterwards.
///
/// Panics (failing the test) when no database can be had: a test that
/// silently did not run would pass.
pub fn run<F, Fut, T>(name: &str, multi_thread: bool, test: F) -> T
where
    F: FnOnce(Db, tokio_postgres::Config) -> Fut,
    Fut: Future<Output = T>,
{
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("#[pebble::test] {name}: cannot start a tokio runtime: {e}"));
    let (test_db, db) = runtime.block_on(async {
        let test_db = pebble_testkit::database()
            .await
            .unwrap_or_else(|e| panic!("#[pebble::test] {name}: no test database: {e}"));
        let db = Db::connect(test_db.config())
            .await
            .unwrap_or_else(|e| panic!("#[pebble::test] {name}: cannot connect: {e}"));
        (test_db, db)
    });
    let config = test_db.config();
    let output = runtime.block_on(test(db, config));
    // WITH (FORCE): a pool the test leaked (in a static, say) cannot keep it.
    let drop_sql = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        test_db.name()
    );
    if let Err(e) = runtime.block_on(test_db.server().execute(&drop_sql)) {
        // The test's own outcome stands; the database goes with the
        // throwaway server at exit, or stays on a DATABASE_URL server.
        eprintln!(
            "#[pebble::test] {name}: could not drop database {}: {e}",
            test_db.name()
        );
    }
    output
}

/// `CREATE TABLE` for a model named in `models(...)`, failing the test
/// with the reason if it cannot. A per-tenant model has no table on the
/// test's plain `Db` (see `Db::create_table`), so it does not compile here.
pub async fn create_table<M: SingleTableModel>(db: &Db) {
    if let Err(e) = db.create_table::<M>().await {
        panic!(
            "#[pebble::test]: cannot create the table of {} (`{}`): {e}",
            std::any::type_name::<M>(),
            M::TABLE
        );
    }
}
