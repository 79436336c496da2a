//! Extractors: the request's tenant, and a handle confined to it.

use std::any::type_name;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use pebble::{Db, RlsDb, SchemaDb, TenantDb};

use crate::layer::{Handle, Resolved};
use crate::{HttpTenantKey, TenantRejection};

mod private {
    pub trait Sealed {}
}

/// A handle confined to the request's tenant, as configured on the
/// [`TenantLayer`](crate::TenantLayer):
///
/// | layer | handler argument | what it is |
/// |---|---|---|
/// | `TenantLayer::<K>::rows(db)` | `Tenant<TenantDb<K>>` | `db.tenant(id)` |
/// | `TenantLayer::<K>::rls(app)` | `Tenant<TenantDb<K, RlsDb>>` | `app.tenant(id)` |
/// | `TenantLayer::<K>::manager(m)` | `Tenant<TenantDatabase<K>>` | `m.db(id)`: the tenant's own database |
/// | `TenantLayer::<K>::schemas(t)` | `Tenant<TenantSchema<K>>` | `t.db(id)`: the tenant's schema, registry-checked |
/// | `TenantLayer::<K>::schema_db(db)` | `Tenant<TenantSchema<K>>` | `db.schema_tenant(id)` |
///
/// There is no `Tenant<Db>` or `Tenant<RlsDb>`: the extractor only hands
/// out confined handles. A handler asking for a handle (or key type) the
/// layer does not provide, or on a route without the layer, gets 500
/// `tenant_misconfigured` and the error is logged: a wiring mistake, not
/// the client's.
///
/// ```no_run
/// use axum::Json;
/// use pebble::{Model, TenantDb};
/// use pebble_axum::{ApiResult, Tenant};
///
/// #[derive(Model)]
/// struct Note { #[pebble(primary_key, default)] id: i64, #[tenant_id] org: i64, body: String }
///
/// // With `.layer(TenantLayer::<i64>::rows(db))`:
/// async fn notes(Tenant(db): Tenant<TenantDb<i64>>) -> ApiResult<Json<Vec<String>>> {
///     let notes = db.select::<Note>().all().await?; // only this tenant's
///     Ok(Json(notes.into_iter().map(|n| n.body).collect()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Tenant<H>(pub H);

/// The request's tenant id, parsed, for handlers that need the id itself
/// (a response field, a cache key). It gives no database access.
///
/// ```
/// use pebble_axum::TenantId;
/// async fn whoami(TenantId(id): TenantId<uuid::Uuid>) -> String {
///     id.to_string()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId<K>(pub K);

/// The tenant's own database (`TenantManager::db(id)`), from
/// `Tenant<TenantDatabase<K>>` under
/// [`TenantLayer::manager`](crate::TenantLayer::manager). It dereferences to
/// the [`pebble::TenantDatabase`] handle on that database, which queries
/// `#[pebble(per_tenant)]` and shared models (a plain [`Db`] refuses
/// per-tenant ones).
///
/// ```no_run
/// use axum::Json;
/// use pebble::Model;
/// use pebble_axum::{ApiResult, Tenant, TenantDatabase};
///
/// #[derive(Model)]
/// #[pebble(per_tenant)] // in each tenant's own database
/// struct Page { #[pebble(primary_key, default)] id: i64, body: String }
///
/// // With `.layer(TenantLayer::<String>::manager(manager))`:
/// async fn pages(Tenant(db): Tenant<TenantDatabase>) -> ApiResult<Json<Vec<String>>> {
///     let pages = db.select::<Page>().all().await?; // on database tenant_<id>
///     Ok(Json(pages.into_iter().map(|p| format!("{}: {}", db.key(), p.body)).collect()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TenantDatabase<K = String> {
    key: K,
    db: pebble::TenantDatabase,
}

impl<K> TenantDatabase<K> {
    /// The tenant whose database this is.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The handle on the tenant's database.
    pub fn db(&self) -> &pebble::TenantDatabase {
        &self.db
    }
}

impl<K> Deref for TenantDatabase<K> {
    type Target = pebble::TenantDatabase;
    fn deref(&self) -> &pebble::TenantDatabase {
        &self.db
    }
}

/// The tenant's schema (`SchemaTenants::db(id)` or `Db::schema_tenant(id)`),
/// from `Tenant<TenantSchema<K>>` under
/// [`TenantLayer::schemas`](crate::TenantLayer::schemas) or
/// [`TenantLayer::schema_db`](crate::TenantLayer::schema_db). It
/// dereferences to the [`SchemaDb`], which only queries per-tenant models
/// and names them in `tenant_<id>`; it has no way back to the plain `Db`.
///
/// ```no_run
/// use axum::Json;
/// use pebble::Model;
/// use pebble_axum::{ApiResult, Tenant, TenantSchema};
///
/// #[derive(Model)]
/// #[pebble(table = "tasks", per_tenant)] // one table per tenant schema
/// struct Task { #[pebble(primary_key, default)] id: i64, title: String }
///
/// // With `.layer(TenantLayer::<String>::schemas(tenants))`:
/// async fn tasks(Tenant(db): Tenant<TenantSchema>) -> ApiResult<Json<Vec<String>>> {
///     let tasks = db.select::<Task>().all().await?; // FROM "tenant_<id>"."tasks"
///     Ok(Json(tasks.into_iter().map(|t| format!("{}: {}", db.key(), t.title)).collect()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TenantSchema<K = String> {
    key: K,
    db: SchemaDb,
}

