//! Tenant keys as they arrive in a request: text to parse.

use std::fmt;

use uuid::Uuid;

mod private {
    pub trait Sealed {}
}

/// A tenant key type a request can carry: `Uuid`, `i64`, `i32` or `String`
/// (pebble's [`TenantKey`](pebble::TenantKey)s), parsed from the text the
/// [`Resolver`](crate::Resolver) found.
///
/// Text that does not parse, or parses to the *unset* value pebble refuses
/// to run with (the nil UUID, `0`, the empty string), is rejected with
/// `400 Bad Request` before the handler runs.
///
/// ```
/// use pebble_axum::HttpTenantKey;
/// assert_eq!(i64::parse_tenant("42"), Ok(42));
/// assert!(i64::parse_tenant("0").is_err()); // the unset value
/// assert!(uuid::Uuid::parse_tenant("not-a-uuid").is_err());
/// assert!(String::parse_tenant("acme").is_ok());
/// assert!(String::parse_tenant("acme corp").is_err()); // see the String rules
/// ```
pub trait HttpTenantKey:
    pebble::TenantKey + Clone + fmt::Display + Send + Sync + private::Sealed + 'static
{
    /// Parses a tenant id from request text, or says why it cannot be one.
    fn parse_tenant(text: &str) -> Result<Self, &'static str>;
}

impl private::Sealed for Uuid {}
impl HttpTenantKey for Uuid {
    fn parse_tenant(text: &str) -> Result<Self, &'static str> {
        match Uuid::parse_str(text) {
            Ok(id) if id.is_nil() => Err("the nil UUID is not a tenant"),
            Ok(id) => Ok(id),
            Err(_) => Err("expected a UUID"),
        }
    }
}

impl private::Sealed for i64 {}
impl HttpTenantKey for i64 {
    fn parse_tenant(text: &str) -> Result<Self, &'static str> {
        parse_int(text)
    }
}

impl private::Sealed for i32 {}
impl HttpTenantKey for i32 {
    fn parse_tenant(text: &str) -> Result<Self, &'static str> {
        parse_int(text)
    }
}

fn parse_int<T: std::str::FromStr + PartialEq + From<i8>>(text: &str) -> Result<T, &'static str> {
    // `str::parse` accepts a leading `+`; one tenant must have one spelling,
    // or caches and logs keyed by the text would see two tenants.
    if text.starts_with('+') {
        return Err("expected an integer without a sign");
    }
    match text.parse::<T>() {
        Ok(n) if n == T::from(0) => Err("0 is not a tenant"),
        Ok(n) => Ok(n),
        Err(_) => Err("expected an integer in range"),
    }
}

/// The longest `String` tenant id accepted from a request.
const MAX_STRING_KEY: usize = 128;

/// `String` keys: 1 to 128 ASCII letters, digits, `-`, `_` or `.`. Ids
/// come from headers, host names and paths, where anything else (spaces,
/// `/`, percent escapes, Unicode look-alikes) is more likely a mistake or
/// an attack than a tenant.
impl private::Sealed for String {}
impl HttpTenantKey for String {
    fn parse_tenant(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("the empty string is not a tenant");
        }
        if text.len() > MAX_STRING_KEY {
            return Err("longer than 128 characters");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("only ASCII letters, digits, '-', '_' and '.' are allowed");
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(i32::parse_tenant("7"), Ok(7));
        assert_eq!(i64::parse_tenant("-7"), Ok(-7));
        assert!(i32::parse_tenant("+7").is_err());
        assert!(i32::parse_tenant("99999999999").is_err());
        assert!(i64::parse_tenant("").is_err());
        assert!(i64::parse_tenant("0").is_err());
        assert!(i64::parse_tenant("1.5").is_err());
    }

    #[test]
    fn uuids_and_strings() {
        let id = Uuid::new_v4();
        assert_eq!(Uuid::parse_tenant(&id.to_string()), Ok(id));
        assert!(Uuid::parse_tenant(&Uuid::nil().to_string()).is_err());
        assert!(String::parse_tenant("").is_err());
        assert!(String::parse_tenant("a/b").is_err());
        assert!(String::parse_tenant(&"a".repeat(129)).is_err());
        assert_eq!(
            String::parse_tenant("acme_1.eu-west"),
            Ok("acme_1.eu-west".into())
        );
    }
}
