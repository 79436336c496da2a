//! Joins, projections and aggregates on tenant handles, adversarially: two
//! tenants with identical-looking data whose rows would match each other's
//! join conditions (the same project ids, the same names), every query run
//! as each tenant; composite foreign keys refusing cross-tenant references.

#![allow(clippy::type_complexity)] // tests spell out the tuples a projection decodes to

mod common;

use pebble::{count, Cond, Db, Error, Model, PoolOptions, RlsDb, RlsTable};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "j_projects")]
pub struct Project {
    #[pebble(primary_key)]
    #[tenant_id]
    pub org: Uuid,
    #[pebble(primary_key)]
    pub id: i64,
    pub name: String,
    /// A person's name: equal across tenants (a non-key join column).
    pub lead: String,
    pub budget: Option<i32>,
}

/// Keyed by `id` alone (ids differ across tenants), so a composite
/// reference to it needs the unique index `(org, id)`.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "j_people")]
pub struct Person {
    #[pebble(primary_key)]
    pub id: i64,
    #[tenant_id]
    pub org: Uuid,
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "j_categories", shared)]
pub struct Category {
    #[pebble(primary_key)]
    pub code: String,
    pub title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "j_tasks")]
pub struct Task {
    #[pebble(primary_key)]
    #[tenant_id]
    pub org: Uuid,
    #[pebble(primary_key)]
    pub id: i64,
    #[pebble(references = Project)]
    pub project_id: i64,
    #[pebble(references = Person)]
    pub assignee_id: Option<i64>,
    /// No foreign key: may name another tenant's person (the left-join trap).
    pub reviewer_id: Option<i64>,
    #[pebble(references = Category)]
    pub category: String,
    pub title: String,
    pub estimate: i32,
    pub spent: Option<i64>,
}

struct Fixture {
    db: Db,
    a: Uuid,
    b: Uuid,
    _test_db: TestDatabase,
}

fn task(id: i64, project_id: i64, assignee: Option<i64>, reviewer: Option<i64>) -> Task {
    Task {
        org: Uuid::nil(),
        id,
        project_id,
        assignee_id: assignee,
        reviewer_id: reviewer,
        category: if id == 3 { "ops" } else { "dev" }.into(),
        title: ["design", "build", "launch"][(id - 1) as usize].into(),
        estimate: 0,
        spent: None,
    }
}

async fn create_tables(db: &Db) {
    db.create_table::<Category>().await.unwrap();
    db.create_table::<Project>().await.unwrap();
    db.create_table::<Person>().await.unwrap();
    db.create_table::<Task>().await.unwrap();
}

/// Tenant A: projects 1 Apollo (lead ann), 2 Gemini (lead bob), 3 Mercury
/// (no tasks); people 1 ann, 2 bob; tasks 1, 2 on Apollo and 3 on Gemini,
/// estimates 3, 5, 8. Tenant B: the same names and project and task ids,
/// people 11 ann, 12 bob, estimates ten times A's, no Mercury. Each
/// tenant's task 1 has the other tenant's bob as its reviewer.
async fn fixture() -> Fixture {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config()).await.unwrap();
    create_tables(&db).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    seed(&db, a, b).await;
    Fixture {
        db,
        a,
        b,
        _test_db: test_db,
    }
}

async fn seed(db: &Db, a: Uuid, b: Uuid) {
    db.insert_many([
        Category {
            code: "dev".into(),
            title: "Development".into(),
        },
        Category {
            code: "ops".into(),
            title: "Operations".into(),
        },
    ])
    .exec()
    .await
    .unwrap();
    for (tenant, people, scale, projects, other_bob) in [(a, 0, 1, 3, 12), (b, 10, 10, 2, 2)] {
        let t = db.tenant(tenant);
        let project = |id: i64, name: &str, lead: &str, budget| Project {
            org: Uuid::nil(),
            id,
            name: name.into(),
            lead: lead.into(),
            budget,
        };
        let all = [
            project(1, "Apollo", "ann", Some(100)),
            project(2, "Gemini", "bob", None),
            project(3, "Mercury", "ann", Some(7)),
        ];
        t.insert_many(all.into_iter().take(projects))
            .exec()
            .await
            .unwrap();
        t.insert_many([
            Person {
                id: people + 1,
                org: Uuid::nil(),
                name: "ann".into(),
            },
            Person {
                id: people + 2,
                org: Uuid::nil(),
                name: "bob".into(),
            },
        ])
        .exec()
        .await
        .unwrap();
        let mut tasks = [
            task(1, 1, Some(people + 1), Some(other_bob)),
            task(2, 1, None, Some(people + 1)),
            task(3, 2, Some(people + 2), None),
        ];
        for (t, estimate) in tasks.iter_mut().zip([3, 5, 8]) {
            t.estimate = estimate * scale;
            t.spent = (t.id != 2).then_some(i64::from(t.estimate) * 2);
        }
        t.insert_many(tasks).exec().await.unwrap();
    }
}

