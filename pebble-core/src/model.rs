//! What `#[derive(Model)]` implements: table metadata, row decoding, values
//! for writes, and whether (and by what) a model is tenant-scoped.

use std::any::TypeId;

use sea_query::Value;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::sql_enum::EnumDef;
use crate::sql_type::{SqlType, TenantKey};

/// Metadata of one column, as declared on the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnDef {
    /// The column's name in SQL.
    pub name: &'static str,
    /// The PostgreSQL type `create_table` declares.
    pub sql_type: &'static str,
    /// Whether NULL is allowed (the field is an `Option`).
    pub nullable: bool,
    /// Part of the primary key.
    pub primary_key: bool,
    /// The `#[tenant_id]` column.
    pub tenant: bool,
    /// `#[pebble(unique)]`: unique per tenant on a tenant model, globally otherwise.
    pub unique: bool,
    /// `#[pebble(default)]`: the clause with which the database fills the
    /// column (`DEFAULT now()`). An insert writes `DEFAULT` for such a column
    /// when the field holds its [unset](SqlType::is_unset) value, and sends
    /// the field's value otherwise.
    pub default: Option<&'static str>,
    /// `#[pebble(references = Model)]`: a foreign key to that model's key
    /// (with the tenant column on both sides between tenant models).
    pub references: Option<Reference>,
    /// For an enum column: its labels and whether it is a native enum type
    /// or text with a CHECK constraint.
    pub enum_def: Option<EnumDef>,
}

impl ColumnDef {
    /// Metadata for a column named `name` of Rust type `T`. Used by the derive.
    #[doc(hidden)]
    pub const fn of<T: SqlType>(name: &'static str) -> Self {
        ColumnDef {
            name,
            sql_type: T::SQL_TYPE,
            nullable: T::NULLABLE,
            primary_key: false,
            tenant: false,
            unique: false,
            default: None,
            references: None,
            enum_def: T::ENUM,
        }
    }

    #[doc(hidden)]
    pub const fn references(mut self, target: Reference) -> Self {
        self.references = Some(target);
        self
    }

    #[doc(hidden)]
    pub const fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self
    }

    #[doc(hidden)]
    pub const fn tenant(mut self) -> Self {
        self.tenant = true;
        self
    }

    #[doc(hidden)]
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    #[doc(hidden)]
    pub const fn default(mut self, clause: &'static str) -> Self {
        self.default = Some(clause);
        self
    }
}

/// The model a `#[pebble(references = Model)]` column points at.
///
/// Its columns are reached through a function, not a constant, so that a
/// model may reference itself (a task's parent task) without its column
/// list containing itself.
#[derive(Clone, Copy)]
pub struct Reference {
    table: &'static str,
    columns: fn() -> &'static [ColumnDef],
    per_tenant: bool,
}

impl Reference {
    /// The reference to `T`. Used by the derive.
    #[doc(hidden)]
    pub const fn to<T: Model>() -> Reference {
        Reference {
            table: T::TABLE,
            columns: columns_of::<T>,
            per_tenant: T::PER_TENANT,
        }
    }

    /// The referenced table.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// Whether the referenced model is `#[pebble(per_tenant)]` (its table
    /// is in the tenant's schema, beside the referencing one).
    pub fn per_tenant(&self) -> bool {
        self.per_tenant
    }

    /// The referenced model's columns.
    pub fn columns(&self) -> &'static [ColumnDef] {
        (self.columns)()
    }

    /// The referenced model's tenant column, if it has one.
    pub fn tenant_column(&self) -> Option<&'static str> {
        self.columns().iter().find(|c| c.tenant).map(|c| c.name)
    }

    /// The referenced model's key column other than its tenant column:
    /// what the referencing field holds.
    pub fn key_column(&self) -> Option<&'static str> {
        let mut keys = self.columns().iter().filter(|c| c.primary_key && !c.tenant);
        match (keys.next(), keys.next()) {
            (Some(key), None) => Some(key.name),
            _ => None,
        }
    }
}

fn columns_of<T: Model>() -> &'static [ColumnDef] {
    T::COLUMNS
}

impl PartialEq for Reference {
    /// A table is one model's: the same table is the same reference.
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table
    }
}

