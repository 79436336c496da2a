//! The tower layer: the tenant resolved once per request, before the handler.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use pebble::{Db, RlsDb, SchemaDb, SchemaTenants, SqlState, TenantManager};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::{HttpTenantKey, Resolver, TenantRejection};

type ExistsFuture = Pin<Box<dyn Future<Output = pebble::Result<bool>> + Send>>;
type ExistsFn<K> = Arc<dyn Fn(K) -> ExistsFuture + Send + Sync>;

/// Which handle a request's tenant gets.
#[derive(Clone)]
enum Strategy {
    Rows(Db),
    Rls(RlsDb),
    Manager(TenantManager),
    /// Registered schema tenants: `tenants.db(id)` per request.
    Schemas(SchemaTenants),
    /// Schema tenants without a registry: `db.schema_tenant(id)`.
    SchemaDb(Db),
}

/// What the layer leaves in the request for the extractors. The type is
/// private, so a handler cannot take the pool out of the extensions.
#[derive(Clone)]
pub(crate) struct Resolved<K> {
    pub(crate) key: K,
    pub(crate) handle: Handle,
}

#[derive(Clone)]
pub(crate) enum Handle {
    Rows(Db),
    Rls(RlsDb),
    /// The tenant's own database, opened by the manager.
    Database(pebble::TenantDatabase),
    /// The tenant's schema: a handle with no way back to the plain `Db`.
    Schema(SchemaDb),
}

impl Handle {
    pub(crate) fn strategy(&self) -> &'static str {
        match self {
            Handle::Rows(_) => "the row pattern (TenantLayer::rows)",
            Handle::Rls(_) => "row-level security (TenantLayer::rls)",
            Handle::Database(_) => "a database per tenant (TenantLayer::manager)",
            Handle::Schema(_) => "a schema per tenant (TenantLayer::schemas or ::schema_db)",
        }
    }
}

/// A tower layer that resolves the tenant of every request once, before
/// the handler runs, and hands the handler a handle confined to it through
/// the [`Tenant`](crate::Tenant) extractor.
///
/// For each request it:
///
/// 1. finds the id's text with its [`Resolver`] (default: the
///    `X-Tenant-Id` header); none: 400 (or what a custom resolver says);
/// 2. parses it into `K` ([`HttpTenantKey`]); malformed: 400;
/// 3. if [`exists`](Self::exists) is set, asks it; unknown: 404;
/// 4. for [`manager`](Self::manager), opens the tenant's database
///    (a missing database: 404); for [`schemas`](Self::schemas), asks the
///    tenant registry for the tenant's schema (unknown or not ready: 404);
/// 5. runs the handler inside a tracing span `tenant_request` with
///    `tenant = %id`, so pebble's statement logs (target `pebble::sql`)
///    carry the tenant.
///
/// A refusal answers with a JSON body ([`TenantRejection`]); the handler
/// never runs and no statement is sent for the tenant.
///
/// `Router::layer` also runs it for paths no route matches, which then
/// answer 400 without a tenant; `Router::route_layer` runs it for matched
/// routes only, so unknown paths stay 404.
///
/// The span is at INFO level: a subscriber that filters out target
/// `pebble_axum` at INFO drops it, and pebble's statement logs then carry
/// no tenant. `exists` runs on every request; put a cache in it if a
/// registry round trip per request is too much.
///
/// ```no_run
/// use axum::{routing::get, Json, Router};
/// use pebble::{Model, RlsDb, TenantDb};
/// use pebble_axum::{ApiResult, Tenant, TenantLayer};
/// use uuid::Uuid;
///
/// #[derive(Model)]
/// struct Project { #[pebble(primary_key, default)] id: i64, #[tenant_id] org: Uuid, name: String }
///
/// async fn count(Tenant(db): Tenant<TenantDb<Uuid, RlsDb>>) -> ApiResult<Json<i64>> {
///     Ok(Json(db.select::<Project>().count().await?))
/// }
///
/// # async fn demo() -> pebble::Result<()> {
/// let app = RlsDb::connect("postgres://app@localhost/saas").await?;
/// let router: Router = Router::new()
///     .route("/projects/count", get(count))
///     .layer(TenantLayer::<Uuid>::rls(app)); // X-Tenant-Id: <uuid>
/// # Ok(()) }
/// ```
pub struct TenantLayer<K> {
    config: Arc<Config<K>>,
}

