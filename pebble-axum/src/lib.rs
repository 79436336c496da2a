//! # pebble-axum
//!
//! [axum](https://docs.rs/axum) integration for [pebble](https://docs.rs/pebble):
//! a tower layer resolves the tenant **once per request** (a header, the
//! subdomain, a path segment, or your own rule such as a verified token's
//! claim) and an extractor hands the handler a handle **confined to that
//! tenant**. A request naming no tenant, a malformed one or an unknown one
//! is answered 400 / 401 / 404 with a JSON body before the handler runs.
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use pebble::{Db, Model, TenantDb};
//! use pebble_axum::{ApiResult, Tenant, TenantLayer};
//! use uuid::Uuid;
//!
//! #[derive(Model)]
//! struct Project { #[pebble(primary_key, default)] id: i64, #[tenant_id] org: Uuid, name: String }
//!
//! async fn projects(Tenant(db): Tenant<TenantDb<Uuid>>) -> ApiResult<Json<Vec<String>>> {
//!     let projects = db.select::<Project>().all().await?; // this tenant's only
//!     Ok(Json(projects.into_iter().map(|p| p.name).collect()))
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::connect("postgres://app@localhost/saas").await?;
//! let app: Router = Router::new()
//!     .route("/projects", get(projects))
//!     .layer(TenantLayer::<Uuid>::rows(db)); // reads X-Tenant-Id
//! # Ok(()) }
//! ```
//!
//! - [`TenantLayer`]: `rows(db)`, `rls(app)`, `manager(manager)`,
//!   `schemas(tenants)` or `schema_db(db)`, a [`Resolver`], and optionally
//!   an `exists` registry check.
//! - [`Tenant`]: `Tenant<TenantDb<K>>`, `Tenant<TenantDb<K, RlsDb>>`,
//!   `Tenant<TenantDatabase<K>>`, `Tenant<TenantSchema<K>>`; [`TenantId`]
//!   for the id alone.
//! - [`ApiError`] / [`ApiResult`] (feature `errors`, default): `?` on a
//!   pebble call answers 404, 409, 403, 400, 503 or 500, without leaking SQL.
//! - Each resolved request runs in a `tracing` span `tenant_request` with
//!   `tenant = %id`; pebble's statement logs (target `pebble::sql`) are
//!   inside it.
#![warn(missing_docs)]

#[cfg(feature = "errors")]
mod error;
mod extract;
mod key;
mod layer;
mod rejection;
mod resolver;

#[cfg(feature = "errors")]
pub use error::{ApiError, ApiResult};
pub use extract::{FromTenant, Tenant, TenantDatabase, TenantId, TenantSchema};
pub use key::HttpTenantKey;
pub use layer::{TenantLayer, TenantService};
pub use rejection::TenantRejection;
pub use resolver::Resolver;