impl Eq for Reference {}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Reference").field(&self.table).finish()
    }
}

/// Whether `T` has exactly one primary key column besides its tenant
/// column: what a `#[pebble(references = T)]` field can point at. Checked
/// by the derive at compile time.
#[doc(hidden)]
pub const fn single_key<T: Model>() -> bool {
    let mut found = 0;
    let mut i = 0;
    while i < T::COLUMNS.len() {
        if T::COLUMNS[i].primary_key && !T::COLUMNS[i].tenant {
            found += 1;
        }
        i += 1;
    }
    found == 1
}

/// Whether `M` may hold a `#[pebble(references = T)]` field as far as
/// tenants go: a model without a tenant column (shared, per-tenant) must
/// not point at a tenant model, whose rows its own (visible to every
/// tenant) would reveal. Checked by the derive at compile time from the
/// columns, so a hand-written `Joinable` impl cannot lift it.
#[doc(hidden)]
pub const fn tenant_reference_allowed<M: Model, T: Model>() -> bool {
    has_tenant(M::COLUMNS) || !has_tenant(T::COLUMNS)
}

const fn has_tenant(columns: &[ColumnDef]) -> bool {
    let mut i = 0;
    while i < columns.len() {
        if columns[i].tenant {
            return true;
        }
        i += 1;
    }
    false
}

/// A struct mapped to a table. Implement it with `#[derive(Model)]`.
///
/// ```
/// use pebble::Model;
/// use uuid::Uuid;
///
/// #[derive(Model, Debug, Clone)]
/// #[pebble(table = "users")]
/// pub struct User {
///     #[pebble(primary_key, default)]
///     pub id: Uuid,
///     #[tenant_id]
///     pub tenant_id: Uuid,
///     pub name: String,
///     pub age: i32,
///     pub nickname: Option<String>,
/// }
///
/// assert_eq!(<User as pebble::Model>::TABLE, "users");
/// let _older = User::AGE.gt(30);
/// ```
pub trait Model: Sized + Send + Sync + 'static {
    /// The table name.
    const TABLE: &'static str;
    /// Every column, in field order. Selects and `RETURNING` list them in
    /// this order, and [`Model::from_row`] decodes by that position.
    const COLUMNS: &'static [ColumnDef];
    /// Whether the model is `#[pebble(per_tenant)]`: its table lives in
    /// each tenant's schema (or database), so a schema handle names it with
    /// the tenant's schema, in a join or a foreign key too. Set by the derive.
    #[doc(hidden)]
    const PER_TENANT: bool = false;

    /// Decodes a row whose columns are [`Model::COLUMNS`], in order.
    fn from_row(row: &Row) -> Result<Self>;

    /// Decodes [`Model::COLUMNS`] starting at column `offset` of `row`: a
    /// join's row holds each model's columns one after the other.
    /// `#[derive(Model)]` implements it (and `from_row` as offset 0); a
    /// hand-written model that does not can only be decoded at offset 0,
    /// and is refused elsewhere with [`Error::NoOffsetDecode`].
    fn from_row_at(row: &Row, offset: usize) -> Result<Self> {
        if offset == 0 {
            Self::from_row(row)
        } else {
            Err(Error::NoOffsetDecode { table: Self::TABLE })
        }
    }

    /// Passes the value of every column to `sink`, in [`Model::COLUMNS`]
    /// order, with whether the field holds its type's unset value
    /// ([`SqlType::is_unset`]): an insert writes `DEFAULT` instead of an
    /// unset `#[pebble(default)]` field.
    ///
    /// A visitor rather than a returned collection: each value goes straight
    /// into the statement being built, which measured faster than building
    /// the same insert by hand from an array of values.
    fn into_values(self, sink: impl FnMut(Value, bool));

    /// Like [`Model::into_values`], cloning instead of consuming the row.
    fn to_values(&self, sink: impl FnMut(Value));
}