fn scale(f: &Fixture, tenant: Uuid) -> i32 {
    if tenant == f.a {
        1
    } else {
        10
    }
}

#[tokio::test]
async fn inner_join_pairs_each_task_with_its_own_tenants_project() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let rows =
            f.db.tenant(tenant)
                .select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
                .order_by(Task::ID.asc())
                .all()
                .await
                .unwrap();
        // Without each table's own tenant condition, every task would pair
        // with both tenants' project of the same id: 6 rows.
        assert_eq!(rows.len(), 3);
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p)| (t.id, t.estimate, p.id, p.name.as_str()))
            .collect();
        let s = scale(&f, tenant);
        assert_eq!(
            got,
            [
                (1, 3 * s, 1, "Apollo"),
                (2, 5 * s, 1, "Apollo"),
                (3, 8 * s, 2, "Gemini")
            ]
        );
        assert!(rows.iter().all(|(t, p)| t.org == tenant && p.org == tenant));
    }
}

#[tokio::test]
async fn a_join_on_a_column_equal_across_tenants_stays_in_the_tenant() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        // Project leads are names, and both tenants have an "ann" and a "bob".
        let rows =
            f.db.tenant(tenant)
                .select::<Project>()
                .join::<Person>()
                .on(Project::LEAD.eq_col(Person::NAME))
                .order_by(Project::ID.asc())
                .all()
                .await
                .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|(p, person)| (p.name.as_str(), person.name.as_str(), person.org))
            .collect();
        let expected: Vec<_> = [("Apollo", "ann"), ("Gemini", "bob"), ("Mercury", "ann")]
            .into_iter()
            .take(if tenant == f.a { 3 } else { 2 })
            .map(|(p, n)| (p, n, tenant))
            .collect();
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn left_join_is_none_where_only_another_tenant_has_a_match() {
    let f = fixture().await;
    for (tenant, own_ann) in [(f.a, 1), (f.b, 11)] {
        let rows =
            f.db.tenant(tenant)
                .select::<Task>()
                .left_join::<Person>()
                .on(Task::REVIEWER_ID.eq_col(Person::ID))
                .order_by(Task::ID.asc())
                .all()
                .await
                .unwrap();
        // Task 1's reviewer id is the other tenant's bob: that row exists,
        // and the left join must not fill the optional side with it.
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p)| (t.id, p.as_ref().map(|p| (p.id, p.org))))
            .collect();
        assert_eq!(got, [(1, None), (2, Some((own_ann, tenant))), (3, None)]);
    }
}

#[tokio::test]
async fn three_models_with_filters_and_order_on_joined_columns() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let rows =
            f.db.tenant(tenant)
                .select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
                .left_join::<Person>()
                .on(Task::ASSIGNEE_ID.eq_col(Person::ID))
                .join::<Category>()
                .on(Task::CATEGORY.eq_col(Category::CODE))
                .filter(Cond::from(Project::NAME.eq("Apollo")).or(Person::NAME.eq("bob")))
                .filter(Category::TITLE.ne("nothing"))
                .order_by(Project::NAME.desc())
                .order_by(Task::ID.desc())
                .all()
                .await
                .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p, person, c)| {
                (
                    t.id,
                    p.name.as_str(),
                    person.as_ref().map(|x| x.name.as_str()),
                    c.title.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (3, "Gemini", Some("bob"), "Operations"),
                (2, "Apollo", None, "Development"),
                (1, "Apollo", Some("ann"), "Development"),
            ]
        );
        assert!(rows.iter().all(|(t, p, person, _)| t.org == tenant
            && p.org == tenant
            && person.as_ref().is_none_or(|x| x.org == tenant)));
    }
}

