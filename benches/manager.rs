//! TenantManager: looking up a known tenant among 10,000 open pools (one
//! task, and 16 concurrent tasks), and opening a new tenant's pool.
//!
//! `cargo bench --bench manager`. Uses `DATABASE_URL` or a throwaway server.
//! All 10,000 tenants map to one database (via `database_name`), and each
//! pool's verification connection is closed after opening, so the server
//! does not need 10,000 databases or connections; every lookup still goes
//! through the manager's full map of 10,000 pools.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pebble::{Model, TenantDatabase, TenantManager};

const TENANTS: usize = 10_000;
const TASKS: usize = 16;

#[derive(Model)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    body: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn lookups(c: &mut Criterion) {
    let rt = runtime();
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench"))
        .expect("a bench database");
    let name = database.name().to_owned();
    let manager = TenantManager::builder(server.config())
        .database_name(move |_| name.clone())
        .max_open_pools(TENANTS)
        .idle_timeout(None)
        .build()
        .expect("a manager");
    let ids: Vec<String> = (0..TENANTS).map(|i| format!("t{i}")).collect();
    rt.block_on(async {
        for chunk in ids.chunks(64) {
            let opened = chunk.iter().map(|id| {
                let manager = manager.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let db = manager.db(&id).await.expect("open a tenant pool");
                    db.close_idle(); // keep the pool, not its connection
                })
            });
            for task in opened.collect::<Vec<_>>() {
                task.await.expect("open task");
            }
        }
    });
    assert_eq!(manager.tenants().len(), TENANTS);

    let mut group = c.benchmark_group("TenantManager::db, known tenant, 10k open");
    group.bench_function("1 task", |b| {
        let next = AtomicUsize::new(0);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let id = &ids[next.fetch_add(7919, Ordering::Relaxed) % TENANTS];
                    std::hint::black_box(manager.db(id).await.expect("known tenant"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("16 tasks (time per lookup)", |b| {
        b.iter_custom(|iters| {
            let per_task = (iters as usize).div_ceil(TASKS);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|task| {
                        let (manager, ids) = (manager.clone(), ids.clone());
                        tokio::spawn(async move {
                            for i in 0..per_task {
                                let id = &ids[(task * 613 + i * 7919) % TENANTS];
                                std::hint::black_box(manager.db(id).await.expect("known tenant"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("lookup task");
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    let fresh = AtomicUsize::new(0);
    let mut group = c.benchmark_group("TenantManager::db, new tenant");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("open its pool (database exists)", |b| {
        b.iter_custom(|iters| time_new_tenants(&rt, &manager, &fresh, iters, false))
    });
    group.finish();
    manager.close_all();

    // Provisioning: CREATE DATABASE and a setup hook that creates a table.
    let provisioner = TenantManager::builder(server.config())
        .database_name(|id| format!("pebble_bench_{}_{id}", std::process::id()))
        .create_missing(true)
        .setup(|db: TenantDatabase, _| async move { db.create_table::<Note>().await })
        .build()
        .expect("a manager");
    let mut group = c.benchmark_group("TenantManager::db, new tenant");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("create its database and run setup", |b| {
        b.iter_custom(|iters| time_new_tenants(&rt, &provisioner, &fresh, iters, true))
    });
    group.finish();
    drop(database);
}

/// Total time of `iters` first `db(id)` calls, each for a never-seen tenant;
/// the tenant is closed (or, with `drop_database`, dropped) outside the timing.
fn time_new_tenants(
    rt: &tokio::runtime::Runtime,
    manager: &TenantManager,
    fresh: &AtomicUsize,
    iters: u64,
    drop_database: bool,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let id = format!("new{}", fresh.fetch_add(1, Ordering::Relaxed));
            let start = Instant::now();
            let db = manager.db(&id).await.expect("open a new tenant");
            total += start.elapsed();
            drop(db);
            if drop_database {
                manager.drop_tenant(&id).await.expect("drop");
            } else {
                manager.close_tenant(&id);
            }
        }
        total
    })
}

criterion_group!(benches, lookups);
criterion_main!(benches);
