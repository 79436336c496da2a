//! Which tenant ids may become database names (the id itself is checked by
//! the one validator, `crate::ident`).

use crate::error::Result;
use crate::ident::{is_plain, refuse, MAX_IDENTIFIER_BYTES};

pub(crate) use crate::ident::{quote, validate_tenant_id as validate_id};

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
}