#[tokio::test]
async fn count_one_and_optional_on_a_join() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let t = f.db.tenant(tenant);
        let joined = || {
            t.select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
        };
        assert_eq!(joined().count().await.unwrap(), 3);
        assert_eq!(
            joined()
                .filter(Project::NAME.eq("Apollo"))
                .count()
                .await
                .unwrap(),
            2
        );
        let (task, project) = joined()
            .filter(Task::TITLE.eq("launch"))
            .one()
            .await
            .unwrap();
        assert_eq!(
            (task.org, project.org, project.name.as_str()),
            (tenant, tenant, "Gemini")
        );
        let missing = joined()
            .filter(Project::NAME.eq("Mercury"))
            .optional()
            .await
            .unwrap();
        assert_eq!(missing, None);
        assert!(matches!(
            joined().filter(Project::NAME.eq("Mercury")).one().await,
            Err(Error::NotFound { table: "j_tasks" })
        ));
    }
}

#[tokio::test]
async fn the_sql_of_a_join_confines_every_tenant_table_in_its_on_clause() {
    let f = fixture().await;
    let stmt =
        f.db.tenant(f.a)
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .left_join::<Person>()
            .on(Task::REVIEWER_ID.eq_col(Person::ID))
            .join::<Category>()
            .on(Task::CATEGORY.eq_col(Category::CODE))
            .filter(Cond::from(Person::NAME.eq("ann")).or(Task::ID.gt(1)))
            .build()
            .unwrap();
    let sql = stmt.sql();
    let from = &sql[sql.find(" FROM ").unwrap()..];
    assert_eq!(
        from,
        r#" FROM "j_tasks" INNER JOIN "j_projects" ON "j_projects"."org" = $1 AND "j_tasks"."project_id" = "j_projects"."id" LEFT JOIN "j_people" ON "j_people"."org" = $2 AND "j_tasks"."reviewer_id" = "j_people"."id" INNER JOIN "j_categories" ON "j_tasks"."category" = "j_categories"."code" WHERE "j_tasks"."org" = $3 AND ("j_people"."name" = $4 OR "j_tasks"."id" > $5)"#
    );
    assert!(sql.starts_with(
        r#"SELECT "j_tasks"."org", "j_tasks"."id", "j_tasks"."project_id", "j_tasks"."assignee_id""#
    ));
    assert_eq!(stmt.params().len(), 5);
    // The shared table is joined without a tenant condition.
    assert!(!sql.contains(r#""j_categories"."org""#));
}

#[tokio::test]
async fn a_join_after_filters_is_refused_and_sends_nothing() {
    let f = fixture().await;
    let shaped =
        f.db.tenant(f.a)
            .select::<Task>()
            .filter(Task::ID.eq(1))
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID));
    assert!(matches!(
        shaped.build(),
        Err(Error::ShapedBeforeJoin { table: "j_tasks" })
    ));
    assert!(matches!(
        shaped.all().await,
        Err(Error::ShapedBeforeJoin { .. })
    ));
    // A handle keyed by the unset value runs nothing, joins included.
    let unset =
        f.db.tenant(Uuid::nil())
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .all()
            .await;
    assert!(matches!(unset, Err(Error::InvalidTenantId { .. })));
}

#[tokio::test]
async fn projections_select_chosen_columns_into_tuples() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let t = f.db.tenant(tenant);
        let titles: Vec<(i64, String)> = t
            .select::<Task>()
            .columns((Task::ID, Task::TITLE))
            .order_by(Task::ID.asc())
            .all()
            .await
            .unwrap();
        assert_eq!(
            titles,
            [
                (1, "design".into()),
                (2, "build".into()),
                (3, "launch".into())
            ]
        );
        let one_column: Vec<String> = t
            .select::<Project>()
            .columns(Project::NAME)
            .order_by(Project::NAME.asc())
            .all()
            .await
            .unwrap();
        let mut expected = vec!["Apollo".to_owned(), "Gemini".into(), "Mercury".into()];
        expected.truncate(if tenant == f.a { 3 } else { 2 });
        assert_eq!(one_column, expected);
        // A left-joined model's columns decode as Option; the tenant column too.
        let reviewers: Vec<(String, Option<String>, Option<Uuid>, Option<i32>)> = t
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .left_join::<Person>()
            .on(Task::REVIEWER_ID.eq_col(Person::ID))
            .columns((Task::TITLE, Person::NAME, Person::ORG, Project::BUDGET))
            .order_by(Task::ID.asc())
            .all()
            .await
            .unwrap();
        assert_eq!(
            reviewers,
            [
                ("design".into(), None, None, Some(100)),
                ("build".into(), Some("ann".into()), Some(tenant), Some(100)),
                ("launch".into(), None, None, None),
            ]
        );
    }
}

