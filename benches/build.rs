//! Building scoped statements with pebble versus building the same
//! statement by hand with sea-query: SQL text and bind values, ready to send.
//!
//! `cargo bench --bench build`. No database is needed: nothing is executed.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
mod common;

use common::User;
use pebble::{Db, PoolOptions};
use sea_query::{Expr, ExprTrait, Order, PostgresQueryBuilder, Query};
use sea_query_postgres::{PostgresBinder, PostgresValues};
use uuid::Uuid;

const COLUMNS: [&str; 6] = ["id", "tenant_id", "email", "name", "age", "nickname"];

fn user() -> User {
    User {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        email: "ann@example.com".into(),
        name: "ann".into(),
        age: 31,
        nickname: Some("annie".into()),
    }
}

fn select(c: &mut Criterion) {
    let db = Db::connect_lazy("host=localhost", PoolOptions::default()).expect("lazy pool");
    let tenant = Uuid::new_v4();
    let pebble = || {
        db.tenant(black_box(tenant))
            .select::<User>()
            .filter(User::AGE.gt(black_box(30)).or(User::NAME.like("a%")))
            .order_by(User::NAME.asc())
            .limit(20)
            .build()
            .expect("a valid select")
    };
    let by_hand = || {
        Query::select()
            .columns(COLUMNS)
            .from("users")
            .and_where(Expr::col("tenant_id").eq(black_box(tenant)))
            .and_where(
                Expr::col("age")
                    .gt(black_box(30))
                    .or(Expr::col("name").like("a%")),
            )
            .order_by("name", Order::Asc)
            .limit(20)
            .build_postgres(PostgresQueryBuilder)
    };
    same_statement(&pebble(), &by_hand());
    let mut group = c.benchmark_group("scoped select");
    group.bench_function("pebble", |b| b.iter(pebble));
    group.bench_function("sea-query by hand", |b| b.iter(by_hand));
    group.finish();
}

fn update(c: &mut Criterion) {
    let db = Db::connect_lazy("host=localhost", PoolOptions::default()).expect("lazy pool");
    let tenant = Uuid::new_v4();
    let id = Uuid::new_v4();
    let pebble = || {
        db.tenant(black_box(tenant))
            .update::<User>()
            .set(User::NAME, "bob")
            .set(User::AGE, black_box(32))
            .filter(User::ID.eq(black_box(id)))
            .build()
            .expect("a valid update")
    };
    let by_hand = || {
        Query::update()
            .table("users")
            .value("name", "bob")
            .value("age", black_box(32))
            .and_where(Expr::col("tenant_id").eq(black_box(tenant)))
            .and_where(Expr::col("id").eq(black_box(id)))
            .build_postgres(PostgresQueryBuilder)
    };
    same_statement(&pebble(), &by_hand());
    let mut group = c.benchmark_group("scoped update");
    group.bench_function("pebble", |b| b.iter(pebble));
    group.bench_function("sea-query by hand", |b| b.iter(by_hand));
    group.finish();
}

fn insert(c: &mut Criterion) {
    let db = Db::connect_lazy("host=localhost", PoolOptions::default()).expect("lazy pool");
    let tenant = Uuid::new_v4();
    let pebble = |row: User| {
        db.tenant(black_box(tenant))
            .insert(row)
            .build()
            .expect("an accepted row")
    };
    // By hand, the tenant is written into the row the same way, and the
    // nil id is left to the database the same way.
    let by_hand = |row: User| {
        Query::insert()
            .into_table("users")
            .columns(COLUMNS)
            .values_panic([
                Expr::keyword_default(),
                black_box(tenant).into(),
                row.email.into(),
                row.name.into(),
                row.age.into(),
                row.nickname.into(),
            ])
            .build_postgres(PostgresQueryBuilder)
    };
    same_statement(&pebble(user()), &by_hand(user()));
    let mut group = c.benchmark_group("scoped insert");
    group.bench_function("pebble", |b| {
        b.iter_batched(user, pebble, criterion::BatchSize::SmallInput)
    });
    group.bench_function("sea-query by hand", |b| {
        b.iter_batched(user, by_hand, criterion::BatchSize::SmallInput)
    });
    group.finish();
}

/// Both sides must build the very same statement, or the comparison means nothing.
fn same_statement(pebble: &pebble::Statement, (sql, values): &(String, PostgresValues)) {
    assert_eq!(pebble.sql(), sql);
    assert_eq!(pebble.params().len(), values.0.len());
}

criterion_group!(benches, select, update, insert);
criterion_main!(benches);
