//! Schema per tenant: a point select by key through a schema handle
//! (`"tenant_x"."notes"`) versus the same select row-scoped
//! (`Db::tenant`), over 50 tenants of 1,000 rows each, so that the schema
//! handle's statements are 50 texts where the row pattern's are one; and
//! the time to provision one schema tenant (schema, table, registry row).
//!
//! `cargo bench --bench schema`. Uses `DATABASE_URL` or a throwaway server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use pebble::{Db, Model, PoolOptions, SchemaTenants, StatementMode};

const TENANTS: i64 = 50;
const ROWS: i64 = 1000;
const MANY: i64 = 1000;

#[derive(Model, Debug)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key)]
    id: i64,
    body: String,
}

#[derive(Model, Debug)]
#[pebble(table = "shared_notes")]
struct SharedNote {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    body: String,
}

fn schema(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench_schema"))
        .expect("a bench database");
    let (db, tenants) = rt.block_on(async {
        let db = Db::connect_with(database.config(), PoolOptions::default().max_size(4))
            .await
            .expect("connect");
        // Row-scoped: one shared table, its primary key leading with the
        // tenant as in a real shared-table schema.
        db.batch_execute(
            "CREATE TABLE shared_notes (id bigint NOT NULL, org bigint NOT NULL, body text NOT NULL, \
             PRIMARY KEY (org, id)); COMMENT ON TABLE shared_notes IS 'pebble: tenant column org'",
        )
        .await
        .expect("shared table");
        let tenants = SchemaTenants::builder(db.clone())
            .table::<Note>()
            .build()
            .expect("provisioner");
        for t in 0..TENANTS {
            let id = format!("bench_{t}");
            tenants.create(&id).await.expect("tenant");
            let rows = (0..ROWS).map(|n| Note { id: n, body: format!("note {n}") });
            db.schema_tenant(&id).expect("id").insert_many(rows).exec().await.expect("rows");
            let rows = (0..ROWS).map(|n| SharedNote { id: n, org: t + 1, body: format!("note {n}") });
            db.tenant(t + 1).insert_many(rows).exec().await.expect("rows");
        }
        (db, tenants)
    });
    let handles: Vec<_> = (0..TENANTS)
        .map(|t| db.schema_tenant(&format!("bench_{t}")).expect("id"))
        .collect();

    let mut group = c.benchmark_group("point select by key, 50 tenants");
    let next = AtomicUsize::new(0);
    group.bench_function("schema handle (\"tenant_x\".\"notes\")", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let tenant = &handles[n % handles.len()];
                    tenant
                        .find::<Note>((n as i64 * 7) % ROWS)
                        .one()
                        .await
                        .expect("found");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("row-scoped (Db::tenant)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let tenant = db.tenant((n as i64) % TENANTS + 1);
                    tenant
                        .find::<SharedNote>((n as i64 * 7) % ROWS)
                        .one()
                        .await
                        .expect("found");
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // Thousands of schemas: 1,000 tenants visited round robin on one
    // connection, the worst case for the per-connection statement cache
    // (1,000 texts, bounded at 512: every statement finds the cache
    // turned over), against unnamed statements, which keep nothing.
    rt.block_on(async {
        for t in TENANTS..MANY {
            tenants.create(&format!("bench_{t}")).await.expect("tenant");
            db.schema_tenant(&format!("bench_{t}"))
                .expect("id")
                .insert(Note {
                    id: 0,
                    body: "note".into(),
                })
                .exec()
                .await
                .expect("row");
        }
    });
    let mut group = c.benchmark_group("point select, 1,000 tenants round robin, 1 connection");
    for (name, mode) in [
        ("prepared, cache bounded at 512", StatementMode::Prepared),
        ("unnamed statements", StatementMode::Unnamed),
    ] {
        let one = rt.block_on(async {
            Db::connect_with(
                database.config(),
                PoolOptions::default().max_size(1).statement_mode(mode),
            )
            .await
            .expect("connect")
        });
        let handles: Vec<_> = (0..MANY)
            .map(|t| one.schema_tenant(&format!("bench_{t}")).expect("id"))
            .collect();
        let next = AtomicUsize::new(0);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        handles[n % handles.len()]
                            .find::<Note>(0)
                            .one()
                            .await
                            .expect("found");
                    }
                    start.elapsed()
                })
            })
        });
        one.close();
    }
    group.finish();

    let mut group = c.benchmark_group("provisioning");
    group.sample_size(10);
    let made = AtomicUsize::new(0);
    group.bench_function(
        "create one schema tenant (schema, table, registry row)",
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let id = format!("new_{}", made.fetch_add(1, Ordering::Relaxed));
                        let start = Instant::now();
                        tenants.create(&id).await.expect("created");
                        total += start.elapsed();
                        tenants.drop_tenant(&id).await.expect("dropped");
                    }
                    total
                })
            })
        },
    );
    group.finish();
    db.close();
}

criterion_group!(benches, schema);
criterion_main!(benches);
