//! The queries of issue 9 through schema handles: joins name both
//! per-tenant tables in the tenant's schema (and a joined shared table in
//! the shared schema), foreign keys between per-tenant models point inside
//! the tenant's schema, and a split `insert_many` and a stream stay in it.
//! Every statement also runs as a second tenant with identical keys.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::TryStreamExt;
use pebble::{Db, Model, SchemaTenants};

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "sq_projects", per_tenant)]
struct Project {
    #[pebble(primary_key)]
    id: i64,
    name: String,
    plan_id: i64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "sq_tasks", per_tenant)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    #[pebble(references = Project)]
    project_id: i64,
    title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "sq_plans", shared)]
struct Plan {
    #[pebble(primary_key)]
    id: i64,
    label: String,
}

/// Tenant ids unique to this process and test (schemas and roles are
/// per database, but the registry's advisory locks are cluster-wide).
fn id(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "q{}n{}_{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn two_tenants() -> (
    pebble_testkit::TestDatabase,
    Db,
    SchemaTenants,
    String,
    String,
) {
    let database = pebble_testkit::database().await.expect("test database");
    let db = Db::connect(database.config()).await.expect("connect");
    db.create_table::<Plan>().await.expect("shared table");
    db.insert_many([
        Plan {
            id: 1,
            label: "free".into(),
        },
        Plan {
            id: 2,
            label: "pro".into(),
        },
    ])
    .exec()
    .await
    .expect("plans");
    let tenants = SchemaTenants::builder(db.clone())
        .table::<Project>()
        .table::<Task>()
        .build()
        .expect("builder");
    let (a, b) = (id("a"), id("b"));
    tenants.create(&a).await.expect("tenant a");
    tenants.create(&b).await.expect("tenant b");
    (database, db, tenants, a, b)
}

