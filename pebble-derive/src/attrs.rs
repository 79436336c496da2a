//! Reading and checking `#[pebble(...)]` and `#[tenant_id]`: every mistake is
//! a compile error pointing at the offending struct, field or attribute.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Path, Type, Visibility};

use crate::ident::{invalid_reason, snake_case};

/// A struct deriving `Model`, checked.
pub struct Model {
    pub ident: Ident,
    pub table: String,
    pub krate: Path,
    pub fields: Vec<Field>,
    /// `None` for a tenant model (it has a `#[tenant_id]` field).
    pub kind: Option<Kind>,
    /// Where a deprecated `#[pebble(global)]` was written, to warn there.
    pub deprecated_global: Option<Span>,
    /// `#[pebble(insert = "NewTask")]`: the insert type to generate.
    pub insert: Option<crate::insert_type::InsertType>,
}

/// What a model without a `#[tenant_id]` field is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#[pebble(shared)]` (or the deprecated `global`): one table for all tenants.
    Shared,
    /// `#[pebble(per_tenant)]`: a table in each tenant's schema or database.
    PerTenant,
}

/// A kind attribute as written, for messages.
struct KindAttr {
    kind: Kind,
    name: &'static str,
    span: Span,
}

/// One field, checked.
pub struct Field {
    pub ident: Ident,
    pub vis: Visibility,
    pub ty: Type,
    pub column: String,
    pub primary_key: bool,
    pub tenant: bool,
    pub unique: bool,
    pub default: Option<Default>,
    /// `#[pebble(references = Model)]`: a foreign key to that model's key.
    pub references: Option<Path>,
}

/// How the database fills a `#[pebble(default)]` column.
pub enum Default {
    /// The column type's own default (`gen_random_uuid()`, identity, `now()`).
    OfType(Span),
    /// `#[pebble(default = "sql")]`; the span is the attribute's.
    Sql { sql: String, span: Span },
}

impl Model {
    pub fn parse(input: &DeriveInput) -> syn::Result<Model> {
        if !input.generics.params.is_empty() {
            return Err(syn::Error::new(
                input.generics.span(),
                "#[derive(Model)] does not support generic structs",
            ));
        }
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                _ => {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        "#[derive(Model)] needs a struct with named fields",
                    ))
                }
            },
            _ => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "#[derive(Model)] only applies to structs",
                ))
            }
        };

        let mut table = None;
        let mut krate = None;
        let mut kind: Option<KindAttr> = None;
        let mut insert = crate::insert_type::InsertAttrs::default();
        for attr in pebble_attrs(&input.attrs) {
            attr.parse_nested_meta(|meta| {
                if insert.parse(&meta)? {
                    return Ok(());
                }
                let written = [
                    ("shared", Kind::Shared),
                    ("per_tenant", Kind::PerTenant),
                    ("global", Kind::Shared),
                ]
                .into_iter()
                .find(|(name, _)| meta.path.is_ident(name));
                if let Some((name, parsed)) = written {
                    if let Some(first) = &kind {
                        return Err(meta.error(format!(
                            "a model is either `shared` or `per_tenant`; `{}` is already set",
                            first.name
                        )));
                    }
                    kind = Some(KindAttr {
                        kind: parsed,
                        name,
                        span: meta.path.span(),
                    });
                } else if meta.path.is_ident("table") {
                    let lit: LitStr = meta.value()?.parse()?;
                    check_identifier(&lit)?;
                    table = Some(lit.value());
                } else if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    krate = Some(lit.parse::<Path>()?);
                } else {
                    return Err(meta.error(
                        "unknown pebble attribute on a struct; expected `table = \"...\"`, `shared`, \
                         `per_tenant`, `insert = \"...\"`, `insert_derive(...)` or `crate = \"...\"`",
                    ));
                }
                Ok(())
            })?;
        }
        if input.attrs.iter().any(|a| a.path().is_ident("tenant_id")) {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[tenant_id] goes on the tenant field, not on the struct",
            ));
        }
        let table = match table {
            Some(table) => table,
            None => {
                let name = snake_case(&input.ident.unraw().to_string());
                if let Some(reason) = invalid_reason(&name) {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        format!(
                            "cannot derive a table name: {reason}; set #[pebble(table = \"...\")]"
                        ),
                    ));
                }
                name
            }
        };

        let mut fields = Vec::with_capacity(named.named.len());
        for field in &named.named {
            let parsed = Field::parse(field)?;
            if let Some(first) = fields.iter().find(|f: &&Field| f.column == parsed.column) {
                return Err(syn::Error::new(
                    field.span(),
                    format!(
                        "column `{}` is already mapped by field `{}`",
                        parsed.column, first.ident
                    ),
                ));
            }
            if parsed.tenant {
                if let Some(first) = fields.iter().find(|f: &&Field| f.tenant) {
                    return Err(syn::Error::new(
                        tenant_attr_span(field),
                        format!(
                            "a model has at most one #[tenant_id] field; `{}` already is",
                            first.ident
                        ),
                    ));
                }
            }
            fields.push(parsed);
        }
        if fields.is_empty() {
            return Err(syn::Error::new(
                input.ident.span(),
                "a model needs at least one field",
            ));
        }
        // Forgetting #[tenant_id] (on a new table, or a slim struct over a
        // tenant table) would silently make every statement reach all
        // tenants, so a model without one must say what it is instead.
        match (fields.iter().find(|f| f.tenant), &kind) {
            (None, None) => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    format!(
                        "`{}` has no #[tenant_id] field, so statements on it would reach every tenant's rows; \
                         mark the tenant column with #[tenant_id], or, if the table really has none, \
                         add #[pebble(shared)] (one table for all tenants, like plans) or \
                         #[pebble(per_tenant)] (a table in each tenant's schema or database)",
                        input.ident
                    ),
                ))
            }
            (Some(tenant), Some(kind)) => {
                return Err(syn::Error::new(
                    kind.span,
                    format!(
                        "a #[pebble({})] model cannot have a #[tenant_id] field (`{}`)",
                        kind.name, tenant.ident
                    ),
                ))
            }
            _ => {}
        }

        Ok(Model {
            ident: input.ident.clone(),
            table,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::pebble)),
            fields,
            deprecated_global: kind.as_ref().filter(|k| k.name == "global").map(|k| k.span),
            kind: kind.map(|k| k.kind),
            insert: insert.finish(input)?,
        })
    }

    pub fn tenant(&self) -> Option<&Field> {
        self.fields.iter().find(|f| f.tenant)
    }

    pub fn primary_key(&self) -> Vec<&Field> {
        self.fields.iter().filter(|f| f.primary_key).collect()
    }
}

