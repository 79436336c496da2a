//! The code `#[derive(Model)]` generates from a checked [`Model`].

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attrs::{is_option, Default, Field, Kind, Model};
use crate::ident::constant_name;

pub fn expand(model: &Model) -> TokenStream {
    let defaults = type_defaults(model);
    let model_impl = model_impl(model);
    let scope_impl = scope_impl(model);
    let key_impl = primary_key_impl(model);
    let columns = column_constants(model);
    let deprecations = deprecations(model);
    let joinable = joinable_impl(model);
    let references = reference_checks(model);
    let insert_type = crate::insert_type::expand(model);
    quote! {
        #insert_type

        const _: () = {
            #deprecations
            #defaults
            #model_impl
            #scope_impl
            #key_impl
            #columns
            #joinable
            #references
        };
    }
}

fn model_impl(model: &Model) -> TokenStream {
    let Model {
        ident,
        table,
        krate,
        fields,
        ..
    } = model;
    let private = quote!(#krate::__private);

    let column_defs = fields.iter().map(|f| column_def(model, f));
    let decoded = fields.iter().enumerate().map(|(index, f)| {
        let (name, ty, column) = (&f.ident, &f.ty, &f.column);
        quote_spanned! {ty.span()=>
            #name: #private::decode::<#ty>(row, offset + #index, #table, #column)?
        }
    });
    let moved = fields.iter().map(|f| {
        let (name, ty) = (&f.ident, &f.ty);
        quote! {
            let unset = <#ty as #krate::SqlType>::is_unset(&self.#name);
            sink(<#ty as #krate::SqlType>::into_sql(self.#name), unset);
        }
    });
    let cloned = fields.iter().map(|f| {
        let (name, ty) = (&f.ident, &f.ty);
        quote!(sink(<#ty as #krate::SqlType>::into_sql(::core::clone::Clone::clone(&self.#name)));)
    });

    let per_tenant = matches!(model.kind, Some(Kind::PerTenant));
    quote! {
        impl #krate::Model for #ident {
            const TABLE: &'static str = #table;
            const COLUMNS: &'static [#krate::ColumnDef] = &[#(#column_defs),*];
            const PER_TENANT: bool = #per_tenant;

            fn from_row(row: &#private::Row) -> #krate::Result<Self> {
                <Self as #krate::Model>::from_row_at(row, 0)
            }

            fn from_row_at(row: &#private::Row, offset: usize) -> #krate::Result<Self> {
                #private::Result::Ok(Self { #(#decoded),* })
            }

            #[inline]
            fn into_values(self, mut sink: impl ::core::ops::FnMut(#private::Value, bool)) {
                #(#moved)*
            }

            #[inline]
            fn to_values(&self, mut sink: impl ::core::ops::FnMut(#private::Value)) {
                #(#cloned)*
            }
        }
    }
}

fn column_def(model: &Model, field: &Field) -> TokenStream {
    let krate = &model.krate;
    let (ty, column) = (&field.ty, &field.column);
    let mut def = quote_spanned!(ty.span()=> #krate::ColumnDef::of::<#ty>(#column));
    if field.primary_key {
        def = quote!(#def.primary_key());
    }
    if field.tenant {
        def = quote!(#def.tenant());
    }
    if field.unique {
        def = quote!(#def.unique());
    }
    if let Some(target) = &field.references {
        def = quote_spanned! {target.span()=>
            #def.references(#krate::__private::Reference::to::<#target>())
        };
    }
    match &field.default {
        None => {}
        Some(Default::Sql { sql, .. }) => {
            let clause = format!("DEFAULT {sql}");
            def = quote!(#def.default(#clause));
        }
        Some(Default::OfType(_)) => {
            let name = default_const(field);
            def = quote!(#def.default(#name));
        }
    }
    def
}

/// One free constant per `#[pebble(default)]` field: its type's default
/// clause, or a check that an explicit default can ever be used. Free
/// constants are always evaluated, so a refused field is a compile error
/// even if the model's metadata is never used. The checks read the type's
/// `SqlType` constants rather than the written type, so aliases and full
/// paths (`std::string::String`) cannot slip past them.
fn type_defaults(model: &Model) -> TokenStream {
    let krate = &model.krate;
    model
        .fields
        .iter()
        .filter_map(|field| field.default.as_ref().map(|default| (field, default)))
        .map(|(field, default)| {
            let (ty, name) = (&field.ty, default_const(field));
            match default {
                Default::OfType(span) => {
                    // The expression is only accepted on an `Option` (see below).
                    let fix = if is_option(ty) {
                        "write #[pebble(default = \"<sql expression>\")]".to_owned()
                    } else {
                        format!(
                            "make the field `Option<{}>` and write \
                             #[pebble(default = \"<sql expression>\")]",
                            type_name(ty)
                        )
                    };
                    let message = format!(
                        "#[pebble(default)] on `{}`: this column type has no database default; {fix}",
                        field.ident
                    );
                    quote_spanned! {*span=>
                        const #name: &str = match <#ty as #krate::SqlType>::DEFAULT_CLAUSE {
                            ::core::option::Option::Some(clause) => clause,
                            ::core::option::Option::None => ::core::panic!(#message),
                        };
                    }
                }
                // An insert takes the default when the field is unset; where
                // the unset value is also an ordinary one (`0`, `false`,
                // `""`), that value could never be stored.
                Default::Sql { span, .. } => {
                    let ty_name = type_name(ty);
                    let fix = if field.primary_key {
                        // A key cannot be an `Option`; a generated integer
                        // key is what bare `default` (0 = generate) is for.
                        "for a generated integer key write #[pebble(default)]: 0 then means \
                         \"generate\", by identity or the existing column default"
                            .to_owned()
                    } else {
                        format!(
                            "make the field `Option<{ty_name}>` (None = the database default, \
                             Some(v) = v)"
                        )
                    };
                    let message = format!(
                        "#[pebble(default = \"...\")] on `{}`: an insert takes the database default \
                         when the field holds its unset value, but the unset value of `{ty_name}` \
                         (0, false, \"\", empty bytes) is an ordinary value that could then never \
                         be stored; {fix}",
                        field.ident
                    );
                    quote_spanned! {*span=>
                        const #name: () = if !<#ty as #krate::SqlType>::UNSET_IS_RESERVED {
                            ::core::panic!(#message)
                        };
                    }
                }
            }
        })
        .collect()
}

/// The written type as the user would write it (`Vec<u8>`, not `Vec < u8 >`).
fn type_name(ty: &syn::Type) -> String {
    quote!(#ty)
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" :: ", "::")
        .replace(" ,", ",")
}

fn default_const(field: &Field) -> Ident {
    format_ident!(
        "__PEBBLE_DEFAULT_{}",
        constant_name(&field.ident.to_string())
    )
}

fn scope_impl(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    match model.tenant() {
        Some(tenant) => {
            let (name, ty, column) = (&tenant.ident, &tenant.ty, &tenant.column);
            let key_type = quote_spanned!(ty.span()=> type TenantKey = #ty;);
            quote! {
                impl #krate::SingleTableModel for #ident {}

                impl #krate::TenantScoped for #ident {
                    #key_type
                    const TENANT_COLUMN: &'static str = #column;

                    fn tenant_key(&self) -> &#ty {
                        &self.#name
                    }

                    fn set_tenant_key(&mut self, key: #ty) {
                        self.#name = key;
                    }
                }
            }
        }
        None => {
            let kind = match model.kind {
                Some(Kind::PerTenant) => quote!(impl #krate::PerTenantModel for #ident {}),
                // The parser refuses a model with neither a tenant field
                // nor a kind, so this is `shared` (or `global`).
                _ => quote! {
                    impl #krate::SharedModel for #ident {}
                    impl #krate::SingleTableModel for #ident {}
                },
            };
            quote! {
                impl #krate::GlobalModel for #ident {}
                #kind
            }
        }
    }
}

/// A use of a `#[deprecated]` item, spanned at the deprecated attribute, so
/// that stable Rust warns there (a derive cannot emit warnings itself).
fn deprecations(model: &Model) -> TokenStream {
    match model.deprecated_global {
        Some(span) => quote_spanned! {span=>
            #[deprecated(
                note = "#[pebble(global)] is deprecated: write #[pebble(shared)] for a table \
                        shared by all tenants, or #[pebble(per_tenant)] for one in each \
                        tenant's schema or database"
            )]
            #[allow(non_camel_case_types)]
            struct global;
            let _ = global;
        },
        None => TokenStream::new(),
    }
}

fn primary_key_impl(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    let private = quote!(#krate::__private);
    let key = model.primary_key();
    if key.is_empty() {
        return TokenStream::new();
    }
    let columns = key.iter().map(|f| &f.column);
    let types: Vec<_> = key.iter().map(|f| &f.ty).collect();
    let names: Vec<_> = key.iter().map(|f| &f.ident).collect();
    let bindings: Vec<Ident> = (0..key.len()).map(|i| format_ident!("key{i}")).collect();

    let (key_type, key_value, destructure) = if key.len() == 1 {
        let (ty, name, binding) = (types[0], names[0], &bindings[0]);
        (
            quote!(#ty),
            quote!(::core::clone::Clone::clone(&self.#name)),
            quote!(let #binding = key;),
        )
    } else {
        (
            quote!((#(#types),*)),
            quote!((#(::core::clone::Clone::clone(&self.#names)),*)),
            quote!(let (#(#bindings),*) = key;),
        )
    };

    quote! {
        impl #krate::HasPrimaryKey for #ident {
            type Key = #key_type;
            const PRIMARY_KEY: &'static [&'static str] = &[#(#columns),*];

            fn primary_key(&self) -> Self::Key {
                #key_value
            }

            fn key_values(key: Self::Key) -> #private::Vec<#private::Value> {
                #destructure
                ::std::vec![#(<#types as #krate::SqlType>::into_sql(#bindings)),*]
            }
        }
    }
}

fn column_constants(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    let constants = model.fields.iter().map(|f| {
        let (vis, ty, column) = (&f.vis, &f.ty, &f.column);
        let name = format_ident!("{}", constant_name(&f.ident.to_string()), span = f.ident.span());
        if f.tenant {
            let doc = format!("The tenant column `{column}`: filterable, never assignable.");
            quote! {
                #[doc = #doc]
                #vis const #name: #krate::TenantColumn<#ident, #ty> = #krate::TenantColumn::new(#column);
            }
        } else {
            let doc = format!("The column `{column}`.");
            quote! {
                #[doc = #doc]
                #vis const #name: #krate::Column<#ident, #ty> = #krate::Column::new(#column);
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#constants)*
        }
    }
}

/// Which queries may join this model, and which it may join: a tenant
/// model pairs with its own key type, a per-tenant model with per-tenant
/// ones, and a shared model is joinable from every query.
fn joinable_impl(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    match (model.tenant(), model.kind) {
        (Some(tenant), _) => {
            let ty = &tenant.ty;
            quote! {
                impl #krate::Joinable<#ty> for #ident {}
                impl #krate::JoinBase for #ident {
                    type JoinKey = #ty;
                }
            }
        }
        (None, Some(Kind::PerTenant)) => quote! {
            impl #krate::Joinable<#krate::join_key::PerTenant> for #ident {}
            impl #krate::JoinBase for #ident {
                type JoinKey = #krate::join_key::PerTenant;
            }
        },
        (None, _) => quote! {
            impl<K> #krate::Joinable<K> for #ident {}
            impl #krate::JoinBase for #ident {
                type JoinKey = #krate::join_key::Shared;
            }
        },
    }
}

/// For each `#[pebble(references = Target)]`: `Target` has exactly one key
/// column besides its tenant column (what one field can point at), and is
/// `Joinable` from this model: a tenant model references models of its
/// own key type or shared ones, a shared model shared ones. Both are
/// compile errors spanned at the attribute.
fn reference_checks(model: &Model) -> TokenStream {
    let krate = &model.krate;
    model
        .fields
        .iter()
        .filter_map(|f| f.references.as_ref().map(|target| (f, target)))
        .map(|(field, target)| {
            let message = format!(
                "#[pebble(references = ...)] on `{}`: the referenced model needs exactly one \
                 #[pebble(primary_key)] column besides its #[tenant_id]",
                field.ident
            );
            let key_check = quote_spanned! {target.span()=>
                const _: () = ::core::assert!(
                    #krate::__private::single_key::<#target>(),
                    #message
                );
            };
            let ident = &model.ident;
            let tenant_check = quote_spanned! {target.span()=>
                const _: fn() = || {
                    fn joinable<T: #krate::Joinable<K>, K>() {}
                    joinable::<#target, <#ident as #krate::JoinBase>::JoinKey>();
                };
            };
            // Also from the columns: `Joinable` is a public trait, and a
            // hand-written impl would let a shared model reference (and so
            // reveal the existence of) a tenant's rows.
            let shared_message = format!(
                "#[pebble(references = ...)] on `{}`: a model without a #[tenant_id] column \
                 cannot reference a tenant model",
                field.ident
            );
            let shared_check = quote_spanned! {target.span()=>
                const _: () = ::core::assert!(
                    #krate::__private::tenant_reference_allowed::<#ident, #target>(),
                    #shared_message
                );
            };
            quote!(#key_check #tenant_check #shared_check)
        })
        .collect()
}
