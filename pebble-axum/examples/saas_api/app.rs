//! The saas_api example's schema and routes, shared with
//! `tests/saas_api.rs`, which serves this same router and calls every
//! endpoint as two tenants.
//!
//! Every tenant statement runs on `TenantDb<Uuid, RlsDb>`: under row-level
//! security, so the joins and counts pebble's builders cannot express yet
//! are parameterised raw SQL that the *database* confines to the tenant.
//! There is no unscoped SQL in a handler.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pebble::tokio_postgres::types::FromSql;
use pebble::tokio_postgres::Row;
use pebble::{Db, Model, RlsDb, RlsTable, TenantDb};
use pebble_axum::{ApiError, ApiResult, Tenant, TenantLayer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What every handler gets: a handle confined to the request's tenant,
/// by pebble's row condition and by the database's policy.
type Org = Tenant<TenantDb<Uuid, RlsDb>>;

/// The tenant registry: shared by all tenants, read by the layer.
#[derive(Model, Debug, Clone)]
#[pebble(table = "orgs", shared)]
pub struct Organization {
    #[pebble(primary_key)]
    pub id: Uuid,
    pub name: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "users")]
pub struct User {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub org: Uuid,
    #[pebble(unique)]
    pub email: String,
    pub name: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "projects")]
pub struct Project {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub org: Uuid,
    #[pebble(unique)]
    pub name: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "tasks")]
pub struct Task {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub org: Uuid,
    pub project_id: i64,
    pub assignee_id: Option<i64>,
    pub title: String,
    pub done: bool,
}

fn tenant_tables() -> [RlsTable; 3] {
    [
        RlsTable::of::<User>(),
        RlsTable::of::<Project>(),
        RlsTable::of::<Task>(),
    ]
}

/// As the tables' owner: creates the schema, puts the tenant tables under
/// row-level security and creates the application role `role` (returning
/// its password). Run at every deploy in a real service; here, once.
pub async fn provision(owner: &Db, role: &str) -> pebble::Result<String> {
    owner.create_table::<Organization>().await?;
    owner.create_table::<User>().await?;
    owner.create_table::<Project>().await?;
    owner.create_table::<Task>().await?;
    // References carry the tenant, `(org, project_id) -> projects (org, id)`:
    // foreign-key checks bypass row-level security, so a bare `project_id`
    // could point at another tenant's project.
    owner
        .batch_execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS projects_org_id ON projects (org, id);
             CREATE UNIQUE INDEX IF NOT EXISTS users_org_id ON users (org, id);
             ALTER TABLE tasks ADD CONSTRAINT tasks_project_fk
                 FOREIGN KEY (org, project_id) REFERENCES projects (org, id);
             ALTER TABLE tasks ADD CONSTRAINT tasks_assignee_fk
                 FOREIGN KEY (org, assignee_id) REFERENCES users (org, id);
             CREATE INDEX IF NOT EXISTS tasks_org_project ON tasks (org, project_id)",
        )
        .await?;
    owner.install_rls_tables(&tenant_tables()).await?;
    let password = owner.create_app_role(role, &tenant_tables()).await?;
    // The registry is read-only for the application.
    owner
        .batch_execute(&format!("GRANT SELECT ON orgs TO \"{role}\""))
        .await?;
    Ok(password)
}

/// Registers a tenant (as the owner: the application cannot write the registry).
pub async fn register(owner: &Db, id: Uuid, name: &str) -> pebble::Result<()> {
    owner
        .insert(Organization {
            id,
            name: name.to_owned(),
        })
        .exec()
        .await
        .map(drop)
}

/// The API. `app` is the pool of the application role.
pub fn router(app: RlsDb) -> Router {
    let registry = app.clone();
    let tenants = TenantLayer::<Uuid>::rls(app).exists(move |id| {
        let registry = registry.clone();
        async move {
            registry
                .select::<Organization>()
                .filter(Organization::ID.eq(id))
                .exists()
                .await
        }
    });
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/stats", get(project_stats))
        .route("/projects/{id}", axum::routing::delete(delete_project))
        .route("/tasks", get(search_tasks).post(create_task))
        .route("/tasks/{id}", get(get_task))
        .route("/tasks/done", post(mark_done))
        .layer(tenants)
}

fn unprocessable(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({ "error": "invalid", "message": message })),
    )
        .into_response()
}

/// A column of a raw SQL row. `Row::get` would panic on a type mismatch;
/// this is a `Decode` error (500) instead.
fn col<'a, T: FromSql<'a>>(
    row: &'a Row,
    table: &'static str,
    column: &'static str,
) -> pebble::Result<T> {
    row.try_get(column).map_err(|source| pebble::Error::Decode {
        table,
        column,
        source,
    })
}

fn not_found(table: &'static str) -> ApiError {
    ApiError(pebble::Error::NotFound { table })
}

