//! The tenant-login strategy: the tenant is bound to the connection itself,
//! by logging in as a role made for that tenant (`pebble_<database
//! oid>_<tenant>`), which `pebble_tenant()` reads from `session_user`. No
//! statement sets it, so none can change it.
//!
//! What the owner side (creating the logins) and the application side
//! (connecting as them) must agree on lives here: the role names and the
//! passwords derived from one secret.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::rls::TenantContext;
use crate::error::{Error, Result};
use crate::sql_type::TenantKey;

/// PostgreSQL keeps at most this many bytes of a name (`NAMEDATALEN - 1`).
const MAX_NAME: usize = 63;

/// The least length of a [`LoginSecret`]: 128 bits.
const MIN_SECRET: usize = 16;

/// The one secret every tenant login's password derives from:
/// `hex(HMAC-SHA256(secret, role name))`. The owner creates logins with it
/// ([`Db::create_tenant_login`](crate::Db::create_tenant_login)) and the
/// application connects with it ([`TenantLogins`](crate::TenantLogins)), so
/// the application keeps one secret, not a password per tenant. Keep it in
/// a secret manager; `Debug` never shows it, and pebble never logs it or
/// the passwords.
///
/// ```
/// # use pebble::LoginSecret;
/// let secret = LoginSecret::new("0123456789abcdef-from-the-vault")?;
/// assert!(!format!("{secret:?}").contains("vault"));
/// assert!(LoginSecret::new("short").is_err());
/// # Ok::<(), pebble::Error>(())
/// ```
#[derive(Clone)]
pub struct LoginSecret(Vec<u8>);

impl LoginSecret {
    /// A secret of at least 16 bytes (else [`Error::LoginSecretTooShort`]).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<LoginSecret> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET {
            return Err(Error::LoginSecretTooShort { len: secret.len() });
        }
        Ok(LoginSecret(secret))
    }

    /// The password of login role `role`: 64 hex digits.
    pub(crate) fn password(&self, role: &str) -> Result<String> {
        // HMAC takes keys of every length: the error is never returned.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .map_err(|_| Error::LoginSecretTooShort { len: self.0.len() })?;
        mac.update(role.as_bytes());
        Ok(mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect())
    }
}

impl fmt::Debug for LoginSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginSecret(<redacted>)")
    }
}

/// The prefix of every tenant login of the database with oid `database`.
/// Role names are cluster-wide: the oid keeps two databases of one cluster
/// (and a database dropped and created again) from accepting each other's
/// logins. Digits then `_`, so one oid's prefix is never another's.
pub(crate) fn prefix(database: u32) -> String {
    format!("pebble_{database}_")
}

/// The NOLOGIN role every tenant login of the database is a member of, and
/// which holds the grants on the protected tables. Not under [`prefix`],
/// so no tenant key can name it.
pub(crate) fn group(database: u32) -> String {
    format!("pebble_logins_{database}")
}

/// The login role of tenant `key` in the database with oid `database`:
/// [`prefix`] and the tenant as `pebble_tenant()` returns it. The unset
/// value and keys with a NUL byte are [`Error::InvalidTenantId`]; a name
/// over 63 bytes [`Error::TenantLoginNameTooLong`].
pub(crate) fn role<K: TenantKey>(database: u32, key: &K) -> Result<String> {
    let tenant = TenantContext::of(key)?;
    let role = format!("{}{}", prefix(database), tenant.as_str());
    if role.len() > MAX_NAME {
        return Err(Error::TenantLoginNameTooLong {
            id: tenant.as_str().to_owned(),
            role,
        });
    }
    Ok(role)
}

/// The oid of the connected database, which tenant login names carry.
pub(crate) const DATABASE_OID: &str = "SELECT oid FROM pg_catalog.pg_database \
WHERE datname = pg_catalog.current_database()";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_database_and_the_tenant() {
        assert_eq!(role(16384, &42_i64).unwrap(), "pebble_16384_42");
        assert_eq!(role(7, &"acme".to_owned()).unwrap(), "pebble_7_acme");
        let uuid = uuid::Uuid::from_u128(1);
        assert_eq!(
            role(4_294_967_295, &uuid).unwrap(),
            "pebble_4294967295_00000000-0000-0000-0000-000000000001"
        );
        assert!(!group(16384).starts_with(&prefix(16384)));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            role(1, &0_i64),
            Err(Error::InvalidTenantId { .. })
        ));
        assert!(matches!(
            role(1, &"a\0b".to_owned()),
            Err(Error::InvalidTenantId { .. })
        ));
        let long = "x".repeat(60);
        assert!(matches!(
            role(1, &long),
            Err(Error::TenantLoginNameTooLong { .. })
        ));
    }

    #[test]
    fn passwords_derive_from_the_secret_and_the_role() {
        let secret = LoginSecret::new("0123456789abcdef").unwrap();
        let a = secret.password("pebble_1_a").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(a, secret.password("pebble_1_a").unwrap());
        assert_ne!(a, secret.password("pebble_1_b").unwrap());
        let other = LoginSecret::new("0123456789abcdeX").unwrap();
        assert_ne!(a, other.password("pebble_1_a").unwrap());
        // RFC 4231 test case 2 ("Jefe" is too short for a LoginSecret).
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(matches!(
            LoginSecret::new("short"),
            Err(Error::LoginSecretTooShort { len: 5 })
        ));
    }
}