impl Field {
    fn parse(field: &syn::Field) -> syn::Result<Field> {
        let Some(ident) = field.ident.clone() else {
            return Err(syn::Error::new(field.span(), "expected a named field"));
        };
        let mut parsed = Field {
            column: ident.unraw().to_string(),
            ident,
            vis: field.vis.clone(),
            ty: field.ty.clone(),
            primary_key: false,
            tenant: false,
            unique: false,
            default: None,
            references: None,
        };

        for attr in &field.attrs {
            if attr.path().is_ident("tenant_id") {
                attr.meta
                    .require_path_only()
                    .map_err(|_| syn::Error::new(attr.span(), "#[tenant_id] takes no arguments"))?;
                parsed.tenant = true;
            }
        }
        for attr in pebble_attrs(&field.attrs) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("primary_key") {
                    parsed.primary_key = true;
                } else if meta.path.is_ident("unique") {
                    parsed.unique = true;
                } else if meta.path.is_ident("default") {
                    parsed.default = Some(if meta.input.peek(syn::Token![=]) {
                        let span = meta.path.span();
                        let lit: LitStr = meta.value()?.parse()?;
                        if lit.value().trim().is_empty() {
                            return Err(syn::Error::new(
                                lit.span(),
                                "the default expression is empty",
                            ));
                        }
                        Default::Sql {
                            sql: lit.value(),
                            span,
                        }
                    } else {
                        Default::OfType(meta.path.span())
                    });
                } else if meta.path.is_ident("references") {
                    parsed.references = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("column") {
                    let lit: LitStr = meta.value()?.parse()?;
                    check_identifier(&lit)?;
                    parsed.column = lit.value();
                } else {
                    return Err(meta.error(
                        "unknown pebble attribute on a field; expected `primary_key`, `default`, \
                         `default = \"...\"`, `unique`, `references = Model` or `column = \"...\"`",
                    ));
                }
                Ok(())
            })?;
        }

        if let Some(reason) = invalid_reason(&parsed.column) {
            return Err(syn::Error::new(
                parsed.ident.span(),
                format!("invalid column name: {reason}; set #[pebble(column = \"...\")]"),
            ));
        }
        if parsed.tenant {
            if is_option(&parsed.ty) {
                return Err(syn::Error::new(
                    parsed.ty.span(),
                    "the #[tenant_id] field cannot be an `Option`: every row belongs to a tenant",
                ));
            }
            if parsed.default.is_some() {
                return Err(syn::Error::new(
                    tenant_attr_span(field),
                    "the #[tenant_id] field cannot have a database default: pebble stamps it",
                ));
            }
            if let Some(path) = &parsed.references {
                return Err(syn::Error::new(
                    path.span(),
                    "the #[tenant_id] field cannot reference a model; pebble adds the tenant \
                     column to every other reference's foreign key",
                ));
            }
            if parsed.unique {
                return Err(syn::Error::new(
                    tenant_attr_span(field),
                    "the #[tenant_id] field cannot be `unique`; unique columns are already unique per tenant",
                ));
            }
        }
        if parsed.primary_key && is_option(&parsed.ty) {
            return Err(syn::Error::new(
                parsed.ty.span(),
                "a primary key field cannot be an `Option`",
            ));
        }
        Ok(parsed)
    }
}

fn pebble_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("pebble"))
}

fn tenant_attr_span(field: &syn::Field) -> Span {
    field
        .attrs
        .iter()
        .find(|a| a.path().is_ident("tenant_id"))
        .map_or_else(|| field.span(), Spanned::span)
}

fn check_identifier(lit: &LitStr) -> syn::Result<()> {
    match invalid_reason(&lit.value()) {
        Some(reason) => Err(syn::Error::new(
            lit.span(),
            format!("invalid identifier: {reason}"),
        )),
        None => Ok(()),
    }
}

/// Whether the written type is `Option<...>` (also `std::option::Option`).
pub fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Option"),
        Type::Group(group) => is_option(&group.elem),
        Type::Paren(paren) => is_option(&paren.elem),
        _ => false,
    }
}
