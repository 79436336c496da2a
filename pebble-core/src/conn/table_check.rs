//! The first statement of a model on a pool checks the model against its
//! live table, once, and the result is cached: the table's recorded tenant
//! column (or its record that it has none) must be the model's, the tenant
//! column must compare keys exactly, and each field's type must match its
//! column's. A mismatch is refused with an error naming the model, the
//! table and the column, before the statement is sent.
//!
//! `create_table` writes the record as the table's comment (see
//! [`record_comment`]). Tables pebble did not create carry no record: their
//! tenant column is trusted (their types are still checked).

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustc_hash::FxBuildHasher;

use super::client::PooledClient;

use crate::error::{Error, Result};
use crate::ident::quote;
use crate::model::Target;

use super::send::StatementMode;
use tokio_postgres::types::Type;

/// The comment prefix that marks a table's record.
const RECORD_PREFIX: &str = "pebble: ";
const NO_TENANT: &str = "pebble: no tenant column";
const TENANT_PREFIX: &str = "pebble: tenant column ";

/// The table comment `create_table` writes: which column holds the tenant.
pub(crate) fn record_comment(tenant_column: Option<&str>) -> String {
    match tenant_column {
        Some(column) => format!("{TENANT_PREFIX}{column}"),
        None => NO_TENANT.to_owned(),
    }
}

/// The tenant column a table comment records: `Some(Some(col))`,
/// `Some(None)` for a table recorded as having none, `None` for no record.
pub(crate) fn parse_record(comment: &str) -> Option<Option<&str>> {
    let comment = comment.trim_end();
    if comment == NO_TENANT {
        return Some(None);
    }
    match comment.strip_prefix(TENANT_PREFIX) {
        Some(column) => Some(Some(column)),
        None => {
            if comment.starts_with(RECORD_PREFIX) {
                tracing::warn!(target: "pebble::sql", comment, "unrecognised pebble table record");
            }
            None
        }
    }
}

/// The models already checked against their tables on one pool, per
/// schema: under schema handles each tenant's table is its own (a tenant
/// migrated behind the others has its own columns), so passing in one
/// schema says nothing of another. `None` is the connection's default
/// `search_path`.
pub(crate) struct TableChecks {
    passed: RwLock<Passed>,
    /// Names this value in each thread's [`SEEN`]; never reused.
    id: u64,
}

impl Default for TableChecks {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        TableChecks {
            passed: RwLock::default(),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Entries per thread in [`SEEN`]: a full one is emptied.
const SEEN_CAPACITY: usize = 1024;

thread_local! {
    /// The (checks, model) pairs this thread saw pass on the default
    /// `search_path`, in front of the shared lock: a pass there is never
    /// taken back, so a copy never goes stale, and a hit writes no cache
    /// line another thread writes (the lock's did, on every statement).
    static SEEN: RefCell<HashSet<(u64, TypeId), FxBuildHasher>> = RefCell::default();
}

/// Looked up on every statement: FxHash, and a schema looked up by `&str`,
/// so that a lookup neither hashes with SipHash nor clones the schema's
/// `Arc` (a reference count every task of the pool would write).
#[derive(Default)]
struct Passed {
    default_path: HashSet<TypeId, FxBuildHasher>,
    schemas: HashMap<TypeId, HashSet<Arc<str>, FxBuildHasher>, FxBuildHasher>,
}

impl Passed {
    fn contains(&self, model: TypeId, schema: Option<&str>) -> bool {
        match schema {
            None => self.default_path.contains(&model),
            Some(schema) => self
                .schemas
                .get(&model)
                .is_some_and(|schemas| schemas.contains(schema)),
        }
    }

    fn insert(&mut self, model: TypeId, schema: Option<&Arc<str>>) {
        match schema {
            None => {
                self.default_path.insert(model);
            }
            Some(schema) => {
                self.schemas
                    .entry(model)
                    .or_default()
                    .insert(Arc::clone(schema));
            }
        }
    }
}

impl TableChecks {
    /// Whether `target` passed its check in `schema` before: no statement
    /// needs sending. The hot path, so it is not `async`: a statement's
    /// future does not carry [`TableChecks::ensure`]'s state when every
    /// model passed.
    pub(crate) fn has_passed(&self, target: &Target, schema: Option<&str>) -> bool {
        let seen = (self.id, target.type_id);
        if schema.is_none() && SEEN.try_with(|s| s.borrow().contains(&seen)) == Ok(true) {
            return true;
        }
        let passed = self
            .passed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(target.type_id, schema);
        // Passes in a schema are not copied: `forget_schema` takes them back.
        if passed && schema.is_none() {
            let _ = SEEN.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.len() >= SEEN_CAPACITY {
                    s.clear();
                }
                s.insert(seen);
            });
        }
        passed
    }

