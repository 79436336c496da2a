//! `#[derive(Model)]` for [pebble](https://docs.rs/pebble). Use it through
//! the `pebble` crate, which re-exports it next to the `Model` trait.

mod attrs;
mod enum_derive;
mod expand;
mod ident;
mod insert_type;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Maps a struct with named fields to a table.
///
/// Struct attributes: `#[pebble(table = "name")]` (default: the struct name
/// in snake_case); exactly when no field is `#[tenant_id]`, one of
/// `#[pebble(shared)]` (one table for all tenants: plans, the registry;
/// implements `SharedModel`, the only kind a plain `Db` queries) or
/// `#[pebble(per_tenant)]` (a table in each tenant's schema or database;
/// implements `PerTenantModel`, queried through a schema handle or a
/// `TenantManager`'s `TenantDatabase`); `#[pebble(global)]` is a deprecated
/// alias of `shared` that warns; `#[pebble(crate = "path")]` (default: `::pebble`);
/// `#[pebble(insert = "NewTask")]` (or bare `insert`, for `New<Model>`)
/// generates a struct without the `#[pebble(default)]` and `#[tenant_id]`
/// fields that every insert method accepts (`pebble::Insertable`), deriving
/// `Debug`, `Clone` and whatever `#[pebble(insert_derive(...))]` lists.
///
/// Field attributes:
/// - `#[tenant_id]`: the tenant column (at most one, not an `Option`);
/// - `#[pebble(primary_key)]`: part of the primary key;
/// - `#[pebble(default)]` or `#[pebble(default = "sql")]`: the column has a
///   database default (the type's own: `gen_random_uuid()`, an identity,
///   `now()`, `CURRENT_DATE`; or the given expression). An insert writes
///   `DEFAULT` when the field holds its type's unset value (nil UUID, `0`,
///   the Unix epoch, 1970-01-01, `None`) and sends the value otherwise.
///   `default = "sql"` only compiles where the unset value is nobody's real
///   value (`Option<T>`, `Uuid`, `DateTime<Utc>`, `NaiveDate`): on `bool`,
///   integers, floats, `String`, `Vec<u8>` or JSON it would make `false`,
///   `0` or `""` unstorable, so make such a field an `Option<T>`;
/// - `#[pebble(unique)]`: a unique index (per tenant on tenant models);
/// - `#[pebble(column = "name")]`: the column name (default: the field name).
#[proc_macro_derive(Model, attributes(pebble, tenant_id))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    attrs::Model::parse(&input)
        .map(|model| expand::expand(&model))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Maps a fieldless enum to a column type: a native PostgreSQL enum type
/// (the default) or `text` with a CHECK constraint.
///
/// Enum attributes: `#[pebble(type_name = "task_status")]` (default: the
/// enum name in snake_case), or `#[pebble(text)]` for a text column;
/// `#[pebble(rename_all = "...")]` (`snake_case`, the default,
/// `SCREAMING_SNAKE_CASE`, `kebab-case`, `lowercase`, `UPPERCASE`,
/// `PascalCase` for the names as written); `#[pebble(crate = "path")]`.
/// Variant attribute: `#[pebble(rename = "label")]`.
///
/// The enum must also derive (or implement) `Clone` and `Debug`.
#[proc_macro_derive(Enum, attributes(pebble))]
pub fn derive_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    enum_derive::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
