//! Schema verification: each model compared with its live table, every
//! mismatch reported by model and column, so an application can refuse to
//! start on a drifted schema instead of failing on its first query.

use std::fmt;

use tokio_postgres::types::Type;

use crate::conn::table_check::{compatible, parse_record};
use crate::error::{Error, Result};
use crate::handle::database::TenantDatabase;
use crate::handle::db::Db;
use crate::model::{ColumnDef, GlobalModel, Model, SingleTableModel, Target};

/// A model to verify, from [`ModelSchema::of`]; see [`Db::verify_all`]
/// and [`verify!`](crate::verify!).
#[derive(Clone, Copy, Debug)]
pub struct ModelSchema {
    target: Target,
}

impl ModelSchema {
    /// The schema `M` expects.
    pub fn of<M: Model>() -> ModelSchema {
        ModelSchema {
            target: Target::of::<M>(),
        }
    }
}

/// What [`Db::verify`] and [`Db::verify_all`] found: every mismatch
/// between the models and their tables (empty when they agree).
///
/// `Display` prints one line per mismatch; [`SchemaReport::check`] turns
/// a non-empty report into [`Error::SchemaMismatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    mismatches: Vec<Mismatch>,
}

impl SchemaReport {
    /// Whether every model matches its table.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// Every mismatch, by model in the order given, then by column.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.mismatches
    }

    /// The mismatches of one model (by its type name, `"Task"`).
    pub fn of_model<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Mismatch> + 'a {
        self.mismatches.iter().filter(move |m| m.model == model)
    }

    /// `Ok(())` if every model matches, [`Error::SchemaMismatch`] with
    /// this report otherwise: what a service calls at startup.
    pub fn check(self) -> Result<()> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(Error::SchemaMismatch {
                report: Box::new(self),
            })
        }
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "every model matches its table");
        }
        for (i, mismatch) in self.mismatches.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{mismatch}")?;
        }
        Ok(())
    }
}

/// One difference between a model and its table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mismatch {
    /// The model's type name.
    pub model: &'static str,
    /// Its table.
    pub table: &'static str,
    /// The column concerned, if the mismatch is about one.
    pub column: Option<String>,
    /// What differs.
    pub kind: MismatchKind,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(
                f,
                "{} (`{}.{column}`): {}",
                self.model, self.table, self.kind
            ),
            None => write!(f, "{} (`{}`): {}", self.model, self.table, self.kind),
        }
    }
}

/// What differs between a model and its table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchKind {
    /// The table does not exist.
    MissingTable,
    /// The model has a field for a column the table lacks.
    MissingColumn {
        /// The type the field maps to.
        expected_type: &'static str,
    },
    /// The table has a column the model does not map. A NOT NULL column
    /// without a default makes every insert through the model fail.
    ExtraColumn {
        /// Its type (`format_type`).
        column_type: String,
        /// Whether it accepts NULL.
        nullable: bool,
        /// Whether the database fills it (a default, identity or generated column).
        has_default: bool,
    },
    /// The column's type cannot hold the field's.
    TypeMismatch {
        /// The type the field maps to.
        expected: &'static str,
        /// The column's type (`format_type`).
        found: String,
    },
    /// The field is an `Option` and the column NOT NULL, or the reverse
    /// (reading a NULL into a non-`Option` field fails).
    Nullability {
        /// Whether the model's field is an `Option`.
        model_nullable: bool,
        /// Whether the column accepts NULL.
        column_nullable: bool,
    },
    /// The field is `#[pebble(default)]` but the column has no default:
    /// an insert writing `DEFAULT` for it would store NULL.
    MissingDefault {
        /// The clause the model declares (`DEFAULT now()`).
        expected: &'static str,
    },
    /// The primary key columns differ.
    PrimaryKey {
        /// The model's `#[pebble(primary_key)]` columns, in order.
        expected: Vec<&'static str>,
        /// The table's primary key columns, in order (empty: none).
        found: Vec<String>,
    },
    /// No index leads with the tenant column: every tenant's statement
    /// would scan the whole table.
    MissingTenantIndex,
    /// A `#[pebble(unique)]` column has no unique index over exactly it
    /// (and the tenant column, on a tenant model).
    MissingUniqueIndex,
    /// The table's record (its comment, written by `create_table`) names
    /// another tenant column than the model.
    TenantRecord {
        /// The model's tenant column, if any.
        declared: Option<&'static str>,
        /// The recorded one, if any.
        recorded: Option<String>,
    },
    /// The tenant column compares distinct keys as equal (`citext`,
    /// `char(n)`, a nondeterministic collation).
    UnsafeTenantColumn {
        /// The column's type, with its collation where that is the cause.
        column_type: String,
    },
    /// A native enum type's labels differ from the Rust enum's.
    EnumLabels {
        /// The Rust enum's labels, in order.
        expected: Vec<&'static str>,
        /// The type's labels, in order.
        found: Vec<String>,
    },
}

