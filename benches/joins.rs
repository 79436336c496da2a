//! A scoped join and a scoped aggregate on a real PostgreSQL: pebble (pool
//! checkout, statement built, prepared-statement cache, rows decoded into
//! tuples of models) versus the same SQL by hand with tokio-postgres on
//! one client, prepared once. Each side's result is checked equal first.
//!
//! `cargo bench --bench joins`. Uses `DATABASE_URL` or a throwaway server.

use criterion::{criterion_group, criterion_main, Criterion};
use pebble::{count, Db, Model, PoolOptions};
use tokio_postgres::NoTls;
use uuid::Uuid;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "projects")]
pub struct Project {
    #[pebble(primary_key)]
    #[tenant_id]
    pub org: Uuid,
    #[pebble(primary_key)]
    pub id: i64,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tasks")]
pub struct Task {
    #[pebble(primary_key)]
    #[tenant_id]
    pub org: Uuid,
    #[pebble(primary_key)]
    pub id: i64,
    #[pebble(references = Project)]
    pub project_id: i64,
    pub title: String,
    pub estimate: i32,
}

const JOIN_SQL: &str = r#"SELECT "tasks"."org", "tasks"."id", "tasks"."project_id", "tasks"."title", "tasks"."estimate", "projects"."org", "projects"."id", "projects"."name" FROM "tasks" INNER JOIN "projects" ON "projects"."org" = $1 AND "tasks"."project_id" = "projects"."id" WHERE "tasks"."org" = $2 AND "projects"."name" = $3 ORDER BY "tasks"."id" ASC"#;

const AGGREGATE_SQL: &str = r#"SELECT "projects"."name", COUNT(*), SUM("tasks"."estimate") FROM "tasks" INNER JOIN "projects" ON "projects"."org" = $1 AND "tasks"."project_id" = "projects"."id" WHERE "tasks"."org" = $2 GROUP BY "projects"."name" ORDER BY "projects"."name" ASC"#;

fn joins(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let database = rt
        .block_on(server.create_database("pebble_bench_joins"))
        .expect("a bench database");
    let (db, client, tenant) = rt.block_on(async {
        let options = PoolOptions::default().max_size(1);
        let db = Db::connect_with(database.config(), options)
            .await
            .expect("a pool");
        db.create_table::<Project>().await.expect("projects");
        db.create_table::<Task>().await.expect("tasks");
        let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
        // Two tenants with the same ids and names: 20 projects, 1,000 tasks each.
        for org in [tenant, other] {
            let t = db.tenant(org);
            t.insert_many((0..20).map(|i| Project {
                org: Uuid::nil(),
                id: i,
                name: format!("project {i}"),
            }))
            .exec()
            .await
            .expect("projects");
            t.insert_many((0..1000).map(|i| Task {
                org: Uuid::nil(),
                id: i,
                project_id: i % 20,
                title: format!("task {i}"),
                estimate: (i % 13) as i32,
            }))
            .exec()
            .await
            .expect("tasks");
        }
        db.batch_execute("ANALYZE").await.expect("analyze");
        let (client, connection) = database.config().connect(NoTls).await.expect("client");
        tokio::spawn(connection);
        (db, client, tenant)
    });
    let t = db.tenant(tenant);

    let pebble_join = || {
        t.select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .filter(Project::NAME.eq("project 3"))
            .order_by(Task::ID.asc())
    };
    assert_eq!(pebble_join().to_sql().expect("sql"), JOIN_SQL);
    let join = rt.block_on(client.prepare(JOIN_SQL)).expect("prepare");
    let by_hand_join = || async {
        let rows = client
            .query(&join, &[&tenant, &tenant, &"project 3"])
            .await
            .expect("rows");
        rows.iter()
            .map(|row| {
                (
                    Task {
                        org: row.get(0),
                        id: row.get(1),
                        project_id: row.get(2),
                        title: row.get(3),
                        estimate: row.get(4),
                    },
                    Project {
                        org: row.get(5),
                        id: row.get(6),
                        name: row.get(7),
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    let (mine, theirs) = rt.block_on(async {
        (
            pebble_join().all().await.expect("rows"),
            by_hand_join().await,
        )
    });
    assert_eq!(mine.len(), 50);
    assert_eq!(mine, theirs);

    let mut group = c.benchmark_group("scoped join, 50 rows of (Task, Project)");
    group.bench_function("pebble", |b| {
        b.iter(|| rt.block_on(pebble_join().all()).expect("rows"))
    });
    group.bench_function("tokio-postgres by hand", |b| {
        b.iter(|| rt.block_on(by_hand_join()))
    });
    group.finish();

    let pebble_aggregate = || {
        t.select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .columns((Project::NAME, count(), Task::ESTIMATE.sum()))
            .group_by(Project::NAME)
            .order_by(Project::NAME.asc())
    };
    assert_eq!(pebble_aggregate().to_sql().expect("sql"), AGGREGATE_SQL);
    let aggregate = rt.block_on(client.prepare(AGGREGATE_SQL)).expect("prepare");
    let by_hand_aggregate = || async {
        let rows = client
            .query(&aggregate, &[&tenant, &tenant])
            .await
            .expect("rows");
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect::<Vec<(String, i64, Option<i64>)>>()
    };
    let (mine, theirs) = rt.block_on(async {
        (
            pebble_aggregate().all().await.expect("rows"),
            by_hand_aggregate().await,
        )
    });
    assert_eq!(mine.len(), 20);
    assert_eq!(mine, theirs);

    let mut group = c.benchmark_group("scoped count and sum per project, 20 groups");
    group.bench_function("pebble", |b| {
        b.iter(|| rt.block_on(pebble_aggregate().all()).expect("rows"))
    });
    group.bench_function("tokio-postgres by hand", |b| {
        b.iter(|| rt.block_on(by_hand_aggregate()))
    });
    group.finish();
    drop(database);
}

criterion_group!(benches, joins);
criterion_main!(benches);
