//! # pebble
//!
//! Multi-tenant PostgreSQL for Rust: a typed query builder where **a
//! tenant's query cannot reach another tenant's rows**, and the mistakes
//! that would let it are compile errors.
//!
//! ```no_run
//! use pebble::{Db, Model};
//! use uuid::Uuid;
//!
//! #[derive(Model, Debug, Clone, PartialEq)]
//! #[pebble(table = "users")]
//! pub struct User {
//!     #[pebble(primary_key, default)] // DEFAULT gen_random_uuid()
//!     pub id: Uuid,
//!     #[tenant_id]
//!     pub tenant_id: Uuid,
//!     pub name: String,
//!     pub age: i32,
//!     pub nickname: Option<String>,
//! }
//!
//! # async fn demo(acme: Uuid) -> pebble::Result<()> {
//! let db = Db::connect("postgres://app@localhost/app").await?;
//! db.create_table::<User>().await?;
//!
//! let tenant = db.tenant(acme); // every statement below is confined to `acme`
//! tenant
//!     .insert(User { id: Uuid::nil(), tenant_id: Uuid::nil(), name: "ann".into(), age: 31, nickname: None })
//!     .exec()
//!     .await?;
//! let grown_ups = tenant.select::<User>().filter(User::AGE.gte(18)).all().await?;
//! tenant.update::<User>().set(User::NICKNAME, Some("annie".to_string())).filter(User::NAME.eq("ann")).exec().await?;
//! # Ok(()) }
//! ```
//!
//! ## The scoping rule
//!
//! - [`Db`] queries models without a tenant column only (`#[pebble(shared)]`,
//!   or `#[pebble(per_tenant)]` on a tenant's own database); asking it for a model with a
//!   `#[tenant_id]` field does not compile.
//! - [`Db::tenant`] gives a [`TenantDb`]: `tenant_column = $1` is AND-ed
//!   around the whole user condition of every select, count, exists, update,
//!   delete and upsert; inserts are stamped; a row carrying another tenant is
//!   refused before anything is sent; the tenant column cannot be `set`; the
//!   key type is checked at compile time.
//! - [`Db::cross_tenant`] is the explicit, traced escape hatch.
//! - Transactions keep the scope: [`TenantDb::begin`].
#![warn(missing_docs)]

pub use pebble_core::*;

/// Derives [`Model`](trait@Model) for a struct with named fields. See the
/// crate documentation for the attributes.
pub use pebble_derive::Model;

/// Derives [`SqlEnum`] and [`SqlType`] for a fieldless enum: a native
/// PostgreSQL enum type or text with a CHECK constraint. See the README's
/// "Enums" section.
pub use pebble_derive::Enum;

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
