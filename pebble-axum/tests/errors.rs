//! `pebble::Error` to HTTP, per variant, with errors produced by a real
//! server through real handlers: the status, the JSON body, `Retry-After`
//! on 503, and no SQL, table or server message in any body.

mod common;

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{serve, Http, Reply};
use pebble::{Db, Model, PoolOptions, TenantDb};
use pebble_axum::{ApiError, ApiResult, Tenant, TenantLayer};
use serde::Deserialize;
use serde_json::json;

#[derive(Model, Debug, Clone)]
#[pebble(table = "docs")]
struct Doc {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
    title: String,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "comments")]
struct Comment {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: i64,
    doc_id: i64,
}

/// A model whose table was never created.
#[derive(Model, Debug, Clone)]
#[pebble(table = "ghosts")]
struct Ghost {
    #[pebble(primary_key)]
    id: i64,
    #[tenant_id]
    org: i64,
}

#[derive(Deserialize)]
struct NewDoc {
    id: i64,
    org: i64,
    title: String,
}

type Org = Tenant<TenantDb<i64>>;

async fn get_doc(Tenant(db): Org, Path(id): Path<i64>) -> ApiResult<Json<String>> {
    Ok(Json(db.find::<Doc>(id).one().await?.title))
}

async fn add_doc(Tenant(db): Org, Json(new): Json<NewDoc>) -> ApiResult<StatusCode> {
    db.insert(Doc {
        id: new.id,
        org: new.org,
        title: new.title,
    })
    .exec()
    .await?;
    Ok(StatusCode::CREATED)
}

async fn add_comment(Tenant(db): Org, Path(doc_id): Path<i64>) -> ApiResult<StatusCode> {
    db.insert(Comment {
        id: 0,
        org: 0,
        doc_id,
    })
    .exec()
    .await?;
    Ok(StatusCode::CREATED)
}

async fn ghosts(Tenant(db): Org) -> ApiResult<Json<usize>> {
    Ok(Json(db.select::<Ghost>().all().await?.len()))
}

async fn invalid_tenant() -> ApiResult<()> {
    Err(ApiError(pebble::Error::InvalidTenantId {
        id: "Acme Corp".into(),
        reason: "not a valid database name",
    }))
}

fn routes(db: Db) -> Router {
    Router::new()
        .route("/docs", post(add_doc))
        .route("/docs/{id}", get(get_doc))
        .route("/docs/{id}/comments", post(add_comment))
        .route("/ghosts", get(ghosts))
        .route("/invalid", get(invalid_tenant))
        .layer(TenantLayer::<i64>::rows(db))
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["error"], json!(code), "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/json");
    for secret in [
        "SELECT",
        "INSERT",
        "docs",
        "ghosts",
        "comments",
        "relation",
        "constraint",
        "duplicate",
        "postgres",
        "127.0.0.1",
    ] {
        assert!(
            !reply.text.contains(secret),
            "the body leaks {secret:?}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn each_error_answers_its_status_without_leaking_internals() {
    let test_db = pebble_testkit::database()
        .await
        .expect("a test database (install PostgreSQL or set DATABASE_URL)");
    let db = Db::connect(test_db.config()).await.expect("connect");
    db.create_table::<Doc>().await.expect("docs");
    db.create_table::<Comment>().await.expect("comments");
    db.batch_execute(
        "ALTER TABLE comments ADD CONSTRAINT comments_doc_fk FOREIGN KEY (doc_id) REFERENCES docs (id)",
    )
    .await
    .expect("a foreign key");
    let server = serve(routes(db.clone())).await;
    let http = Http::new(&server);
    let doc = |id: i64, org: i64| json!({ "id": id, "org": org, "title": "t" });

    assert_eq!(
        http.post("/docs", "1", doc(1, 0)).await.status,
        StatusCode::CREATED
    );

    // NotFound: 404, also for another tenant's row.
    assert_error(
        &http.get("/docs/42", "1").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &http.get("/docs/1", "2").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(http.get("/docs/1", "1").await.json, json!("t"));

    // Unique violation: 409.
    let r = http.post("/docs", "1", doc(1, 0)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // Foreign-key violation: 409.
    let r = http.post("/docs/77/comments", "1", json!(null)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // TenantMismatch (a row carrying another tenant): 403, nothing written.
    let r = http.post("/docs", "1", doc(5, 2)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "tenant_mismatch");
    assert_eq!(
        db.cross_tenant()
            .select::<Doc>()
            .count()
            .await
            .expect("count"),
        1
    );

    // InvalidTenantId: 400, with pebble's reason (never the id).
    let r = http.get("/invalid", "1").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_tenant_id");
    assert_eq!(r.json["message"], json!("not a valid database name"));
    assert!(!r.text.contains("Acme"));

    // Anything else (here: a missing table, SQLSTATE 42P01): 500, generic.
    let r = http.get("/ghosts", "1").await;
    assert_error(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert_eq!(
        r.json,
        json!({ "error": "internal", "message": "internal error" })
    );
    assert!(r.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn a_pool_timeout_is_503_with_retry_after() {
    let test_db = pebble_testkit::database()
        .await
        .expect("a test database (install PostgreSQL or set DATABASE_URL)");
    let owner = Db::connect(test_db.config()).await.expect("connect");
    owner.create_table::<Doc>().await.expect("docs");
    let tiny = Db::connect_with(
        test_db.config(),
        PoolOptions::default()
            .max_size(1)
            .wait_timeout(Some(Duration::from_millis(200))),
    )
    .await
    .expect("connect");
    let server = serve(routes(tiny.clone())).await;
    let http = Http::new(&server);

    let held = tiny.begin().await.expect("the pool's only connection");
    let r = http.get("/docs/1", "1").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    held.rollback().await.expect("rollback");
    // With the connection back, the same request goes through.
    assert_error(
        &http.get("/docs/1", "1").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_503_with_retry_after() {
    // Port 1 on loopback: nothing listens, the connect is refused.
    let down = Db::connect_lazy(
        "postgres://postgres@127.0.0.1:1/nowhere",
        PoolOptions::default().create_timeout(Some(Duration::from_secs(2))),
    )
    .expect("a lazy pool");
    let server = serve(routes(down)).await;
    let r = Http::new(&server).get("/docs/1", "1").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(r.headers["retry-after"], "1");
}
