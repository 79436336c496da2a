//! Tenant ids and the names made from them: the one validator every
//! strategy uses (schema handles, provisioning, the `TenantManager`), and
//! identifier quoting.

use crate::error::{Error, Result};

/// PostgreSQL truncates longer identifiers silently, which could make two
/// tenants share a schema or a database.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 63;

/// The prefix of every tenant schema (and, by default, database).
pub(crate) const TENANT_PREFIX: &str = "tenant_";

/// Checks that `id` may name a tenant: 1 or more lowercase ASCII letters,
/// digits and `_`; not `public`, `information_schema` or `pg_*` (an id that
/// reads like a system schema is almost always a variable holding the wrong
/// thing); and `tenant_<id>` at most PostgreSQL's 63 bytes.
///
/// Every tenant id pebble meets goes through this one function: schema
/// handles, schema provisioning and the [`TenantManager`](crate::TenantManager).
///
/// ```
/// assert!(pebble::validate_tenant_id("acme_2").is_ok());
/// for bad in ["", "Acme", "a-b", "a b", "a\"b", "public", "pg_catalog", "é"] {
///     assert!(matches!(pebble::validate_tenant_id(bad), Err(pebble::Error::InvalidTenantId { .. })));
/// }
/// ```
pub fn validate_tenant_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return refuse(id, "a tenant id cannot be empty");
    }
    if !is_plain(id) {
        return refuse(
            id,
            "a tenant id may only contain lowercase ASCII letters, digits and `_`",
        );
    }
    if id == "public" || id == "information_schema" || id.starts_with("pg_") {
        return refuse(
            id,
            "`public`, `information_schema` and `pg_*` are reserved names",
        );
    }
    if TENANT_PREFIX.len() + id.len() > MAX_IDENTIFIER_BYTES {
        return refuse(
            id,
            "`tenant_<id>` would be longer than PostgreSQL's 63 bytes",
        );
    }
    Ok(())
}

/// The schema of tenant `id`, `tenant_<id>`, after validating `id`. Being
/// prefixed, it is never `public`, `pg_*` or `information_schema`.
pub(crate) fn tenant_schema(id: &str) -> Result<String> {
    validate_tenant_id(id)?;
    Ok(format!("{TENANT_PREFIX}{id}"))
}

pub(crate) fn refuse(id: &str, reason: &'static str) -> Result<()> {
    Err(Error::InvalidTenantId {
        id: id.to_owned(),
        reason,
    })
}

/// Lowercase ASCII letters, digits and `_` only.
pub(crate) fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `name` as a quoted identifier. Names are validated first; quoting anyway
/// means a name can never be read as SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` as a SQL string literal, for validated names in maintenance
/// statements that take no parameters (DDL).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["acme", "a", "tenant_42", "0", "public2", "xpg_a"] {
            assert!(validate_tenant_id(id).is_ok(), "{id:?} refused");
        }
        assert!(
            validate_tenant_id(&"a".repeat(MAX_IDENTIFIER_BYTES - TENANT_PREFIX.len())).is_ok()
        );
        assert_eq!(tenant_schema("acme").ok().as_deref(), Some("tenant_acme"));
    }

    #[test]
    fn refuses_everything_else() {
        let too_long = "a".repeat(MAX_IDENTIFIER_BYTES - TENANT_PREFIX.len() + 1);
        for id in [
            "",
            "Acme",
            "ac-me",
            "ac\"me",
            "ac me",
            "a;drop",
            "é",
            "acme\0",
            "a.b",
            "a/b",
            "public",
            "pg_catalog",
            "pg_toast",
            "information_schema",
            &too_long,
        ] {
            assert!(validate_tenant_id(id).is_err(), "{id:?} was accepted");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("tenant_acme"), "\"tenant_acme\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