#[tokio::test]
async fn joins_and_foreign_keys_stay_in_the_tenant_schema() {
    let (_database, _db, tenants, a_id, b_id) = two_tenants().await;
    let a = tenants.db(&a_id).await.unwrap();
    let b = tenants.db(&b_id).await.unwrap();

    // Identical keys in both schemas, different names: a leak would show.
    a.insert(Project {
        id: 1,
        name: "apollo".into(),
        plan_id: 2,
    })
    .exec()
    .await
    .unwrap();
    a.insert(Task {
        id: 1,
        project_id: 1,
        title: "launch".into(),
    })
    .exec()
    .await
    .unwrap();
    b.insert(Project {
        id: 1,
        name: "borealis".into(),
        plan_id: 1,
    })
    .exec()
    .await
    .unwrap();

    let join = || {
        a.select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
    };
    let sql = join().to_sql().unwrap();
    assert!(
        sql.contains(&format!("\"tenant_{a_id}\".\"sq_tasks\""))
            && sql.contains(&format!("\"tenant_{a_id}\".\"sq_projects\"")),
        "{sql}"
    );
    let rows = join().all().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.name, "apollo");

    // b has no tasks: its join is empty although a's task matches b's project id.
    let b_rows = b
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .all()
        .await
        .unwrap();
    assert!(b_rows.is_empty());

    // A shared model joins from the shared schema, unqualified.
    let plans = b
        .select::<Project>()
        .join::<Plan>()
        .on(Project::PLAN_ID.eq_col(Plan::ID))
        .all()
        .await
        .unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(
        (plans[0].0.name.as_str(), plans[0].1.label.as_str()),
        ("borealis", "free")
    );

    // The foreign key points into b's own schema: project 2 exists nowhere
    // in b, so the insert is refused (and a project 2 in a would not help).
    a.insert(Project {
        id: 2,
        name: "ares".into(),
        plan_id: 1,
    })
    .exec()
    .await
    .unwrap();
    let refused = b
        .insert(Task {
            id: 7,
            project_id: 2,
            title: "orphan".into(),
        })
        .exec()
        .await
        .unwrap_err();
    assert!(refused.is_foreign_key_violation(), "{refused:?}");
    assert_eq!(b.select::<Task>().count().await.unwrap(), 0);
    assert_eq!(a.select::<Task>().count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_split_insert_and_a_stream_stay_in_the_tenant_schema() {
    let (_database, _db, tenants, a_id, b_id) = two_tenants().await;
    let a = tenants.db(&a_id).await.unwrap();
    let b = tenants.db(&b_id).await.unwrap();
    a.insert(Project {
        id: 1,
        name: "apollo".into(),
        plan_id: 1,
    })
    .exec()
    .await
    .unwrap();
    // 22,000 rows of 3 columns: 66,000 parameters, over PostgreSQL's 65,535.
    let rows: Vec<Task> = (0..22_000)
        .map(|i| Task {
            id: i,
            project_id: 1,
            title: format!("t{i}"),
        })
        .collect();
    let insert = a.insert_many(rows);
    assert_eq!(insert.statements().unwrap().len(), 2);
    assert_eq!(insert.exec().await.unwrap(), 22_000);

    let streamed: Vec<Task> = a.select::<Task>().stream().try_collect().await.unwrap();
    assert_eq!(streamed.len(), 22_000);
    assert_eq!(b.select::<Task>().count().await.unwrap(), 0);
    let none: Vec<Task> = b.select::<Task>().stream().try_collect().await.unwrap();
    assert!(none.is_empty());
}

/// A tenant's projects' names, by id.
async fn names(tenant: &pebble::SchemaDb) -> Vec<String> {
    tenant
        .select::<Project>()
        .order_by(Project::ID.asc())
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

fn project(id: i64, name: &str) -> Project {
    Project {
        id,
        name: name.into(),
        plan_id: 1,
    }
}

#[tokio::test]
async fn savepoints_stay_in_the_tenant_schema() {
    let (_database, _db, tenants, a_id, b_id) = two_tenants().await;
    let a = tenants.db(&a_id).await.unwrap();
    let b = tenants.db(&b_id).await.unwrap();
    b.insert(project(1, "b's own")).exec().await.unwrap();

    let mut tx = a.begin().await.unwrap();
    tx.insert(project(1, "kept")).exec().await.unwrap();
    {
        let mut inner = tx.begin().await.unwrap();
        inner.insert(project(2, "released")).exec().await.unwrap();
        let deeper = inner.begin().await.unwrap();
        deeper
            .update::<Project>()
            .set(Project::NAME, "renamed then undone")
            .filter(Project::ID.eq(1))
            .exec()
            .await
            .unwrap();
        deeper.rollback().await.unwrap();
        inner.commit().await.unwrap();
    }
    {
        // A failed statement aborts only its savepoint: the same key as
        // tenant b's row is no conflict here (another schema), a key of
        // a's own is.
        let inner = tx.begin().await.unwrap();
        inner.insert(project(3, "undone")).exec().await.unwrap();
        let err = inner.insert(project(1, "dup")).exec().await.unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        inner.rollback().await.unwrap();
    }
    {
        // Dropped without commit or rollback: rolled back.
        let inner = tx.begin().await.unwrap();
        inner.delete::<Project>().exec().await.unwrap();
    }
    tx.insert(project(4, "after")).exec().await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(names(&a).await, ["kept", "released", "after"]);
    assert_eq!(names(&b).await, ["b's own"]);

    // The same from b's side: a's rows are neither seen nor changed.
    let mut tx = b.begin().await.unwrap();
    let inner = tx.begin().await.unwrap();
    assert_eq!(inner.select::<Project>().count().await.unwrap(), 1);
    assert_eq!(inner.delete::<Project>().exec().await.unwrap(), 1);
    inner.commit().await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(names(&a).await, ["kept", "released", "after"]);
    assert_eq!(names(&b).await, ["b's own"]);
}
