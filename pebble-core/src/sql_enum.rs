//! Rust enums as columns: a native PostgreSQL enum type, or text limited
//! by a CHECK constraint. `#[derive(pebble::Enum)]` implements [`SqlEnum`]
//! and [`SqlType`](crate::SqlType) with the helpers below.

use std::error::Error as StdError;
use std::fmt;

use postgres_types::{Kind, Type};
use sea_query::{ArrayType, Value};

/// How an enum is stored: the metadata `create_table` and `verify` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnumDef {
    /// The native PostgreSQL enum type (`task_status`), or `None` when the
    /// enum is stored as `text` with a CHECK constraint.
    pub type_name: Option<&'static str>,
    /// Every label, in declaration order (the order of a native type).
    pub labels: &'static [&'static str],
}

impl EnumDef {
    /// Used by the derive.
    #[doc(hidden)]
    pub const fn new(type_name: Option<&'static str>, labels: &'static [&'static str]) -> Self {
        EnumDef { type_name, labels }
    }
}

/// A fieldless Rust enum stored as one of its labels. Implement it with
/// `#[derive(pebble::Enum)]`.
///
/// ```
/// #[derive(pebble::Enum, Debug, Clone, Copy, PartialEq)]
/// #[pebble(type_name = "task_status")]
/// enum Status {
///     Todo,
///     InProgress,
///     #[pebble(rename = "finished")]
///     Done,
/// }
///
/// use pebble::SqlEnum;
/// assert_eq!(Status::InProgress.label(), "in_progress");
/// assert_eq!(Status::from_label("finished"), Some(Status::Done));
/// assert_eq!(Status::from_label("nope"), None);
/// assert_eq!(Status::DEF.type_name, Some("task_status"));
/// ```
pub trait SqlEnum: Sized + 'static {
    /// How the enum is stored.
    const DEF: EnumDef;

    /// This variant's label.
    fn label(&self) -> &'static str;

    /// The variant with `label`, if any.
    fn from_label(label: &str) -> Option<Self>;
}

/// A label read from the database that names no variant.
#[derive(Debug)]
struct UnknownLabel {
    label: String,
    type_name: &'static str,
    labels: &'static [&'static str],
}

impl fmt::Display for UnknownLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a label of {} (known: {})",
            self.label,
            self.type_name,
            self.labels.join(", ")
        )
    }
}

impl StdError for UnknownLabel {}

/// The helpers the derive's `SqlType`, `FromSql` and `ToSql` impls call.
#[doc(hidden)]
pub mod derived {
    use super::*;

    /// A value of `E` as a bind parameter: a native enum is cast to its
    /// type in the statement (`$1::"task_status"`), so it binds in both
    /// statement modes; a text enum is plain text.
    pub fn into_sql<E: SqlEnum>(value: &E) -> Value {
        let label = value.label();
        match E::DEF.type_name {
            Some(type_name) => {
                Value::Enum(sea_query::OptionEnum::Some(Box::new(sea_query::Enum {
                    type_name: type_name.into(),
                    value: label.into(),
                })))
            }
            None => Value::String(Some(label.to_owned())),
        }
    }

    /// A NULL of `E`'s column type.
    pub fn null<E: SqlEnum>() -> Value {
        match E::DEF.type_name {
            Some(type_name) => Value::Enum(sea_query::OptionEnum::None(type_name.into())),
            None => Value::String(None),
        }
    }

    /// Values of `E` as one array parameter, for `= ANY($n)`.
    pub fn array<E: SqlEnum>(values: Vec<Value>) -> Value {
        let element = match E::DEF.type_name {
            Some(type_name) => ArrayType::Enum(Box::new(type_name.into())),
            None => ArrayType::String,
        };
        Value::Array(element, Some(Box::new(values)))
    }

    /// Whether a column of type `ty` can hold `E`: its own native type
    /// (found by name, whatever its OID in this database), or text.
    pub fn accepts<E: SqlEnum>(ty: &Type) -> bool {
        let text = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        );
        let own_enum = matches!(ty.kind(), Kind::Enum(_))
            && E::DEF.type_name.is_some_and(|name| name == ty.name());
        text || own_enum
    }

    /// Decodes a label (enums and text share the text wire format).
    pub fn from_sql<E: SqlEnum>(raw: &[u8]) -> Result<E, Box<dyn StdError + Sync + Send>> {
        let label = std::str::from_utf8(raw)?;
        E::from_label(label).ok_or_else(|| {
            Box::new(UnknownLabel {
                label: label.to_owned(),
                type_name: E::DEF.type_name.unwrap_or("this enum"),
                labels: E::DEF.labels,
            }) as Box<dyn StdError + Sync + Send>
        })
    }

    /// Encodes a label.
    pub fn to_sql<E: SqlEnum>(value: &E, out: &mut postgres_types::private::BytesMut) {
        out.extend_from_slice(value.label().as_bytes());
    }
}

/// The statement that creates `def`'s native type unless it exists.
/// Concurrent creators race on `pg_type`'s unique index, so that error is
/// swallowed too: whoever loses finds the type made by the winner.
pub(crate) fn create_type_sql(def: &EnumDef) -> Option<String> {
    let type_name = def.type_name?;
    let labels: Vec<String> = def.labels.iter().map(|l| quote_literal(l)).collect();
    Some(format!(
        "DO $pebble$ BEGIN CREATE TYPE {} AS ENUM ({}); \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $pebble$",
        quote_ident(type_name),
        labels.join(", ")
    ))
}

/// The CHECK constraint of a text enum column.
pub(crate) fn check_clause(column: &str, def: &EnumDef) -> String {
    let labels: Vec<String> = def.labels.iter().map(|l| quote_literal(l)).collect();
    format!("CHECK ({} IN ({}))", quote_ident(column), labels.join(", "))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: EnumDef = EnumDef {
        type_name: Some("task_status"),
        labels: &["todo", "it's done"],
    };

    #[test]
    fn ddl_quotes_labels() {
        assert_eq!(
            create_type_sql(&DEF).as_deref(),
            Some(
                "DO $pebble$ BEGIN CREATE TYPE \"task_status\" AS ENUM ('todo', 'it''s done'); \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $pebble$"
            )
        );
        assert_eq!(
            check_clause("status", &DEF),
            "CHECK (\"status\" IN ('todo', 'it''s done'))"
        );
        let text = EnumDef {
            type_name: None,
            ..DEF
        };
        assert_eq!(create_type_sql(&text), None);
    }
}
