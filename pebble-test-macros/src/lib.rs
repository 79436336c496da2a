//! `#[pebble::test]`, re-exported by the `pebble` crate under its
//! `testkit` feature: see the documentation there.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{parse_macro_input, Error, FnArg, ItemFn, LitStr, Path};

/// Runs an async test on a tokio runtime with a fresh database; see
/// `pebble::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    parse_macro_input!(args with parser);
    let function = parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    models: Vec<Path>,
    migrations: Option<LitStr>,
    multi_thread: bool,
}

impl Options {
    fn parse(&mut self, meta: syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("models") {
            meta.parse_nested_meta(|model| {
                self.models.push(model.path);
                Ok(())
            })
        } else if meta.path.is_ident("migrations") {
            if self.migrations.is_some() {
                return Err(meta.error("`migrations` is given twice"));
            }
            self.migrations = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("flavor") {
            let flavor: LitStr = meta.value()?.parse()?;
            match flavor.value().as_str() {
                "current_thread" => self.multi_thread = false,
                "multi_thread" => self.multi_thread = true,
                _ => {
                    return Err(Error::new_spanned(
                        flavor,
                        "expected `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`",
                    ))
                }
            }
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[pebble::test] option: expected `models(Model, ...)`, \
                 `migrations = \"dir\"` or `flavor = \"multi_thread\"`",
            ))
        }
    }
}

fn expand(options: Options, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new_spanned(
            sig.fn_token,
            "#[pebble::test] needs an `async fn` (it runs it on a tokio runtime)",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "#[pebble::test] functions cannot be generic",
        ));
    }
    let takes_db = match sig.inputs.len() {
        0 => false,
        1 => {
            if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
                return Err(Error::new_spanned(
                    receiver,
                    "#[pebble::test] cannot take `self`",
                ));
            }
            true
        }
        _ => {
            return Err(Error::new_spanned(
                &sig.inputs,
                "#[pebble::test] functions take at most one argument: the `pebble::Db` of the \
                 test's database",
            ))
        }
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let name = &sig.ident;
    let output = &sig.output;
    let inputs = &sig.inputs;
    let body = &function.block;
    let inner = syn::Ident::new("__pebble_test_body", Span::mixed_site());
    let db = syn::Ident::new("__pebble_db", Span::mixed_site());
    let config = syn::Ident::new("__pebble_config", Span::mixed_site());
    let models = &options.models;
    let multi_thread = options.multi_thread;
    let migrations = options.migrations.map(|dir| {
        quote! {
            {
                let __dir = ::std::path::Path::new(::core::env!("CARGO_MANIFEST_DIR")).join(#dir);
                let __migrations = ::pebble_migrate::Migrations::from_dir(&__dir).unwrap_or_else(
                    |e| ::core::panic!("#[pebble::test]: cannot read the migrations in {}: {e}", __dir.display()),
                );
                let __report = ::pebble_migrate::Fleet::new(#config.clone())
                    .run(&__migrations, ::std::vec![::pebble_migrate::Target::Shared])
                    .await
                    .unwrap_or_else(|e| ::core::panic!("#[pebble::test]: migrating failed: {e}"));
                ::core::assert!(__report.is_ok(), "#[pebble::test]: migrating failed: {:?}", __report);
            }
        }
    });
    let call = if takes_db {
        quote!(#inner(#db).await)
    } else {
        quote!({
            ::core::mem::drop(#db);
            #inner().await
        })
    };
    // Checked outside the `#[test]` function too, which only exists in
    // test builds: a name in `models(...)` that is no model, or a
    // per-tenant model (no table on the test's plain `Db`), fails any build.
    let model_check = (!models.is_empty()).then(|| {
        quote! {
            const _: fn() = || {
                fn __pebble_model<M: ::pebble::SingleTableModel>() {}
                #( __pebble_model::<#models>(); )*
            };
        }
    });
    Ok(quote! {
        #model_check
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            async fn #inner(#inputs) #output #body
            ::pebble::__testkit::run(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                #multi_thread,
                |#db: ::pebble::Db, #config: ::pebble::tokio_postgres::Config| async move {
                    let _ = &#config;
                    #( ::pebble::__testkit::create_table::<#models>(&#db).await; )*
                    #migrations
                    #call
                },
            )
        }
    })
}
