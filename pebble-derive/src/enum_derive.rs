//! `#[derive(Enum)]`: a fieldless enum stored as a native PostgreSQL enum
//! type or as text with a CHECK constraint.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Path};

use crate::ident::{invalid_reason, snake_case};

/// PostgreSQL truncates enum labels beyond 63 bytes.
const MAX_LABEL_BYTES: usize = 63;

struct EnumModel {
    ident: Ident,
    krate: Path,
    /// `None` for a text enum.
    type_name: Option<String>,
    variants: Vec<(Ident, String)>,
}

#[derive(Clone, Copy)]
enum RenameAll {
    Snake,
    ScreamingSnake,
    Kebab,
    Lower,
    Upper,
    Verbatim,
}

impl RenameAll {
    fn parse(lit: &LitStr) -> syn::Result<RenameAll> {
        Ok(match lit.value().as_str() {
            "snake_case" => RenameAll::Snake,
            "SCREAMING_SNAKE_CASE" => RenameAll::ScreamingSnake,
            "kebab-case" => RenameAll::Kebab,
            "lowercase" => RenameAll::Lower,
            "UPPERCASE" => RenameAll::Upper,
            "PascalCase" => RenameAll::Verbatim,
            _ => {
                return Err(syn::Error::new(
                    lit.span(),
                    "unknown rename_all; expected \"snake_case\", \"SCREAMING_SNAKE_CASE\", \
                     \"kebab-case\", \"lowercase\", \"UPPERCASE\" or \"PascalCase\"",
                ))
            }
        })
    }

    fn apply(self, variant: &str) -> String {
        match self {
            RenameAll::Snake => snake_case(variant),
            RenameAll::ScreamingSnake => snake_case(variant).to_uppercase(),
            RenameAll::Kebab => snake_case(variant).replace('_', "-"),
            RenameAll::Lower => variant.to_lowercase(),
            RenameAll::Upper => variant.to_uppercase(),
            RenameAll::Verbatim => variant.to_owned(),
        }
    }
}

fn pebble_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("pebble"))
}

