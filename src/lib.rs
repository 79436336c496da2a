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

/// An async test with a fresh database: like `#[tokio::test]`, and the
/// test gets a [`Db`] on a database of its own (feature `testkit`).
///
/// The database is created on the test binary's PostgreSQL server
/// (`DATABASE_URL`, or a throwaway cluster pebble-testkit starts once per
/// test binary and deletes at exit), and dropped when the test ends. Tests
/// run concurrently, each on its own database.
///
/// - `models(Task, Project)` creates those models' tables first.
/// - `migrations = "migrations"` applies the pebble-migrate files of that
///   directory (relative to the crate's `Cargo.toml`) to the database's
///   shared schema; the crate then needs pebble-migrate (package
///   `pebble-pg-migrate`, library `pebble_migrate`) as a dev-dependency too.
/// - `flavor = "multi_thread"` runs it on a multi-threaded runtime (the
///   default is a current-thread one, as `#[tokio::test]`).
///
/// The function is `async`, takes the `Db` or nothing, and returns `()` or
/// a `Result` like any test.
///
/// ```ignore
/// #[pebble::test(models(Task))]
/// async fn tasks_are_per_tenant(db: pebble::Db) -> pebble::Result<()> {
///     db.tenant(1_i64).insert(Task::new("write docs")).exec().await?;
///     assert_eq!(db.tenant(2_i64).select::<Task>().count().await?, 0);
///     Ok(())
/// }
/// ```
#[cfg(feature = "testkit")]
pub use pebble_test_macros::test;

/// pebble-testkit: the throwaway PostgreSQL behind `#[pebble::test]`, for
/// tests that need more (a server to stop, PgBouncer, TLS).
#[cfg(feature = "testkit")]
pub use pebble_testkit as testkit;

#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod __testkit;

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
