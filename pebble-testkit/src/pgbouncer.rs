//! A real PgBouncer in transaction pooling mode, in front of a server, for
//! testing that pebble works where a session does not last longer than a
//! transaction.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::process::{self, tail, Guarded, RunAs, TempDir};
use crate::{binaries, Error};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a [`PgBouncer`] pools: see [`PgBouncer::start`] for the settings that
/// are fixed.
///
/// ```
/// let options = pebble_testkit::PgBouncerOptions::default().pool_size(1);
/// ```
#[derive(Debug, Clone)]
pub struct PgBouncerOptions {
    pool_size: u32,
    max_client_conn: u32,
    forced_user: Option<(String, String)>,
}

impl Default for PgBouncerOptions {
    /// 4 server connections per database and user, for up to 200 clients: few
    /// enough that concurrent clients share server connections.
    fn default() -> Self {
        PgBouncerOptions {
            pool_size: 4,
            max_client_conn: 200,
            forced_user: None,
        }
    }
}

impl PgBouncerOptions {
    /// Server connections per (database, user) pair: PgBouncer's
    /// `default_pool_size`. At least 1.
    pub fn pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// How many clients may connect at once: PgBouncer's `max_client_conn`.
    pub fn max_client_conn(mut self, max_client_conn: u32) -> Self {
        self.max_client_conn = max_client_conn.max(1);
        self
    }

    /// Log every client in to the server as `user` with `password`,
    /// whatever user the client named (`user=` and `password=` on the
    /// databases entry), as a pooler configured with one server user does:
    /// to test what relies on the session user being the client's. Neither
    /// may contain a space or a quote.
    pub fn forced_user(mut self, user: &str, password: &str) -> Self {
        self.forced_user = Some((user.to_owned(), password.to_owned()));
        self
    }
}

/// A PgBouncer of a test's own, in `pool_mode = transaction` in front of a
/// PostgreSQL server: a client keeps a server connection only for the length
/// of a transaction (or of one statement outside a transaction), so session
/// state (`SET`, named prepared statements, which PgBouncer 1.18 does not
/// track) cannot be relied on from one transaction to the next.
///
/// Stopped and deleted when dropped, or at process exit; killed by the kernel
/// if the process dies (the same guarantees as the throwaway servers).
/// Needs the `pgbouncer` binary (Debian/Ubuntu package `pgbouncer`), on
/// `PATH` or at `/usr/sbin/pgbouncer`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pebble_testkit::PgBouncerOptions;
///
/// let test_db = pebble_testkit::database().await?;
/// let bouncer = test_db.server().pgbouncer(PgBouncerOptions::default().pool_size(2))?;
/// let (client, connection) = bouncer
///     .config_for(test_db.name())
///     .connect(tokio_postgres::NoTls)
///     .await?;
/// tokio::spawn(connection);
/// // Unnamed statements with parameter types: one round trip, nothing kept
/// // on the server connection, so safe in transaction mode.
/// let rows = client
///     .query_typed("SELECT $1::int + 1", &[(&41i32, tokio_postgres::types::Type::INT4)])
///     .await?;
/// assert_eq!(rows[0].get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
pub struct PgBouncer {
    port: u16,
    user: String,
    dbname: String,
    /// Declared before `dir` so that on drop PgBouncer is stopped before its
    /// directory (config, log) is deleted.
    _process: Guarded,
    dir: TempDir,
}

/// Where the server behind PgBouncer is, as PgBouncer needs it.
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    dbname: String,
}

