//! `#[pebble(insert = "NewTask")]`: a struct for inserting a model without
//! the fields the database fills (`#[pebble(default)]`) or the tenant
//! handle stamps (`#[tenant_id]`).
//!
//! Opt-in rather than always generated: a derive that silently adds a type
//! to the caller's module could collide with one of theirs (and break code
//! that compiles today), and the name is then visible where the model is
//! declared, so a reader can find where `NewTask` comes from.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Ident, LitStr, Path, Token, Visibility};

use crate::attrs::Model;

/// The insert type to generate, checked.
pub struct InsertType {
    ident: Ident,
    vis: Visibility,
    derives: Vec<Path>,
    /// The model fields' doc comments, which the insert type's fields repeat.
    docs: Vec<(Ident, Vec<Attribute>)>,
}

/// `insert` and `insert_derive` as written on the struct.
#[derive(Default)]
pub struct InsertAttrs {
    /// The name, or `None` after a bare `insert` (then `New<Model>`).
    name: Option<Option<LitStr>>,
    derives: Vec<Path>,
    derive_span: Option<Span>,
}

impl InsertAttrs {
    /// Reads `meta` if it is one of ours; `false` if it is not.
    pub fn parse(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        if meta.path.is_ident("insert") {
            if self.name.is_some() {
                return Err(meta.error("`insert` is already set"));
            }
            self.name = Some(if meta.input.peek(Token![=]) {
                Some(meta.value()?.parse()?)
            } else {
                None
            });
            Ok(true)
        } else if meta.path.is_ident("insert_derive") {
            self.derive_span = Some(meta.path.span());
            let list;
            syn::parenthesized!(list in meta.input);
            let paths = list.parse_terminated(Path::parse_mod_style, Token![,])?;
            self.derives.extend(paths);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub fn finish(self, input: &DeriveInput) -> syn::Result<Option<InsertType>> {
        let Some(name) = self.name else {
            return match self.derive_span {
                Some(span) => Err(syn::Error::new(
                    span,
                    "`insert_derive` needs `insert` (or `insert = \"NewName\"`) to name the insert type",
                )),
                None => Ok(None),
            };
        };
        let ident = match name {
            Some(lit) => lit.parse::<Ident>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "the insert type's name must be a Rust identifier",
                )
            })?,
            None => format_ident!("New{}", input.ident, span = input.ident.span()),
        };
        if ident == input.ident {
            return Err(syn::Error::new(
                ident.span(),
                "the insert type needs a name of its own",
            ));
        }
        let docs = match &input.data {
            Data::Struct(data) => data
                .fields
                .iter()
                .filter_map(|f| {
                    let docs: Vec<Attribute> = f
                        .attrs
                        .iter()
                        .filter(|a| a.path().is_ident("doc"))
                        .cloned()
                        .collect();
                    f.ident.clone().map(|ident| (ident, docs))
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(InsertType {
            ident,
            vis: input.vis.clone(),
            derives: self.derives,
            docs,
        }))
    }
}

pub fn expand(model: &Model) -> TokenStream {
    let Some(insert) = &model.insert else {
        return TokenStream::new();
    };
    let InsertType {
        ident,
        vis,
        derives,
        docs,
    } = insert;
    let (model_ident, krate) = (&model.ident, &model.krate);
    let left_out = |f: &&crate::attrs::Field| f.tenant || f.default.is_some();
    let kept: Vec<_> = model.fields.iter().filter(|f| !left_out(f)).collect();
    let omitted: Vec<_> = model.fields.iter().filter(left_out).collect();

    let declared = kept.iter().map(|f| {
        let (vis, name, ty) = (&f.vis, &f.ident, &f.ty);
        let written = docs
            .iter()
            .find(|(ident, _)| ident == name)
            .map(|(_, attrs)| attrs.as_slice())
            .unwrap_or_default();
        if written.is_empty() {
            let doc = format!("The column `{}`.", f.column);
            quote!(#[doc = #doc] #vis #name: #ty)
        } else {
            quote!(#(#written)* #vis #name: #ty)
        }
    });
    let moved = kept.iter().map(|f| {
        let name = &f.ident;
        quote!(#name: self.#name)
    });
    let filled = omitted.iter().map(|f| {
        let (name, ty) = (&f.ident, &f.ty);
        quote_spanned!(ty.span()=> #name: <#ty as #krate::Unset>::unset())
    });
    let names = |fields: &[&crate::attrs::Field]| {
        fields
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let defaulted: Vec<_> = omitted.iter().copied().filter(|f| !f.tenant).collect();
    let mut doc = format!(
        "A new [`{model_ident}`] row for `insert` and `insert_many`: `returning()` gives the \
         stored `{model_ident}`."
    );
    if !defaulted.is_empty() {
        doc.push_str(&format!(
            " Leaves out what the database fills: {}.",
            names(&defaulted)
        ));
    }
    if let Some(tenant) = model.tenant() {
        doc.push_str(&format!(
            " Has no tenant field (`{}`): the tenant handle stamps it.",
            tenant.ident
        ));
    }

    quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, #(#derives),*)]
        #vis struct #ident {
            #(#declared,)*
        }

        #[automatically_derived]
        impl #krate::Insertable for #ident {
            type Model = #model_ident;

            fn into_model(self) -> #model_ident {
                #model_ident {
                    #(#moved,)*
                    #(#filled,)*
                }
            }
        }
    }
}
