//! A point select under row-level security (`RlsDb`: BEGIN, set_config,
//! the select and COMMIT pipelined) versus the same select row-scoped
//! (`Db::tenant`), on the same data, with 1 and with 16 concurrent clients.
//!
//! `cargo bench --bench rls`. Uses `DATABASE_URL` or a throwaway server.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
mod common;

use common::User;
use pebble::{Db, PoolOptions, RlsDb, RlsTable, TenantDb};
use uuid::Uuid;

const CLIENTS: usize = 16;

/// `iters` point selects by `clients` concurrent tasks; the wall clock.
async fn selects<E>(
    handle: &TenantDb<Uuid, E>,
    ids: &[Uuid],
    clients: usize,
    iters: u64,
) -> Duration
where
    E: pebble::Executor + Clone + Send + Sync + 'static,
{
    let start = Instant::now();
    let per_client = iters.div_ceil(clients as u64);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let handle = handle.clone();
            let ids = ids.to_vec();
            tokio::spawn(async move {
                for n in 0..per_client as usize {
                    let id = ids[(c * 7919 + n) % ids.len()];
                    handle.find::<User>(id).one().await.expect("found");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    start.elapsed()
}

fn rls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench_rls"))
        .expect("a bench database");
    let options = PoolOptions::default().max_size(CLIENTS);
    let (owner, app, role, ids, tenant) = rt.block_on(async {
        let owner = Db::connect_with(database.config(), options.clone())
            .await
            .expect("connect");
        owner.create_table::<User>().await.expect("table");
        owner.install_rls::<User>().await.expect("rls");
        let role = format!("bench_app_{}", Uuid::new_v4().simple());
        let password = owner
            .create_app_role(&role, &[RlsTable::of::<User>()])
            .await
            .expect("app role");
        let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
        // The owner is the superuser here: row-level security does not apply to it.
        let ids: Vec<Uuid> = owner
            .tenant(tenant)
            .insert_many((0..1000).map(common::user))
            .returning()
            .await
            .expect("rows")
            .into_iter()
            .map(|u| u.id)
            .collect();
        owner
            .tenant(other)
            .insert_many((0..1000).map(common::user))
            .exec()
            .await
            .expect("rows");
        let mut config = database.config();
        config.user(&role).password(&password);
        let app = RlsDb::connect_with(config, options.clone())
            .await
            .expect("connect as the app role");
        (owner, app, role, ids, tenant)
    });

    for clients in [1, CLIENTS] {
        let mut group = c.benchmark_group(format!("point select, {clients} client(s)"));
        let row_scoped = owner.tenant(tenant);
        group.bench_function("row-scoped (Db::tenant)", |b| {
            b.iter_custom(|iters| rt.block_on(selects(&row_scoped, &ids, clients, iters)))
        });
        let rls_scoped = app.tenant(tenant);
        group.bench_function("row-level security (RlsDb::tenant)", |b| {
            b.iter_custom(|iters| rt.block_on(selects(&rls_scoped, &ids, clients, iters)))
        });
        group.finish();
    }

    app.db().close();
    rt.block_on(owner.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")))
        .expect("drop the bench role");
}

criterion_group!(benches, rls);
criterion_main!(benches);
