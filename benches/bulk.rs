//! Loading 100,000 rows: `insert_many` (split into statements under the
//! 65,535-parameter limit, one transaction), `copy_in` (binary `COPY`), and
//! the same binary `COPY` written by hand with tokio-postgres (the limit).
//! Each load goes into an emptied table; the emptying is not timed.
//!
//! `cargo bench --bench bulk`. Uses `DATABASE_URL` or a throwaway server.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
mod common;

use common::User;
use pebble::Db;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;
use uuid::Uuid;

const ROWS: usize = 100_000;

fn rows() -> Vec<User> {
    (0..ROWS).map(common::user).collect()
}

fn bulk(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench_bulk"))
        .expect("a bench database");
    let (db, client) = rt.block_on(async {
        let db = Db::connect(database.config()).await.expect("connect");
        db.create_table::<User>().await.expect("table");
        let (client, connection) = database.config().connect(NoTls).await.expect("client");
        tokio::spawn(connection);
        (db, client)
    });
    let empty = || {
        rt.block_on(db.batch_execute("TRUNCATE users"))
            .expect("truncate")
    };

    let mut group = c.benchmark_group("load 100,000 rows");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("pebble insert_many (split, one transaction)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                empty();
                let rows = rows();
                let start = Instant::now();
                let written = rt
                    .block_on(db.tenant(Uuid::new_v4()).insert_many(rows).exec())
                    .expect("loaded");
                total += start.elapsed();
                assert_eq!(written as usize, ROWS);
            }
            total
        })
    });
    group.bench_function("pebble copy_in (binary COPY)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                empty();
                let rows = rows();
                let start = Instant::now();
                let written = rt
                    .block_on(db.tenant(Uuid::new_v4()).copy_in(rows).exec())
                    .expect("loaded");
                total += start.elapsed();
                assert_eq!(written as usize, ROWS);
            }
            total
        })
    });
    group.bench_function("tokio-postgres binary COPY by hand", |b| {
        let types = [Type::UUID, Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT];
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                empty();
                let rows = rows();
                let start = Instant::now();
                let written = rt
                    .block_on(async {
                        let tenant = Uuid::new_v4();
                        let sink = client
                            .copy_in(
                                "COPY users (tenant_id, email, name, age, nickname) \
                                 FROM STDIN (FORMAT binary)",
                            )
                            .await?;
                        let writer = BinaryCopyInWriter::new(sink, &types);
                        let mut writer = std::pin::pin!(writer);
                        for user in &rows {
                            writer
                                .as_mut()
                                .write(&[
                                    &tenant,
                                    &user.email,
                                    &user.name,
                                    &user.age,
                                    &user.nickname,
                                ])
                                .await?;
                        }
                        writer.as_mut().finish().await
                    })
                    .expect("loaded");
                total += start.elapsed();
                assert_eq!(written as usize, ROWS);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