impl fmt::Display for MismatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MismatchKind::MissingTable => write!(f, "the table does not exist"),
            MismatchKind::MissingColumn { expected_type } => {
                write!(f, "missing column (the model expects {expected_type})")
            }
            MismatchKind::ExtraColumn {
                column_type,
                nullable,
                has_default,
            } => {
                write!(f, "column not in the model ({column_type}")?;
                if !nullable && !has_default {
                    write!(f, ", NOT NULL without a default: inserts will fail")?;
                }
                write!(f, ")")
            }
            MismatchKind::TypeMismatch { expected, found } => {
                write!(f, "the model expects {expected}, the column is {found}")
            }
            MismatchKind::Nullability {
                model_nullable: true,
                ..
            } => write!(f, "the field is an Option but the column is NOT NULL"),
            MismatchKind::Nullability { .. } => {
                write!(f, "the column accepts NULL but the field is not an Option")
            }
            MismatchKind::MissingDefault { expected } => write!(
                f,
                "the model expects a database default ({expected}), the column has none"
            ),
            MismatchKind::PrimaryKey { expected, found } => write!(
                f,
                "primary key ({}) expected, the table has ({})",
                expected.join(", "),
                found.join(", ")
            ),
            MismatchKind::MissingTenantIndex => {
                write!(f, "no index leads with the tenant column")
            }
            MismatchKind::MissingUniqueIndex => write!(f, "no unique index for this column"),
            MismatchKind::TenantRecord { declared, recorded } => write!(
                f,
                "the table records tenant column {}, the model declares {}",
                describe(recorded.as_deref()),
                describe(*declared)
            ),
            MismatchKind::UnsafeTenantColumn { column_type } => write!(
                f,
                "tenant column of type {column_type} compares distinct keys as equal"
            ),
            MismatchKind::EnumLabels { expected, found } => write!(
                f,
                "enum labels ({}) expected, the type has ({})",
                expected.join(", "),
                found.join(", ")
            ),
        }
    }
}

fn describe(column: Option<&str>) -> String {
    match column {
        Some(column) => format!("`{column}`"),
        None => "none".to_owned(),
    }
}

/// Verifies models against their tables, listing every mismatch:
/// `pebble::verify!(db, [Task, Project])` is
/// `db.verify_all(&[ModelSchema::of::<Task>(), ModelSchema::of::<Project>()])`.
///
/// ```no_run
/// # use pebble::{Db, Model};
/// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64 }
/// # #[derive(Model)] #[pebble(shared)] struct Plan { #[pebble(primary_key)] code: String }
/// # async fn demo(db: Db) -> pebble::Result<()> {
/// let report = pebble::verify!(db, [Task, Plan]).await?;
/// if !report.is_ok() {
///     eprintln!("{report}");
/// }
/// report.check()?; // refuse to start on a drifted schema
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! verify {
    ($db:expr, [$($model:ty),+ $(,)?]) => {
        $db.verify_all(&[$($crate::ModelSchema::of::<$model>()),+])
    };
}

impl Db {
    /// Compares `M` with its live table; see [`Db::verify_all`]. `M` is a
    /// model with a `#[tenant_id]` field or a shared one: a per-tenant
    /// model's table is verified through the tenant's handle
    /// ([`TenantDatabase::verify`]).
    pub async fn verify<M: SingleTableModel>(&self) -> Result<SchemaReport> {
        self.verify_models(&[ModelSchema::of::<M>()]).await
    }

    /// Compares each model with its live table: that the table exists;
    /// missing and extra columns; each column's type (aliases such as
    /// `int4`/`integer` are the same type; `varchar` holds a `String`) and
    /// nullability; the primary key; an index leading with the tenant
    /// column, the unique indexes of `#[pebble(unique)]` columns, the
    /// table's tenant record and a tenant column that compares exactly;
    /// native enum labels. Every mismatch is reported, not only the first.
    ///
    /// An `Err` only when the catalog could not be read, or when a model
    /// is `#[pebble(per_tenant)]` ([`Error::PerTenantModelThroughDb`]: its
    /// table is in each tenant's database or schema; verify it through
    /// [`TenantDatabase::verify_all`]); a drifted schema is an `Ok` report
    /// for which [`SchemaReport::is_ok`] is false.
    pub async fn verify_all(&self, models: &[ModelSchema]) -> Result<SchemaReport> {
        if let Some(model) = models.iter().find(|m| m.target.per_tenant) {
            return Err(Error::PerTenantModelThroughDb {
                model: model.target.model(),
            });
        }
        self.verify_models(models).await
    }

