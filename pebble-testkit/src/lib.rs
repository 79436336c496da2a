//! A real PostgreSQL for pebble's tests and examples, with no set-up: for
//! pebble itself, and for applications built on it.
//!
//! In an application, add it as a dev-dependency, most simply through
//! pebble's `testkit` feature, which also brings `#[pebble::test]` (a fresh
//! database per test, as a `pebble::Db`) and re-exports this crate as
//! `pebble::testkit`:
//!
//! ```toml
//! [dev-dependencies]
//! pebble = { package = "pebble-pg", version = "0.1", features = ["testkit"] }
//! ```
//!
//! The machine running the tests needs the PostgreSQL server binaries
//! (Debian/Ubuntu: `apt-get install postgresql`; the system service is not
//! needed) or a `DATABASE_URL` on which the user may create databases.
//!
//! - With `DATABASE_URL` set, that server is used.
//! - Otherwise a throwaway cluster is started from the machine's PostgreSQL
//!   binaries (on `PATH` or in `/usr/lib/postgresql/*/bin`), once per
//!   process, on a free loopback port, as the `postgres` OS user when run as
//!   root. It is shut down and deleted when the process exits, and killed by
//!   the kernel if the process dies.
//!
//! Each test takes a fresh database; with pebble, `Db::connect(test_db.config())`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let test_db = pebble_testkit::database().await?;
//! let (client, connection) = test_db.config().connect(tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! client.batch_execute("CREATE TABLE t (n int)").await?;
//! # Ok(()) }
//! ```
//!
//! For TLS (feature `tls`), `TempServer::start_tls` starts a server with `ssl = on` and a
//! certificate signed by a CA generated for it (`TlsCertificates`), whose
//! PEM the test gives its client to trust.
//!
//! For testing through a connection pooler, [`PgBouncer`] starts a real
//! PgBouncer in transaction pooling mode in front of a server
//! ([`Server::pgbouncer`], [`TempServer::pgbouncer`]), with the same
//! guarantees: stopped and deleted at exit, killed by the kernel if the
//! process dies.
#![warn(missing_docs)]

mod binaries;
mod cluster;
mod pgbouncer;
mod process;
#[cfg(feature = "tls")]
mod tls;

pub use pgbouncer::{PgBouncer, PgBouncerOptions};
#[cfg(feature = "tls")]
pub use tls::TlsCertificates;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio_postgres::NoTls;

/// Why no database could be provided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `DATABASE_URL` nor server binaries.
    #[error(
        "no PostgreSQL to test against: the server binaries (initdb, postgres) are not on PATH \
         nor in /usr/lib/postgresql/*/bin. Install PostgreSQL (Debian/Ubuntu: \
         `apt-get install postgresql`) or set DATABASE_URL to a server you can create databases on"
    )]
    NoServerBinaries,
    /// `DATABASE_URL` is not a connection string.
    #[error("DATABASE_URL is not a valid PostgreSQL connection string: {0}")]
    BadDatabaseUrl(String),
    /// The throwaway server could not be started (this process's first attempt).
    #[error("could not start a throwaway PostgreSQL server: {0}")]
    Start(String),
    /// A file or process operation failed while starting the server.
    #[error("could not start a throwaway PostgreSQL server: {0}")]
    Io(#[from] std::io::Error),
    /// [`PgBouncer`] was asked for, and the `pgbouncer` binary is missing.
    #[error(
        "PgBouncer is not installed: no `pgbouncer` on PATH nor at /usr/sbin/pgbouncer. Install \
         it (Debian/Ubuntu: `apt-get install pgbouncer`; its system service is not needed, \
         pebble-testkit starts its own)"
    )]
    NoPgBouncer,
    /// [`postgres_program`] found the server binaries but not this program
    /// beside them.
    #[error(
        "`{0}` is not beside the PostgreSQL server binaries pebble-testkit uses; it comes \
         with the server package (Debian/Ubuntu: `apt-get install postgresql`)"
    )]
    NoProgram(String),
    /// A [`PgBouncer`] could not be started, or no query went through it.
    #[error("could not start PgBouncer: {0}")]
    PgBouncerStart(String),
    /// The server refused a statement (e.g. `CREATE DATABASE`).
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// A program of the PostgreSQL installation that [`TempServer`] runs
/// (`pgbench`, `psql`, ...), found the way its server binaries are: on
/// `PATH`, else in the newest `/usr/lib/postgresql/<version>/bin`.
///
/// ```no_run
/// # fn demo() -> Result<(), pebble_testkit::Error> {
/// let pgbench = pebble_testkit::postgres_program("pgbench")?;
/// assert!(pgbench.ends_with("pgbench"));
/// # Ok(()) }
/// ```
pub fn postgres_program(name: &str) -> Result<std::path::PathBuf, Error> {
    binaries::Binaries::find()?
        .sibling(name)
        .ok_or_else(|| Error::NoProgram(name.to_owned()))
}