#[tokio::test]
async fn aggregates_per_project_with_its_name() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let s = scale(&f, tenant);
        let per_project: Vec<(
            String,
            i64,
            Option<i64>,
            Option<f64>,
            Option<i32>,
            Option<i32>,
        )> =
            f.db.tenant(tenant)
                .select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
                .columns((
                    Project::NAME,
                    count(),
                    Task::ESTIMATE.sum(),
                    Task::ESTIMATE.avg(),
                    Task::ESTIMATE.min(),
                    Task::ESTIMATE.max(),
                ))
                .group_by(Project::ID)
                .group_by(Project::NAME)
                .order_by(count().desc())
                .all()
                .await
                .unwrap();
        assert_eq!(
            per_project,
            [
                (
                    "Apollo".into(),
                    2,
                    Some(i64::from(8 * s)),
                    Some(f64::from(4 * s)),
                    Some(3 * s),
                    Some(5 * s)
                ),
                (
                    "Gemini".into(),
                    1,
                    Some(i64::from(8 * s)),
                    Some(f64::from(8 * s)),
                    Some(8 * s),
                    Some(8 * s)
                ),
            ]
        );
        // having, on counts and sums; a left join counts projects without tasks.
        let busy: Vec<(String, i64)> =
            f.db.tenant(tenant)
                .select::<Project>()
                .left_join::<Task>()
                .on(Project::ID.eq_col(Task::PROJECT_ID))
                .columns((Project::NAME, Task::ID.count()))
                .group_by(Project::ID)
                .group_by(Project::NAME)
                .having(Task::ID.count().lt(2).and(Task::ID.count().gte(0)))
                .having(count().gte(1))
                .order_by(Project::NAME.asc())
                .all()
                .await
                .unwrap();
        let mut expected = vec![("Gemini".to_owned(), 1), ("Mercury".into(), 0)];
        expected.truncate(if tenant == f.a { 2 } else { 1 });
        assert_eq!(busy, expected);
    }
}

#[tokio::test]
async fn aggregate_types_and_empty_sets() {
    let f = fixture().await;
    for tenant in [f.a, f.b] {
        let s = i64::from(scale(&f, tenant));
        let t = f.db.tenant(tenant);
        // sum of bigint is numeric in PostgreSQL, cast back to bigint.
        let (spent, n, distinct, nonnull, people): (Option<i64>, i64, i64, i64, i64) = t
            .select::<Task>()
            .columns((
                Task::SPENT.sum(),
                count(),
                Task::PROJECT_ID.count_distinct(),
                Task::SPENT.count(),
                Task::ASSIGNEE_ID.count_distinct(),
            ))
            .one()
            .await
            .unwrap();
        assert_eq!(
            (spent, n, distinct, nonnull, people),
            (Some(22 * s), 3, 2, 2, 2)
        );
        // Over no rows: a count is 0, everything else None.
        let empty: (i64, Option<i64>, Option<f64>, Option<String>, Option<i64>) = t
            .select::<Task>()
            .columns((
                count(),
                Task::ESTIMATE.sum(),
                Task::SPENT.avg(),
                Task::TITLE.max(),
                Task::SPENT.min(),
            ))
            .filter(Task::TITLE.eq("nothing"))
            .one()
            .await
            .unwrap();
        assert_eq!(empty, (0, None, None, None, None));
        let titles: (Option<String>, Option<String>) = t
            .select::<Task>()
            .columns((Task::TITLE.min(), Task::TITLE.max()))
            .one()
            .await
            .unwrap();
        assert_eq!(titles, (Some("build".into()), Some("launch".into())));
    }
    // A sum past i64 fails with the server's numeric overflow, never wraps.
    let c = f.db.tenant(f.a);
    c.update::<Task>()
        .set(Task::SPENT, Some(i64::MAX))
        .filter(Task::ID.lte(2))
        .exec()
        .await
        .unwrap();
    let overflow = c
        .select::<Task>()
        .columns(Task::SPENT.sum())
        .one()
        .await
        .unwrap_err();
    assert_eq!(
        overflow.code(),
        Some(&pebble::SqlState::NUMERIC_VALUE_OUT_OF_RANGE)
    );
}