struct Config<K> {
    resolver: Resolver,
    strategy: Strategy,
    exists: Option<ExistsFn<K>>,
}

impl<K: HttpTenantKey> TenantLayer<K> {
    fn with(strategy: Strategy) -> Self {
        TenantLayer {
            config: Arc::new(Config {
                resolver: Resolver::default(),
                strategy,
                exists: None,
            }),
        }
    }

    /// The row pattern: handlers extract `Tenant<TenantDb<K>>`, i.e.
    /// [`Db::tenant`] on `db`.
    pub fn rows(db: Db) -> Self {
        Self::with(Strategy::Rows(db))
    }

    /// Row-level security: handlers extract `Tenant<TenantDb<K, RlsDb>>`,
    /// i.e. [`RlsDb::tenant`] on `app`, on which raw parameterised SQL is
    /// confined by the database too.
    pub fn rls(app: RlsDb) -> Self {
        Self::with(Strategy::Rls(app))
    }

    /// A database per tenant: handlers extract
    /// `Tenant<TenantDatabase<K>>`, the [`pebble::TenantDatabase`] of `manager.db(id)`, opened
    /// by the layer. The manager validates the id (400 if it cannot name a
    /// database); a missing database (without `create_missing`) is 404.
    ///
    /// ```no_run
    /// # async fn demo(manager: pebble::TenantManager) {
    /// use pebble_axum::{Resolver, TenantLayer};
    /// let layer = TenantLayer::<String>::manager(manager).resolver(Resolver::subdomain("example.com"));
    /// # }
    /// ```
    pub fn manager(manager: TenantManager) -> Self {
        Self::with(Strategy::Manager(manager))
    }

    /// A schema per tenant, from the tenant registry: handlers extract
    /// `Tenant<TenantSchema<K>>`, the [`SchemaDb`] of `tenants.db(id)`,
    /// opened by the layer. An id that cannot name a schema is 400; a
    /// tenant the registry does not have, or has but not `ready` (still
    /// provisioning, being dropped), is 404 and no statement reaches a
    /// tenant schema; the registry unreachable is 503.
    ///
    /// The registry is read once per tenant per `SchemaTenants` value and
    /// then cached (see [`SchemaTenants::db`]), so most requests cost no
    /// round trip before the handler.
    ///
    /// ```no_run
    /// use axum::{routing::get, Json, Router};
    /// use pebble::{Model, SchemaTenants};
    /// use pebble_axum::{ApiResult, Tenant, TenantLayer, TenantSchema};
    ///
    /// #[derive(Model)]
    /// #[pebble(table = "tasks", per_tenant)] // one table per tenant schema
    /// struct Task { #[pebble(primary_key, default)] id: i64, title: String }
    ///
    /// async fn tasks(Tenant(db): Tenant<TenantSchema>) -> ApiResult<Json<Vec<String>>> {
    ///     let tasks = db.select::<Task>().all().await?; // FROM "tenant_<id>"."tasks"
    ///     Ok(Json(tasks.into_iter().map(|t| t.title).collect()))
    /// }
    ///
    /// # async fn demo(owner: pebble::Db) -> pebble::Result<()> {
    /// let tenants = SchemaTenants::builder(owner).table::<Task>().build()?;
    /// let app: Router = Router::new()
    ///     .route("/tasks", get(tasks))
    ///     .layer(TenantLayer::<String>::schemas(tenants)); // X-Tenant-Id: acme
    /// # Ok(()) }
    /// ```
    pub fn schemas(tenants: SchemaTenants) -> Self {
        Self::with(Strategy::Schemas(tenants))
    }

    /// A schema per tenant without a registry: handlers extract
    /// `Tenant<TenantSchema<K>>`, i.e. [`Db::schema_tenant`] on `db`. Only
    /// the id's form is checked (400 if it cannot name a schema); nothing
    /// tells an unknown tenant from a known one, so its statements fail
    /// (500) on the missing schema. Add [`exists`](Self::exists) for a 404,
    /// or use [`schemas`](Self::schemas).
    pub fn schema_db(db: Db) -> Self {
        Self::with(Strategy::SchemaDb(db))
    }