/// The PostgreSQL server of this process.
pub struct Server {
    admin: tokio_postgres::Config,
    /// The throwaway cluster, when not using `DATABASE_URL`; stopped at exit.
    cluster: Option<cluster::Cluster>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("external", &self.is_external())
            .field("config", &self.admin)
            .finish()
    }
}

/// Settings of a throwaway server started by [`TempServer::start_with`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    max_connections: u32,
    password_logins: bool,
}

impl Default for ServerOptions {
    /// 400 connections: room for the database-per-tenant tests' many pools.
    fn default() -> Self {
        ServerOptions {
            max_connections: 400,
            password_logins: false,
        }
    }
}

impl ServerOptions {
    /// The server's `max_connections` (at least 10). Each connection the
    /// server allows reserves shared memory and semaphores at start.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(10);
        self
    }

    /// Every role but `postgres` logs in over TCP only with its
    /// SCRAM-SHA-256 password (`postgres` keeps logging in without one, to
    /// create those roles), instead of initdb's trust for everyone: for
    /// tests of passwords the server must check.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), pebble_testkit::Error> {
    /// use pebble_testkit::{ServerOptions, TempServer};
    /// let server = TempServer::start_with(ServerOptions::default().password_logins())?;
    /// # Ok(()) }
    /// ```
    pub fn password_logins(mut self) -> Self {
        self.password_logins = true;
        self
    }
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The server to test against: `DATABASE_URL` when set, otherwise a
/// throwaway cluster, started on first call and shared by the process.
///
/// Blocks for about a second on the first call, while the cluster starts.
pub fn server() -> Result<&'static Server, Error> {
    SERVER
        .get_or_init(|| Server::from_env_or_start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| Error::Start(message.clone()))
}

/// A fresh, empty database on [`server()`] for one test.
pub async fn database() -> Result<TestDatabase, Error> {
    server()?.create_database("pebble_test").await
}

impl Server {
    fn from_env_or_start() -> Result<Server, Error> {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            let admin = url
                .parse()
                .map_err(|e: tokio_postgres::Error| Error::BadDatabaseUrl(e.to_string()))?;
            return Ok(Server {
                admin,
                cluster: None,
            });
        }
        let cluster = cluster::Cluster::start(ServerOptions::default())?;
        Ok(Server {
            admin: local_config(cluster.port()),
            cluster: Some(cluster),
        })
    }

    /// A configuration for the server's maintenance database (`postgres`,
    /// or the database named in `DATABASE_URL`), where `CREATE DATABASE` can run.
    pub fn config(&self) -> tokio_postgres::Config {
        self.admin.clone()
    }

    /// A configuration for `database` on this server.
    pub fn config_for(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.admin.clone();
        config.dbname(database);
        config
    }

    /// Starts a [`PgBouncer`] in front of this server, connecting to it as
    /// [`Server::config`] does (see [`PgBouncer::start`] for what that needs
    /// of a `DATABASE_URL` server).
    pub fn pgbouncer(&self, options: PgBouncerOptions) -> Result<PgBouncer, Error> {
        PgBouncer::start(&self.admin, options)
    }

    /// Whether the server came from `DATABASE_URL` (and so outlives the process).
    pub fn is_external(&self) -> bool {
        self.cluster.is_none()
    }

    /// Creates a database named `<prefix>_<pid>_<n>` and returns it. On a
    /// `DATABASE_URL` server it is dropped again when the returned value is.
    pub async fn create_database(&'static self, prefix: &str) -> Result<TestDatabase, Error> {
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        self.execute(&format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(TestDatabase { server: self, name })
    }

    /// Runs SQL on the maintenance database.
    pub async fn execute(&self, sql: &str) -> Result<(), Error> {
        let (client, connection) = self.admin.connect(NoTls).await?;
        let connection = tokio::spawn(connection);
        let result = client.batch_execute(sql).await;
        drop(client);
        let _ = connection.await;
        Ok(result?)
    }
}

fn local_config(port: u16) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres");
    config
}

/// A PostgreSQL server of a test's own, which it can stop and start again:
/// for testing what happens while a database is down. Always a local
/// throwaway cluster (it needs the server binaries even when `DATABASE_URL`
/// is set); stopped and deleted when dropped, or at process exit.
///
/// ```no_run
/// # fn demo() -> Result<(), pebble_testkit::Error> {
/// let server = pebble_testkit::TempServer::start()?;
/// server.stop(); // connections now fail
/// server.restart()?; // same port, same data
/// # Ok(()) }
/// ```
pub struct TempServer {
    cluster: cluster::Cluster,
    #[cfg(feature = "tls")]
    tls: Option<TlsCertificates>,
}

impl TempServer {
    /// Creates and starts the server (blocks for about a second).
    pub fn start() -> Result<TempServer, Error> {
        TempServer::start_with(ServerOptions::default())
    }