    /// [`Db::verify_all`] for any model, on the database this pool is on.
    async fn verify_models(&self, models: &[ModelSchema]) -> Result<SchemaReport> {
        let client = self.pool().get().await?;
        let mut report = SchemaReport::default();
        for model in models {
            let target = &model.target;
            let quoted = format!("\"{}\"", target.table.replace('"', "\"\""));
            let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
                [(&quoted, Type::TEXT)];
            // Unnamed statements: valid in both statement modes and under PgBouncer.
            let table = client.query_typed(TABLE_QUERY, &params).await?;
            let exists = table.first().map(|r| r.try_get::<_, bool>(0)).transpose()?;
            if exists != Some(true) {
                report.push(target, None, MismatchKind::MissingTable);
                continue;
            }
            let comment: Option<String> = table[0].try_get(1)?;
            let mut columns = Vec::new();
            for row in client.query_typed(COLUMNS_QUERY, &params).await? {
                columns.push(LiveColumn {
                    name: row.try_get(0)?,
                    display: row.try_get(1)?,
                    typname: row.try_get(2)?,
                    not_null: row.try_get(3)?,
                    has_default: row.try_get(4)?,
                    enum_labels: row.try_get(5)?,
                    nondeterministic_collation: row.try_get(6)?,
                    is_enum: row.try_get(7)?,
                });
            }
            let mut indexes = Vec::new();
            for row in client.query_typed(INDEXES_QUERY, &params).await? {
                indexes.push(LiveIndex {
                    primary: row.try_get(0)?,
                    unique: row.try_get(1)?,
                    columns: row.try_get(2)?,
                });
            }
            compare(target, comment.as_deref(), &columns, &indexes, &mut report);
        }
        Ok(report)
    }
}

const TABLE_QUERY: &str = "SELECT to_regclass($1) IS NOT NULL, \
     pg_catalog.obj_description(to_regclass($1), 'pg_class')";

const COLUMNS_QUERY: &str = "\
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname::text, \
       a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', \
       CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e \
            WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END, \
       CASE WHEN co.collisdeterministic THEN NULL ELSE co.collname::text END, \
       t.typtype = 'e' \
FROM pg_catalog.pg_attribute a \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

// Partial and expression indexes do not cover every row or column, so
// they do not count.
const INDEXES_QUERY: &str = "\
SELECT i.indisprimary, i.indisunique, \
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             ORDER BY k.ord) \
FROM pg_catalog.pg_index i \
WHERE i.indrelid = to_regclass($1) AND i.indpred IS NULL AND i.indexprs IS NULL";

struct LiveColumn {
    name: String,
    display: String,
    typname: String,
    not_null: bool,
    has_default: bool,
    enum_labels: Option<Vec<String>>,
    nondeterministic_collation: Option<String>,
    is_enum: bool,
}

struct LiveIndex {
    primary: bool,
    unique: bool,
    columns: Vec<String>,
}

impl SchemaReport {
    fn push(&mut self, target: &Target, column: Option<&str>, kind: MismatchKind) {
        self.mismatches.push(Mismatch {
            model: target.model(),
            table: target.table,
            column: column.map(str::to_owned),
            kind,
        });
    }
}

/// Adds every difference between `target` and the table described by the
/// other arguments to `report`.
fn compare(
    target: &Target,
    comment: Option<&str>,
    columns: &[LiveColumn],
    indexes: &[LiveIndex],
    report: &mut SchemaReport,
) {
    let tenant = target.tenant_column();
    if let Some(Some(recorded)) = comment.map(parse_record) {
        if recorded != tenant.map(|c| c.name) {
            report.push(
                target,
                None,
                MismatchKind::TenantRecord {
                    declared: tenant.map(|c| c.name),
                    recorded: recorded.map(str::to_owned),
                },
            );
        }
    }

    for field in target.columns {
        let Some(live) = columns.iter().find(|c| c.name == field.name) else {
            report.push(
                target,
                Some(field.name),
                MismatchKind::MissingColumn {
                    expected_type: field.sql_type,
                },
            );
            continue;
        };
        compare_column(target, field, live, report);
    }
    for live in columns {
        if !target.columns.iter().any(|c| c.name == live.name) {
            report.push(
                target,
                Some(&live.name),
                MismatchKind::ExtraColumn {
                    column_type: live.display.clone(),
                    nullable: !live.not_null,
                    has_default: live.has_default,
                },
            );
        }
    }

    let expected: Vec<&'static str> = target
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name)
        .collect();
    let found: Vec<String> = indexes
        .iter()
        .find(|i| i.primary)
        .map(|i| i.columns.clone())
        .unwrap_or_default();
    if !same_columns(&expected, &found) {
        report.push(target, None, MismatchKind::PrimaryKey { expected, found });
    }

    if let Some(tenant) = tenant {
        let led = indexes
            .iter()
            .any(|i| i.columns.first().is_some_and(|c| c == tenant.name));
        if !led {
            report.push(target, Some(tenant.name), MismatchKind::MissingTenantIndex);
        }
    }
    for field in target.columns.iter().filter(|c| c.unique) {
        let mut wanted: Vec<&str> = tenant.map(|t| t.name).into_iter().collect();
        wanted.push(field.name);
        let covered = indexes.iter().any(|i| {
            i.unique
                && i.columns.len() == wanted.len()
                && wanted.iter().all(|w| i.columns.iter().any(|c| c == w))
        });
        if !covered {
            report.push(target, Some(field.name), MismatchKind::MissingUniqueIndex);
        }
    }
}