/// A model without a tenant column: shared ([`SharedModel`]) or per
/// tenant ([`PerTenantModel`]). What a tenant database handle
/// ([`TenantDatabase`](crate::TenantDatabase), from
/// [`TenantManager::db`](crate::TenantManager::db)) queries: in a tenant's
/// own database both kinds are that tenant's tables. Implemented together
/// with one of the two by `#[derive(Model)]` with `#[pebble(shared)]` or
/// `#[pebble(per_tenant)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has a #[tenant_id] field: a tenant database handle (`TenantManager::db(id)`) only queries #[pebble(per_tenant)] and #[pebble(shared)] models",
    label = "`{Self}` has a #[tenant_id] field",
    note = "query models with a #[tenant_id] field through `db.tenant(id)` on the database that holds their shared table"
)]
pub trait GlobalModel: Model {}

/// A model marked `#[pebble(shared)]`: one table for all tenants (plans,
/// the tenant registry), queried through a plain [`Db`](crate::Db) (and
/// its transactions and savepoints), the only kind a plain `Db` queries.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a shared model: a plain `Db` only queries #[pebble(shared)] models",
    label = "not #[pebble(shared)]",
    note = "a #[pebble(per_tenant)] model lives in each tenant's own database or schema: query it through \
            the tenant's handle, `TenantManager::db(id)` (a database per tenant) or `db.schema_tenant(id)` \
            (a schema per tenant)",
    note = "a model with a #[tenant_id] field is queried through `db.tenant(id)`, which confines every \
            statement to one tenant; mark a table shared by all tenants with #[pebble(shared)]"
)]
pub trait SharedModel: GlobalModel {}

/// A model marked `#[pebble(per_tenant)]`: its table lives in each
/// tenant's schema or database, so it has no tenant column; queried
/// through the tenant's own handle: a schema handle
/// ([`Db::schema_tenant`](crate::Db::schema_tenant)) or a
/// [`TenantDatabase`](crate::TenantDatabase) from
/// [`TenantManager::db`](crate::TenantManager::db). A plain `Db` refuses
/// it at compile time: on the application's database its table is not
/// any tenant's.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a per-tenant model: a schema handle (`db.schema_tenant(id)`) only queries #[pebble(per_tenant)] models",
    label = "not #[pebble(per_tenant)]",
    note = "query #[pebble(shared)] models through the plain `Db`, and models with a #[tenant_id] field through `db.tenant(id)`; \
            mark a table that lives in each tenant's schema or database with #[pebble(per_tenant)]"
)]
pub trait PerTenantModel: GlobalModel {}

/// A model whose one table holds the rows of every tenant (a model with a
/// `#[tenant_id]` field) or rows common to all (`#[pebble(shared)]`): what
/// a plain [`Db`](crate::Db) creates and verifies, and what
/// [`cross_tenant`](crate::Db::cross_tenant) reaches. Not a
/// `#[pebble(per_tenant)]` model, whose table is in each tenant's schema
/// or database, so that no single table holds "every tenant" of it.
/// Implemented by `#[derive(Model)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither a model with a #[tenant_id] field nor a shared one: a #[pebble(per_tenant)] model's table is in each tenant's own database or schema, not on a plain `Db`",
    label = "not a model with a #[tenant_id] field, nor #[pebble(shared)]",
    note = "create, verify and query a #[pebble(per_tenant)] model through the tenant's handle: `TenantManager::db(id)` (a database per tenant, \
            also in the manager's `setup` hook) or `db.schema_tenant(id)` (a schema per tenant; `SchemaTenants::table` \
            creates it); migrations for tenants go through pebble-migrate"
)]
pub trait SingleTableModel: Model {}

/// A model with a `#[tenant_id]` field: every statement on it through a
/// [`TenantDb`](crate::TenantDb) is confined to one tenant.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no #[tenant_id] field, so a tenant handle cannot scope it",
    note = "query models without a tenant column through `Db`"
)]
pub trait TenantScoped: Model {
    /// The type of the tenant column.
    type TenantKey: TenantKey;
    /// The tenant column's name.
    const TENANT_COLUMN: &'static str;

    /// The tenant this row belongs to.
    fn tenant_key(&self) -> &Self::TenantKey;

    /// Writes the tenant of this row.
    fn set_tenant_key(&mut self, key: Self::TenantKey);
}