impl PgBouncer {
    /// Starts a PgBouncer on a free loopback port in front of the server that
    /// `server` connects to (usually [`Server::config`](crate::Server::config)
    /// or [`TempServer::config`](crate::TempServer::config); the shorthands
    /// are [`Server::pgbouncer`](crate::Server::pgbouncer) and
    /// [`TempServer::pgbouncer`](crate::TempServer::pgbouncer)). Blocks until
    /// a query goes through it.
    ///
    /// Fixed settings: `pool_mode = transaction`; every database name is
    /// forwarded to the server's database of the same name; clients are not
    /// asked for a password (`auth_type = trust`), and users are looked up on
    /// the server (`auth_user` = `server`'s user), so a role a test creates
    /// later can connect through PgBouncer as itself; no Unix socket; no reset
    /// query (none runs in transaction mode anyway). A client that sends the
    /// `options` startup parameter is refused: the settings it asks for could
    /// not last past a transaction. PgBouncer's log is `pgbouncer.log` in its
    /// directory, and its tail is part of any start-up error.
    ///
    /// The server is reached at `server`'s first host and port (`hostaddr`
    /// wins over `host`, as in libpq). With a server of one's own (a
    /// `DATABASE_URL`), limits follow from PgBouncer logging in for the
    /// client:
    /// - `server`'s user must be a superuser (PgBouncer reads `pg_shadow` as
    ///   it to look up the other users);
    /// - `server`'s password, if any, is given to PgBouncer for that user
    ///   only; other roles must be able to log in from PgBouncer's address
    ///   without a password, e.g. `trust` for `127.0.0.1` in `pg_hba.conf`;
    /// - TLS to the server is not used.
    pub fn start(
        server: &tokio_postgres::Config,
        options: PgBouncerOptions,
    ) -> Result<PgBouncer, Error> {
        let target = Target::from_config(server)?;
        let binary = binaries::pgbouncer()?;
        let run_as = process::run_as().map_err(Error::PgBouncerStart)?;
        let dir = TempDir::create(run_as).map_err(start_error)?;
        let log = dir.path().join("pgbouncer.log");
        let mut attempt = 0;
        loop {
            let port = process::free_port().map_err(start_error)?;
            match launch(&binary, run_as, &dir, port, &target, &options) {
                Ok(process) => {
                    return Ok(PgBouncer {
                        port,
                        user: target.user,
                        dbname: target.dbname,
                        _process: process,
                        dir,
                    })
                }
                // A free port can be taken between our probe and PgBouncer's
                // bind; only then is another attempt worth it.
                Err(_) if attempt < 4 && tail(&log).contains("Address already in use") => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The loopback port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A configuration that connects through PgBouncer to the server's
    /// database and user of the configuration it was started with.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname);
        config
    }

    /// A configuration that connects through PgBouncer to `database`.
    pub fn config_for(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.config();
        config.dbname(database);
        config
    }
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Target {
    fn from_config(config: &tokio_postgres::Config) -> Result<Target, Error> {
        let bad = |what: &str| Error::PgBouncerStart(format!("the server's configuration {what}"));
        let host = match (config.get_hostaddrs().first(), config.get_hosts().first()) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(Host::Tcp(host))) => host.clone(),
            (None, Some(Host::Unix(dir))) => dir
                .to_str()
                .ok_or_else(|| bad("has a socket directory that is not UTF-8"))?
                .to_owned(),
            (None, None) => return Err(bad("names no host")),
        };
        // PgBouncer's connection strings are space-separated `key=value` pairs.
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "'\"\\".contains(c))
        {
            return Err(bad(
                "has a host PgBouncer cannot be given (empty, or with spaces or quotes)",
            ));
        }
        let user = config
            .get_user()
            .ok_or_else(|| bad("names no user"))?
            .to_owned();
        let password = config
            .get_password()
            .map(|p| {
                String::from_utf8(p.to_vec()).map_err(|_| bad("has a password that is not UTF-8"))
            })
            .transpose()?;
        // Config-file lines: a line break would start a new setting.
        let one_line = |s: &str| !s.chars().any(|c| c == '\n' || c == '\r' || c == '\0');
        if !one_line(&user) || !password.as_deref().is_none_or(one_line) {
            return Err(bad("has a user or password with a line break"));
        }
        Ok(Target {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            dbname: config.get_dbname().unwrap_or(&user).to_owned(),
            user,
            password,
        })
    }
}

fn launch(
    binary: &Path,
    run_as: Option<RunAs>,
    dir: &TempDir,
    port: u16,
    target: &Target,
    options: &PgBouncerOptions,
) -> Result<Guarded, Error> {
    let ini = write_config(dir.path(), port, target, options).map_err(start_error)?;
    let log = dir.path().join("pgbouncer.log");
    let out = File::create(&log).map_err(start_error)?;
    let mut command = dir.command(binary, run_as);
    command
        .arg(&ini)
        .stdout(out.try_clone().map_err(start_error)?)
        .stderr(out);
    // SIGTERM is PgBouncer 1.18's immediate shutdown (SIGINT would wait for clients).
    let process = Guarded::spawn(command, libc::SIGTERM).map_err(start_error)?;
    let client = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(&target.user)
        .dbname(&target.dbname)
        .to_owned();
    wait_ready(&process, client, &log)?;
    Ok(process)
}