impl EnumModel {
    fn parse(input: &DeriveInput) -> syn::Result<EnumModel> {
        if !input.generics.params.is_empty() {
            return Err(syn::Error::new(
                input.generics.span(),
                "#[derive(Enum)] does not support generic enums",
            ));
        }
        let Data::Enum(data) = &input.data else {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Enum)] only applies to enums with unit variants",
            ));
        };
        let mut type_name: Option<LitStr> = None;
        let mut text = None;
        let mut rename_all = RenameAll::Snake;
        let mut krate = None;
        for attr in pebble_attrs(&input.attrs) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("type_name") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if let Some(reason) = invalid_reason(&lit.value()) {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!("invalid type name: {reason}"),
                        ));
                    }
                    type_name = Some(lit);
                } else if meta.path.is_ident("text") {
                    text = Some(meta.path.span());
                } else if meta.path.is_ident("rename_all") {
                    rename_all = RenameAll::parse(&meta.value()?.parse()?)?;
                } else if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    krate = Some(lit.parse::<Path>()?);
                } else {
                    return Err(meta.error(
                        "unknown pebble attribute on an enum; expected `type_name = \"...\"`, \
                         `text`, `rename_all = \"...\"` or `crate = \"...\"`",
                    ));
                }
                Ok(())
            })?;
        }
        let type_name = match (type_name, text) {
            (Some(lit), Some(_)) => return Err(syn::Error::new(
                lit.span(),
                "an enum is stored either as a native type (`type_name`) or as `text`, not both",
            )),
            (Some(lit), None) => Some(lit.value()),
            (None, Some(_)) => None,
            (None, None) => {
                let name = snake_case(&input.ident.unraw().to_string());
                if let Some(reason) = invalid_reason(&name) {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        format!(
                            "cannot derive a type name: {reason}; set #[pebble(type_name = \"...\")]"
                        ),
                    ));
                }
                Some(name)
            }
        };

        let mut variants: Vec<(Ident, String)> = Vec::with_capacity(data.variants.len());
        for variant in &data.variants {
            if !matches!(variant.fields, Fields::Unit) {
                return Err(syn::Error::new(
                    variant.span(),
                    "#[derive(Enum)] variants cannot carry data",
                ));
            }
            let mut label = rename_all.apply(&variant.ident.unraw().to_string());
            for attr in pebble_attrs(&variant.attrs) {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("rename") {
                        let lit: LitStr = meta.value()?.parse()?;
                        label = lit.value();
                        Ok(())
                    } else {
                        Err(meta.error(
                            "unknown pebble attribute on a variant; expected `rename = \"...\"`",
                        ))
                    }
                })?;
            }
            if label.is_empty() || label.len() > MAX_LABEL_BYTES || label.contains('\0') {
                return Err(syn::Error::new(
                    variant.ident.span(),
                    format!(
                        "label `{label}` must be 1 to {MAX_LABEL_BYTES} bytes without NUL characters"
                    ),
                ));
            }
            if let Some((first, _)) = variants.iter().find(|(_, l)| *l == label) {
                return Err(syn::Error::new(
                    variant.ident.span(),
                    format!("label `{label}` is already used by variant `{first}`"),
                ));
            }
            variants.push((variant.ident.clone(), label));
        }
        if variants.is_empty() {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Enum)] needs at least one variant",
            ));
        }
        Ok(EnumModel {
            ident: input.ident.clone(),
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::pebble)),
            type_name,
            variants,
        })
    }
}

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let model = EnumModel::parse(input)?;
    let EnumModel {
        ident,
        krate,
        type_name,
        variants,
    } = &model;
    let private = quote!(#krate::__private);
    let helpers = quote!(#private::sql_enum);
    let idents: Vec<_> = variants.iter().map(|(i, _)| i).collect();
    let labels: Vec<_> = variants.iter().map(|(_, l)| l).collect();
    let (type_name_expr, sql_type) = match type_name {
        Some(name) => (quote!(#private::Option::Some(#name)), name.clone()),
        None => (quote!(#private::Option::None), "text".to_owned()),
    };

    Ok(quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::SqlEnum for #ident {
                const DEF: #krate::EnumDef = #krate::EnumDef::new(#type_name_expr, &[#(#labels),*]);

                fn label(&self) -> &'static str {
                    match self {
                        #(Self::#idents => #labels,)*
                    }
                }

                fn from_label(label: &str) -> #private::Option<Self> {
                    match label {
                        #(#labels => #private::Option::Some(Self::#idents),)*
                        _ => #private::Option::None,
                    }
                }
            }

            #[automatically_derived]
            impl #krate::SqlType for #ident {
                type Base = Self;
                const SQL_TYPE: &'static str = #sql_type;
                const ENUM: #private::Option<#krate::EnumDef> =
                    #private::Option::Some(<Self as #krate::SqlEnum>::DEF);

                fn into_sql(self) -> #private::Value {
                    #helpers::into_sql(&self)
                }

                fn null() -> #private::Value {
                    #helpers::null::<Self>()
                }

                fn array(values: #private::Vec<#private::Value>) -> #private::Value {
                    #helpers::array::<Self>(values)
                }
            }

            #[automatically_derived]
            impl<'a> #private::FromSql<'a> for #ident {
                fn from_sql(
                    _: &#private::Type,
                    raw: &'a [u8],
                ) -> #private::Result<Self, #private::Box<dyn ::std::error::Error + Sync + Send>> {
                    #helpers::from_sql(raw)
                }

                fn accepts(ty: &#private::Type) -> bool {
                    #helpers::accepts::<Self>(ty)
                }
            }

            #[automatically_derived]
            impl #private::ToSql for #ident {
                fn to_sql(
                    &self,
                    _: &#private::Type,
                    out: &mut #private::BytesMut,
                ) -> #private::Result<#private::IsNull, #private::Box<dyn ::std::error::Error + Sync + Send>> {
                    #helpers::to_sql(self, out);
                    #private::Result::Ok(#private::IsNull::No)
                }

                fn accepts(ty: &#private::Type) -> bool {
                    #helpers::accepts::<Self>(ty)
                }

                #private::to_sql_checked!();
            }
        };
    })
}
