//! Tenant ids and the names made from them (one validator for schemas and
//! databases, the same rules as pebble's `TenantManager`).

use crate::error::{Error, Result};

/// The prefix of every tenant schema and database.
pub const TENANT_PREFIX: &str = "tenant_";

/// Checks that `id` may name a tenant: lowercase ASCII letters, digits and
/// `_`, not `public`, `pg_*` or `information_schema`, and `tenant_<id>` at
/// most 63 bytes. The one validator of pebble
/// ([`pebble::validate_tenant_id`]), with this crate's error type.
pub fn validate_tenant_id(id: &str) -> Result<()> {
    pebble::validate_tenant_id(id).map_err(|e| match e {
        pebble::Error::InvalidTenantId { id, reason } => Error::InvalidTenantId { id, reason },
        // The validator has no other error; kept total all the same.
        _ => Error::InvalidTenantId {
            id: id.to_owned(),
            reason: "not a valid tenant id",
        },
    })
}

/// The schema (or database) of tenant `id`: `tenant_<id>`. Being prefixed,
/// it can never be `public`, `pg_*` or `information_schema`.
pub fn tenant_name(id: &str) -> Result<String> {
    validate_tenant_id(id)?;
    Ok(format!("{TENANT_PREFIX}{id}"))
}

/// `name` as a quoted identifier; names are validated first, quoting anyway
/// means one can never be read as SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        assert_eq!(tenant_name("acme_2").ok().as_deref(), Some("tenant_acme_2"));
        assert!(validate_tenant_id(&"a".repeat(56)).is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Acme",
            "a-b",
            "a\"b",
            "a b",
            "é",
            "a;drop",
            &"a".repeat(57),
        ] {
            assert!(validate_tenant_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        for id in ["public", "pg_catalog", "pg_toast", "information_schema"] {
            assert!(tenant_name(id).is_err(), "{id:?} accepted");
        }
    }
}