fn compare_column(
    target: &Target,
    field: &ColumnDef,
    live: &LiveColumn,
    report: &mut SchemaReport,
) {
    if !type_matches(field, live) {
        report.push(
            target,
            Some(field.name),
            MismatchKind::TypeMismatch {
                expected: field.sql_type,
                found: live.display.clone(),
            },
        );
    } else if let (Some(def), Some(found)) = (field.enum_def, &live.enum_labels) {
        if def.labels.iter().ne(found.iter()) {
            report.push(
                target,
                Some(field.name),
                MismatchKind::EnumLabels {
                    expected: def.labels.to_vec(),
                    found: found.clone(),
                },
            );
        }
    }
    if field.nullable == live.not_null {
        report.push(
            target,
            Some(field.name),
            MismatchKind::Nullability {
                model_nullable: field.nullable,
                column_nullable: !live.not_null,
            },
        );
    }
    if let (Some(expected), false) = (field.default, live.has_default) {
        report.push(
            target,
            Some(field.name),
            MismatchKind::MissingDefault { expected },
        );
    }
    if field.tenant {
        let cause = if matches!(live.typname.as_str(), "citext" | "bpchar") {
            Some(live.display.clone())
        } else {
            live.nondeterministic_collation
                .as_ref()
                .map(|collation| format!("{} COLLATE \"{collation}\"", live.display))
        };
        if let Some(column_type) = cause {
            report.push(
                target,
                Some(field.name),
                MismatchKind::UnsafeTenantColumn { column_type },
            );
        }
    }
}

/// Whether the column's type holds the field's: the same type under any of
/// its names, a text type for a `String`, the enum's own type for a native
/// enum.
fn type_matches(field: &ColumnDef, live: &LiveColumn) -> bool {
    if let Some(def) = field.enum_def {
        return match def.type_name {
            Some(name) => live.is_enum && live.typname == name,
            None => compatible("text", &live.typname),
        };
    }
    let declared = normalise(field.sql_type);
    if BUILT_IN.contains(&declared.as_str()) {
        return compatible(&declared, &live.typname);
    }
    // A custom `SqlType`: the same type, by its display or catalog name.
    declared == normalise(&live.display) || declared == normalise(&live.typname)
}

/// The type names `table_check::compatible` knows.
const BUILT_IN: &[&str] = &[
    "uuid",
    "text",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double precision",
    "boolean",
    "bytea",
    "timestamptz",
    "date",
    "jsonb",
];

/// One spelling per type: lowercase, single spaces, common aliases mapped
/// to the names `format_type` uses.
fn normalise(sql_type: &str) -> String {
    let lower = sql_type
        .trim()
        .trim_matches('"')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let alias = match lower.as_str() {
        "int" | "int4" => "integer",
        "int2" => "smallint",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        "character varying" => "varchar",
        "decimal" => "numeric",
        other => other,
    };
    alias.to_owned()
}

/// The same column names, in any order (the key enforces the same thing).
fn same_columns(expected: &[&str], found: &[String]) -> bool {
    expected.len() == found.len() && expected.iter().all(|e| found.iter().any(|f| f == e))
}

impl TenantDatabase {
    /// Compares `M` with its table in this tenant's database; see
    /// [`Db::verify_all`].
    pub async fn verify<M: GlobalModel>(&self) -> Result<SchemaReport> {
        self.verify_all(&[ModelSchema::of::<M>()]).await
    }

    /// Compares each model with its table in this tenant's database, as
    /// [`Db::verify_all`] does; per-tenant models included.
    pub async fn verify_all(&self, models: &[ModelSchema]) -> Result<SchemaReport> {
        self.pool_db().verify_models(models).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalise() {
        assert_eq!(normalise("INT4"), "integer");
        assert_eq!(normalise("timestamp  with time zone"), "timestamptz");
        assert_eq!(normalise("\"numeric(10,2)\""), "numeric(10,2)");
        assert_eq!(normalise("double precision"), "double precision");
    }

    #[test]
    fn an_empty_report_is_ok() {
        let report = SchemaReport::default();
        assert!(report.is_ok());
        assert_eq!(report.to_string(), "every model matches its table");
        assert!(report.check().is_ok());
    }
}
