//! Provisioning: creating and dropping tenant schemas, their tables and
//! their roles, and the tenant registry they are recorded in.
//!
//! - [`registry`]: `public.pebble_tenants` on the home server, the row per
//!   tenant that serialises provisioning and dropping across processes.
//! - [`schema`]: [`SchemaTenants`](schema::SchemaTenants), schema tenants
//!   placed over one or more servers.
//! - [`roles`]: a login role per tenant that can reach its own schema only.
//! - [`flights`]: one provisioning per tenant at a time within a process.

mod flights;
pub(crate) mod registry;
pub(crate) mod roles;
pub(crate) mod schema;
