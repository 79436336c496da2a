//! Joins, projections and aggregates attacked the way a hostile or careless
//! user would: OR-ed and negated conditions next to the injected tenant
//! conditions, tenant columns named differently in each table, columns
//! named alike in both, anti-joins through a left join, limits, offsets,
//! empty and overflowing aggregates, composite foreign keys over renamed
//! tenant columns, and a hand-written `Joinable` impl that tries to join a
//! tenant model into an unscoped plain-`Db` query. Every query runs as
//! both tenants, whose rows would match each other's conditions.

#![allow(clippy::type_complexity)] // tests spell out the tuples a projection decodes to

use pebble::{count, Cond, Db, Error, Model, SqlState};
use pebble_testkit::TestDatabase;
use uuid::Uuid;

/// Keyed by `id` alone (ids differ across tenants); its tenant column is
/// named `owner_org` in SQL.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "x_projects")]
pub struct Project {
    #[pebble(primary_key)]
    pub id: i64,
    #[tenant_id]
    #[pebble(column = "owner_org")]
    pub org: Uuid,
    /// Equal across tenants: a join on it pairs tenants unless confined.
    pub name: String,
}

/// Its tenant column is `tenant` in SQL (not `owner_org`), and it shares
/// the column names `id` and `name` with `Project`.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "x_tasks")]
pub struct Task {
    #[pebble(primary_key)]
    pub id: i64,
    #[tenant_id]
    #[pebble(column = "tenant")]
    pub org: Uuid,
    #[pebble(references = Project)]
    pub project_id: i64,
    /// No foreign key: may hold another tenant's project id.
    pub watched_id: Option<i64>,
    pub name: String,
    pub points: i64,
    pub hours: Option<i32>,
}

/// A shared model, with a column name (`name`) equal to the tenant ones'.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "x_labels", shared)]
pub struct Label {
    #[pebble(primary_key)]
    pub code: String,
    pub name: String,
}

// What a careless user writes to make `db.select::<Label>().join::<Task>()`
// compile: the trait is public, and the derive implements it only for the
// tenant key type. A plain `Db` has no tenant to confine `Task` by.
impl pebble::Joinable<pebble::join_key::Shared> for Task {}

struct Fixture {
    db: Db,
    a: Uuid,
    b: Uuid,
    _test_db: TestDatabase,
}

/// Tenant A: project 1 "Apollo", tasks 1 "Apollo" (project 1, watching
/// B's project 2, 10 points) and 2 "misc" (project 1, watching nothing,
/// 20 points). Tenant B: project 2 "Apollo", tasks 3 "Apollo" (project 2,
/// watching A's project 1, 1000 points) and 4 "misc" (project 2, watching
/// its own project, 2000 points). Labels "apollo" and "misc" are named like
/// the tasks.
async fn fixture() -> Fixture {
    let test_db = pebble_testkit::database().await.expect("a test database");
    let db = Db::connect(test_db.config()).await.unwrap();
    db.create_table::<Label>().await.unwrap();
    db.create_table::<Project>().await.unwrap();
    db.create_table::<Task>().await.unwrap();
    db.insert_many([
        Label {
            code: "apollo".into(),
            name: "Apollo".into(),
        },
        Label {
            code: "misc".into(),
            name: "misc".into(),
        },
    ])
    .exec()
    .await
    .unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (tenant, own, other, first, scale) in [(a, 1, 2, 1, 1), (b, 2, 1, 3, 100)] {
        let t = db.tenant(tenant);
        t.insert(Project {
            id: own,
            org: Uuid::nil(),
            name: "Apollo".into(),
        })
        .exec()
        .await
        .unwrap();
        let task = |id: i64, name: &str, watched, points: i64| Task {
            id,
            org: Uuid::nil(),
            project_id: own,
            watched_id: watched,
            name: name.into(),
            points: points * scale,
            hours: None,
        };
        t.insert_many([
            task(first, "Apollo", Some(other), 10),
            task(first + 1, "misc", (tenant == b).then_some(own), 20),
        ])
        .exec()
        .await
        .unwrap();
    }
    Fixture {
        db,
        a,
        b,
        _test_db: test_db,
    }
}

