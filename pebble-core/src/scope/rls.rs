//! The row-level security strategy: on top of the row condition, the
//! tenant is set for the statement's transaction (`pebble.tenant_id`), and
//! the database's policy confines the statement to it.

use sea_query::Value;

use crate::error::{Error, Result};
use crate::sql_type::TenantKey;

/// A tenant as the text `pebble_tenant()` casts back to the column type:
/// the value `SET LOCAL pebble.tenant_id` sets. Only made
/// for handles under row-level security (see `Strategy::raw_context`) and
/// for keys that are set, so holding one proves the database confines
/// what runs in it.
#[derive(Clone, Debug)]
pub(crate) struct TenantContext(String);

impl TenantContext {
    /// The text of the setting.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The context of `key`; the unset value (nil UUID, `0`, empty string) is refused.
    pub(super) fn of<K: TenantKey>(key: &K) -> Result<TenantContext> {
        let refused = |reason| Error::InvalidTenantId {
            id: format!("{key:?}"),
            reason,
        };
        if let Some(reason) = refusal(key) {
            return Err(refused(reason));
        }
        context_of(&key.clone().into_sql())
            .map(TenantContext)
            .ok_or_else(|| refused("not a tenant key type"))
    }

    /// The context of a key already converted to a bind value.
    pub(super) fn of_value(key: &Value) -> Option<TenantContext> {
        context_of(key).map(TenantContext)
    }
}

/// Why `key` cannot be a tenant, if it cannot: the unset value (a missing
/// id defaulted by mistake), or a text key with a NUL byte, which no
/// PostgreSQL text can hold and which would make the message that sets the
/// tenant fail to encode while the statement behind it still ran.
pub(crate) fn refusal<K: TenantKey>(key: &K) -> Option<&'static str> {
    if key.is_unset() {
        return Some("the unset value (nil UUID, 0, empty string) cannot be a tenant");
    }
    match key.clone().into_sql() {
        Value::String(Some(text)) if text.contains('\0') => {
            Some("a tenant key cannot contain a NUL byte")
        }
        _ => None,
    }
}

/// The key types a tenant column can have, as text.
fn context_of(key: &Value) -> Option<String> {
    match key {
        Value::Uuid(Some(key)) => Some(key.to_string()),
        Value::BigInt(Some(key)) => Some(key.to_string()),
        Value::Int(Some(key)) => Some(key.to_string()),
        Value::SmallInt(Some(key)) => Some(key.to_string()),
        Value::String(Some(key)) if !key.contains('\0') => Some(key.clone()),
        _ => None,
    }
}
