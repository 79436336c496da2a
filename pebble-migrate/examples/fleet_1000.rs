//! Benchmark (not a test): 1,000 tenant schemas, three migrations each (two
//! tables with indexes, then a column), migrated by the fleet runner with
//! its default parallelism and, on a second database, one at a time.
//!
//! `cargo run --release -p pebble-pg-migrate --example fleet_1000 [tenants]`
//! (a throwaway PostgreSQL on this machine, or `DATABASE_URL`).

use std::time::Instant;

use pebble_migrate::{Fleet, Migrations, Registry};

const MIGRATIONS: [(&str, &str); 3] = [
    (
        "0001_tasks.sql",
        "CREATE TABLE tasks (id bigserial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now());\n\
         CREATE INDEX tasks_done ON tasks (done, created_at);",
    ),
    (
        "0002_labels.sql",
        "CREATE TABLE labels (id bigserial PRIMARY KEY, task_id bigint NOT NULL REFERENCES tasks (id), name text NOT NULL);\n\
         CREATE INDEX labels_task ON labels (task_id);",
    ),
    ("0003_due.sql", "ALTER TABLE tasks ADD COLUMN due date;"),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tenants: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let migrations = Migrations::from_files(MIGRATIONS)?;
    for (label, jobs) in [
        ("fleet (default jobs)", None),
        ("sequential (--jobs 1)", Some(1)),
    ] {
        let db = pebble_testkit::database().await?;
        let registry = Registry::new(db.config());
        registry.list().await?; // creates the registry table
                                // Empty, registered schemas: the benchmark times migrating, not provisioning.
        let (client, connection) = db.config().connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let mut setup = String::new();
        for i in 0..tenants {
            setup.push_str(&format!(
                "CREATE SCHEMA tenant_b{i}; INSERT INTO pebble_tenants (id, strategy, status, placement) VALUES ('b{i}', 'schema', 'ready', current_database());"
            ));
        }
        client.batch_execute(&setup).await?;
        let targets = registry.targets().await?;
        let mut fleet = Fleet::new(db.config());
        if let Some(jobs) = jobs {
            fleet = fleet.jobs(jobs);
        }
        let started = Instant::now();
        let report = fleet.run(&migrations, targets).await?;
        let elapsed = started.elapsed();
        assert!(report.is_ok(), "{:?}", report.failures().next());
        println!(
            "{label}: {} tenants, {} migrations in {:.1} s ({:.1} ms per tenant)",
            report.targets.len(),
            report.applied_count(),
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / tenants as f64
        );
    }
    Ok(())
}