    /// [`TempServer::start`] with settings other than the defaults.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), pebble_testkit::Error> {
    /// use pebble_testkit::{ServerOptions, TempServer};
    /// // Room for a thousand tenant pools of one connection each.
    /// let server = TempServer::start_with(ServerOptions::default().max_connections(1_100))?;
    /// # Ok(()) }
    /// ```
    pub fn start_with(options: ServerOptions) -> Result<TempServer, Error> {
        Ok(TempServer {
            cluster: cluster::Cluster::start(options)?,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    #[cfg(feature = "tls")]
    /// Starts a server with `ssl = on`, presenting a certificate for
    /// `localhost` and `127.0.0.1` signed by a CA generated for it (see
    /// [`TempServer::tls`] for the CA to trust). Plain connections are
    /// still accepted, as on a default PostgreSQL with TLS on.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), pebble_testkit::Error> {
    /// let server = pebble_testkit::TempServer::start_tls()?;
    /// let ca_pem = server.tls().expect("TLS server").ca_pem();
    /// // connect with sslmode=verify-full, trusting ca_pem
    /// # Ok(()) }
    /// ```
    pub fn start_tls() -> Result<TempServer, Error> {
        TempServer::start_tls_for(&["localhost", "127.0.0.1"])
    }

    #[cfg(feature = "tls")]
    /// [`TempServer::start_tls`] with a certificate for `names` (DNS names
    /// or IP addresses): a certificate for another name than the one
    /// connected to tests host name verification.
    pub fn start_tls_for(names: &[&str]) -> Result<TempServer, Error> {
        TempServer::start_tls_with(names, None)
    }

    /// [`TempServer::start_tls`], where TCP clients must log in with a
    /// certificate signed by the server's CA whose common name is their
    /// user name (`hostssl ... cert` in `pg_hba.conf`): see
    /// [`TlsCertificates::client_cert_pem`] for one, for user `postgres`.
    #[cfg(feature = "tls")]
    pub fn start_tls_requiring_client_certs() -> Result<TempServer, Error> {
        TempServer::start_tls_with(
            &["localhost", "127.0.0.1"],
            Some(
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 cert\n\
                 hostssl all all ::1/128 cert\n",
            ),
        )
    }

    /// [`TempServer::start_tls`], where every role but `postgres` logs in
    /// over TCP only with TLS and a SCRAM-SHA-256 password (`postgres`
    /// keeps logging in without one, to create those roles). The server
    /// then offers SCRAM-SHA-256-PLUS, channel binding to the TLS session.
    #[cfg(feature = "tls")]
    pub fn start_tls_with_password_logins() -> Result<TempServer, Error> {
        TempServer::start_tls_with(
            &["localhost", "127.0.0.1"],
            Some(
                "local all all trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n",
            ),
        )
    }

    #[cfg(feature = "tls")]
    fn start_tls_with(names: &[&str], hba: Option<&str>) -> Result<TempServer, Error> {
        let certs = TlsCertificates::generate(names)?;
        let setup = cluster::TlsSetup {
            cert_pem: certs.cert_pem(),
            key_pem: certs.key_pem(),
            ca_pem: certs.ca_pem(),
            hba,
        };
        Ok(TempServer {
            cluster: cluster::Cluster::start_with(ServerOptions::default(), Some(&setup))?,
            tls: Some(certs),
        })
    }

    #[cfg(feature = "tls")]
    /// The certificates of a server started with TLS.
    pub fn tls(&self) -> Option<&TlsCertificates> {
        self.tls.as_ref()
    }

    /// A URL for `database` on it (`postgres://postgres@127.0.0.1:PORT/DB`),
    /// to add parameters such as `?sslmode=require` to.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.cluster.port()
        )
    }

    /// A configuration for its `postgres` database.
    pub fn config(&self) -> tokio_postgres::Config {
        local_config(self.cluster.port())
    }

    /// A configuration for `database` on it.
    pub fn config_for(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.config();
        config.dbname(database);
        config
    }

    /// Starts a [`PgBouncer`] in front of this server. It keeps working
    /// across [`TempServer::stop`] and [`TempServer::restart`] (new server
    /// connections fail while the server is down).
    pub fn pgbouncer(&self, options: PgBouncerOptions) -> Result<PgBouncer, Error> {
        PgBouncer::start(&self.config(), options)
    }

    /// Stops the server (fast shutdown: committed data is kept).
    pub fn stop(&self) {
        self.cluster.stop();
    }

    /// Starts the server again on the same port, with the same data.
    pub fn restart(&self) -> Result<(), Error> {
        self.cluster.restart()
    }
}

impl std::fmt::Debug for TempServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempServer")
            .field("port", &self.cluster.port())
            .finish()
    }
}

/// A database created for one test (see [`database`]).
#[derive(Debug)]
pub struct TestDatabase {
    server: &'static Server,
    name: String,
}

impl TestDatabase {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A configuration that connects to this database.
    pub fn config(&self) -> tokio_postgres::Config {
        self.server.config_for(&self.name)
    }

    /// The server the database lives on.
    pub fn server(&self) -> &'static Server {
        self.server
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The throwaway cluster is deleted whole at exit; only a server that
        // outlives us needs its test databases removed.
        if !self.server.is_external() {
            return;
        }
        let server = self.server;
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop cannot await; a short-lived thread with its own runtime can.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(server.execute(&sql))
                .map_err(std::io::Error::other)
        })
        .join();
    }
}
