//! A real PgBouncer in transaction mode in front of the throwaway server:
//! queries go through it, server connections really are shared between
//! clients per transaction, and nothing outlives the test process.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pebble_testkit::{PgBouncer, PgBouncerOptions};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

async fn connect(config: tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn backend_pid(client: &Client) -> Result<i32> {
    // Unnamed: a named statement could be prepared on one server connection
    // and executed on another.
    let rows = client.query_typed("SELECT pg_backend_pid()", &[]).await?;
    Ok(rows.first().ok_or("no row")?.get(0))
}

#[tokio::test]
async fn queries_go_through_pgbouncer() -> Result {
    let test_db = pebble_testkit::database().await?;
    let bouncer = test_db.server().pgbouncer(PgBouncerOptions::default())?;
    assert_ne!(
        Some(&bouncer.port()),
        test_db.config().get_ports().first(),
        "the client must talk to PgBouncer, not to the server"
    );
    let client = connect(bouncer.config_for(test_db.name())).await?;

    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        .await?;
    for (id, name) in [(1, "one"), (2, "two")] {
        client
            .query_typed(
                "INSERT INTO items (id, name) VALUES ($1, $2)",
                &[(&id, Type::INT4), (&name, Type::TEXT)],
            )
            .await?;
    }
    let rows = client
        .query_typed(
            "SELECT name FROM items WHERE id > $1 ORDER BY id",
            &[(&0i32, Type::INT4)],
        )
        .await?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["one", "two"]);

    let rows = client
        .query_typed("SELECT current_database()::text", &[])
        .await?;
    assert_eq!(rows[0].get::<_, String>(0), test_db.name());
    Ok(())
}

#[tokio::test]
async fn a_role_created_later_connects_through_it_as_itself() -> Result {
    let test_db = pebble_testkit::database().await?;
    let bouncer = test_db.server().pgbouncer(PgBouncerOptions::default())?;
    let role = format!("pgbouncer_app_{}", std::process::id());
    test_db
        .server()
        .execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN NOSUPERUSER"
        ))
        .await?;

    let mut config = bouncer.config_for(test_db.name());
    config.user(&role);
    let client = connect(config).await?;
    let rows = client
        .query_typed(
            "SELECT current_user::text, usesuper FROM pg_user WHERE usename = current_user",
            &[],
        )
        .await?;
    assert_eq!(rows[0].get::<_, String>(0), role);
    assert!(!rows[0].get::<_, bool>(1));
    Ok(())
}

/// With one server connection, two clients connected at the same time are
/// served by the same backend: in session mode the second would wait for
/// the first to disconnect. And a session setting made by one is seen by the
/// other, which is why nothing may rely on (or leave behind) session state.
#[tokio::test]
async fn clients_share_server_connections_per_transaction() -> Result {
    let test_db = pebble_testkit::database().await?;
    let bouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(1))?;
    let a = connect(bouncer.config_for(test_db.name())).await?;
    let b = connect(bouncer.config_for(test_db.name())).await?;

    let pid_a = backend_pid(&a).await?;
    let pid_b = backend_pid(&b).await?;
    assert_eq!(
        pid_a, pid_b,
        "both clients must be served by the one server connection"
    );
    assert_eq!(backend_pid(&a).await?, pid_a);

    a.batch_execute("SET pebble.probe = 'set by a'").await?;
    let rows = b
        .query_typed("SELECT current_setting('pebble.probe', true)", &[])
        .await?;
    assert_eq!(
        rows[0].get::<_, Option<String>>(0).as_deref(),
        Some("set by a")
    );
    Ok(())
}

