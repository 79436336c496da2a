//! The schema per tenant strategy over real HTTP: two registered schema
//! tenants call every route, and neither sees or changes the other's rows;
//! missing, malformed, unknown and not-ready tenants are refused before the
//! handler runs and before any statement reaches a tenant schema; 200
//! concurrent requests alternating tenants see only their own.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use common::{serve, Capture, Http};
use pebble::{Db, Error, Model, SchemaTenants, TenantDb};
use pebble_axum::{ApiResult, Tenant, TenantLayer, TenantSchema};
use serde::Deserialize;
use serde_json::{json, Value};

/// One table per tenant schema.
#[derive(Model, Debug, Clone, PartialEq)]
#[pebble(table = "tasks", per_tenant)]
struct Task {
    #[pebble(primary_key)]
    id: i64,
    title: String,
    done: bool,
}

/// Row-scoped, for the wrong-extractor check.
#[derive(Model, Debug, Clone)]
#[pebble(table = "notes")]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: String,
    body: String,
}

/// The server's schemas, to check none was made for a refused id.
#[derive(Model, Debug)]
#[pebble(table = "pg_namespace", shared)]
struct Namespace {
    nspname: String,
}

#[derive(Deserialize)]
struct NewTask {
    id: i64,
    title: String,
}

/// How many times a handler ran.
type Runs = Arc<AtomicUsize>;

fn task_json(t: &Task) -> Value {
    json!({ "id": t.id, "title": t.title, "done": t.done })
}

async fn list(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
) -> ApiResult<Json<Vec<Value>>> {
    runs.fetch_add(1, Ordering::SeqCst);
    let tasks = db.select::<Task>().order_by(Task::ID.asc()).all().await?;
    Ok(Json(tasks.iter().map(task_json).collect()))
}

async fn add(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
    Json(new): Json<NewTask>,
) -> ApiResult<StatusCode> {
    runs.fetch_add(1, Ordering::SeqCst);
    db.insert(Task {
        id: new.id,
        title: new.title,
        done: false,
    })
    .exec()
    .await?;
    Ok(StatusCode::CREATED)
}

async fn one(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(Json(task_json(&db.find::<Task>(id).one().await?)))
}

