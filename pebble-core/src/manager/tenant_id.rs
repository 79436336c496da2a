//! Which tenant ids may become database names, and how a name is quoted.

use crate::error::{Error, Result};

/// PostgreSQL truncates longer identifiers, which could make two tenants
/// share a database.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks a tenant id before anything (even the database name function) sees it.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return refuse(id, "a tenant id cannot be empty");
    }
    if !is_plain(id) {
        return refuse(
            id,
            "a tenant id may only contain lowercase ASCII letters, digits and `_`",
        );
    }
    Ok(())
}

/// Checks the database name made from a valid `id`.
pub(crate) fn validate_database(id: &str, database: &str) -> Result<()> {
    if database.len() > MAX_IDENTIFIER_BYTES {
        return refuse(
            id,
            "its database name would be longer than PostgreSQL's 63 bytes",
        );
    }
    if database.is_empty() || !is_plain(database) {
        return refuse(
            id,
            "the database name function made an invalid name from it",
        );
    }
    Ok(())
}

fn refuse(id: &str, reason: &'static str) -> Result<()> {
    Err(Error::InvalidTenantId {
        id: id.to_owned(),
        reason,
    })
}

fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `name` as a quoted identifier. Names are validated first; quoting anyway
/// means a name can never be read as SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str) -> bool {
        validate_id(id).is_ok() && validate_database(id, &format!("tenant_{id}")).is_ok()
    }

    #[test]
    fn accepts_plain_ids() {
        assert!(ok("acme"));
        assert!(ok("a"));
        assert!(ok("tenant_42"));
        assert!(ok("0"));
        assert!(ok(&"a".repeat(MAX_IDENTIFIER_BYTES - "tenant_".len())));
    }

    #[test]
    fn refuses_everything_else() {
        for id in [
            "", "Acme", "ac-me", "ac\"me", "ac me", "a;drop", "é", "acme\0", "a.b", "a/b",
        ] {
            assert!(!ok(id), "{id:?} was accepted");
        }
        assert!(!ok(&"a".repeat(MAX_IDENTIFIER_BYTES - "tenant_".len() + 1)));
        assert!(validate_database("acme", "Tenant_acme").is_err());
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("tenant_acme"), "\"tenant_acme\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
