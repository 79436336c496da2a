//! `embed_migrations!("dir")`: the SQL files of a directory, compiled in.
//! Use it through `pebble_migrate::embed_migrations!`.

use std::path::PathBuf;

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, LitStr};

/// Expands to `::pebble_migrate::Migrations::from_files([(file, include_str!(path)), ...])`
/// over the `*.sql` files of `dir` (relative to `CARGO_MANIFEST_DIR`).
/// `include_str!` makes cargo rebuild when a file changes; a bad file name
/// or an unreadable directory is a compile error.
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let dir = parse_macro_input!(input as LitStr);
    match files(&dir.value()) {
        Ok(files) => {
            let names = files.iter().map(|(name, _)| name);
            let paths = files.iter().map(|(_, path)| path);
            quote! {
                ::pebble_migrate::Migrations::from_files([
                    #( (#names, include_str!(#paths)) ),*
                ])
            }
            .into()
        }
        Err(message) => syn::Error::new(dir.span(), message)
            .to_compile_error()
            .into(),
    }
}

fn files(dir: &str) -> Result<Vec<(String, String)>, String> {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| "CARGO_MANIFEST_DIR is not set".to_owned())?;
    let dir = PathBuf::from(root).join(dir);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} is not a UTF-8 file name", path.display()))?
            .to_owned();
        let valid = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.split_once('_'))
            .is_some_and(|(digits, rest)| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            });
        if !valid {
            return Err(format!("migration file {name} is not named NNNN_name.sql"));
        }
        files.push((name, path.display().to_string()));
    }
    files.sort();
    Ok(files)
}