#[tokio::test]
async fn aggregate_sql_is_confined_like_a_select() {
    let f = fixture().await;
    let sql =
        f.db.tenant(f.b)
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .columns((
                Project::NAME,
                count(),
                Task::SPENT.sum(),
                Task::ESTIMATE.avg(),
            ))
            .filter(Task::ESTIMATE.gt(1))
            .group_by(Project::NAME)
            .having(count().gt(1))
            .order_by(Task::ESTIMATE.sum().desc())
            .limit(5)
            .to_sql()
            .unwrap();
    assert_eq!(
        sql,
        r#"SELECT "j_projects"."name", COUNT(*), CAST(SUM("j_tasks"."spent") AS bigint), CAST(AVG("j_tasks"."estimate") AS float8) FROM "j_tasks" INNER JOIN "j_projects" ON "j_projects"."org" = $1 AND "j_tasks"."project_id" = "j_projects"."id" WHERE "j_tasks"."org" = $2 AND "j_tasks"."estimate" > $3 GROUP BY "j_projects"."name" HAVING COUNT(*) > $4 ORDER BY SUM("j_tasks"."estimate") DESC LIMIT $5"#
    );
}

#[tokio::test]
async fn joins_and_aggregates_in_a_transaction_see_its_own_writes_only() {
    let f = fixture().await;
    let tx = f.db.tenant(f.b).begin().await.unwrap();
    let mut extra = task(1, 2, None, None);
    extra.id = 4;
    extra.estimate = 1;
    tx.insert(extra).exec().await.unwrap();
    let rows = tx
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .filter(Project::NAME.eq("Gemini"))
        .order_by(Task::ID.asc())
        .all()
        .await
        .unwrap();
    let got: Vec<_> = rows.iter().map(|(t, p)| (t.id, t.org, p.org)).collect();
    assert_eq!(got, [(3, f.b, f.b), (4, f.b, f.b)]);
    let n: i64 = tx.select::<Task>().columns(count()).one().await.unwrap();
    assert_eq!(n, 4);
    tx.rollback().await.unwrap();
    // Tenant A saw nothing of it, and B's count is back to 3.
    for tenant in [f.a, f.b] {
        let n: i64 =
            f.db.tenant(tenant)
                .select::<Task>()
                .columns(count())
                .one()
                .await
                .unwrap();
        assert_eq!(n, 3);
    }
}

#[tokio::test]
async fn create_table_emits_composite_foreign_keys() {
    let sql = pebble::create_table_sql::<Task>();
    assert!(sql.starts_with(
        "CREATE UNIQUE INDEX IF NOT EXISTS \"j_people_org_id_ref_key\" ON \"j_people\" (\"org\", \"id\");\n"
    ));
    for fk in [
        r#"CONSTRAINT "j_tasks_project_id_fkey" FOREIGN KEY ("org", "project_id") REFERENCES "j_projects" ("org", "id")"#,
        r#"CONSTRAINT "j_tasks_assignee_id_fkey" FOREIGN KEY ("org", "assignee_id") REFERENCES "j_people" ("org", "id")"#,
        r#"CONSTRAINT "j_tasks_category_fkey" FOREIGN KEY ("category") REFERENCES "j_categories" ("code")"#,
    ] {
        assert!(sql.contains(fk), "{fk} missing from {sql}");
    }
    // Project's key is (org, id) already: no extra index for it.
    assert!(!sql.contains("j_projects_org_id_ref_key"));
}