    /// Where the tenant id is found (default: [`Resolver::default`], the
    /// `X-Tenant-Id` header).
    pub fn resolver(self, resolver: Resolver) -> Self {
        self.map_config(|c| c.resolver = resolver)
    }

    /// A registry check run once per request, after parsing: `Ok(false)` is
    /// an unknown tenant (404, handler not run); an error is 503.
    ///
    /// ```no_run
    /// # use pebble::{Model, RlsDb};
    /// # use uuid::Uuid;
    /// #[derive(Model)]
    /// #[pebble(table = "orgs", shared)]
    /// struct Org { #[pebble(primary_key)] id: Uuid, name: String }
    ///
    /// # fn demo(app: RlsDb) {
    /// let registry = app.clone();
    /// let layer = pebble_axum::TenantLayer::<Uuid>::rls(app).exists(move |id| {
    ///     let registry = registry.clone();
    ///     async move { registry.select::<Org>().filter(Org::ID.eq(id)).exists().await }
    /// });
    /// # }
    /// ```
    pub fn exists<F, Fut>(self, exists: F) -> Self
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = pebble::Result<bool>> + Send + 'static,
    {
        let exists: ExistsFn<K> = Arc::new(move |key| Box::pin(exists(key)));
        self.map_config(|c| c.exists = Some(exists))
    }

    fn map_config(self, change: impl FnOnce(&mut Config<K>)) -> Self {
        let mut config = match Arc::try_unwrap(self.config) {
            Ok(config) => config,
            Err(shared) => Config {
                resolver: shared.resolver.clone(),
                strategy: shared.strategy.clone(),
                exists: shared.exists.clone(),
            },
        };
        change(&mut config);
        TenantLayer {
            config: Arc::new(config),
        }
    }
}

impl<K: HttpTenantKey> Config<K> {
    /// Steps 1 and 2: the id from the request, parsed. No I/O.
    fn key(&self, parts: &Parts) -> Result<K, TenantRejection> {
        let text = self.resolver.resolve(parts)?;
        K::parse_tenant(&text)
            .map_err(|why| TenantRejection::malformed(format!("invalid tenant id: {why}")))
    }

    /// Steps 3 and 4: the registry check and the tenant's handle.
    async fn handle(&self, key: &K) -> Result<Handle, TenantRejection> {
        if let Some(exists) = &self.exists {
            match exists(key.clone()).await {
                Ok(true) => {}
                Ok(false) => return Err(TenantRejection::unknown(format!("no tenant {key}"))),
                Err(e) => {
                    tracing::error!(target: "pebble_axum", error = %e, "tenant registry check failed");
                    return Err(TenantRejection::unavailable(
                        "the tenant registry could not be reached",
                    ));
                }
            }
        }
        Ok(match &self.strategy {
            Strategy::Rows(db) => Handle::Rows(db.clone()),
            Strategy::Rls(app) => Handle::Rls(app.clone()),
            Strategy::Manager(manager) => Handle::Database(open(manager, &key.to_string()).await?),
            Strategy::Schemas(tenants) => {
                let id = key.to_string();
                Handle::Schema(schema_rejection(tenants.db(&id).await, &id)?)
            }
            Strategy::SchemaDb(db) => {
                let id = key.to_string();
                Handle::Schema(schema_rejection(db.schema_tenant(&id), &id)?)
            }
        })
    }
}

async fn open(
    manager: &TenantManager,
    id: &str,
) -> Result<pebble::TenantDatabase, TenantRejection> {
    manager.db(id).await.map_err(|e| match e {
        pebble::Error::InvalidTenantId { reason, .. } => {
            TenantRejection::malformed(format!("invalid tenant id: {reason}"))
        }
        pebble::Error::TenantDropped { .. } => TenantRejection::unknown(format!("no tenant {id}")),
        e if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            TenantRejection::unknown(format!("no tenant {id}"))
        }
        e => {
            tracing::error!(target: "pebble_axum", tenant = id, error = %e, "tenant database could not be opened");
            TenantRejection::unavailable("the tenant's database could not be reached")
        }
    })
}

