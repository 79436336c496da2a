//! Migrating many targets in parallel over a bounded number of connections.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use pebble::ConnectConfig;
use tokio_postgres::Client;

use crate::apply::{migrate_target, ApplyOptions};
use crate::connect::{connect, first_cell};
use crate::error::Result;
use crate::migration::Migrations;
use crate::report::{FleetReport, TargetError, TargetOutcome};
use crate::target::Target;

/// Runs migrations over many targets: each target in its own transaction
/// under its own advisory lock, `jobs` targets at a time, one connection per
/// job. One target's failure is reported and the others go on.
///
/// ```no_run
/// # async fn demo() -> pebble_migrate::Result<()> {
/// use pebble_migrate::{Fleet, Migrations, Registry};
/// let config: tokio_postgres::Config = "postgres://owner@localhost/app".parse()?;
/// let migrations = Migrations::from_dir("migrations")?;
/// let targets = Registry::new(config.clone()).targets().await?;
/// let report = Fleet::new(config).jobs(4).run(&migrations, targets).await?;
/// for failure in report.failures() {
///     eprintln!("{failure}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Fleet {
    config: ConnectConfig,
    jobs: Option<usize>,
    options: ApplyOptions,
}

impl Fleet {
    /// A runner for the targets of the database in `config` (schema tenants
    /// and the shared schema live there; database tenants are its sibling
    /// databases `tenant_<id>` on the same server).
    pub fn new(config: impl Into<ConnectConfig>) -> Fleet {
        Fleet {
            config: config.into(),
            jobs: None,
            options: ApplyOptions {
                lock_timeout: Duration::from_secs(5),
                lock_wait: Duration::from_secs(300),
                dry_run: false,
                provision: false,
            },
        }
    }

    /// How many targets migrate at once (one connection each). Default:
    /// `min(2 × cores, max_connections / 4)`, at least 1.
    pub fn jobs(mut self, jobs: usize) -> Fleet {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Report what would be applied, change nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Fleet {
        self.options.dry_run = dry_run;
        self
    }

    /// `SET LOCAL lock_timeout` for migration statements (default 5 s): a
    /// migration that cannot get a table lock fails (and the target is
    /// retried on the next run) instead of stalling the traffic queued
    /// behind its lock request.
    pub fn lock_timeout(mut self, timeout: Duration) -> Fleet {
        self.options.lock_timeout = timeout;
        self
    }

    /// How long to wait for another runner migrating the same target
    /// (default 300 s); after that the target is reported
    /// [`TargetError::Busy`].
    pub fn lock_wait(mut self, wait: Duration) -> Fleet {
        self.options.lock_wait = wait;
        self
    }

    /// Migrates `targets`; see [`Fleet::run_with`].
    pub async fn run(&self, migrations: &Migrations, targets: Vec<Target>) -> Result<FleetReport> {
        self.run_with(migrations, targets, |_| {}).await
    }

    /// Migrates `targets`, calling `on_done` as each finishes (for progress).
    /// An error only if the main database cannot be reached at all; every
    /// per-target failure is in the report.
    pub async fn run_with(
        &self,
        migrations: &Migrations,
        targets: Vec<Target>,
        on_done: impl Fn(&TargetOutcome),
    ) -> Result<FleetReport> {
        let first = connect(&self.config).await?;
        let jobs = match self.jobs {
            Some(jobs) => jobs,
            None => default_jobs(&first).await?,
        }
        .min(targets.len().max(1));
        let count = targets.len();
        let queue = Mutex::new(targets.into_iter().enumerate().collect::<VecDeque<_>>());
        let results = Mutex::new(vec![None; count]);
        let mut spare = Some(first);
        let workers = (0..jobs).map(|_| {
            let client = spare.take();
            self.worker(client, migrations, &queue, &results, &on_done)
        });
        futures_util::future::join_all(workers).await;
        let targets = results
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .into_iter()
            .flatten()
            .collect();
        Ok(FleetReport {
            dry_run: self.options.dry_run,
            targets,
        })
    }

    async fn worker(
        &self,
        mut main: Option<Client>,
        migrations: &Migrations,
        queue: &Mutex<VecDeque<(usize, Target)>>,
        results: &Mutex<Vec<Option<TargetOutcome>>>,
        on_done: &impl Fn(&TargetOutcome),
    ) {
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((index, target)) = next else { return };
            let outcome = self.migrate_one(&mut main, migrations, &target).await;
            match &outcome.error {
                Some(e) => tracing::warn!(target = %target, error = %e, "migration failed"),
                None => {
                    tracing::info!(target = %target, applied = outcome.applied.len(), "migrated")
                }
            }
            on_done(&outcome);
            results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(outcome);
        }
    }

    async fn migrate_one(
        &self,
        main: &mut Option<Client>,
        migrations: &Migrations,
        target: &Target,
    ) -> TargetOutcome {
        let failed = |error| TargetOutcome {
            target: target.clone(),
            applied: Vec::new(),
            already_applied: 0,
            error: Some(error),
        };
        match target.database_name() {
            Err(e) => failed(TargetError::Database {
                sqlstate: String::new(),
                message: e.to_string(),
            }),
            Ok(Some(database)) => {
                let mut config = self.config.clone();
                config.pg_mut().dbname(&database);
                match connect(&config).await {
                    Ok(client) => migrate_target(&client, target, migrations, &self.options).await,
                    Err(e) if e.sqlstate() == Some("3D000") => failed(TargetError::Missing {
                        what: format!("database {database}"),
                    }),
                    Err(e) => failed(e.target_error()),
                }
            }
            Ok(None) => {
                // A connection broken by an earlier target is replaced.
                if main.as_ref().is_none_or(Client::is_closed) {
                    match connect(&self.config).await {
                        Ok(client) => *main = Some(client),
                        Err(e) => return failed(e.target_error()),
                    }
                }
                match main {
                    Some(client) => migrate_target(client, target, migrations, &self.options).await,
                    None => failed(TargetError::Database {
                        sqlstate: String::new(),
                        message: "no connection".to_owned(),
                    }),
                }
            }
        }
    }
}

/// `min(2 × cores, max_connections / 4)`, at least 1: parallel enough to
/// keep the server's cores busy (each target waits on round trips), and
/// never more than a quarter of the server's connections, which belong to
/// the application.
async fn default_jobs(client: &Client) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let reply = client.simple_query("SHOW max_connections").await?;
    let max_connections = first_cell(&reply)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100);
    Ok((2 * cores).min(max_connections / 4).max(1))
}
