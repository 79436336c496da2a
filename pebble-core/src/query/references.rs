//! Foreign keys from `#[pebble(references = Model)]`, for `create_table`.
//!
//! Between tenant models the key is composite, `(tenant_col, field)
//! REFERENCES parent (tenant_col, key)`, so the database itself refuses a
//! row pointing at another tenant's row, whoever writes it (raw SQL
//! included). A reference to a shared model is a plain foreign key.

use sea_query::{Alias, ForeignKey, Index, PostgresQueryBuilder, TableCreateStatement, TableRef};

use crate::model::{ColumnDef, Reference};

/// Adds `table`'s foreign keys to its `CREATE TABLE`, and returns the
/// statements that must run before it: the unique index `(tenant_col,
/// key)` on each referenced tenant table whose primary key is not exactly
/// that (PostgreSQL accepts a unique index as a foreign key's target).
///
/// The index is created here, by the referencing model, rather than by
/// every tenant model's own `create_table`: only referenced tables pay for
/// it, and `IF NOT EXISTS` under one name makes it idempotent.
pub(crate) fn add_foreign_keys(
    create: &mut TableCreateStatement,
    table: &'static str,
    columns: &'static [ColumnDef],
    schema: Option<&str>,
) -> Vec<String> {
    let tenant = columns.iter().find(|c| c.tenant).map(|c| c.name);
    let mut before = Vec::new();
    for column in columns {
        let Some(target) = column.references else {
            continue;
        };
        // The derive refuses a target without exactly one key column.
        let Some(key) = target.key_column() else {
            continue;
        };
        let mut fk = ForeignKey::create();
        fk.name(format!("{table}_{}_fkey", column.name))
            .from_tbl(table)
            .to_tbl(target_ref(&target, schema));
        match (tenant, target.tenant_column()) {
            (Some(tenant), Some(target_tenant)) => {
                fk.from_col(tenant)
                    .from_col(column.name)
                    .to_col(target_tenant)
                    .to_col(key);
                if !key_is_exactly(&target, target_tenant, key) {
                    let index = unique_index(&target, target_tenant, key);
                    if target.table() == table {
                        // A self-reference: the table does not exist yet,
                        // so its unique key goes inside the same CREATE.
                        create.index(&mut index.clone());
                    } else {
                        before.push(index.to_string(PostgresQueryBuilder));
                    }
                }
            }
            _ => {
                fk.from_col(column.name).to_col(key);
            }
        }
        create.foreign_key(&mut fk);
    }
    before
}

/// The referenced table: in the tenant's schema, beside the referencing
/// table, when both are per-tenant models created in one; the bare
/// (shared) table otherwise.
fn target_ref(target: &Reference, schema: Option<&str>) -> TableRef {
    match schema {
        Some(schema) if target.per_tenant() => (Alias::new(schema), target.table()).into(),
        _ => target.table().into(),
    }
}

/// Whether the target's primary key is exactly `(tenant, key)`, in any order.
fn key_is_exactly(target: &Reference, tenant: &str, key: &str) -> bool {
    let mut primary = target
        .columns()
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name);
    let (a, b, rest) = (primary.next(), primary.next(), primary.next());
    rest.is_none()
        && matches!((a, b), (Some(a), Some(b)) if (a == tenant && b == key) || (a == key && b == tenant))
}

fn unique_index(
    target: &Reference,
    tenant: &'static str,
    key: &'static str,
) -> sea_query::IndexCreateStatement {
    Index::create()
        .if_not_exists()
        .unique()
        .name(format!("{}_{tenant}_{key}_ref_key", target.table()))
        .table(target.table())
        .col(tenant)
        .col(key)
        .to_owned()
}