impl Fixture {
    fn tenants(&self) -> [(Uuid, i64, Uuid); 2] {
        // (tenant, its project id, the other tenant)
        [(self.a, 1, self.b), (self.b, 2, self.a)]
    }
}

#[tokio::test]
async fn an_or_in_only_stays_behind_the_joined_tenant_condition() {
    let f = fixture().await;
    for (tenant, own_project, _) in f.tenants() {
        let query =
            f.db.tenant(tenant)
                .select::<Task>()
                .left_join::<Project>()
                // True for every project of every tenant.
                .only(Project::NAME.eq("Apollo").or(Project::ID.gt(0)))
                .on(Task::NAME.eq_col(Project::NAME));
        let sql = query.to_sql().unwrap();
        assert!(
            sql.contains(r#"LEFT JOIN "x_projects" ON "x_projects"."owner_org" = $1 AND ("x_tasks"."name" = "x_projects"."name" AND ("x_projects"."name" = $2 OR "x_projects"."id" > $3))"#),
            "{sql}"
        );
        assert!(sql.ends_with(r#"WHERE "x_tasks"."tenant" = $4"#), "{sql}");
        let rows = query.all().await.unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|(t, p)| (t.org, p.as_ref().map(|p| (p.id, p.org))))
            .collect();
        let mut got = got;
        got.sort();
        let mut expected = vec![(tenant, Some((own_project, tenant))), (tenant, None)];
        expected.sort();
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn or_and_not_across_models_stay_behind_the_base_tenant_condition() {
    let f = fixture().await;
    for (tenant, own_project, _) in f.tenants() {
        let t = f.db.tenant(tenant);
        let joined = || {
            t.select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
        };
        // Each of these is true for every row of every tenant; without the
        // parentheses around the user's condition, `tenant AND a OR b`
        // would return the other tenant's rows.
        let anything = || Cond::from(Project::ID.lt(0)).or(Task::POINTS.gt(0));
        let nothing = || Cond::from(Project::ID.gt(0)).and(Task::POINTS.lt(0));
        let sql = joined().filter(nothing().not()).to_sql().unwrap();
        assert!(
            sql.ends_with(
                r#"WHERE "x_tasks"."tenant" = $2 AND (NOT ("x_projects"."id" > $3 AND "x_tasks"."points" < $4))"#
            ),
            "{sql}"
        );
        for query in [
            joined().filter(anything()),
            joined().filter(nothing().not()),
            joined().filter(anything().not().not()),
            joined().filter(Cond::from(Task::NAME.eq("misc")).or(nothing().not())),
            joined().filter(Task::NAME.eq("misc").or(Task::POINTS.gt(0))),
            joined().filter(!(Task::POINTS.lt(0) & Task::ID.gt(0))),
        ] {
            let rows = query.all().await.unwrap();
            assert_eq!(rows.len(), 2);
            assert!(rows
                .iter()
                .all(|(t, p)| t.org == tenant && p.org == tenant && p.id == own_project));
        }
        assert_eq!(joined().filter(anything()).count().await.unwrap(), 2);
    }
}

#[tokio::test]
async fn a_left_join_treats_another_tenants_row_as_missing() {
    let f = fixture().await;
    for (tenant, own_project, _) in f.tenants() {
        // Which task watches which of this tenant's projects: A's task 1
        // watches B's project (which exists, but not for A), so it must
        // come back unpaired, like a task watching nothing. (An anti-join,
        // `WHERE project.id IS NULL`, cannot be written: `is_null` is only
        // offered on `Option` columns, and `Project::ID` is an `i64`.)
        let rows: Vec<(i64, Option<i64>, Option<i64>, Option<Uuid>)> =
            f.db.tenant(tenant)
                .select::<Task>()
                .left_join::<Project>()
                .on(Task::WATCHED_ID.eq_col(Project::ID))
                .columns((Task::ID, Task::WATCHED_ID, Project::ID, Project::ORG))
                .order_by(Task::ID.asc())
                .all()
                .await
                .unwrap();
        if tenant == f.a {
            assert_eq!(rows, [(1, Some(2), None, None), (2, None, None, None)]);
        } else {
            assert_eq!(
                rows,
                [
                    (3, Some(1), None, None),
                    (4, Some(2), Some(2), Some(tenant))
                ]
            );
        }
        // And the complement: only this tenant's own project is ever paired.
        let watched =
            f.db.tenant(tenant)
                .select::<Task>()
                .join::<Project>()
                .on(Task::WATCHED_ID.eq_col(Project::ID))
                .all()
                .await
                .unwrap();
        let got: Vec<_> = watched.iter().map(|(t, p)| (t.org, p.id, p.org)).collect();
        if tenant == f.a {
            assert!(got.is_empty(), "{got:?}");
        } else {
            assert_eq!(got, [(tenant, own_project, tenant)]);
        }
    }
}

#[tokio::test]
async fn same_column_names_and_different_tenant_columns_stay_apart() {
    let f = fixture().await;
    for (tenant, own_project, _) in f.tenants() {
        // `name` and `id` exist in both tables; the join is on names equal
        // across tenants, the only thing keeping tenants apart is each
        // table's own (differently named) tenant column.
        let rows: Vec<(i64, i64, String, Uuid, Uuid)> =
            f.db.tenant(tenant)
                .select::<Task>()
                .join::<Project>()
                .on(Task::NAME.eq_col(Project::NAME))
                .columns((
                    Task::ID,
                    Project::ID,
                    Project::NAME,
                    Task::ORG,
                    Project::ORG,
                ))
                .filter(Project::NAME.eq("Apollo"))
                .filter(Task::ID.gt(0))
                .order_by(Project::ID.asc())
                .all()
                .await
                .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let (_, project, name, task_org, project_org) = &rows[0];
        assert_eq!(
            (*project, name.as_str(), *task_org, *project_org),
            (own_project, "Apollo", tenant, tenant)
        );
    }
}

#[tokio::test]
async fn limit_offset_and_count_on_joins_see_one_tenant() {
    let f = fixture().await;
    for (tenant, _, _) in f.tenants() {
        let t = f.db.tenant(tenant);
        let joined = || {
            t.select::<Task>()
                .join::<Project>()
                .on(Task::PROJECT_ID.eq_col(Project::ID))
                .join::<Label>()
                .on(Task::NAME.eq_col(Label::NAME))
                .order_by(Task::ID.asc())
        };
        assert_eq!(joined().count().await.unwrap(), 2);
        // count ignores limit and offset.
        assert_eq!(joined().limit(1).offset(1).count().await.unwrap(), 2);
        let page = joined().limit(1).offset(1).all().await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!((page[0].0.org, page[0].0.name.as_str()), (tenant, "misc"));
        assert!(joined().offset(2).all().await.unwrap().is_empty());
        let (first, project, label) = joined().one().await.unwrap();
        assert_eq!(
            (first.org, project.org, label.code.as_str()),
            (tenant, tenant, "apollo")
        );
    }
}

#[tokio::test]
async fn aggregates_and_having_on_joined_models_count_one_tenant() {
    let f = fixture().await;
    for (tenant, own_project, _) in f.tenants() {
        let scale = if tenant == f.a { 1 } else { 100 };
        let t = f.db.tenant(tenant);
        // A join on names equal across tenants: unconfined it would double
        // every count and sum.
        let per_project: Vec<(i64, i64, Option<i64>, i64)> = t
            .select::<Project>()
            .left_join::<Task>()
            .on(Project::ID.eq_col(Task::PROJECT_ID))
            .columns((
                Project::ID,
                count(),
                Task::POINTS.sum(),
                Task::ID.count_distinct(),
            ))
            .group_by(Project::ID)
            .having(
                Task::POINTS
                    .sum()
                    .lt(0)
                    .or(Task::ID.count().gt(0))
                    .not()
                    .not(),
            )
            .all()
            .await
            .unwrap();
        assert_eq!(per_project, [(own_project, 2, Some(30 * scale), 2)]);
        let total: (i64, Option<i64>, Option<f64>, Option<i64>) = t
            .select::<Task>()
            .join::<Label>()
            .on(Task::NAME.eq_col(Label::NAME))
            .columns((
                count(),
                Task::POINTS.sum(),
                Task::POINTS.avg(),
                Task::POINTS.max(),
            ))
            .one()
            .await
            .unwrap();
        assert_eq!(
            total,
            (
                2,
                Some(30 * scale),
                Some(15.0 * scale as f64),
                Some(20 * scale)
            )
        );
    }
}

#[tokio::test]
async fn empty_and_overflowing_aggregates() {
    let f = fixture().await;
    let t = f.db.tenant(f.a);
    let empty: (i64, Option<i64>, Option<f64>, Option<i32>, Option<i32>) = t
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .columns((
            count(),
            Task::POINTS.sum(),
            Task::POINTS.avg(),
            Task::HOURS.max(),
            Task::HOURS.min(),
        ))
        .filter(Project::NAME.eq("no such project"))
        .one()
        .await
        .unwrap();
    assert_eq!(empty, (0, None, None, None, None));
    // Only NULLs: sums and averages are None, counts of the column 0.
    let nulls: (Option<i64>, Option<f64>, i64) = t
        .select::<Task>()
        .columns((Task::HOURS.sum(), Task::HOURS.avg(), Task::HOURS.count()))
        .one()
        .await
        .unwrap();
    assert_eq!(nulls, (None, None, 0));
    // A sum past i64 is an error with its SQLSTATE, not a wrapped value.
    t.update::<Task>()
        .set(Task::POINTS, i64::MAX)
        .exec()
        .await
        .unwrap();
    let err = t
        .select::<Task>()
        .join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .columns(Task::POINTS.sum())
        .one()
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE),
        "{err:?}"
    );
    // Tenant B's sum is its own, untouched by A's overflow.
    let b_sum: Option<i64> =
        f.db.tenant(f.b)
            .select::<Task>()
            .columns(Task::POINTS.sum())
            .one()
            .await
            .unwrap();
    assert_eq!(b_sum, Some(3000));
}

#[tokio::test]
async fn composite_foreign_keys_use_each_tables_own_tenant_column() {
    let sql = pebble::create_table_sql::<Task>();
    assert!(
        sql.contains(
            r#"FOREIGN KEY ("tenant", "project_id") REFERENCES "x_projects" ("owner_org", "id")"#
        ),
        "{sql}"
    );
    let f = fixture().await;
    // Tenant A pointing a task at B's project: refused by the database.
    let err =
        f.db.tenant(f.a)
            .insert(Task {
                id: 10,
                org: Uuid::nil(),
                project_id: 2,
                watched_id: None,
                name: "sneaky".into(),
                points: 1,
                hours: None,
            })
            .exec()
            .await
            .unwrap_err();
    assert!(err.is_foreign_key_violation(), "{err:?}");
    // Nor by moving an existing task.
    let err =
        f.db.tenant(f.a)
            .update::<Task>()
            .set(Task::PROJECT_ID, 2)
            .filter(Task::ID.eq(1))
            .exec()
            .await
            .unwrap_err();
    assert!(err.is_foreign_key_violation(), "{err:?}");
    let b_projects =
        f.db.tenant(f.b)
            .select::<Project>()
            .left_join::<Task>()
            .on(Project::ID.eq_col(Task::PROJECT_ID))
            .all()
            .await
            .unwrap();
    assert!(b_projects
        .iter()
        .all(|(p, t)| p.org == f.b && t.as_ref().is_some_and(|t| t.org == f.b)));
}

#[tokio::test]
async fn joins_in_a_tenant_transaction_see_one_tenant() {
    let f = fixture().await;
    let tx = f.db.tenant(f.b).begin().await.unwrap();
    tx.insert(Task {
        id: 20,
        org: Uuid::nil(),
        project_id: 2,
        watched_id: Some(1),
        name: "Apollo".into(),
        points: 5,
        hours: Some(1),
    })
    .exec()
    .await
    .unwrap();
    let rows = tx
        .select::<Task>()
        .left_join::<Project>()
        .on(Task::WATCHED_ID.eq_col(Project::ID))
        .order_by(Task::ID.asc())
        .all()
        .await
        .unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|(t, p)| (t.id, t.org, p.as_ref().map(|p| p.org)))
        .collect();
    assert_eq!(got, [(3, f.b, None), (4, f.b, Some(f.b)), (20, f.b, None)]);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn an_unset_tenant_cannot_join() {
    let f = fixture().await;
    let err =
        f.db.tenant(Uuid::nil())
            .select::<Task>()
            .join::<Project>()
            .on(Task::PROJECT_ID.eq_col(Project::ID))
            .all()
            .await
            .unwrap_err();
    assert!(matches!(err, Error::InvalidTenantId { .. }), "{err:?}");
}

#[tokio::test]
async fn a_hand_written_joinable_cannot_join_a_tenant_model_into_a_plain_db() {
    let f = fixture().await;
    // Compiles thanks to the impl at the top of this file; unconfined it
    // would pair each label with both tenants' tasks.
    let query =
        f.db.select::<Label>()
            .join::<Task>()
            .on(Label::NAME.eq_col(Task::NAME));
    let err = query.all().await.unwrap_err();
    assert!(
        matches!(err, Error::TenantModelJoinedThroughDb { table: "x_tasks" }),
        "{err:?}"
    );
    let err =
        f.db.select::<Label>()
            .left_join::<Task>()
            .on(Label::NAME.eq_col(Task::NAME))
            .columns((Label::CODE, count()))
            .group_by(Label::CODE)
            .all()
            .await
            .unwrap_err();
    assert!(
        matches!(err, Error::TenantModelJoinedThroughDb { table: "x_tasks" }),
        "{err:?}"
    );
    let err =
        f.db.select::<Label>()
            .join::<Task>()
            .on(Label::NAME.eq_col(Task::NAME))
            .count()
            .await
            .unwrap_err();
    assert!(
        matches!(err, Error::TenantModelJoinedThroughDb { .. }),
        "{err:?}"
    );
    // cross_tenant() is the deliberate way, and still works.
    let n =
        f.db.cross_tenant()
            .select::<Label>()
            .join::<Task>()
            .on(Label::NAME.eq_col(Task::NAME))
            .count()
            .await
            .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn a_cross_tenant_join_pairs_rows_of_the_same_tenant_only() {
    let f = fixture().await;
    // An admin report over every tenant: each task with its project, by
    // a column equal across tenants. `TenantColumn` has no `eq_col`, so
    // the caller cannot say "same tenant" themselves.
    let query =
        f.db.cross_tenant()
            .select::<Task>()
            .join::<Project>()
            .on(Task::NAME.eq_col(Project::NAME));
    let sql = query.to_sql().unwrap();
    assert!(
        sql.ends_with(r#"FROM "x_tasks" INNER JOIN "x_projects" ON "x_projects"."owner_org" = "x_tasks"."tenant" AND "x_tasks"."name" = "x_projects"."name""#),
        "{sql}"
    );
    let rows = query.all().await.unwrap();
    let mut got: Vec<_> = rows.iter().map(|(t, p)| (t.id, t.org, p.org)).collect();
    got.sort();
    assert_eq!(got, [(1, f.a, f.a), (3, f.b, f.b)]);
    // A left join's optional side is never another tenant's row either:
    // A's task 1 watches B's project 2.
    let watched: Vec<(i64, Option<i64>)> =
        f.db.cross_tenant()
            .select::<Task>()
            .left_join::<Project>()
            .on(Task::WATCHED_ID.eq_col(Project::ID))
            .columns((Task::ID, Project::ID))
            .order_by(Task::ID.asc())
            .all()
            .await
            .unwrap();
    assert_eq!(watched, [(1, None), (2, None), (3, None), (4, Some(2))]);
}

#[tokio::test]
async fn joins_under_row_level_security_with_and_without_a_tenant() {
    let f = fixture().await;
    let tables = [
        pebble::RlsTable::of::<Project>(),
        pebble::RlsTable::of::<Task>(),
    ];
    f.db.install_rls_tables(&tables).await.unwrap();
    let role = format!("app_{}", Uuid::new_v4().simple());
    let password = f.db.create_app_role(&role, &tables).await.unwrap();
    f.db.batch_execute(&format!("GRANT SELECT ON x_labels TO {role}"))
        .await
        .unwrap();
    let mut config = f._test_db.config();
    config.user(&role).password(&password);
    let app = pebble::RlsDb::connect_with(config, pebble::PoolOptions::default())
        .await
        .unwrap();
    for (tenant, own_project, _) in f.tenants() {
        let t = app.tenant(tenant);
        // By names equal across tenants, with an OR that is true everywhere.
        let rows = t
            .select::<Task>()
            .left_join::<Project>()
            .only(Project::ID.gt(0).or(Project::ID.lt(0)))
            .on(Task::NAME.eq_col(Project::NAME))
            .filter(Cond::from(Project::ID.gt(0)).or(Task::POINTS.gt(0)))
            .all()
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|(t, p)| t.org == tenant
            && p.as_ref()
                .is_none_or(|p| p.org == tenant && p.id == own_project)));
        let tx = t.begin().await.unwrap();
        let per_project: Vec<(i64, i64)> = tx
            .select::<Project>()
            .join::<Task>()
            .on(Project::NAME.eq_col(Task::NAME))
            .columns((Project::ID, count()))
            .group_by(Project::ID)
            .all()
            .await
            .unwrap();
        assert_eq!(per_project, [(own_project, 1)]);
        tx.commit().await.unwrap();
    }
    // The application role's pool with no tenant set: its policies show
    // no tenant rows, to a cross-tenant join as to anything else.
    let n = app
        .db()
        .cross_tenant()
        .select::<Task>()
        .left_join::<Project>()
        .on(Task::PROJECT_ID.eq_col(Project::ID))
        .count()
        .await
        .unwrap();
    assert_eq!(n, 0);
    // And its plain Db still refuses a tenant model joined through the
    // hand-written Joinable, before anything is sent.
    let err = app
        .db()
        .select::<Label>()
        .join::<Task>()
        .on(Label::NAME.eq_col(Task::NAME))
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TenantModelJoinedThroughDb { .. }),
        "{err:?}"
    );
    app.db().close();
    f.db.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

/// A shared model without a primary key whose only column is nullable.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "x_notes", shared)]
pub struct Note {
    pub text: Option<String>,
}

#[tokio::test]
#[ignore = "known defect: a left-joined model without a primary key is decoded as None when \
            every column of the matched row is NULL (the decode cannot tell it from no match)"]
async fn a_left_joined_keyless_row_of_nulls_is_still_a_row() {
    let f = fixture().await;
    f.db.create_table::<Note>().await.unwrap();
    f.db.insert(Note { text: None }).exec().await.unwrap();
    // Every task paired with the one note (the condition is on Task alone).
    let rows =
        f.db.tenant(f.a)
            .select::<Task>()
            .left_join::<Note>()
            .on(Task::ID.eq_col(Task::ID))
            .all()
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|(_, n)| n == &Some(Note { text: None })),
        "{rows:?}"
    );
}
