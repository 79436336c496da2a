//! The layer over real HTTP: each resolver, each tenant key type, each
//! strategy's extractor; refused requests never reach the handler or send
//! a statement; wiring mistakes are 500s, not someone else's data.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use common::{serve, Capture, Http};
use pebble::{Db, Model, RlsDb, TenantDb, TenantManager};
use pebble_axum::{
    ApiResult, Resolver, Tenant, TenantDatabase, TenantId, TenantLayer, TenantRejection,
};
use serde_json::json;
use uuid::Uuid;

#[derive(Model, Debug, Clone)]
#[pebble(table = "notes")]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    body: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "notes32")]
struct Note32 {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i32,
    body: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "named_notes")]
struct NamedNote {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: String,
    body: String,
}

/// In each tenant's own database (the manager's strategy).
#[derive(Model, Debug, Clone)]
#[pebble(table = "pages", per_tenant)]
struct Page {
    #[pebble(primary_key, default)]
    id: i64,
    body: String,
}

/// How many times a handler ran.
type Runs = Arc<AtomicUsize>;

async fn setup() -> (pebble_testkit::TestDatabase, Db) {
    let test_db = pebble_testkit::database()
        .await
        .expect("a test database (install PostgreSQL or set DATABASE_URL)");
    let db = Db::connect(test_db.config()).await.expect("connect");
    db.create_table::<Note>().await.expect("notes");
    db.create_table::<Note32>().await.expect("notes32");
    db.create_table::<NamedNote>().await.expect("named_notes");
    (test_db, db)
}

fn note(body: &str) -> Note {
    Note {
        id: 0,
        org: 0,
        body: body.into(),
    }
}

async fn list_notes(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantDb<i64>>,
) -> ApiResult<Json<Vec<String>>> {
    runs.fetch_add(1, Ordering::SeqCst);
    let notes = db.select::<Note>().order_by(Note::ID.asc()).all().await?;
    Ok(Json(notes.into_iter().map(|n| n.body).collect()))
}

async fn add_note(
    State(runs): State<Runs>,
    Tenant(db): Tenant<TenantDb<i64>>,
    Json(body): Json<String>,
) -> ApiResult<StatusCode> {
    runs.fetch_add(1, Ordering::SeqCst);
    db.insert(note(&body)).exec().await?;
    Ok(StatusCode::CREATED)
}

