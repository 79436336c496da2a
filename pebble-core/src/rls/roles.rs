//! The roles row-level security needs: the application connects as a role
//! the policies apply to, and cross-tenant work uses a separate one that
//! bypasses them. Never a setting as the bypass: the application role can
//! set any custom setting itself.

use super::{quote_ident, quote_literal, RlsTable};

/// What a role created by pebble may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleKind {
    /// Subject to every policy: NOSUPERUSER, NOBYPASSRLS, not the owner.
    App,
    /// BYPASSRLS, for `cross_tenant()` through its own pool.
    Bypass,
}

/// A password to hand out once: 32 hex digits from the OS random source.
pub(crate) fn generate_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Creates (or brings up to date) role `name` with `kind`'s attributes and
/// the grants it needs on `tables`, setting its password to the SCRAM
/// verifier of `password`: the clear text is never in the statement, so it
/// cannot reach a server log.
pub(crate) fn role_sql(name: &str, kind: RoleKind, password: &str, tables: &[RlsTable]) -> String {
    let role = quote_ident(name);
    let bypass = match kind {
        RoleKind::App => "NOBYPASSRLS",
        RoleKind::Bypass => "BYPASSRLS",
    };
    let attributes =
        format!("LOGIN NOSUPERUSER {bypass} NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT");
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let mut statements = vec![format!(
        "DO $pebble$ BEGIN \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN \
         CREATE ROLE {role} {attributes}; END IF; END $pebble$",
        name = quote_literal(name),
    )];
    statements.push(format!(
        "ALTER ROLE {role} {attributes} PASSWORD {}",
        quote_literal(&verifier)
    ));
    statements.extend(grants_sql(&role, tables));
    statements.join(";\n")
}

/// The grants of a role on `tables`: read and write rows, nothing else.
/// No TRUNCATE (it ignores row-level security and would empty every
/// tenant), no REFERENCES, no TRIGGER; USAGE on the schema and on its
/// sequences (serial columns draw from them).
pub(crate) fn grants_sql(role: &str, tables: &[RlsTable]) -> Vec<String> {
    let mut statements = vec![
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ];
    for table in tables {
        let name = quote_ident(table.table());
        statements.push(format!(
            "REVOKE TRUNCATE, REFERENCES, TRIGGER ON {name} FROM {role}"
        ));
        statements.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {role}"
        ));
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_the_statement() {
        let password = generate_password();
        assert_eq!(password.len(), 64);
        let sql = role_sql("app", RoleKind::App, &password, &[]);
        assert!(!sql.contains(&password));
        assert!(sql.contains("SCRAM-SHA-256$"));
        assert!(sql.contains("NOBYPASSRLS"));
    }
}