    /// Checks `target` against its table through `client`, unless it passed
    /// before. Failures are not cached: after the table is fixed, the next
    /// statement passes.
    pub(crate) async fn ensure(
        &self,
        client: &PooledClient,
        mode: StatementMode,
        target: &Target,
        schema: Option<&Arc<str>>,
    ) -> Result<()> {
        if self.has_passed(target, schema.map(|s| &**s)) {
            return Ok(());
        }
        let name = match schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(target.table)),
            None => quote(target.table),
        };
        if let Some(table) = LiveTable::load(client, mode, &name).await? {
            table.check(target)?;
            // A missing table is not cached: the statement reports it, and
            // once the table exists its first statement checks it.
            self.passed
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(target.type_id, schema);
        }
        Ok(())
    }

    /// Forgets what passed in `schema` (a dropped tenant's schema may be
    /// created again with other tables).
    pub(crate) fn forget_schema(&self, schema: &str) {
        let mut passed = self.passed.write().unwrap_or_else(|e| e.into_inner());
        for schemas in passed.schemas.values_mut() {
            schemas.remove(schema);
        }
    }
}

/// What the catalog says about a table.
struct LiveTable {
    comment: Option<String>,
    columns: Vec<LiveColumn>,
}

struct LiveColumn {
    name: String,
    /// `format_type`: `bigint`, `character(8)`, ...
    display: String,
    /// `pg_type.typname`: `int8`, `bpchar`, `citext`, ...
    typname: String,
    /// `None` when the column's collation is deterministic (or it has none).
    nondeterministic_collation: Option<String>,
}

const CATALOG_QUERY: &str = "\
SELECT obj_description(c.oid, 'pg_class'), a.attname::text, \
       format_type(a.atttypid, a.atttypmod), t.typname::text, \
       CASE WHEN co.collisdeterministic THEN NULL ELSE co.collname::text END \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
WHERE c.oid = to_regclass($1)";

impl LiveTable {
    /// `quoted`: the table's quoted, possibly schema-qualified name.
    async fn load(
        client: &PooledClient,
        mode: StatementMode,
        quoted: &str,
    ) -> Result<Option<LiveTable>> {
        let rows = match mode {
            StatementMode::Prepared => {
                let query = client.prepare_cached(CATALOG_QUERY).await?;
                client.query(&query, &[&quoted]).await?
            }
            StatementMode::Unnamed => {
                client
                    .query_typed(CATALOG_QUERY, &[(&quoted, Type::TEXT)])
                    .await?
            }
        };
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let comment: Option<String> = first.try_get(0)?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in &rows {
            columns.push(LiveColumn {
                name: row.try_get(1)?,
                display: row.try_get(2)?,
                typname: row.try_get(3)?,
                nondeterministic_collation: row.try_get(4)?,
            });
        }
        Ok(Some(LiveTable { comment, columns }))
    }

    fn column(&self, name: &str) -> Option<&LiveColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The recorded tenant column (see [`parse_record`]).
    fn recorded_tenant(&self) -> Option<Option<&str>> {
        parse_record(self.comment.as_deref()?)
    }

    fn check(&self, target: &Target) -> Result<()> {
        let declared = target.tenant_column();
        if let Some(recorded) = self.recorded_tenant() {
            if declared.map(|c| c.name) != recorded {
                return Err(Error::TenantColumnMismatch {
                    model: target.model(),
                    table: target.table,
                    declared: describe(declared.map(|c| c.name)),
                    recorded: describe(recorded),
                });
            }
        }
        if let Some(tenant) = declared {
            if let Some(live) = self.column(tenant.name) {
                live.check_tenant_semantics(target.table, tenant.name)?;
            }
        }
        for field in target.columns {
            let Some(live) = self.column(field.name) else {
                continue; // the server names a missing column itself
            };
            if !compatible(field.sql_type, &live.typname) {
                return Err(Error::ColumnTypeMismatch {
                    model: target.model(),
                    table: target.table,
                    column: field.name,
                    field_type: field.sql_type,
                    column_type: live.display.clone(),
                });
            }
        }
        Ok(())
    }
}

