//! A real server on a loopback port, a real HTTP client, and a capture of
//! pebble's statement logs with the tenant of the span they ran in.
#![allow(dead_code)]

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Once};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode};

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `router` served by axum on `127.0.0.1:0`; stopped when dropped.
pub struct TestServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

pub async fn serve(router: axum::Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
    });
    TestServer {
        url,
        stop: Some(stop),
        task,
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// What came back: status, headers and the body as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    pub fn new(server: &TestServer) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: server.url.clone(),
        }
    }

    /// Sends `method path` with `headers` and an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(request.body(body).expect("a valid request"))
            .await
            .expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, tenant: &str) -> Reply {
        self.send(Method::GET, path, &[("x-tenant-id", tenant)], None)
            .await
    }

    pub async fn post(&self, path: &str, tenant: &str, body: Value) -> Reply {
        self.send(Method::POST, path, &[("x-tenant-id", tenant)], Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, tenant: &str) -> Reply {
        self.send(Method::DELETE, path, &[("x-tenant-id", tenant)], None)
            .await
    }
}

/// A statement pebble logged (target `pebble::sql`), and the `tenant` of
/// the innermost span around it that has one.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub tenant: Option<String>,
}

/// Collects pebble's statement logs on this thread. Tests using it run on
/// tokio's current-thread runtime (`#[tokio::test]`), so the server's tasks
/// run on the test's thread and log here, and other tests' do not.
///
/// One global subscriber routes each event to the capture active on its
/// thread: a per-test `set_default` would race with other tests over
/// tracing's per-callsite interest cache and miss events.
#[derive(Clone, Default)]
pub struct Capture {
    statements: Arc<Mutex<Vec<Statement>>>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Ends the capture on this thread when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        ACTIVE.with(|active| active.borrow_mut().take());
    }
}

impl Capture {
    pub fn start() -> (Capture, CaptureGuard) {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Router))
                .expect("no other global subscriber in the tests");
        });
        let capture = Capture::default();
        ACTIVE.with(|active| *active.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard(()))
    }

    /// The statements logged so far, and forgets them.
    pub fn take(&self) -> Vec<Statement> {
        std::mem::take(&mut *self.statements.lock().expect("not poisoned"))
    }
}

/// The global layer: span tenants for everyone, events to the active capture.
struct Router;

struct TenantField(String);

#[derive(Default)]
struct Fields {
    tenant: Option<String>,
    sql: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let value = format!("{value:?}");
        match field.name() {
            "tenant" => self.tenant = Some(value),
            "sql" => self.sql = Some(value),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "tenant" => self.tenant = Some(value.to_owned()),
            "sql" => self.sql = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Router {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(tenant), Some(span)) = (fields.tenant, ctx.span(id)) {
            span.extensions_mut().insert(TenantField(tenant));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "pebble::sql" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let tenant = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TenantField>().map(|t| t.0.clone()))
        });
        let statement = Statement {
            sql: fields.sql.unwrap_or_default(),
            tenant,
        };
        ACTIVE.with(|active| {
            if let Some(capture) = &*active.borrow() {
                capture
                    .statements
                    .lock()
                    .expect("not poisoned")
                    .push(statement);
            }
        });
    }
}