/// A named prepared statement lives on one server connection, which the next
/// transaction may not get: PgBouncer 1.18 does not carry it over. An unnamed
/// statement with parameter types (`query_typed`) is parsed, bound and run in
/// one go, so it works on whichever connection it gets.
#[tokio::test]
async fn named_statements_are_lost_and_typed_unnamed_ones_work() -> Result {
    let test_db = pebble_testkit::database().await?;
    let bouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(2))?;
    let a = connect(bouncer.config_for(test_db.name())).await?;
    let b = connect(bouncer.config_for(test_db.name())).await?;

    // `a` holds one server connection, so `b` prepares on the other one...
    a.batch_execute("BEGIN").await?;
    backend_pid(&a).await?;
    let statement = b.prepare("SELECT pg_backend_pid()").await?;
    // ...which is released before `a`'s. PgBouncer hands out the most
    // recently released connection first (LIFO unless server_round_robin),
    // so `b`'s next statement runs on `a`'s former connection.
    a.batch_execute("COMMIT").await?;

    let error = match b.query(&statement, &[]).await {
        Err(error) => error,
        Ok(_) => return Err("the named statement survived a change of server connection".into()),
    };
    assert_eq!(
        error.code(),
        Some(&SqlState::INVALID_SQL_STATEMENT_NAME),
        "{error}"
    );

    let rows = b
        .query_typed("SELECT $1::int + 1", &[(&41i32, Type::INT4)])
        .await?;
    assert_eq!(rows[0].get::<_, i32>(0), 42);
    Ok(())
}

#[tokio::test]
async fn thirty_two_clients_share_a_pool_of_four() -> Result {
    const CLIENTS: i32 = 32;
    const TRANSACTIONS: i32 = 10;
    let test_db = pebble_testkit::database().await?;
    let bouncer = test_db
        .server()
        .pgbouncer(PgBouncerOptions::default().pool_size(4))?;
    connect(bouncer.config_for(test_db.name()))
        .await?
        .batch_execute("CREATE TABLE hits (client int, n int, backend int)")
        .await?;

    // All connected at once before any works, so they really compete.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(bouncer.config_for(test_db.name())).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (id, mut client) in (0..CLIENTS).zip(clients) {
        tasks.spawn(async move {
            for n in 0..TRANSACTIONS {
                let transaction = client.transaction().await?;
                transaction
                    .query_typed(
                        "INSERT INTO hits VALUES ($1, $2, pg_backend_pid())",
                        &[(&id, Type::INT4), (&n, Type::INT4)],
                    )
                    .await?;
                transaction.commit().await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished??;
    }

    let check = connect(test_db.config()).await?;
    let rows: i64 = check
        .query_one("SELECT count(*) FROM hits", &[])
        .await?
        .get(0);
    assert_eq!(rows, i64::from(CLIENTS * TRANSACTIONS));
    let backends: HashSet<i32> = check
        .query("SELECT DISTINCT backend FROM hits", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        (1..=4).contains(&backends.len()),
        "{CLIENTS} clients must share at most 4 server connections, used {}",
        backends.len()
    );
    Ok(())
}

#[tokio::test]
async fn works_in_front_of_a_temp_server_across_a_restart() -> Result {
    let server = pebble_testkit::TempServer::start()?;
    let bouncer = server.pgbouncer(PgBouncerOptions::default())?;
    connect(bouncer.config())
        .await?
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .await?;

    server.restart()?;
    // PgBouncer learns that its server connections died when it next uses
    // them, which may cost a client an error; new ones then log in again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let n: i32 = loop {
        let attempt = async {
            let client = connect(bouncer.config()).await?;
            let rows = client.query_typed("SELECT n FROM kept", &[]).await?;
            Ok::<i32, Box<dyn std::error::Error>>(rows.first().ok_or("no row")?.get(0))
        };
        match attempt.await {
            Ok(n) => break n,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    };
    assert_eq!(n, 7);
    Ok(())
}

/// What a `DATABASE_URL` gives: host, port, user and a password, which goes
/// into PgBouncer's users file (quotes and all; the trusting throwaway server
/// does not ask for it, but a malformed file would lose the user).
#[tokio::test]
async fn starts_from_a_url_with_a_password() -> Result {
    let test_db = pebble_testkit::database().await?;
    if test_db.server().is_external() {
        // The URL below is the throwaway server's (user postgres, 127.0.0.1).
        return Ok(());
    }
    let server_port = test_db
        .config()
        .get_ports()
        .first()
        .copied()
        .ok_or("no port")?;
    let url = format!("postgresql://postgres:se%22cr%20t@127.0.0.1:{server_port}/postgres");
    let bouncer = PgBouncer::start(&url.parse()?, PgBouncerOptions::default())?;
    let client = connect(bouncer.config_for(test_db.name())).await?;
    let rows = client
        .query_typed("SELECT current_user::text, current_database()::text", &[])
        .await?;
    assert_eq!(rows[0].get::<_, String>(0), "postgres");
    assert_eq!(rows[0].get::<_, String>(1), test_db.name());
    Ok(())
}

#[test]
fn pgbouncer_refuses_a_server_config_without_a_host() {
    let mut config = tokio_postgres::Config::new();
    config.user("postgres");
    let error = PgBouncer::start(&config, PgBouncerOptions::default())
        .err()
        .map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("no host")),
        "{error:?}"
    );
}

