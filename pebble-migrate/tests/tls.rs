//! pebble-migrate connects with pebble's TLS (feature `tls`): the settings
//! of the connection string, `sslmode=verify-full` and `sslrootcert`
//! included, against a real server with `ssl = on`.
//!
//! `cargo test -p pebble-pg-migrate --features tls --test tls`
#![cfg(feature = "tls")]

use pebble::IntoConfig;
use pebble_migrate::{Error, Fleet, Migration, Migrations, Target};
use pebble_testkit::{TempServer, TlsCertificates};
use tokio_postgres::NoTls;

fn write_ca(name: &str, pem: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pebble-migrate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("CA file");
    path
}

#[tokio::test]
async fn the_fleet_migrates_over_verified_tls() {
    let server = TempServer::start_tls().expect("TLS server");
    let ca = write_ca("ca.pem", server.tls().expect("TLS").ca_pem());
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url_for("postgres"),
        ca.display()
    );
    let config = url.as_str().into_connect().expect("URL");
    // The migration records whether its own connection is encrypted.
    let migrations = Migrations::new(vec![Migration::new(
        "0001_ssl.sql",
        "CREATE TABLE seen AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .expect("migration")])
    .expect("migrations");
    let report = Fleet::new(config)
        .run(&migrations, vec![Target::Shared])
        .await
        .expect("fleet");
    assert!(report.is_ok(), "{report:?}");

    let (client, connection) = server.config().connect(NoTls).await.expect("admin");
    let task = tokio::spawn(connection);
    let row = client
        .query_one("SELECT ssl FROM seen", &[])
        .await
        .expect("row");
    assert!(row.get::<_, bool>(0), "the migration ran over TLS");
    drop(client);
    let _ = task.await;

    // A CA that did not sign the server's certificate: refused, with why.
    let other = TlsCertificates::generate(&["127.0.0.1"]).expect("other CA");
    let wrong = write_ca("wrong.pem", other.ca_pem());
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url_for("postgres"),
        wrong.display()
    );
    let e = Fleet::new(url.as_str().into_connect().expect("URL"))
        .run(&migrations, vec![Target::Shared])
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, Error::Connection(message) if message.contains("UnknownIssuer")),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(ca.parent().expect("dir"));
}
