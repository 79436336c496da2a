//! Running scoped statements on a real PostgreSQL: pebble (pool checkout,
//! statement built, prepared-statement cache, row decoded) versus the same
//! statement hand-written with tokio-postgres on one client, prepared once.
//!
//! `cargo bench --bench execute`. Uses `DATABASE_URL` or a throwaway server.

use criterion::{criterion_group, criterion_main, Criterion};
mod common;

use common::User;
use pebble::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use pebble::{Db, PoolOptions};
use tokio_postgres::NoTls;
use uuid::Uuid;

fn user_from(row: &tokio_postgres::Row) -> User {
    User {
        id: row.get(0),
        tenant_id: row.get(1),
        email: row.get(2),
        name: row.get(3),
        age: row.get(4),
        nickname: row.get(5),
    }
}

fn execute(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench"))
        .expect("a bench database");
    let (db, pool, client, ids, tenant) = rt.block_on(async {
        // pebble and the hand-written side each get a deadpool pool of one
        // connection, set up alike (pebble pools its own connection type).
        let manager = || {
            Manager::from_config(
                database.config(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            )
        };
        let pool = Pool::builder(manager())
            .max_size(1)
            .build()
            .expect("a pool");
        let db = Db::from_manager(manager(), PoolOptions::default().max_size(1)).expect("a pool");
        db.create_table::<User>().await.expect("table");
        let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
        let ids: Vec<Uuid> = db
            .tenant(tenant)
            .insert_many((0..1000).map(common::user))
            .returning()
            .await
            .expect("rows")
            .into_iter()
            .map(|u| u.id)
            .collect();
        db.tenant(other)
            .insert_many((0..1000).map(common::user))
            .exec()
            .await
            .expect("rows");
        let (client, connection) = database.config().connect(NoTls).await.expect("client");
        tokio::spawn(connection);
        (db, pool, client, ids, tenant)
    });

    let mut group = c.benchmark_group("scoped select by key, round trip");
    let tenant_db = db.tenant(tenant);
    let mut n = 0;
    group.bench_function("pebble", |b| {
        b.iter(|| {
            n += 1;
            let id = ids[n % ids.len()];
            rt.block_on(tenant_db.find::<User>(id).one())
                .expect("found")
        })
    });
    let select = rt
        .block_on(client.prepare(
            "SELECT \"id\", \"tenant_id\", \"email\", \"name\", \"age\", \"nickname\" FROM \"users\" \
             WHERE \"tenant_id\" = $1 AND \"id\" = $2 LIMIT $3",
        ))
        .expect("prepare");
    group.bench_function("tokio-postgres by hand", |b| {
        b.iter(|| {
            n += 1;
            let id = ids[n % ids.len()];
            let row = rt
                .block_on(client.query_one(&select, &[&tenant, &id, &1_i64]))
                .expect("found");
            user_from(&row)
        })
    });
    // What an application without pebble would do: the same deadpool pool
    // (checkout, prepared-statement cache), the SQL written by hand.
    group.bench_function("tokio-postgres by hand via deadpool", |b| {
        b.iter(|| {
            n += 1;
            let id = ids[n % ids.len()];
            rt.block_on(async {
                let client = pool.get().await.expect("connection");
                let select = client
                    .prepare_cached(
                        "SELECT \"id\", \"tenant_id\", \"email\", \"name\", \"age\", \"nickname\" \
                         FROM \"users\" WHERE \"tenant_id\" = $1 AND \"id\" = $2 LIMIT $3",
                    )
                    .await
                    .expect("prepare");
                let row = client
                    .query_one(&select, &[&tenant, &id, &1_i64])
                    .await
                    .expect("found");
                user_from(&row)
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("scoped update by key, round trip");
    group.bench_function("pebble", |b| {
        b.iter(|| {
            n += 1;
            let id = ids[n % ids.len()];
            let update = tenant_db
                .update::<User>()
                .set(User::AGE, (n % 90) as i32)
                .filter(User::ID.eq(id))
                .exec();
            rt.block_on(update).expect("updated")
        })
    });
    let update = rt
        .block_on(
            client.prepare(
                "UPDATE \"users\" SET \"age\" = $1 WHERE \"tenant_id\" = $2 AND \"id\" = $3",
            ),
        )
        .expect("prepare");
    group.bench_function("tokio-postgres by hand", |b| {
        b.iter(|| {
            n += 1;
            let id = ids[n % ids.len()];
            rt.block_on(client.execute(&update, &[&((n % 90) as i32), &tenant, &id]))
                .expect("updated")
        })
    });
    group.finish();
    drop(database);
}

criterion_group!(benches, execute);
criterion_main!(benches);
