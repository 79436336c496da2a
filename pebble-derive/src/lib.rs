//! `#[derive(Model)]` for [pebble](https://docs.rs/pebble). Use it through
//! the `pebble` crate, which re-exports it next to the `Model` trait.

mod attrs;
mod expand;
mod ident;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Maps a struct with named fields to a table.
///
/// Struct attributes: `#[pebble(table = "name")]` (default: the struct name
/// in snake_case); `#[pebble(global)]`, required exactly when no field is
/// `#[tenant_id]` (a table shared by all tenants, or one in a database per
/// tenant); `#[pebble(crate = "path")]` (default: `::pebble`).
///
/// Field attributes:
/// - `#[tenant_id]`: the tenant column (at most one, not an `Option`);
/// - `#[pebble(primary_key)]`: part of the primary key;
/// - `#[pebble(default)]` or `#[pebble(default = "sql")]`: the database fills
///   the column on insert (`gen_random_uuid()`, an identity, `now()`, or the
///   given expression); inserts leave it out;
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