#[tokio::test]
async fn header_resolver_i64_rows_refusals_never_reach_the_handler_nor_the_database() {
    let (_test_db, db) = setup().await;
    db.tenant(1_i64)
        .insert(note("one"))
        .exec()
        .await
        .expect("seed");
    db.tenant(2_i64)
        .insert(note("two"))
        .exec()
        .await
        .expect("seed");
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = lookups.clone();
    let layer = TenantLayer::<i64>::rows(db.clone()).exists(move |id| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok(id == 1 || id == 2) }
    });
    let runs = Runs::default();
    let server = serve(
        Router::new()
            .route("/notes", get(list_notes).post(add_note))
            .layer(layer)
            .with_state(runs.clone()),
    )
    .await;
    let http = Http::new(&server);
    let (capture, _guard) = Capture::start();

    assert_eq!(http.get("/notes", "1").await.json, json!(["one"]));
    assert_eq!(http.get("/notes", "2").await.json, json!(["two"]));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    let sent = capture.take();
    assert!(
        !sent.is_empty() && sent.iter().all(|s| s.tenant.is_some()),
        "{sent:?}"
    );

    for (tenant, status, code, looked_up) in [
        (None, StatusCode::BAD_REQUEST, "tenant_missing", false),
        (
            Some("abc"),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
            false,
        ),
        (
            Some("0"),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
            false,
        ),
        (
            Some("+1"),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
            false,
        ),
        (
            Some("1.0"),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
            false,
        ),
        (
            Some("99999999999999999999"),
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
            false,
        ),
        (Some("3"), StatusCode::NOT_FOUND, "tenant_unknown", true),
    ] {
        let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-tenant-id", t)).into_iter().collect();
        let before = lookups.load(Ordering::SeqCst);
        for (method, body) in [(Method::GET, None), (Method::POST, Some(json!("planted")))] {
            let r = http.send(method, "/notes", &headers, body).await;
            assert_eq!(r.status, status, "{tenant:?}: {}", r.text);
            assert_eq!(r.json["error"], json!(code));
            assert!(r.json["message"].is_string());
            assert_eq!(r.headers["content-type"], "application/json");
        }
        assert_eq!(
            lookups.load(Ordering::SeqCst) - before,
            if looked_up { 2 } else { 0 },
            "{tenant:?}"
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "a handler ran for {tenant:?}"
        );
        let sent = capture.take();
        assert!(sent.is_empty(), "{tenant:?} sent {sent:?}");
    }
    drop(_guard);

    let r = http
        .send(
            Method::POST,
            "/notes",
            &[("x-tenant-id", "1")],
            Some(json!("again")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let all = db.cross_tenant().select::<Note>().all().await.expect("all");
    let mut bodies: Vec<_> = all.iter().map(|n| (n.org, n.body.as_str())).collect();
    bodies.sort();
    assert_eq!(bodies, [(1, "again"), (1, "one"), (2, "two")]);
}

async fn list_notes32(Tenant(db): Tenant<TenantDb<i32>>) -> ApiResult<Json<Vec<String>>> {
    let notes = db.select::<Note32>().all().await?;
    Ok(Json(notes.into_iter().map(|n| n.body).collect()))
}

#[tokio::test]
async fn path_segment_resolver_with_i32_keys() {
    let (_test_db, db) = setup().await;
    for (org, body) in [(7, "seven"), (8, "eight")] {
        db.tenant(org)
            .insert(Note32 {
                id: 0,
                org: 0,
                body: body.into(),
            })
            .exec()
            .await
            .expect("seed");
    }
    let server = serve(
        Router::new()
            .route("/orgs/{org}/notes", get(list_notes32))
            .layer(TenantLayer::<i32>::rows(db).resolver(Resolver::path_segment(1))),
    )
    .await;
    let http = Http::new(&server);
    let get = |path: &'static str| {
        let http = http.clone();
        async move { http.send(Method::GET, path, &[], None).await }
    };
    assert_eq!(get("/orgs/7/notes").await.json, json!(["seven"]));
    assert_eq!(get("/orgs/8/notes").await.json, json!(["eight"]));
    assert_eq!(get("/orgs/9/notes").await.json, json!([]));
    for bad in [
        "/orgs/x/notes",
        "/orgs/99999999999/notes",
        "/orgs/0/notes",
        "/orgs/%37/notes",
    ] {
        let r = get(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.json["error"], json!("tenant_malformed"));
    }
}

async fn list_named(Tenant(db): Tenant<TenantDb<String>>) -> ApiResult<Json<Vec<String>>> {
    let notes = db.select::<NamedNote>().all().await?;
    Ok(Json(notes.into_iter().map(|n| n.body).collect()))
}

#[tokio::test]
async fn subdomain_resolver_with_string_keys() {
    let (_test_db, db) = setup().await;
    for org in ["acme", "globex"] {
        db.tenant(org.to_owned())
            .insert(NamedNote {
                id: 0,
                org: String::new(),
                body: format!("{org} note"),
            })
            .exec()
            .await
            .expect("seed");
    }
    let server = serve(
        Router::new()
            .route("/notes", get(list_named))
            .layer(TenantLayer::<String>::rows(db).resolver(Resolver::subdomain("example.test"))),
    )
    .await;
    let http = Http::new(&server);
    let host = |h: &'static str| {
        let http = http.clone();
        async move { http.send(Method::GET, "/notes", &[("host", h)], None).await }
    };
    assert_eq!(host("acme.example.test").await.json, json!(["acme note"]));
    assert_eq!(
        host("GLOBEX.example.test:8080").await.json,
        json!(["globex note"])
    );
    for (bad, code) in [
        ("example.test", "tenant_missing"),
        ("a.acme.example.test", "tenant_missing"),
        ("acme.example.org", "tenant_missing"),
        ("ac!me.example.test", "tenant_malformed"),
    ] {
        let r = host(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.json["error"], json!(code), "{bad}");
    }
}

/// What an authentication layer would have verified; here a header stands in.
fn claim_resolver() -> Resolver {
    Resolver::from_fn(|parts| {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| TenantRejection::unauthorized("a bearer token is required"))?;
        token
            .strip_prefix("org:")
            .map(str::to_owned)
            .ok_or_else(|| TenantRejection::unauthorized("the token names no organisation"))
    })
}

async fn whoami(
    TenantId(id): TenantId<i64>,
    Tenant(db): Tenant<TenantDb<i64>>,
) -> ApiResult<String> {
    let notes = db.select::<Note>().count().await?;
    Ok(format!("{id}:{notes}"))
}