// ---- users ------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub name: String,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut {
            id: u.id,
            email: u.email,
            name: u.name,
        }
    }
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
    name: String,
}

async fn list_users(Tenant(org): Org) -> ApiResult<Json<Vec<UserOut>>> {
    let users = org
        .select::<User>()
        .order_by(User::NAME.asc())
        .all()
        .await?;
    Ok(Json(users.into_iter().map(UserOut::from).collect()))
}

async fn create_user(Tenant(org): Org, Json(new): Json<NewUser>) -> ApiResult<Response> {
    if new.email.trim().is_empty() || new.name.trim().is_empty() {
        return Ok(unprocessable("email and name are required"));
    }
    let user = org
        .insert(User {
            id: 0,
            org: Uuid::nil(), // stamped by the tenant handle
            email: new.email,
            name: new.name,
        })
        .returning()
        .await?; // a taken email (per tenant): 409
    Ok((StatusCode::CREATED, Json(UserOut::from(user))).into_response())
}

// ---- projects ---------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProjectOut {
    pub id: i64,
    pub name: String,
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
}

async fn list_projects(Tenant(org): Org) -> ApiResult<Json<Vec<ProjectOut>>> {
    let projects = org
        .select::<Project>()
        .order_by(Project::NAME.asc())
        .all()
        .await?;
    Ok(Json(
        projects
            .into_iter()
            .map(|p| ProjectOut {
                id: p.id,
                name: p.name,
            })
            .collect(),
    ))
}