/// `M` is tenant-scoped by a key of type `K`. Holds exactly when
/// `M::TenantKey == K`; it exists to give the mismatch a readable error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be queried through a tenant handle keyed by `{K}`",
    label = "this handle's tenant key is a `{K}`",
    note = "a tenant handle only queries models whose #[tenant_id] field has the handle's key type; \
            models without a #[tenant_id] field are queried through `Db`"
)]
pub trait ScopedBy<K>: TenantScoped<TenantKey = K> {}

impl<M: TenantScoped> ScopedBy<M::TenantKey> for M {}

/// A model that may be joined into (or referenced by a foreign key from) a
/// query of a tenant keyed by `K`: a tenant model whose `#[tenant_id]` is a
/// `K` (its ON clause then carries its own tenant condition), or a
/// `#[pebble(shared)]` model (any `K`). Implemented by `#[derive(Model)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be joined with (or referenced from) models keyed by `{K}`",
    label = "not a model keyed by `{K}`, nor a shared model",
    note = "joins and `#[pebble(references = ...)]` pair tenant models with the same tenant key \
            type, or with `#[pebble(shared)]` models"
)]
pub trait Joinable<K>: Model {}

/// What a model's joins and references pair it with: its tenant key type
/// (a tenant model), [`join_key::Shared`] or [`join_key::PerTenant`].
/// Implemented by `#[derive(Model)]`.
pub trait JoinBase: Model {
    /// The key models joined to this one must be [`Joinable`] by.
    type JoinKey;
}

/// The [`JoinBase::JoinKey`] of models without a tenant column.
pub mod join_key {
    /// `#[pebble(shared)]` models: they join shared models only.
    #[derive(Debug)]
    pub enum Shared {}
    /// `#[pebble(per_tenant)]` models: they join per-tenant and shared models.
    #[derive(Debug)]
    pub enum PerTenant {}
}

/// A model with a `#[pebble(primary_key)]` (one field, or several for a composite key).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no primary key",
    note = "mark the key field(s) with #[pebble(primary_key)]"
)]
pub trait HasPrimaryKey: Model {
    /// The key: the field's type, or a tuple for a composite key.
    type Key: Send;
    /// The key columns, in order.
    const PRIMARY_KEY: &'static [&'static str];

    /// This row's key.
    fn primary_key(&self) -> Self::Key;

    /// The key as bind values, in [`HasPrimaryKey::PRIMARY_KEY`] order.
    fn key_values(key: Self::Key) -> Vec<Value>;
}

/// Decodes column `index` of `row`; the derive's `from_row` calls it per field.
#[doc(hidden)]
pub fn decode<T: SqlType>(
    row: &Row,
    index: usize,
    table: &'static str,
    column: &'static str,
) -> Result<T> {
    row.try_get(index).map_err(|source| Error::Decode {
        table,
        column,
        source,
    })
}

/// A model as a scope names it and the table check needs it: built from
/// the model's constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) type_id: TypeId,
    /// The model's full type name; shortened only for an error message,
    /// since every builder makes a `Target`.
    type_name: &'static str,
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [ColumnDef],
    /// `#[pebble(per_tenant)]`: under a schema handle its table is in the
    /// tenant's schema (a joined shared model's is not).
    pub(crate) per_tenant: bool,
}

impl Target {
    pub(crate) fn of<M: Model>() -> Target {
        Target {
            type_id: TypeId::of::<M>(),
            type_name: std::any::type_name::<M>(),
            table: M::TABLE,
            columns: M::COLUMNS,
            per_tenant: M::PER_TENANT,
        }
    }

    /// A target of type `T` with no columns, for unit tests.
    #[cfg(test)]
    pub(crate) fn test_only<T: 'static>(table: &'static str) -> Target {
        Target {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            table,
            columns: &[],
            per_tenant: false,
        }
    }

    pub(crate) fn table(&self) -> &'static str {
        self.table
    }

    /// The model as the user wrote it (`Task`, `Row<T>`), for errors.
    pub(crate) fn model(&self) -> &'static str {
        short_type_name(self.type_name)
    }

    pub(crate) fn tenant_column(&self) -> Option<&'static ColumnDef> {
        self.columns.iter().find(|c| c.tenant)
    }
}

/// `crate::module::Type<Args>` as `Type<Args>`: what the user wrote.
pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    let generic = full.find('<').unwrap_or(full.len());
    match full[..generic].rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}
