//! `rls-floor`: what row-level security costs PostgreSQL itself, with no
//! pebble on the client side: pgbench (libpq, prepared statements) runs
//! the comparison's point select in five shapes against one table, so
//! that `RlsDb`'s figures can be read against what no client can avoid.
//!
//! - `plain`: the table without row-level security (pebble's row
//!   condition is the query's own `WHERE`);
//! - `rls, USING (true)`: row-level security on, a policy that admits every
//!   row: the machinery alone;
//! - `rls, tenant preset`: pebble's installed policy, the tenant a role
//!   default (`ALTER ROLE .. SET`), so no statement sets it: the policy's
//!   condition alone;
//! - `set_config + select, one Sync`: the tenant set per statement, in the
//!   select's implicit transaction, both in one pipeline (the least any
//!   client can send to set it per statement);
//! - `BEGIN, set_config, select, COMMIT, one Sync`: the same in an explicit
//!   transaction, pipelined.
//!
//! pebble sends the last shape as three messages (`BEGIN; SET LOCAL`, the
//! select, `COMMIT`), each with its own Sync, which tokio-postgres does
//! not let a client merge.

use std::path::Path;
use std::process::Command;

use pebble::{Db, PoolOptions, RlsTable};
use pebble_testkit::TempServer;
use tokio_postgres::config::Host;

use crate::contenders::BoxError;
use crate::setup::{tenant_items, Item, ROWS_PER_TENANT, SELECT_SQL, TENANTS};

/// The tenant every shape reads: a role default can name only one.
const TENANT: i64 = 7;

struct Shape {
    name: &'static str,
    /// Who runs it: the app role, or the role with the tenant preset.
    user: &'static str,
    script: String,
}