// ---- Nothing outlives the process -------------------------------------------------

const CHILD_READY: &str = "pebble-testkit-child-ready";
const CHILD_ENV: &str = "PEBBLE_TESTKIT_TEST_CHILD";

/// Run by `nothing_outlives_*` in a child process: starts the shared server
/// and a PgBouncer that are only ever stopped by the exit hook (or the
/// kernel), reports, and waits for its stdin to close.
#[test]
#[ignore = "a helper run in a child process by the nothing_outlives_* tests"]
fn child_process_with_server_and_pgbouncer() -> Result {
    // Someone running every ignored test should not find it waiting on stdin.
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let server = pebble_testkit::server()?;
    // Leaked: only the exit hook may stop it, which is what is under test.
    Box::leak(Box::new(server.pgbouncer(PgBouncerOptions::default())?));
    println!("{CHILD_READY}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// Starts the helper test in a child process and waits until its server and
/// PgBouncer run; returns the child and the marker in their command lines.
fn start_child() -> Result<(std::process::Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "child_process_with_server_and_pgbouncer",
            "--exact",
            "--ignored",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env_remove("DATABASE_URL")
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (ready, is_ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            // The harness prints `test <name> ... ` before the helper's line.
            if line.trim_end().ends_with(CHILD_READY) {
                let _ = ready.send(());
            }
        }
        // Read to the end: the child's test harness fails if its stdout closes.
    });
    // Generous, and only so that a broken child fails the test instead of hanging it.
    if is_ready.recv_timeout(Duration::from_secs(300)).is_err() {
        let _ = child.kill();
        let status = child.wait()?;
        return Err(format!("the child ({status}) never reported its servers ready").into());
    }
    let marker = format!("pebble-testkit-{}-", child.id());
    let running = processes_with(&marker);
    assert!(
        running.iter().any(|c| c.contains("pgbouncer"))
            && running.iter().any(|c| c.contains("postgres")),
        "the child's postgres and pgbouncer must be visible: {running:?}"
    );
    Ok((child, marker))
}

/// Live (not zombie) processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The state follows the parenthesised command name.
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            (cmdline.contains(marker) && !zombie).then_some(cmdline)
        })
        .collect()
}

/// Waits (generously; the kernel and init act asynchronously) until no live
/// process has `marker` in its command line.
fn wait_until_none_run(marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = processes_with(marker);
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dirs_with(marker: &str) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|name| name.starts_with(marker))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn nothing_outlives_a_process_that_exits() -> Result {
    let (mut child, marker) = start_child()?;
    drop(child.stdin.take());
    let status = child.wait()?;
    assert!(status.success(), "the child test failed: {status}");
    // The exit hook waited for them before the process ended.
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    assert_eq!(dirs_with(&marker), Vec::<String>::new());
    Ok(())
}

#[test]
fn nothing_outlives_a_process_that_is_killed() -> Result {
    let (mut child, marker) = start_child()?;
    child.kill()?;
    child.wait()?;
    assert_eq!(wait_until_none_run(&marker), Vec::<String>::new());
    // Its directories are left behind (no hook ran), and removed by the
    // next start in any process (here, or a test running alongside).
    let temp = pebble_testkit::TempServer::start()?;
    drop(temp);
    assert_eq!(dirs_with(&marker), Vec::<String>::new());
    Ok(())
}
