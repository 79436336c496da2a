//! Throwaway servers and names for the tests that run more than one
//! `TenantManager` (or more than one server) at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use pebble::Model;
use pebble_testkit::TempServer;
use tokio_postgres::NoTls;

/// Two servers, started once for the test binary (stopped and deleted
/// when it exits).
pub fn two() -> &'static (TempServer, TempServer) {
    static SERVERS: OnceLock<(TempServer, TempServer)> = OnceLock::new();
    SERVERS.get_or_init(|| {
        (
            TempServer::start().expect("server one"),
            TempServer::start().expect("server two"),
        )
    })
}

/// Names unique to one test of one run (tenant ids, home databases):
/// databases are server-wide, and test binaries may share a server.
pub fn ids(tag: &str) -> impl Fn(&str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "{tag}{}n{}_",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    move |name| format!("{prefix}{name}")
}

/// A plain tokio-postgres client, for looking behind pebble's back.
pub async fn raw(config: tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.expect("raw connect");
    tokio::spawn(connection);
    client
}

/// The table every tenant database of the manager and registry tests gets.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "notes", per_tenant)]
pub struct Note {
    #[pebble(primary_key, default)]
    pub id: i64,
    pub body: String,
}

/// A new note (its key from the database).
pub fn note(body: &str) -> Note {
    Note {
        id: 0,
        body: body.to_owned(),
    }
}