/// Writes `pgbouncer.ini` and the users file; returns the former's path.
fn write_config(
    dir: &Path,
    port: u16,
    target: &Target,
    options: &PgBouncerOptions,
) -> std::io::Result<PathBuf> {
    // The user PgBouncer looks the others up as, with the password (if any)
    // that it logs into the server with.
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let users = format!(
        "{} {}\n",
        quote(&target.user),
        quote(target.password.as_deref().unwrap_or(""))
    );
    let users_file = dir.join("users.txt");
    fs::write(&users_file, users)?;

    let mut ini = String::new();
    let _ = write!(
        ini,
        "\
[databases]
* = host={host} port={server_port}{forced}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; No socket in /tmp: two PgBouncers on one port number would collide there.
unix_socket_dir =
pidfile = {pidfile}

pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
; Not used in transaction mode; empty so that no setting suggests otherwise.
server_reset_query =

; No password from clients (the throwaway server trusts everyone too); users
; are looked up on the server, so roles created by a test work at once.
auth_type = trust
auth_file = {users_file}
auth_user = {user}

; Drivers other than tokio-postgres (JDBC, psycopg, sqlx) send it; it only
; formats floats. `options` is deliberately not ignored: settings a client
; asks for there could not last past a transaction, so failing is better.
ignore_startup_parameters = extra_float_digits

; Tests stop and restart servers: log in again soon after, not after 15 s.
server_login_retry = 1
",
        host = target.host,
        server_port = target.port,
        pidfile = dir.join("pgbouncer.pid").display(),
        pool_size = options.pool_size,
        max_client_conn = options.max_client_conn,
        users_file = users_file.display(),
        user = target.user,
        forced = match &options.forced_user {
            Some((user, password)) => format!(" user={user} password={password}"),
            None => String::new(),
        },
    );
    let path = dir.join("pgbouncer.ini");
    fs::write(&path, ini)?;
    Ok(path)
}

/// Waits until a query goes through PgBouncer to the server: that checks the
/// whole path (listening, user lookup, server login), not just the port.
fn wait_ready(process: &Guarded, client: tokio_postgres::Config, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let (error, final_answer) = match query_through(&client) {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        if let Some(status) = process.exited() {
            return Err(Error::PgBouncerStart(format!(
                "pgbouncer exited ({status}) during start-up:\n{}",
                tail(log)
            )));
        }
        if final_answer || Instant::now() > deadline {
            return Err(Error::PgBouncerStart(format!(
                "no query went through pgbouncer: {error}\n{}",
                tail(log)
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Connects with `config` and runs `SELECT 1`. On failure, the error and
/// whether it is final: an answer from PgBouncer or the server (unknown user,
/// login refused) will not change by waiting; only "not listening yet" will.
fn query_through(config: &tokio_postgres::Config) -> Result<(), (String, bool)> {
    // A runtime of its own on a thread of its own: the caller may be inside
    // a runtime, where blocking on another one panics.
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| (e.to_string(), true))?;
                runtime.block_on(async {
                    let outcome = async {
                        let (client, connection) = config.connect(NoTls).await?;
                        let connection = tokio::spawn(connection);
                        let result = client.simple_query("SELECT 1").await.map(drop);
                        drop(client);
                        let _ = connection.await;
                        result
                    };
                    outcome
                        .await
                        .map_err(|e: tokio_postgres::Error| match e.as_db_error() {
                            Some(db) => (format!("{}: {}", db.severity(), db.message()), true),
                            None => (e.to_string(), false),
                        })
                })
            })
            .join()
            .unwrap_or_else(|_| Err(("the readiness check panicked".into(), true)))
    })
}

fn start_error(e: std::io::Error) -> Error {
    Error::PgBouncerStart(e.to_string())
}