#[tokio::test]
async fn a_closure_resolver_answers_401_and_tenant_id_gives_the_key() {
    let (_test_db, db) = setup().await;
    db.tenant(5_i64)
        .insert(note("five"))
        .exec()
        .await
        .expect("seed");
    let server = serve(
        Router::new()
            .route("/whoami", get(whoami))
            .layer(TenantLayer::<i64>::rows(db).resolver(claim_resolver())),
    )
    .await;
    let http = Http::new(&server);
    let r = http
        .send(
            Method::GET,
            "/whoami",
            &[("authorization", "Bearer org:5")],
            None,
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "5:1"));
    for headers in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", "Basic x")],
    ] {
        let r = http.send(Method::GET, "/whoami", &headers, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(r.json["error"], json!("tenant_unauthorized"));
    }
    let r = http
        .send(
            Method::GET,
            "/whoami",
            &[("authorization", "Bearer org:five")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn list_pages(Tenant(db): Tenant<TenantDatabase<String>>) -> ApiResult<Json<Vec<String>>> {
    let pages = db.select::<Page>().all().await?;
    Ok(Json(
        pages
            .into_iter()
            .map(|p| format!("{}:{}", db.key(), p.body))
            .collect(),
    ))
}

#[tokio::test]
async fn manager_strategy_hands_out_the_tenants_own_database() {
    let server = pebble_testkit::server().expect("a PostgreSQL server");
    let provisioner = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: pebble::TenantDatabase, _| async move { db.create_table::<Page>().await })
        .build()
        .expect("a manager");
    let suffix = format!("{}_{}", std::process::id(), Uuid::new_v4().simple());
    let (a, b) = (format!("ax_a_{suffix}"), format!("ax_b_{suffix}"));
    for id in [&a, &b] {
        let db = provisioner.db(id).await.expect("provision");
        db.insert(Page {
            id: 0,
            body: format!("{id} page"),
        })
        .exec()
        .await
        .expect("seed");
    }
    // Serving never creates a database: an unknown tenant is a 404.
    let manager = TenantManager::builder(server.config())
        .build()
        .expect("a manager");
    let app = serve(
        Router::new()
            .route("/pages", get(list_pages))
            .layer(TenantLayer::<String>::manager(manager.clone())),
    )
    .await;
    let http = Http::new(&app);
    for id in [&a, &b] {
        let r = http.get("/pages", id).await;
        assert_eq!(r.json, json!([format!("{id}:{id} page")]), "{}", r.text);
    }
    let r = http.get("/pages", &format!("ax_nobody_{suffix}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_unknown"));
    let r = http.get("/pages", "Not-A-Database-Name").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], json!("tenant_malformed"));
    drop(app);
    manager.close_all();
    for id in [&a, &b] {
        provisioner
            .drop_tenant(id)
            .await
            .expect("drop the tenant database");
    }
}

async fn asks_for_rls(Tenant(_db): Tenant<TenantDb<i64, RlsDb>>) -> &'static str {
    "unreachable"
}

async fn asks_for_uuid(Tenant(_db): Tenant<TenantDb<Uuid>>) -> &'static str {
    "unreachable"
}

async fn asks_for_database(Tenant(_db): Tenant<TenantDatabase<i64>>) -> &'static str {
    "unreachable"
}

#[tokio::test]
async fn a_handle_the_layer_does_not_provide_is_a_500_not_a_handle() {
    let (_test_db, db) = setup().await;
    let server = serve(
        Router::new()
            .route("/rls", get(asks_for_rls))
            .route("/uuid", get(asks_for_uuid))
            .route("/database", get(asks_for_database))
            .layer(TenantLayer::<i64>::rows(db.clone()))
            // Added after the layer, so it does not run for this route.
            .route("/bare", get(list_notes32)),
    )
    .await;
    let http = Http::new(&server);
    for path in ["/rls", "/uuid", "/database", "/bare"] {
        let r = http.get(path, "1").await;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            r.text
        );
        assert_eq!(r.json["error"], json!("tenant_misconfigured"), "{path}");
    }
}

#[tokio::test]
async fn a_registry_that_fails_answers_503_and_the_handler_does_not_run() {
    let (_test_db, db) = setup().await;
    let runs = Runs::default();
    let layer = TenantLayer::<i64>::rows(db)
        .exists(|_| async { Err(pebble::Error::Timeout("the registry")) });
    let server = serve(
        Router::new()
            .route("/notes", get(list_notes))
            .layer(layer)
            .with_state(runs.clone()),
    )
    .await;
    let r = Http::new(&server).get("/notes", "1").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.json["error"], json!("tenant_unavailable"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}