async fn finish(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    runs.fetch_add(1, Ordering::SeqCst);
    let changed = db
        .update::<Task>()
        .set(Task::DONE, true)
        .filter(Task::ID.eq(id))
        .exec()
        .await?;
    if changed == 0 {
        return Err(Error::NotFound { table: "tasks" }.into());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    runs.fetch_add(1, Ordering::SeqCst);
    let removed = db.delete::<Task>().filter(Task::ID.eq(id)).exec().await?;
    if removed == 0 {
        return Err(Error::NotFound { table: "tasks" }.into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Marks every task done in one transaction on the tenant's schema.
async fn finish_all(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantSchema>,
) -> ApiResult<Json<u64>> {
    runs.fetch_add(1, Ordering::SeqCst);
    let tx = db.begin().await?;
    let changed = tx
        .update::<Task>()
        .set(Task::DONE, true)
        .filter(Task::DONE.eq(false))
        .exec()
        .await?;
    tx.commit().await?;
    Ok(Json(changed))
}

fn routes(runs: Runs) -> Router<()> {
    Router::new()
        .route("/tasks", get(list).post(add))
        .route("/tasks/done", post(finish_all))
        .route("/tasks/{id}", get(one).delete(remove))
        .route("/tasks/{id}/done", put(finish))
        .with_state(runs)
}

/// Tenant ids unique to this process and test: the tests of this binary
/// share one server, and each test its own database.
fn ids() -> impl Fn(&str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "ax{}n{}_",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    move |name| format!("{prefix}{name}")
}

async fn setup() -> (pebble_testkit::TestDatabase, Db, SchemaTenants) {
    let database = pebble_testkit::database()
        .await
        .expect("a test database (install PostgreSQL or set DATABASE_URL)");
    let db = Db::connect(database.config()).await.expect("connect");
    let tenants = SchemaTenants::builder(db.clone())
        .table::<Task>()
        .build()
        .expect("schema tenants");
    (database, db, tenants)
}

/// Every task of `id`, read beside the server.
async fn stored(tenants: &SchemaTenants, id: &str) -> Vec<Task> {
    tenants
        .db(id)
        .await
        .expect("a ready tenant")
        .select::<Task>()
        .order_by(Task::ID.asc())
        .all()
        .await
        .expect("its tasks")
}

fn task(id: i64, title: &str, done: bool) -> Task {
    Task {
        id,
        title: title.to_owned(),
        done,
    }
}

#[tokio::test]
async fn every_route_as_each_schema_tenant_leaves_the_other_alone() {
    let (_database, _db, tenants) = setup().await;
    let id = ids();
    let (a, b) = (id("a"), id("b"));
    tenants.create(&a).await.expect("provision a");
    tenants.create(&b).await.expect("provision b");
    let runs = Runs::default();
    let server =
        serve(routes(runs.clone()).layer(TenantLayer::<String>::schemas(tenants.clone()))).await;
    let http = Http::new(&server);

    // Ids kept apart per tenant, so that a hit on the other's id can only
    // be a leak, never the caller's own row.
    for (tenant, first) in [(&a, 100), (&b, 200)] {
        for n in 0..2 {
            let r = http
                .post(
                    "/tasks",
                    tenant,
                    json!({ "id": first + n, "title": format!("{tenant} {n}") }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
    let r = http.get("/tasks", &a).await;
    assert_eq!(
        r.json,
        json!([
            { "id": 100, "title": format!("{a} 0"), "done": false },
            { "id": 101, "title": format!("{a} 1"), "done": false },
        ])
    );
    let r = http.get("/tasks", &b).await;
    assert_eq!(
        r.json,
        json!([
            { "id": 200, "title": format!("{b} 0"), "done": false },
            { "id": 201, "title": format!("{b} 1"), "done": false },
        ])
    );

    // b reaching for a's rows by id: not found, and a's rows unchanged.
    for (method, path) in [
        (Method::GET, "/tasks/100"),
        (Method::PUT, "/tasks/100/done"),
        (Method::DELETE, "/tasks/101"),
    ] {
        let r = http
            .send(method.clone(), path, &[("x-tenant-id", &b)], None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(r.json["error"], json!("not_found"));
    }
    assert_eq!(
        stored(&tenants, &a).await,
        [
            task(100, &format!("{a} 0"), false),
            task(101, &format!("{a} 1"), false)
        ]
    );

    // Each tenant's own rows, through every route.
    assert_eq!(
        http.get("/tasks/100", &a).await.json["title"],
        json!(format!("{a} 0"))
    );
    assert_eq!(
        http.get("/tasks/200", &b).await.json["title"],
        json!(format!("{b} 0"))
    );
    let r = http
        .send(Method::PUT, "/tasks/100/done", &[("x-tenant-id", &a)], None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        http.delete("/tasks/201", &b).await.status,
        StatusCode::NO_CONTENT
    );
    // a's bulk "done" in a transaction touches a's one open task only.
    assert_eq!(
        http.post("/tasks/done", &a, json!(null)).await.json,
        json!(1)
    );
    assert_eq!(
        stored(&tenants, &a).await,
        [
            task(100, &format!("{a} 0"), true),
            task(101, &format!("{a} 1"), true)
        ]
    );
    assert_eq!(
        stored(&tenants, &b).await,
        [task(200, &format!("{b} 0"), false)]
    );
    // And b's bulk "done" touches b's only.
    assert_eq!(
        http.post("/tasks/done", &b, json!(null)).await.json,
        json!(1)
    );
    assert_eq!(
        stored(&tenants, &b).await,
        [task(200, &format!("{b} 0"), true)]
    );
    assert_eq!(stored(&tenants, &a).await.len(), 2);

    // A duplicate key in one's schema is a conflict there, and the same key
    // is free in the other's: the tables are separate.
    let r = http
        .post("/tasks", &a, json!({ "id": 200, "title": "a's 200" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = http
        .post("/tasks", &b, json!({ "id": 200, "title": "again" }))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        !r.text.contains("tasks") && !r.text.contains("tenant_"),
        "{}",
        r.text
    );
    assert_eq!(
        stored(&tenants, &b).await,
        [task(200, &format!("{b} 0"), true)]
    );
}

#[tokio::test]
async fn refused_tenants_never_reach_the_handler_nor_a_tenant_schema() {
    let (_database, db, tenants) = setup().await;
    let id = ids();
    let known = id("known");
    tenants.create(&known).await.expect("provision");
    // A tenant whose provisioning has not finished, one being dropped, and
    // a database tenant: registered, but not a schema this request may use.
    let (pending, dropping, database) = (id("pending"), id("dropping"), id("database"));
    db.batch_execute(&format!(
        "INSERT INTO public.pebble_tenants (id, strategy, status, placement) VALUES \
         ('{pending}', 'schema', 'pending', 'home'), \
         ('{dropping}', 'schema', 'dropping', 'home'), \
         ('{database}', 'database', 'ready', 'home')"
    ))
    .await
    .expect("registry rows");
    let runs = Runs::default();
    let server =
        serve(routes(runs.clone()).layer(TenantLayer::<String>::schemas(tenants.clone()))).await;
    let http = Http::new(&server);
    let (capture, _guard) = Capture::start();

    let r = http.get("/tasks", &known).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The capture sees a served tenant's statements, in its schema and in
    // the request's span for that tenant.
    let sent = capture.take();
    assert!(
        sent.iter()
            .any(|s| s.sql.contains(&format!("\"tenant_{known}\".\"tasks\""))),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .all(|s| s.tenant.as_deref() == Some(known.as_str())),
        "{sent:?}"
    );

    let unknown = id("nobody");
    let too_long = "a".repeat(70);
    for (tenant, status, code) in [
        (None, StatusCode::BAD_REQUEST, "tenant_missing"),
        (Some("a b"), StatusCode::BAD_REQUEST, "tenant_malformed"),
        (Some("a/b"), StatusCode::BAD_REQUEST, "tenant_malformed"),
        // Valid as a key, but cannot name a schema.
        (Some("Acme"), StatusCode::BAD_REQUEST, "tenant_malformed"),
        (
            Some(too_long.as_str()),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
        ),
        (
            Some(unknown.as_str()),
            StatusCode::NOT_FOUND,
            "tenant_unknown",
        ),
        (
            Some(pending.as_str()),
            StatusCode::NOT_FOUND,
            "tenant_unknown",
        ),
        (
            Some(dropping.as_str()),
            StatusCode::NOT_FOUND,
            "tenant_unknown",
        ),
        (
            Some(database.as_str()),
            StatusCode::NOT_FOUND,
            "tenant_unknown",
        ),
    ] {
        let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-tenant-id", t)).into_iter().collect();
        for (method, path, body) in [
            (Method::GET, "/tasks", None),
            (
                Method::POST,
                "/tasks",
                Some(json!({ "id": 1, "title": "planted" })),
            ),
            (Method::DELETE, "/tasks/1", None),
            (Method::POST, "/tasks/done", Some(json!(null))),
        ] {
            let r = http.send(method, path, &headers, body).await;
            assert_eq!(r.status, status, "{tenant:?}: {}", r.text);
            assert_eq!(r.json["error"], json!(code), "{tenant:?}");
            assert!(r.json["message"].is_string());
            assert!(!r.text.contains("pebble_tenants"), "{}", r.text);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "a handler ran for {tenant:?}"
        );
        // At most the registry is read (on the home server, through its
        // own connection, which logs no `pebble::sql` event): no statement
        // is sent on the tenant's behalf.
        let sent = capture.take();
        assert!(sent.is_empty(), "{tenant:?} sent {sent:?}");
    }
    drop(_guard);

    // Nothing was planted anywhere; no schema was made for the refused ids.
    assert!(stored(&tenants, &known).await.is_empty());
    let schemas: Vec<String> = db
        .cross_tenant()
        .select::<Namespace>()
        .all()
        .await
        .expect("schemas")
        .into_iter()
        .map(|n| n.nspname)
        .filter(|name| name.starts_with("tenant_"))
        .collect();
    assert_eq!(schemas, [format!("tenant_{known}")]);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_alternating_schema_tenants_see_only_their_own() {
    let (_database, _db, tenants) = setup().await;
    let id = ids();
    let (a, b) = (id("a"), id("b"));
    for tenant in [&a, &b] {
        tenants.create(tenant).await.expect("provision");
    }
    let server =
        serve(routes(Runs::default()).layer(TenantLayer::<String>::schemas(tenants.clone()))).await;
    let http = Http::new(&server);
    for (tenant, first) in [(&a, 1), (&b, 1001)] {
        let r = http
            .post(
                "/tasks",
                tenant,
                json!({ "id": first, "title": format!("{tenant} seed") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }

    let mut requests = Vec::new();
    for i in 0..200_i64 {
        let http = http.clone();
        let (own, first) = if i % 2 == 0 {
            (a.clone(), 1)
        } else {
            (b.clone(), 1001)
        };
        requests.push(tokio::spawn(async move {
            // Half write, half read, interleaved across the two tenants.
            if i % 4 < 2 {
                let r = http
                    .post(
                        "/tasks",
                        &own,
                        json!({ "id": first + 1 + i, "title": format!("{own} c{i}") }),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                0
            } else {
                let r = http.get("/tasks", &own).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                let tasks = r.json.as_array().expect("a list").clone();
                assert!(!tasks.is_empty());
                tasks
                    .iter()
                    .filter(|t| {
                        !t["title"]
                            .as_str()
                            .is_some_and(|title| title.starts_with(&format!("{own} ")))
                    })
                    .count()
            }
        }));
    }
    let mut foreign = 0;
    for request in requests {
        foreign += request.await.expect("the request task");
    }
    assert_eq!(foreign, 0, "cross-tenant results");
    for (tenant, parity) in [(&a, 0), (&b, 1)] {
        let titles: Vec<String> = stored(&tenants, tenant)
            .await
            .into_iter()
            .map(|t| t.title)
            .collect();
        let mut expected = vec![format!("{tenant} seed")];
        expected.extend(
            (0..200)
                .filter(|i| i % 2 == parity && i % 4 < 2)
                .map(|i| format!("{tenant} c{i}")),
        );
        assert_eq!(titles, expected);
    }
}

async fn asks_for_schema(Tenant(_db): Tenant<TenantSchema>) -> &'static str {
    "unreachable"
}

async fn asks_for_rows(Tenant(_db): Tenant<TenantDb<String>>) -> &'static str {
    "unreachable"
}

#[tokio::test]
async fn schema_db_without_a_registry_and_wiring_mistakes() {
    let (_database, db, tenants) = setup().await;
    db.create_table::<Note>().await.expect("notes");
    let id = ids();
    let known = id("known");
    tenants.create(&known).await.expect("provision");
    let runs = Runs::default();
    let server = serve(
        routes(runs.clone())
            .route("/rows", get(asks_for_rows))
            .layer(TenantLayer::<String>::schema_db(db.clone())),
    )
    .await;
    let http = Http::new(&server);
    let r = http
        .post("/tasks", &known, json!({ "id": 7, "title": "seven" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(stored(&tenants, &known).await, [task(7, "seven", false)]);
    let r = http.get("/tasks", "Not-A-Schema").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_malformed"));
    // Without a registry the tenant's absence shows only when its schema is
    // queried: a 500 that names neither the schema nor the table.
    let r = http.get("/tasks", &id("nobody")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(
        r.json,
        json!({ "error": "internal", "message": "internal error" })
    );
    // A row-scoped handle is not what this layer gives.
    let r = http.get("/rows", &known).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_misconfigured"));
    drop(server);

    // `exists` in front of `schema_db` turns the unknown tenant into a 404.
    let registry = tenants.clone();
    let layer = TenantLayer::<String>::schema_db(db.clone()).exists(move |id| {
        let registry = registry.clone();
        async move { Ok(registry.list().await?.iter().any(|t| t.id == id)) }
    });
    let server = serve(routes(runs.clone()).layer(layer)).await;
    let http = Http::new(&server);
    let before = runs.load(Ordering::SeqCst);
    let r = http.get("/tasks", &id("nobody")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_unknown"));
    assert_eq!(runs.load(Ordering::SeqCst), before);
    assert_eq!(
        http.get("/tasks", &known).await.json[0]["title"],
        json!("seven")
    );
    drop(server);

    // A schema handle asked of a row layer: 500, not a handle.
    let server = serve(
        Router::new()
            .route("/schema", get(asks_for_schema))
            .layer(TenantLayer::<String>::rows(db.clone())),
    )
    .await;
    let r = Http::new(&server).get("/schema", &known).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_misconfigured"));
}