async fn create_project(Tenant(org): Org, Json(new): Json<NewProject>) -> ApiResult<Response> {
    if new.name.trim().is_empty() {
        return Ok(unprocessable("name is required"));
    }
    let project = org
        .insert(Project {
            id: 0,
            org: Uuid::nil(),
            name: new.name,
        })
        .returning()
        .await?;
    let out = ProjectOut {
        id: project.id,
        name: project.name,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProjectStats {
    pub id: i64,
    pub name: String,
    pub tasks: i64,
    pub open: i64,
    pub done: i64,
}

/// Task counts per project: a join and an aggregate, which pebble's
/// builders do not offer yet, as raw SQL under row-level security. Each
/// joined table is confined by the database; the `t.org = p.org` in the
/// ON clause keeps the join itself within one tenant, as the composite
/// foreign key does for the data.
async fn project_stats(Tenant(org): Org) -> ApiResult<Json<Vec<ProjectStats>>> {
    let rows = org
        .query(
            "SELECT p.id, p.name,
                    count(t.id) AS tasks,
                    count(t.id) FILTER (WHERE NOT t.done) AS open,
                    count(t.id) FILTER (WHERE t.done) AS done
               FROM projects p
               LEFT JOIN tasks t ON t.org = p.org AND t.project_id = p.id
              GROUP BY p.id, p.name
              ORDER BY p.name",
            &[],
        )
        .await?;
    let stats = rows
        .iter()
        .map(|r| {
            Ok(ProjectStats {
                id: col(r, "projects", "id")?,
                name: col(r, "projects", "name")?,
                tasks: col(r, "tasks", "tasks")?,
                open: col(r, "tasks", "open")?,
                done: col(r, "tasks", "done")?,
            })
        })
        .collect::<pebble::Result<_>>()?;
    Ok(Json(stats))
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Deleted {
    pub project: i64,
    pub tasks: u64,
}

/// Deletes a project and its tasks in one transaction: both or neither.
async fn delete_project(Tenant(org): Org, Path(id): Path<i64>) -> ApiResult<Json<Deleted>> {
    let tx = org.begin().await?;
    let tasks = tx
        .delete::<Task>()
        .filter(Task::PROJECT_ID.eq(id))
        .exec()
        .await?;
    let projects = tx
        .delete::<Project>()
        .filter(Project::ID.eq(id))
        .exec()
        .await?;
    if projects == 0 {
        // Another tenant's project looks exactly like a missing one; the
        // transaction is dropped, so nothing is deleted.
        return Err(not_found("projects"));
    }
    tx.commit().await?;
    Ok(Json(Deleted { project: id, tasks }))
}

// ---- tasks ------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskOut {
    pub id: i64,
    pub title: String,
    pub done: bool,
    pub project_id: i64,
    pub project: String,
    pub assignee_id: Option<i64>,
    pub assignee: Option<String>,
}

/// Tasks with their project's and assignee's names. Every joined table
/// carries the tenant condition in its ON clause (a LEFT JOIN's WHERE
/// would turn it into an inner join); the database's policy confines each
/// table as well.
const TASKS: &str = "SELECT t.id, t.title, t.done, t.project_id, p.name AS project,
                            t.assignee_id, u.name AS assignee
                       FROM tasks t
                       JOIN projects p ON p.org = t.org AND p.id = t.project_id
                       LEFT JOIN users u ON u.org = t.org AND u.id = t.assignee_id";

fn task_out(r: &Row) -> pebble::Result<TaskOut> {
    Ok(TaskOut {
        id: col(r, "tasks", "id")?,
        title: col(r, "tasks", "title")?,
        done: col(r, "tasks", "done")?,
        project_id: col(r, "tasks", "project_id")?,
        project: col(r, "projects", "project")?,
        assignee_id: col(r, "tasks", "assignee_id")?,
        assignee: col(r, "users", "assignee")?,
    })
}

#[derive(Deserialize)]
struct NewTask {
    project_id: i64,
    title: String,
    assignee_id: Option<i64>,
}

async fn create_task(Tenant(org): Org, Json(new): Json<NewTask>) -> ApiResult<Response> {
    if new.title.trim().is_empty() {
        return Ok(unprocessable("title is required"));
    }
    // Checked through the tenant handle, so another tenant's project or
    // user is "not found" (the composite foreign keys would refuse it too).
    if !org
        .select::<Project>()
        .filter(Project::ID.eq(new.project_id))
        .exists()
        .await?
    {
        return Err(not_found("projects"));
    }
    if let Some(assignee) = new.assignee_id {
        if !org
            .select::<User>()
            .filter(User::ID.eq(assignee))
            .exists()
            .await?
        {
            return Err(not_found("users"));
        }
    }
    let task = org
        .insert(Task {
            id: 0,
            org: Uuid::nil(),
            project_id: new.project_id,
            assignee_id: new.assignee_id,
            title: new.title,
            done: false,
        })
        .returning()
        .await?;
    let row = org
        .query_one(&format!("{TASKS} WHERE t.id = $1"), &[&task.id])
        .await?;
    Ok((StatusCode::CREATED, Json(task_out(&row)?)).into_response())
}

async fn get_task(Tenant(org): Org, Path(id): Path<i64>) -> ApiResult<Json<TaskOut>> {
    let row = org
        .query_opt(&format!("{TASKS} WHERE t.id = $1"), &[&id])
        .await?
        .ok_or_else(|| not_found("tasks"))?;
    Ok(Json(task_out(&row)?))
}

#[derive(Deserialize)]
struct Search {
    /// Words in the title (case-insensitive).
    q: Option<String>,
    done: Option<bool>,
    project_id: Option<i64>,
    page: Option<u32>,
    per_page: Option<u32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
    pub items: Vec<TaskOut>,
}

/// Search with pagination: `?q=login&done=false&project_id=3&page=2&per_page=20`.
async fn search_tasks(Tenant(org): Org, Query(search): Query<Search>) -> ApiResult<Response> {
    let page = search.page.unwrap_or(1);
    let per_page = search.per_page.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&per_page) {
        return Ok(unprocessable("page starts at 1; per_page is 1 to 100"));
    }
    // The search text is a bound parameter; only LIKE's own wildcards in it
    // are escaped, so `100%` finds "100%" rather than everything.
    let pattern = search.q.filter(|q| !q.is_empty()).map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let filter = "WHERE ($1::text IS NULL OR t.title ILIKE $1)
                    AND ($2::bool IS NULL OR t.done = $2)
                    AND ($3::bigint IS NULL OR t.project_id = $3)";
    let count = org
        .query_one(
            &format!("SELECT count(*) AS n FROM tasks t {filter}"),
            &[&pattern, &search.done, &search.project_id],
        )
        .await?;
    let total: i64 = col(&count, "tasks", "n")?;
    let rows = org
        .query(
            &format!("{TASKS} {filter} ORDER BY t.id LIMIT $4 OFFSET $5"),
            &[
                &pattern,
                &search.done,
                &search.project_id,
                &i64::from(per_page),
                &(i64::from(page - 1) * i64::from(per_page)),
            ],
        )
        .await?;
    let out = Page {
        page,
        per_page,
        total,
        items: rows.iter().map(task_out).collect::<pebble::Result<_>>()?,
    };
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct MarkDone {
    ids: Vec<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Updated {
    pub updated: u64,
}

/// Bulk "mark done" in a transaction: all the tenant's listed tasks or
/// none. Ids of other tenants' tasks are simply not matched.
async fn mark_done(Tenant(org): Org, Json(body): Json<MarkDone>) -> ApiResult<Response> {
    if body.ids.len() > 1000 {
        return Ok(unprocessable("at most 1000 ids at once"));
    }
    let tx = org.begin().await?;
    let updated = tx
        .update::<Task>()
        .set(Task::DONE, true)
        .filter(Task::ID.is_in(body.ids))
        .exec()
        .await?;
    tx.commit().await?;
    Ok(Json(Updated { updated }).into_response())
}