/// The comparison's select with `$n` made pgbench variables, on `table`.
fn select_on(table: &str) -> String {
    SELECT_SQL
        .replace(r#"FROM "items""#, &format!(r#"FROM "{table}""#))
        .replace("$1", &TENANT.to_string())
        .replace("$2", ":k")
        .replace("$3", "1")
}

fn shapes() -> Vec<Shape> {
    // Tenant 7's rows were loaded seventh: ids 1201 to 1400.
    let key = format!(
        "\\set k random({}, {})\n",
        (TENANT - 1) * ROWS_PER_TENANT as i64 + 1,
        TENANT * ROWS_PER_TENANT as i64
    );
    let set = format!("SELECT set_config('pebble.tenant_id', '{TENANT}', true);\n");
    let select = format!("{};\n", select_on("items"));
    vec![
        Shape {
            name: "plain (no row-level security)",
            user: APP,
            script: format!("{key}{};\n", select_on("items_plain")),
        },
        Shape {
            name: "rls, USING (true)",
            user: APP,
            script: format!("{key}{};\n", select_on("items_open")),
        },
        Shape {
            name: "rls, tenant preset (no setting per statement)",
            user: PRESET,
            script: format!("{key}{select}"),
        },
        Shape {
            name: "set_config + select, one Sync",
            user: APP,
            script: format!("{key}\\startpipeline\n{set}{select}\\endpipeline\n"),
        },
        Shape {
            name: "BEGIN, set_config, select, COMMIT, one Sync",
            user: APP,
            script: format!("{key}\\startpipeline\nBEGIN;\n{set}{select}COMMIT;\n\\endpipeline\n"),
        },
    ]
}

const APP: &str = "floor_app";
const PRESET: &str = "floor_preset";

pub async fn run(clients: &[usize], seconds: f64, rounds: usize) -> Result<(), BoxError> {
    let pgbench = pebble_testkit::postgres_program("pgbench")?;
    eprintln!("starting a server and loading {TENANTS} tenants x {ROWS_PER_TENANT} rows ...");
    let server = TempServer::start()?;
    let owner = load(&server).await?;
    let dir = tempfile_dir()?;
    let shapes = shapes();
    let mut files = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let file = dir.join(format!("shape{i}.sql"));
        std::fs::write(&file, &shape.script)?;
        files.push(file);
    }
    let result = measure(&pgbench, &owner, &shapes, &files, clients, seconds, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    let table = result?;
    println!("\n{table}");
    Ok(())
}

/// The comparison's table with pebble's row-level security, a copy without
/// it, a copy under a `USING (true)` policy, the app role, and a role
/// whose sessions start with tenant 7 set.
async fn load(server: &TempServer) -> Result<tokio_postgres::Config, BoxError> {
    // No server CPU watch here (pgbench reports throughput only), so no
    // raw admin connection: a one-connection `Db` creates the database.
    let admin = Db::connect_with(server.config(), PoolOptions::default().max_size(1)).await?;
    admin.batch_execute("CREATE DATABASE floor").await?;
    admin.close();
    let owner = server.config_for("floor");
    let db = Db::connect_with(owner.clone(), PoolOptions::default().max_size(2)).await?;
    db.create_table::<Item>().await?;
    db.install_rls::<Item>().await?;
    db.create_app_role(APP, &[RlsTable::of::<Item>()]).await?;
    db.create_app_role(PRESET, &[RlsTable::of::<Item>()])
        .await?;
    for tenant in 1..=TENANTS {
        db.tenant(tenant).insert_many(tenant_items()).exec().await?;
    }
    db.batch_execute(&format!(
        "CREATE TABLE items_plain (LIKE items INCLUDING ALL); \
         INSERT INTO items_plain SELECT * FROM items; \
         CREATE TABLE items_open (LIKE items INCLUDING ALL); \
         INSERT INTO items_open SELECT * FROM items; \
         ALTER TABLE items_open ENABLE ROW LEVEL SECURITY; \
         ALTER TABLE items_open FORCE ROW LEVEL SECURITY; \
         CREATE POLICY open ON items_open USING (true); \
         GRANT SELECT ON items_plain, items_open TO {APP}; \
         ALTER ROLE {PRESET} IN DATABASE floor SET pebble.tenant_id = '{TENANT}'"
    ))
    .await?;
    // One statement per call: a multi-statement text is one transaction,
    // which `VACUUM` refuses.
    for table in ["items", "items_plain", "items_open"] {
        db.batch_execute(&format!("VACUUM ANALYZE {table}")).await?;
    }
    db.close();
    Ok(owner)
}

fn tempfile_dir() -> Result<std::path::PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("pebble-rls-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Rounds interleaved over the shapes; a markdown table of each shape's
/// median transactions per second and its ratio to `plain` (per round:
/// median, min, max).
fn measure(
    pgbench: &Path,
    owner: &tokio_postgres::Config,
    shapes: &[Shape],
    files: &[std::path::PathBuf],
    clients: &[usize],
    seconds: f64,
    rounds: usize,
) -> Result<String, BoxError> {
    let mut table = String::from(
        "| statement shape (pgbench, prepared) | clients | tps, median | / plain, median (min–max) |\n|---|---|---|---|\n",
    );
    for &n in clients {
        let mut tps = vec![Vec::new(); shapes.len()];
        for round in 0..rounds {
            for (i, shape) in shapes.iter().enumerate() {
                let t = pgbench_tps(pgbench, owner, shape.user, &files[i], n, seconds)?;
                eprintln!(
                    "{n} clients round {}: {:<48} {t:>9.0} tps",
                    round + 1,
                    shape.name
                );
                tps[i].push(t);
            }
        }
        for (i, shape) in shapes.iter().enumerate() {
            let ratios: Vec<f64> = tps[i].iter().zip(&tps[0]).map(|(t, p)| t / p).collect();
            let (median, min, max) = spread(&ratios);
            table.push_str(&format!(
                "| {} | {n} | {:.0} | {median:.2} ({min:.2}–{max:.2}) |\n",
                shape.name,
                spread(&tps[i]).0
            ));
        }
    }
    Ok(table)
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    (median, sorted[0], sorted[sorted.len() - 1])
}

/// One pgbench run: `clients` connections as `user`, `seconds` long; its
/// transactions per second (without connection time).
fn pgbench_tps(
    pgbench: &Path,
    owner: &tokio_postgres::Config,
    user: &str,
    script: &Path,
    clients: usize,
    seconds: f64,
) -> Result<f64, BoxError> {
    let host = match owner.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => return Err("the server's config names no host".into()),
    };
    let port = owner.get_ports().first().copied().unwrap_or(5432);
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-h", &host, "-p", &port.to_string()])
        .args(["-U", user, "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &(seconds.ceil() as u64).max(1).to_string()])
        .arg("-f")
        .arg(script)
        .arg("floor")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's output:\n{stdout}").into())
}
