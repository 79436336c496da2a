//! The saas_api example's router, served on a loopback port and called over
//! HTTP as two tenants: nothing of one is visible to or changeable by the
//! other, refused tenants send no statement, and every statement runs in
//! a span carrying its tenant.

mod common;

#[path = "../examples/saas_api/app.rs"]
#[allow(dead_code)]
mod app;

use axum::http::{Method, StatusCode};
use common::{serve, Capture, Http, TestServer};
use pebble::{Db, RlsDb};
use pebble_testkit::TestDatabase;
use serde_json::{json, Value};
use uuid::Uuid;

struct Fixture {
    _test_db: TestDatabase,
    owner: Db,
    role: String,
    server: TestServer,
    http: Http,
    a: String,
    b: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let test_db = pebble_testkit::database()
            .await
            .expect("a test database (install PostgreSQL or set DATABASE_URL)");
        let owner = Db::connect(test_db.config()).await.expect("connect");
        let role = format!("saas_test_{}", Uuid::new_v4().simple());
        let password = app::provision(&owner, &role).await.expect("provision");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        app::register(&owner, a, "Acme").await.expect("register a");
        app::register(&owner, b, "Globex")
            .await
            .expect("register b");
        let mut config = test_db.config();
        config.user(&role).password(&password);
        let pool = RlsDb::connect(config)
            .await
            .expect("connect as the app role");
        let server = serve(app::router(pool)).await;
        let http = Http::new(&server);
        Fixture {
            _test_db: test_db,
            owner,
            role,
            server,
            http,
            a: a.to_string(),
            b: b.to_string(),
        }
    }

    /// Users, a project and tasks for `tenant`, named after `tag`.
    async fn seed(&self, tenant: &str, tag: &str) -> Seeded {
        let http = &self.http;
        let mut users = Vec::new();
        for name in ["ann", "bob"] {
            let r = http
                .post(
                    "/users",
                    tenant,
                    json!({ "email": format!("{name}@{tag}.io"), "name": format!("{tag}-{name}") }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            users.push(r.json["id"].as_i64().expect("user id"));
        }
        let r = http
            .post("/projects", tenant, json!({ "name": format!("{tag}-web") }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let project = r.json["id"].as_i64().expect("project id");
        let mut tasks = Vec::new();
        for (i, title) in ["write brief", "fix login", "ship"].iter().enumerate() {
            let r = http
                .post(
                    "/tasks",
                    tenant,
                    json!({ "project_id": project, "title": format!("{tag} {title}"), "assignee_id": users[i % 2] }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            assert_eq!(r.json["project"], json!(format!("{tag}-web")));
            assert_eq!(
                r.json["assignee"],
                json!(format!("{tag}-{}", ["ann", "bob"][i % 2]))
            );
            tasks.push(r.json["id"].as_i64().expect("task id"));
        }
        Seeded {
            users,
            project,
            tasks,
        }
    }

    async fn cleanup(self) {
        drop(self.server);
        let _ = self
            .owner
            .batch_execute(&format!(
                "DROP OWNED BY \"{0}\"; DROP ROLE IF EXISTS \"{0}\"",
                self.role
            ))
            .await;
        self.owner.close();
    }
}

struct Seeded {
    users: Vec<i64>,
    project: i64,
    tasks: Vec<i64>,
}

/// Every string in a JSON document.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Fails if the reply mentions anything named after `other`'s tag.
fn assert_only(reply: &common::Reply, own: &str, other: &str) {
    let mut all = Vec::new();
    strings(&reply.json, &mut all);
    assert!(
        all.iter().all(|s| !s.contains(other)),
        "{own}'s reply shows {other}'s data: {}",
        reply.text
    );
}

#[tokio::test]
async fn every_endpoint_as_each_tenant_sees_and_changes_only_its_own() {
    let f = Fixture::new().await;
    let sa = f.seed(&f.a, "acme").await;
    let sb = f.seed(&f.b, "globex").await;
    let http = &f.http;

    for (me, other, own_tag, other_tag, mine, theirs) in [
        (&f.a, &f.b, "acme", "globex", &sa, &sb),
        (&f.b, &f.a, "globex", "acme", &sb, &sa),
    ] {
        // Lists: only the tenant's own rows.
        let users = http.get("/users", me).await;
        assert_eq!(users.status, StatusCode::OK);
        assert_eq!(
            users.json.as_array().map(Vec::len),
            Some(2),
            "{}",
            users.text
        );
        assert_only(&users, own_tag, other_tag);

        let projects = http.get("/projects", me).await;
        assert_eq!(
            projects.json,
            json!([{ "id": mine.project, "name": format!("{own_tag}-web") }])
        );

        let stats = http.get("/projects/stats", me).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        assert_eq!(
            stats.json,
            json!([{ "id": mine.project, "name": format!("{own_tag}-web"), "tasks": 3, "open": 3, "done": 0 }])
        );

        let tasks = http.get("/tasks", me).await;
        assert_eq!(tasks.json["total"], json!(3), "{}", tasks.text);
        assert_only(&tasks, own_tag, other_tag);

        // Search and pagination, within the tenant.
        let page = http.get("/tasks?q=login&per_page=1&page=1", me).await;
        assert_eq!(page.json["total"], json!(1), "{}", page.text);
        assert_eq!(
            page.json["items"][0]["title"],
            json!(format!("{own_tag} fix login"))
        );
        let page2 = http.get("/tasks?per_page=2&page=2", me).await;
        assert_eq!(page2.json["total"], json!(3));
        assert_eq!(page2.json["items"].as_array().map(Vec::len), Some(1));
        let other_words = http.get(&format!("/tasks?q={other_tag}"), me).await;
        assert_eq!(other_words.json["total"], json!(0), "{}", other_words.text);
        let by_other_project = http
            .get(&format!("/tasks?project_id={}", theirs.project), me)
            .await;
        assert_eq!(by_other_project.json["total"], json!(0));

        // The other tenant's rows by id: not found.
        for task in &theirs.tasks {
            let r = http.get(&format!("/tasks/{task}"), me).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
            assert_eq!(r.json["error"], json!("not_found"));
        }
        let own_task = http.get(&format!("/tasks/{}", mine.tasks[0]), me).await;
        assert_eq!(own_task.status, StatusCode::OK);

        // Referring to the other tenant's project or user: not found, nothing written.
        let r = http
            .post(
                "/tasks",
                me,
                json!({ "project_id": theirs.project, "title": "sneaky" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = http
            .post(
                "/tasks",
                me,
                json!({ "project_id": mine.project, "title": "sneaky", "assignee_id": theirs.users[0] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

        // Changing the other tenant's rows: nothing changes.
        let r = http
            .post("/tasks/done", me, json!({ "ids": theirs.tasks }))
            .await;
        assert_eq!(r.json, json!({ "updated": 0 }), "{}", r.text);
        let r = http
            .delete(&format!("/projects/{}", theirs.project), me)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let still = http.get("/projects/stats", other).await;
        assert_eq!(still.json[0]["tasks"], json!(3), "{}", still.text);
        assert_eq!(still.json[0]["done"], json!(0), "{}", still.text);

        // Unique per tenant: the other tenant's name is free, its own is taken.
        let r = http
            .post(
                "/projects",
                me,
                json!({ "name": format!("{other_tag}-web") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let r = http
            .post("/projects", me, json!({ "name": format!("{own_tag}-web") }))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(
            r.json,
            json!({ "error": "conflict", "message": "a resource with these values already exists" })
        );
        let r = http
            .post(
                "/users",
                me,
                json!({ "email": format!("ann@{own_tag}.io"), "name": "dup" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    }

    // Own changes: mark done (a transaction), then delete a project with its tasks.
    let r = http
        .post(
            "/tasks/done",
            &f.a,
            json!({ "ids": [sa.tasks[0], sa.tasks[1], sb.tasks[2]] }),
        )
        .await;
    assert_eq!(r.json, json!({ "updated": 2 }));
    let done = http.get("/tasks?done=true", &f.a).await;
    assert_eq!(done.json["total"], json!(2));
    let b_done = http.get("/tasks?done=true", &f.b).await;
    assert_eq!(b_done.json["total"], json!(0));

    let r = http
        .delete(&format!("/projects/{}", sa.project), &f.a)
        .await;
    assert_eq!(
        r.json,
        json!({ "project": sa.project, "tasks": 3 }),
        "{}",
        r.text
    );
    let after = http.get("/tasks", &f.a).await;
    assert_eq!(after.json["total"], json!(0));
    let b_after = http.get("/tasks", &f.b).await;
    assert_eq!(b_after.json["total"], json!(3), "{}", b_after.text);

    // Validation stays a client error.
    let r = http
        .post(
            "/tasks",
            &f.a,
            json!({ "project_id": sb.project, "title": "" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = http.get("/tasks?per_page=1000", &f.a).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    f.cleanup().await;
}

#[tokio::test]
async fn missing_malformed_and_unknown_tenants_are_refused_without_touching_tenant_tables() {
    let f = Fixture::new().await;
    f.seed(&f.a, "acme").await;
    let (capture, _guard) = Capture::start();
    let http = &f.http;
    let unknown = Uuid::new_v4().to_string();
    let nil = Uuid::nil().to_string();

    for (headers, status, code) in [
        (vec![], StatusCode::BAD_REQUEST, "tenant_missing"),
        (
            vec![("x-tenant-id", "acme")],
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
        ),
        (
            vec![("x-tenant-id", nil.as_str())],
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
        ),
        (
            vec![("x-tenant-id", "")],
            StatusCode::BAD_REQUEST,
            "tenant_malformed",
        ),
        (
            vec![("x-tenant-id", unknown.as_str())],
            StatusCode::NOT_FOUND,
            "tenant_unknown",
        ),
    ] {
        for (method, path, body) in [
            (Method::GET, "/tasks", None),
            (Method::GET, "/projects/stats", None),
            (
                Method::POST,
                "/projects",
                Some(json!({ "name": "planted" })),
            ),
            (
                Method::POST,
                "/tasks/done",
                Some(json!({ "ids": [1, 2, 3] })),
            ),
            (Method::DELETE, "/projects/1", None),
        ] {
            let r = http.send(method.clone(), path, &headers, body).await;
            assert_eq!(r.status, status, "{method} {path} {headers:?}: {}", r.text);
            assert_eq!(r.json["error"], json!(code), "{}", r.text);
            assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
            let sent = capture.take();
            if code == "tenant_unknown" {
                // Only the registry lookup, on the shared `orgs` table.
                assert_eq!(sent.len(), 1, "{sent:?}");
                assert!(sent[0].sql.contains("\"orgs\""), "{sent:?}");
            } else {
                assert!(
                    sent.is_empty(),
                    "{method} {path}: statements sent: {sent:?}"
                );
            }
        }
    }

    // And nothing changed: acme's data as before, nothing planted anywhere.
    drop(_guard);
    let everything = f.owner.cross_tenant();
    assert_eq!(
        everything
            .select::<app::Project>()
            .count()
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        everything
            .select::<app::Task>()
            .filter(app::Task::DONE.eq(true))
            .count()
            .await
            .expect("count"),
        0
    );
    f.cleanup().await;
}

#[tokio::test]
async fn every_statement_runs_in_a_span_with_the_requests_tenant() {
    let f = Fixture::new().await;
    f.seed(&f.a, "acme").await;
    f.seed(&f.b, "globex").await;
    let (capture, _guard) = Capture::start();
    for tenant in [&f.a, &f.b] {
        capture.take();
        for path in ["/users", "/projects", "/projects/stats", "/tasks?q=fix"] {
            assert_eq!(f.http.get(path, tenant).await.status, StatusCode::OK);
        }
        f.http
            .post("/tasks/done", tenant, json!({ "ids": [1] }))
            .await;
        let sent = capture.take();
        assert!(sent.len() >= 10, "{sent:?}");
        for statement in &sent {
            assert_eq!(
                statement.tenant.as_deref(),
                Some(tenant.as_str()),
                "{statement:?}"
            );
        }
    }
    drop(_guard);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_alternating_tenants_see_only_their_own() {
    let f = Fixture::new().await;
    f.seed(&f.a, "acme").await;
    f.seed(&f.b, "globex").await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..200 {
        let http = f.http.clone();
        let (tenant, own, other) = if i % 2 == 0 {
            (f.a.clone(), "acme", "globex")
        } else {
            (f.b.clone(), "globex", "acme")
        };
        requests.spawn(async move {
            // Half write (a task titled after the tenant), half read.
            let reply = if i % 4 < 2 {
                let project = http.get("/projects", &tenant).await.json[0]["id"].clone();
                http.post(
                    "/tasks",
                    &tenant,
                    json!({ "project_id": project, "title": format!("{own} concurrent {i}") }),
                )
                .await
            } else {
                http.get("/tasks?per_page=100", &tenant).await
            };
            let mut all = Vec::new();
            strings(&reply.json, &mut all);
            let leaked = all.iter().filter(|s| s.contains(other)).count();
            (reply.status, leaked)
        });
    }
    let mut cross_tenant = 0;
    while let Some(result) = requests.join_next().await {
        let (status, leaked) = result.expect("the request task");
        assert!(status.is_success(), "{status}");
        cross_tenant += leaked;
    }
    assert_eq!(cross_tenant, 0, "cross-tenant results");
    for (tenant, own, other) in [(&f.a, "acme", "globex"), (&f.b, "globex", "acme")] {
        let all = f.http.get("/tasks?per_page=100", tenant).await;
        assert_eq!(all.json["total"], json!(3 + 50), "{own}: {}", all.text);
        assert_only(&all, own, other);
    }
    f.cleanup().await;
}
