//! The schema strategy: a per-tenant model's table is named with the
//! tenant's schema in the statement text, `"tenant_acme"."tasks"`. Never
//! through `SET search_path`: a session setting on a pooled connection
//! outlives the request that set it (the next tenant's statement would run
//! in the wrong schema), and re-setting it per statement costs a round trip.

use sea_query::{Alias, TableRef};

/// `"schema"."table"`; sea-query quotes both parts.
pub(super) fn table_ref(schema: &str, table: &'static str) -> TableRef {
    (Alias::new(schema), table).into()
}