/// Why a schema handle could not be had, as the client should hear it.
fn schema_rejection(
    opened: pebble::Result<SchemaDb>,
    id: &str,
) -> Result<SchemaDb, TenantRejection> {
    opened.map_err(|e| match e {
        pebble::Error::InvalidTenantId { reason, .. } => {
            TenantRejection::malformed(format!("invalid tenant id: {reason}"))
        }
        // Not ready and registered under the other strategy both mean no
        // schema tenant this request may use; saying which would tell
        // clients about tenants they cannot reach.
        pebble::Error::UnknownTenant { .. }
        | pebble::Error::TenantNotReady { .. }
        | pebble::Error::StrategyMismatch { .. }
        | pebble::Error::TenantDropped { .. } => {
            TenantRejection::unknown(format!("no tenant {id}"))
        }
        e if matches!(e, pebble::Error::Pool(_) | pebble::Error::Timeout(_))
            || e.is_connection_error() =>
        {
            tracing::error!(target: "pebble_axum", tenant = id, error = %e, "tenant registry could not be read");
            TenantRejection::unavailable("the tenant registry could not be reached")
        }
        e => {
            // A registry placing the tenant on a server this process was
            // not given, a registry table missing: the deployment's fault.
            tracing::error!(target: "pebble_axum", tenant = id, error = %e, "tenant schema could not be opened");
            TenantRejection::misconfigured("the tenant's schema could not be opened")
        }
    })
}

impl<K> Clone for TenantLayer<K> {
    fn clone(&self) -> Self {
        TenantLayer {
            config: self.config.clone(),
        }
    }
}

impl<K> fmt::Debug for TenantLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strategy = match self.config.strategy {
            Strategy::Rows(_) => "rows",
            Strategy::Rls(_) => "rls",
            Strategy::Manager(_) => "manager",
            Strategy::Schemas(_) => "schemas",
            Strategy::SchemaDb(_) => "schema_db",
        };
        f.debug_struct("TenantLayer")
            .field("key", &std::any::type_name::<K>())
            .field("strategy", &strategy)
            .field("resolver", &self.config.resolver)
            .field("exists", &self.config.exists.is_some())
            .finish()
    }
}

impl<S, K> Layer<S> for TenantLayer<K> {
    type Service = TenantService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService {
            inner,
            config: self.config.clone(),
            key: PhantomData,
        }
    }
}

/// The service [`TenantLayer`] wraps around the routes; you do not build
/// it yourself (`Router::layer(TenantLayer::rows(db))` does).
pub struct TenantService<S, K> {
    inner: S,
    config: Arc<Config<K>>,
    key: PhantomData<fn() -> K>,
}

impl<S: Clone, K> Clone for TenantService<S, K> {
    fn clone(&self) -> Self {
        TenantService {
            inner: self.inner.clone(),
            config: self.config.clone(),
            key: PhantomData,
        }
    }
}

impl<S, K> fmt::Debug for TenantService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantService")
            .field("key", &std::any::type_name::<K>())
            .finish_non_exhaustive()
    }
}

impl<S, K> Service<Request<Body>> for TenantService<S, K>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    K: HttpTenantKey,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is not the service polled ready; call the one that was.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let key = match config.key(&parts) {
                Ok(key) => key,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            // Opened before the registry check and the pool open, so their
            // statements are attributed to the tenant too.
            let span = tracing::info_span!(
                target: "pebble_axum",
                "tenant_request",
                tenant = %key,
                method = %parts.method,
                path = %parts.uri.path(),
            );
            async move {
                let handle = match config.handle(&key).await {
                    Ok(handle) => handle,
                    Err(rejection) => return Ok(rejection.into_response()),
                };
                parts.extensions.insert(Resolved { key, handle });
                match inner.call(Request::from_parts(parts, body)).await {
                    Ok(response) => Ok(response.into_response()),
                    Err(never) => match never {},
                }
            }
            .instrument(span)
            .await
        })
    }
}