#[tokio::test]
async fn the_database_refuses_a_reference_to_another_tenants_row() {
    let f = fixture().await;
    // B has no project 3 (A's Mercury) and no person 1 (A's ann).
    let b = f.db.tenant(f.b);
    let mut to_project = task(3, 3, None, None);
    to_project.id = 8;
    let to_project = b.insert(to_project).exec().await.unwrap_err();
    assert!(to_project.is_foreign_key_violation(), "{to_project}");
    let mut to_person = task(2, 1, Some(1), None);
    to_person.id = 5;
    let to_person = b.insert(to_person).exec().await.unwrap_err();
    assert!(to_person.is_foreign_key_violation(), "{to_person}");
    // Raw SQL bypassing pebble is refused by the database too.
    let raw =
        f.db.batch_execute(&format!(
            "INSERT INTO j_tasks (org, id, project_id, category, title, estimate) \
             VALUES ('{}', 9, 3, 'dev', 'raw', 1)",
            f.b
        ))
        .await
        .unwrap_err();
    assert!(raw.is_foreign_key_violation(), "{raw}");
    // An update pointing an existing task at another tenant's row too.
    let moved = b
        .update::<Task>()
        .set(Task::ASSIGNEE_ID, Some(2))
        .filter(Task::ID.eq(1))
        .exec()
        .await
        .unwrap_err();
    assert!(moved.is_foreign_key_violation(), "{moved}");
    // Nothing was written, for either tenant.
    for tenant in [f.a, f.b] {
        let rows: Vec<(i64, Option<i64>)> =
            f.db.tenant(tenant)
                .select::<Task>()
                .columns((Task::ID, Task::ASSIGNEE_ID))
                .order_by(Task::ID.asc())
                .all()
                .await
                .unwrap();
        let own = if tenant == f.a { 0 } else { 10 };
        assert_eq!(rows, [(1, Some(own + 1)), (2, None), (3, Some(own + 2))]);
    }
    // Its own rows it may reference; a shared row any tenant may.
    let mut ok = task(1, 2, Some(12), None);
    ok.id = 6;
    b.insert(ok).exec().await.unwrap();
    let mut bad_category = task(1, 1, None, None);
    bad_category.id = 7;
    bad_category.category = "nope".into();
    assert!(b
        .insert(bad_category)
        .exec()
        .await
        .unwrap_err()
        .is_foreign_key_violation());
}

#[tokio::test]
async fn joins_and_aggregates_under_row_level_security() {
    let f = fixture().await;
    let tables = [
        RlsTable::of::<Project>(),
        RlsTable::of::<Person>(),
        RlsTable::of::<Task>(),
    ];
    f.db.install_rls_tables(&tables).await.unwrap();
    let role = format!("app_{}", Uuid::new_v4().simple());
    let password = f.db.create_app_role(&role, &tables).await.unwrap();
    f.db.batch_execute(&format!("GRANT SELECT ON j_categories TO {role}"))
        .await
        .unwrap();
    let mut config = f._test_db.config();
    config.user(&role).password(&password);
    let app = RlsDb::connect_with(config, PoolOptions::default())
        .await
        .unwrap();
    for (tenant, own_ann) in [(f.a, 1), (f.b, 11)] {
        let t = app.tenant(tenant);
        let rows = t
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .left_join::<Person>()
            .on(Task::REVIEWER_ID.eq_col(Person::ID))
            .order_by(Task::ID.asc())
            .all()
            .await
            .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p, r)| (t.id, t.org, p.org, r.as_ref().map(|r| r.id)))
            .collect();
        assert_eq!(
            got,
            [
                (1, tenant, tenant, None),
                (2, tenant, tenant, Some(own_ann)),
                (3, tenant, tenant, None)
            ]
        );
        let per_project: Vec<(String, i64)> = t
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .columns((Project::NAME, count()))
            .group_by(Project::NAME)
            .order_by(Project::NAME.asc())
            .all()
            .await
            .unwrap();
        assert_eq!(per_project, [("Apollo".into(), 2), ("Gemini".into(), 1)]);
        // In an RLS transaction too.
        let tx = t.begin().await.unwrap();
        let n = tx
            .select::<Project>()
            .left_join::<Task>()
            .on(Project::ID.eq_col(Task::PROJECT_ID))
            .count()
            .await
            .unwrap();
        assert_eq!(n, if tenant == f.a { 4 } else { 3 });
        tx.commit().await.unwrap();
    }
    app.db().close();
    f.db.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_joined_model_is_checked_against_its_table() {
    /// A slim model over the tenant table `j_people` declared shared: joined
    /// without a tenant condition, it would pair rows with every tenant's people.
    #[derive(Model, Debug)]
    #[pebble(table = "j_people", shared)]
    struct AnyPerson {
        #[pebble(primary_key)]
        id: i64,
        name: String,
    }
    let f = fixture().await;
    let err =
        f.db.tenant(f.a)
            .select::<Task>()
            .join::<AnyPerson>()
            .on(Task::ASSIGNEE_ID.eq_col(AnyPerson::ID))
            .all()
            .await
            .unwrap_err();
    assert!(matches!(err, Error::TenantColumnMismatch { .. }), "{err}");
    let _ = AnyPerson::NAME;
}