impl LiveColumn {
    /// Refuses a tenant column under which distinct keys compare equal.
    fn check_tenant_semantics(&self, table: &'static str, column: &'static str) -> Result<()> {
        let cause = if matches!(self.typname.as_str(), "citext" | "bpchar") {
            Some(self.display.clone())
        } else {
            self.nondeterministic_collation
                .as_ref()
                .map(|collation| format!("{} COLLATE \"{collation}\"", self.display))
        };
        match cause {
            Some(column_type) => Err(Error::UnsafeTenantColumn {
                table,
                column,
                column_type,
            }),
            None => Ok(()),
        }
    }
}

fn describe(tenant_column: Option<&str>) -> String {
    match tenant_column {
        Some(column) => format!("tenant column `{column}`"),
        None => "no tenant column".to_owned(),
    }
}

/// Whether a field declared as `sql_type` (pebble's built-in types) can be
/// sent to and read from a column of type `typname` in binary format.
/// Types pebble does not know (a custom `SqlType`) are not checked.
pub(crate) fn compatible(sql_type: &str, typname: &str) -> bool {
    let accepted: &[&str] = match sql_type {
        "uuid" => &["uuid"],
        "text" => &["text", "varchar", "bpchar", "name", "citext"],
        "smallint" => &["int2"],
        "integer" => &["int4"],
        "bigint" => &["int8"],
        "real" => &["float4"],
        "double precision" => &["float8"],
        "boolean" => &["bool"],
        "bytea" => &["bytea"],
        "timestamptz" => &["timestamptz"],
        "date" => &["date"],
        "jsonb" => &["jsonb"],
        _ => return true,
    };
    accepted.contains(&typname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::short_type_name;

    #[test]
    fn short_names() {
        assert_eq!(short_type_name("app::models::User"), "User");
        assert_eq!(short_type_name("User"), "User");
        assert_eq!(short_type_name("app::Wrap<app::User>"), "Wrap<app::User>");
    }

    #[test]
    fn records_round_trip() {
        let table = |comment: &str| LiveTable {
            comment: Some(comment.to_owned()),
            columns: Vec::new(),
        };
        assert_eq!(
            table(&record_comment(Some("org_id"))).recorded_tenant(),
            Some(Some("org_id"))
        );
        assert_eq!(table(&record_comment(None)).recorded_tenant(), Some(None));
        assert_eq!(table("the users of the app").recorded_tenant(), None);
    }

    #[test]
    fn a_pass_seen_by_a_thread_is_this_pools_and_this_models_only() {
        struct A;
        struct B;
        let (a, b) = (Target::test_only::<A>("a"), Target::test_only::<B>("b"));
        let pool = TableChecks::default();
        let other_pool = TableChecks::default();
        pool.passed.write().unwrap().insert(a.type_id, None);
        // Read twice: the second answer comes from this thread's copy.
        assert!(pool.has_passed(&a, None));
        assert!(pool.has_passed(&a, None));
        assert!(!pool.has_passed(&b, None));
        assert!(!other_pool.has_passed(&a, None));
        // Another thread reads the shared set.
        std::thread::scope(|threads| {
            threads.spawn(|| {
                assert!(pool.has_passed(&a, None));
                assert!(!other_pool.has_passed(&a, None));
            });
        });
        // A pass in a schema is never copied: forgetting the schema takes
        // it back at once.
        let schema: Arc<str> = "tenant_x".into();
        pool.passed
            .write()
            .unwrap()
            .insert(b.type_id, Some(&schema));
        assert!(pool.has_passed(&b, Some("tenant_x")));
        assert!(!pool.has_passed(&b, None));
        pool.forget_schema("tenant_x");
        assert!(!pool.has_passed(&b, Some("tenant_x")));
        assert!(pool.has_passed(&a, None));
    }

    #[test]
    fn type_compatibility() {
        assert!(compatible("bigint", "int8"));
        assert!(!compatible("integer", "int8"));
        assert!(compatible("text", "varchar"));
        assert!(!compatible("timestamptz", "timestamp"));
        assert!(compatible("my_enum", "anything"));
    }
}
