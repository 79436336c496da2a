//! Per-tenant login roles: a connection as tenant `acme`'s role can only
//! reach `acme`'s schema (or database), so even raw SQL from a client that
//! is not pebble cannot read another tenant. The password is generated,
//! sent to the server only as a SCRAM verifier (so it cannot reach a server
//! log), returned to the caller once, and never logged.

use std::fmt;

use crate::ident::{literal, quote};
use crate::rls::roles::generate_password;

/// A tenant's login role and its password, from provisioning. The only
/// time pebble has the password: store it (a secret manager, the tenant's
/// pool configuration) before dropping this value. `Debug` shows the role,
/// never the password.
///
/// ```
/// # fn show(role: pebble::TenantRole) {
/// let url = format!("postgres://{}:{}@db.internal/app", role.name(), role.password());
/// assert!(!format!("{role:?}").contains(role.password()));
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TenantRole {
    name: String,
    password: String,
}

impl TenantRole {
    pub(crate) fn generate(name: String) -> TenantRole {
        TenantRole {
            name,
            password: generate_password(),
        }
    }

    /// The role's name (`tenant_<id>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The generated password: 64 hex digits from the OS random source.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A connection configuration as this role: `base` (the server and
    /// database) with this role's user and password.
    pub fn config(&self, base: &tokio_postgres::Config) -> tokio_postgres::Config {
        let mut config = base.clone();
        config.user(&self.name).password(&self.password);
        config
    }

    /// `CREATE ROLE` (or bring up to date) with LOGIN and nothing else:
    /// not a superuser, no BYPASSRLS, no CREATEDB / CREATEROLE, NOINHERIT
    /// (a membership granted later gives it nothing until it `SET ROLE`s).
    /// No password: see [`TenantRole::password_sql`].
    ///
    /// A role of that name pebble did not create for this database (no
    /// [`marker_sql`] comment) raises [`FOREIGN_ROLE`]: adopting it would
    /// hand out a password for whatever it was already granted (its
    /// memberships survive `ALTER ROLE`).
    pub(crate) fn create_sql(&self) -> String {
        let role = quote(&self.name);
        let attributes =
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT";
        format!(
            "DO $pebble$ BEGIN \
             IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {name} \
               AND pg_catalog.shobj_description(oid, 'pg_authid') IS DISTINCT FROM {marker}) THEN \
             RAISE EXCEPTION USING ERRCODE = '{FOREIGN_ROLE}', \
               MESSAGE = 'role ' || {name} || ' was not created by pebble'; END IF; \
             IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN \
             CREATE ROLE {role} {attributes}; END IF; \
             EXECUTE format('COMMENT ON ROLE %I IS %L', {name}, {marker}); END $pebble$;\n\
             ALTER ROLE {role} {attributes}",
            name = literal(&self.name),
            marker = marker_sql(),
        )
    }

    /// Sets the password as its SCRAM verifier. Sent on its own, never
    /// through pebble's SQL log (the verifier is what an attacker would
    /// brute-force).
    pub(crate) fn password_sql(&self) -> String {
        let verifier = postgres_protocol::password::scram_sha_256(self.password.as_bytes());
        format!(
            "ALTER ROLE {} PASSWORD {}",
            quote(&self.name),
            literal(&verifier)
        )
    }
}

impl fmt::Debug for TenantRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRole")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The grants of tenant role `role` on its schema: USAGE on the schema,
/// rows of its tables (read and write; no TRUNCATE, REFERENCES or
/// TRIGGER), its sequences, and CONNECT on the current database. No grant
/// on any other schema: another tenant's tables are `permission denied`.
///
/// The same grants are made the schema's default privileges for tables and
/// sequences the provisioning role creates there later (a migration adding
/// a table reaches the tenant's role without a grant of its own). Default
/// privileges belong to the role that creates the objects: tables added by
/// another role need their own grant. They go with the schema when it is
/// dropped, and with the tenant's role when it is (`DROP OWNED`).
pub(crate) fn schema_grants_sql(role: &str, schema: &str) -> String {
    let role = quote(role);
    let schema = quote(schema);
    [
        "DO $pebble$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO %s', \
         current_database(), ROLE_LIT); END $pebble$"
            .replace("ROLE_LIT", &literal(&role)),
        format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}"
        ),
    ]
    .join(";\n")
}

/// The SQLSTATE [`TenantRole::create_sql`] raises for a role of the
/// tenant's name that pebble did not create.
pub(crate) const FOREIGN_ROLE: &str = "PB002";

/// The comment pebble puts on a tenant role it creates, naming the
/// database it was created for: a role of the same name made by anyone
/// else, or for another database of the cluster, lacks it. An SQL
/// expression (the database is only known on the server).
fn marker_sql() -> &'static str {
    "('pebble tenant role in ' || pg_catalog.current_database())"
}

/// Drops tenant role `role` with the privileges it holds in the current
/// database (`DROP OWNED`: it owns nothing), if it exists and pebble
/// created it for this database (its marker comment). A role that merely
/// shares the name is left alone: `DROP OWNED` would delete what it owns.
/// Roles are cluster-wide; their privileges in other databases would make
/// `DROP ROLE` fail, and pebble grants it none there.
pub(crate) fn drop_sql(role: &str) -> String {
    format!(
        "DO $pebble$ BEGIN \
         IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {name} \
           AND pg_catalog.shobj_description(oid, 'pg_authid') = {marker}) THEN \
         EXECUTE 'DROP OWNED BY ' || {quoted}; EXECUTE 'DROP ROLE ' || {quoted}; \
         END IF; END $pebble$",
        name = literal(role),
        quoted = literal(&quote(role)),
        marker = marker_sql(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_in_a_statement_or_debug() {
        let role = TenantRole::generate("tenant_acme".into());
        assert_eq!(role.password().len(), 64);
        let sql = role.create_sql();
        assert!(sql.contains("NOINHERIT"));
        assert!(!sql.contains("PASSWORD"));
        let sql = role.password_sql();
        assert!(!sql.contains(role.password()));
        assert!(sql.contains("SCRAM-SHA-256$"));
        assert!(!format!("{role:?}").contains(role.password()));
    }

    #[test]
    fn grants_name_only_the_tenant_schema() {
        let sql = schema_grants_sql("tenant_acme", "tenant_acme");
        assert!(sql.contains("GRANT USAGE ON SCHEMA \"tenant_acme\" TO \"tenant_acme\""));
        assert!(!sql.contains("public"));
        assert!(sql.contains(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA \"tenant_acme\" \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"tenant_acme\""
        ));
    }
}