#[tokio::test]
async fn a_model_may_reference_itself() {
    /// A tree of folders per tenant, keyed by `id` alone: the unique
    /// `(org, id)` its own foreign key needs goes inside its CREATE TABLE.
    #[derive(Model, Debug)]
    #[pebble(table = "j_folders")]
    struct Folder {
        #[pebble(primary_key)]
        id: i64,
        #[tenant_id]
        org: Uuid,
        #[pebble(references = Folder)]
        parent: Option<i64>,
    }
    let f = fixture().await;
    f.db.create_table::<Folder>().await.unwrap();
    // Idempotent, like every create_table.
    f.db.create_table::<Folder>().await.unwrap();
    let folder = |id, parent| Folder {
        id,
        org: Uuid::nil(),
        parent,
    };
    f.db.tenant(f.a)
        .insert(folder(1, None))
        .exec()
        .await
        .unwrap();
    f.db.tenant(f.a)
        .insert(folder(2, Some(1)))
        .exec()
        .await
        .unwrap();
    let err =
        f.db.tenant(f.b)
            .insert(folder(3, Some(1)))
            .exec()
            .await
            .unwrap_err();
    assert!(err.is_foreign_key_violation(), "{err}");
    let ids: Vec<i64> =
        f.db.cross_tenant()
            .select::<Folder>()
            .order_by(Folder::ID.asc())
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn the_readme_join_sends_what_the_readme_shows() {
    let f = fixture().await;
    let sql =
        f.db.tenant(f.a)
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .left_join::<Person>()
            .on(Task::ASSIGNEE_ID.eq_col(Person::ID))
            .filter(Project::NAME.eq("Apollo"))
            .filter(Cond::from(Person::NAME.eq("ann")).or(Task::ESTIMATE.gt(5)))
            .order_by(Person::NAME.asc())
            .to_sql()
            .unwrap();
    let from = &sql[sql.find(" FROM ").unwrap()..];
    assert_eq!(
        from,
        r#" FROM "j_tasks" INNER JOIN "j_projects" ON "j_projects"."org" = $1 AND "j_tasks"."project_id" = "j_projects"."id" LEFT JOIN "j_people" ON "j_people"."org" = $2 AND "j_tasks"."assignee_id" = "j_people"."id" WHERE "j_tasks"."org" = $3 AND "j_projects"."name" = $4 AND ("j_people"."name" = $5 OR "j_tasks"."estimate" > $6) ORDER BY "j_people"."name" ASC"#
    );
}

#[tokio::test]
async fn shared_models_and_cross_tenant_aggregate_too() {
    let f = fixture().await;
    // A plain Db on a shared model: columns and aggregates, no tenant condition.
    let codes: Vec<(String, i64)> =
        f.db.select::<Category>()
            .columns((Category::CODE, count()))
            .group_by(Category::CODE)
            .order_by(Category::CODE.asc())
            .all()
            .await
            .unwrap();
    assert_eq!(codes, [("dev".into(), 1), ("ops".into(), 1)]);
    // The explicit cross-tenant door: tasks per tenant, for an admin.
    let per_org: Vec<(Uuid, i64, Option<i64>)> =
        f.db.cross_tenant()
            .select::<Task>()
            .columns((Task::ORG, count(), Task::ESTIMATE.sum()))
            .group_by(Task::ORG)
            .order_by(Task::ESTIMATE.sum().asc())
            .all()
            .await
            .unwrap();
    assert_eq!(per_org, [(f.a, 3, Some(16)), (f.b, 3, Some(160))]);
}

#[tokio::test]
async fn only_narrows_the_joined_rows_in_the_on_clause() {
    let f = fixture().await;
    for (tenant, own_bob) in [(f.a, 2), (f.b, 12)] {
        let t = f.db.tenant(tenant);
        let joined = t
            .select::<Task>()
            .left_join::<Person>()
            .only(Person::NAME.eq("bob"))
            .on(Task::ASSIGNEE_ID.eq_col(Person::ID))
            .order_by(Task::ID.asc());
        let sql = joined.to_sql().unwrap();
        assert!(
            sql.contains(r#"LEFT JOIN "j_people" ON "j_people"."org" = $1 AND ("j_tasks"."assignee_id" = "j_people"."id" AND "j_people"."name" = $2)"#),
            "{sql}"
        );
        // Every task stays; only bob is joined (ann's task gets None).
        let rows = joined.all().await.unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p)| (t.id, p.as_ref().map(|p| (p.id, p.org))))
            .collect();
        assert_eq!(got, [(1, None), (2, None), (3, Some((own_bob, tenant)))]);
    }
}