impl<K> TenantSchema<K> {
    /// The tenant whose schema this is.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The handle on the tenant's schema.
    pub fn db(&self) -> &SchemaDb {
        &self.db
    }
}

impl<K> Deref for TenantSchema<K> {
    type Target = SchemaDb;
    fn deref(&self) -> &SchemaDb {
        &self.db
    }
}

/// The handles [`Tenant`] can extract. Sealed: each is confined to the
/// request's tenant, and there is no implementation for [`Db`] or
/// [`RlsDb`] themselves.
///
/// ```compile_fail
/// // An unconfined handle is not extractable:
/// async fn handler(pebble_axum::Tenant(db): pebble_axum::Tenant<pebble::Db>) {}
/// fn check<H: pebble_axum::FromTenant>() {}
/// check::<pebble::Db>();
/// ```
pub trait FromTenant: Sized + private::Sealed {
    /// The handle for the request the layer resolved, or why there is none.
    #[doc(hidden)]
    fn from_parts(parts: &Parts) -> Result<Self, TenantRejection>;
}

fn resolved<K: HttpTenantKey, H>(parts: &Parts) -> Result<&Resolved<K>, TenantRejection> {
    parts.extensions.get::<Resolved<K>>().ok_or_else(|| {
        TenantRejection::misconfigured(format!(
            "handler asks for {} but no TenantLayer<{}> ran for this route \
             (is the layer missing, or keyed by another type?)",
            type_name::<H>(),
            type_name::<K>(),
        ))
    })
}

fn wrong_strategy<H>(handle: &Handle) -> TenantRejection {
    TenantRejection::misconfigured(format!(
        "handler asks for {} but the TenantLayer provides {}",
        type_name::<H>(),
        handle.strategy(),
    ))
}

impl<K: HttpTenantKey> private::Sealed for TenantDb<K, Db> {}
impl<K: HttpTenantKey> FromTenant for TenantDb<K, Db> {
    fn from_parts(parts: &Parts) -> Result<Self, TenantRejection> {
        let resolved = resolved::<K, Self>(parts)?;
        match &resolved.handle {
            Handle::Rows(db) => Ok(db.tenant(resolved.key.clone())),
            other => Err(wrong_strategy::<Self>(other)),
        }
    }
}

impl<K: HttpTenantKey> private::Sealed for TenantDb<K, RlsDb> {}
impl<K: HttpTenantKey> FromTenant for TenantDb<K, RlsDb> {
    fn from_parts(parts: &Parts) -> Result<Self, TenantRejection> {
        let resolved = resolved::<K, Self>(parts)?;
        match &resolved.handle {
            Handle::Rls(app) => Ok(app.tenant(resolved.key.clone())),
            other => Err(wrong_strategy::<Self>(other)),
        }
    }
}

impl<K: HttpTenantKey> private::Sealed for TenantDatabase<K> {}
impl<K: HttpTenantKey> FromTenant for TenantDatabase<K> {
    fn from_parts(parts: &Parts) -> Result<Self, TenantRejection> {
        let resolved = resolved::<K, Self>(parts)?;
        match &resolved.handle {
            Handle::Database(db) => Ok(TenantDatabase {
                key: resolved.key.clone(),
                db: db.clone(),
            }),
            other => Err(wrong_strategy::<Self>(other)),
        }
    }
}

impl<K: HttpTenantKey> private::Sealed for TenantSchema<K> {}
impl<K: HttpTenantKey> FromTenant for TenantSchema<K> {
    fn from_parts(parts: &Parts) -> Result<Self, TenantRejection> {
        let resolved = resolved::<K, Self>(parts)?;
        match &resolved.handle {
            Handle::Schema(db) => Ok(TenantSchema {
                key: resolved.key.clone(),
                db: db.clone(),
            }),
            other => Err(wrong_strategy::<Self>(other)),
        }
    }
}

impl<S: Send + Sync, H: FromTenant> FromRequestParts<S> for Tenant<H> {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        H::from_parts(parts).map(Tenant)
    }
}

impl<S: Send + Sync, K: HttpTenantKey> FromRequestParts<S> for TenantId<K> {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        resolved::<K, Self>(parts).map(|r| TenantId(r.key.clone()))
    }
}
