//! The one error type every pebble operation returns.

use std::fmt;

pub use tokio_postgres::error::SqlState;

/// A `Result` whose error is [`pebble::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pebble, as variants a caller can match.
///
/// ```
/// # use pebble_core::Error;
/// fn status(err: &Error) -> u16 {
///     match err {
///         Error::NotFound { .. } => 404,
///         Error::TenantMismatch { .. } | Error::InvalidTenantId { .. } => 400,
///         e if e.is_unique_violation() => 409,
///         _ => 500,
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query that must return a row (`one()`, `update_model`) found none in
    /// the handle's scope. For a tenant handle this is also what another
    /// tenant's row looks like: it does not exist.
    #[error("no matching row in `{table}`")]
    NotFound {
        /// The table that was queried.
        table: &'static str,
    },

    /// A row carried a tenant key other than the handle's tenant. Nothing was written.
    #[error(
        "row for tenant {found} refused by a handle scoped to tenant {expected} \
         (table `{table}`); nothing was written"
    )]
    TenantMismatch {
        /// The table the row was meant for.
        table: &'static str,
        /// The tenant of the handle.
        expected: String,
        /// The tenant the row carried.
        found: String,
    },

    /// A tenant id that cannot be used (for example as a database name). Nothing was touched.
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenantId {
        /// The id as given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No connection could be taken from the pool in time, or the pool is closed.
    #[error("connection pool: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),

    /// The connection to the server failed or was lost (server down,
    /// restarting or refusing connections, network, protocol). The server's
    /// own shutdown and start-up errors (SQLSTATE class 08, 57P01, 57P02,
    /// 57P03, 53300) arrive as this variant too.
    #[error("connection: {0}")]
    Connection(#[source] tokio_postgres::Error),

    /// The server rejected a statement; `code` is its SQLSTATE.
    #[error("database error {}: {message}", code.code())]
    Database {
        /// The SQLSTATE, e.g. [`SqlState::UNIQUE_VIOLATION`].
        code: SqlState,
        /// The server's message.
        message: String,
        /// The underlying driver error (detail, hint, constraint name).
        #[source]
        source: tokio_postgres::Error,
    },

    /// A column's value could not be decoded into the model's field type.
    #[error("cannot decode `{table}.{column}`: {}", with_cause(source))]
    Decode {
        /// The table of the model.
        table: &'static str,
        /// The column that failed.
        column: &'static str,
        /// Why it failed (usually a type mismatch between model and schema).
        #[source]
        source: tokio_postgres::Error,
    },

    /// `commit()` on a transaction in which a statement had failed: the
    /// server had already aborted it, so it was rolled back, not committed.
    #[error("the transaction was aborted by an earlier error and has been rolled back")]
    TransactionAborted,

    /// Waiting for something pebble needed (described) took too long.
    #[error("timed out: {0}")]
    Timeout(&'static str),

    /// An update with no `.set(column, value)`: there is nothing to write,
    /// and `UPDATE ... SET` without a column is not SQL. Nothing was sent.
    #[error(
        "an update of `{table}` needs at least one `set`: add .set(column, value); \
         nothing was sent"
    )]
    NothingToSet {
        /// The table of the update.
        table: &'static str,
    },

    /// An update (or `update_model`) would assign the tenant column, which
    /// would move rows to another tenant. The typed API does not allow it
    /// (`set` takes no `TenantColumn`); this is a hand-made `Column` naming
    /// it. Nothing was sent.
    #[error(
        "`{table}.{column}`: the tenant column cannot be updated (a row would change \
         tenant); nothing was sent"
    )]
    TenantColumnAssigned {
        /// The table of the update.
        table: &'static str,
        /// The tenant column.
        column: &'static str,
    },

    /// An update assigned the same column twice (`set` or `set_expr`),
    /// which PostgreSQL refuses. Nothing was sent.
    #[error("`{table}.{column}` is assigned twice in one update; nothing was sent")]
    ColumnAssignedTwice {
        /// The table of the update.
        table: &'static str,
        /// The column.
        column: &'static str,
    },

    /// A row gave a different number of values than its model has columns
    /// (only possible with a hand-written [`Model`](crate::Model) impl).
    /// Nothing of the insert was sent.
    #[error(
        "a row for `{table}` gave {values} values for its {columns} columns; \
         nothing of the insert was sent"
    )]
    MalformedRow {
        /// The table the row was meant for.
        table: &'static str,
        /// How many columns the model declares.
        columns: usize,
        /// How many values the row gave.
        values: usize,
    },

    /// A plain `Db` or `Transaction` was asked for a model that has a
    /// tenant column, which only a hand-written
    /// [`GlobalModel`](crate::GlobalModel) impl makes compile: its
    /// statements would reach every tenant. Nothing was sent.
    #[error(
        "`{table}` has a #[tenant_id] column, so a plain Db cannot query it (its GlobalModel \
         impl is hand-written; derive it with #[pebble(shared)] or #[pebble(per_tenant)] only \
         on models without one); use db.tenant(id). Nothing was sent"
    )]
    TenantModelThroughDb {
        /// The model's table.
        table: &'static str,
    },

    /// [`Db::verify_all`](crate::Db::verify_all) was given a
    /// `#[pebble(per_tenant)]` model (a hand-built
    /// [`ModelSchema`](crate::ModelSchema) list; `Db::verify` and
    /// `create_table` refuse one at compile time): its table is in each
    /// tenant's database or schema, not on the database a plain `Db` is
    /// on. Verify it through the tenant's handle,
    /// [`TenantDatabase::verify_all`](crate::TenantDatabase::verify_all).
    /// Nothing was checked.
    #[error(
        "`{model}` is a per-tenant model: its table is in each tenant's database or schema, \
         not on a plain Db; verify it through the tenant's handle (TenantManager::db(id)). \
         Nothing was checked"
    )]
    PerTenantModelThroughDb {
        /// The model's name.
        model: &'static str,
    },

    /// The connection string asks for TLS (`sslmode=require`, `verify-ca`
    /// or `verify-full`) but this build of pebble has no TLS: enable the
    /// cargo feature `tls`. Nothing was sent.
    #[error(
        "sslmode={mode} needs TLS, which this build of pebble leaves out: enable the cargo \
         feature `tls` (pebble = {{ version = \"...\", features = [\"tls\"] }}); nothing was sent"
    )]
    TlsNotEnabled {
        /// The `sslmode` asked for.
        mode: &'static str,
    },

    /// The TLS handshake failed: the server does not offer TLS (under
    /// `require` or stricter), or its certificate was refused (not signed
    /// by a trusted CA under `verify-ca`/`verify-full`, or not issued for
    /// the host under `verify-full`). Not an outage: retrying will not help.
    #[error("TLS handshake failed: {}", tls_cause(.0))]
    Tls(#[source] tokio_postgres::Error),

    /// The CA certificates to trust could not be loaded (a missing file,
    /// PEM without a certificate). Nothing was sent.
    #[error("cannot load CA certificates from {origin}: {reason}")]
    TlsRoots {
        /// Where they were looked for.
        origin: String,
        /// Why it failed.
        reason: String,
    },

    /// The client certificate or its key could not be loaded or do not
    /// match (`sslcert` / `sslkey`, [`TlsOptions::client_cert_pem`](crate::TlsOptions::client_cert_pem)).
    /// Nothing was sent.
    #[error("cannot use the client certificate from {origin}: {reason}")]
    TlsClientCert {
        /// Where the certificate or key was read from.
        origin: String,
        /// Why it failed.
        reason: String,
    },

    /// A join on a plain `Db` or `Transaction` (a shared or per-tenant
    /// model's query) was asked to join a model that has a tenant column,
    /// which only a hand-written [`Joinable`](crate::Joinable) impl makes
    /// compile: there is no tenant to confine its rows by, so they would
    /// come from every tenant. Nothing was sent.
    #[error(
        "`{table}` has a #[tenant_id] column, so a query on a plain Db cannot join it (its \
         Joinable impl is hand-written; #[derive(Model)] implements it only for the tenant key \
         type); query through db.tenant(id), or cross_tenant() to reach every tenant on \
         purpose. Nothing was sent"
    )]
    TenantModelJoinedThroughDb {
        /// The joined model's table.
        table: &'static str,
    },

    /// A connection string or pool setting pebble cannot use.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A statement through a builder whose transaction has already ended
    /// (committed, rolled back, or dropped and so rolled back). Nothing was
    /// sent: a write here could never land.
    #[error(
        "the transaction this statement belongs to has already ended \
         (committed, rolled back or dropped); nothing was sent"
    )]
    TransactionEnded,

    /// Raw SQL text (`batch_execute`) left its connection inside a
    /// transaction block (a `BEGIN` without `COMMIT`, say). pebble rolled
    /// it back and closed the connection, so nothing of it reaches another
    /// statement; whatever the text wrote after its `BEGIN` was not committed.
    #[error(
        "the SQL text left a transaction open (BEGIN without COMMIT or ROLLBACK); \
         it was rolled back and its connection closed, so nothing it wrote after BEGIN \
         was committed. Use db.begin() for transactions"
    )]
    UnterminatedTransaction,

    /// A statement would carry more bind parameters than PostgreSQL's
    /// protocol allows (65,535). Nothing was sent.
    #[error(
        "a statement on `{table}` would need {parameters} bind parameters, over \
         PostgreSQL's limit of 65,535; nothing was sent. Split the rows into \
         smaller batches (a row of `{table}` takes one parameter per column)"
    )]
    TooManyParameters {
        /// The table of the statement's model.
        table: &'static str,
        /// How many parameters the statement needed.
        parameters: usize,
    },

    /// The model and the table disagree on which column holds the tenant:
    /// the table records (in its comment, written by `create_table`)
    /// another tenant column, or none, than the model declares. Nothing
    /// was sent: through this model one tenant could read another's rows.
    #[error(
        "model `{model}` declares {declared} but table `{table}` records {recorded}; \
         nothing was sent. A model over a tenant table must name the table's tenant \
         column with #[tenant_id]"
    )]
    TenantColumnMismatch {
        /// The Rust model.
        model: &'static str,
        /// The table.
        table: &'static str,
        /// What the model declares, e.g. ``tenant column `code` `` or `no tenant column`.
        declared: String,
        /// What the table records.
        recorded: String,
    },

    /// The table's tenant column has a type or collation under which
    /// different keys compare equal (`citext`, `char(n)`, a
    /// nondeterministic collation): tenant `"globex"` would match rows of
    /// `"GLOBEX"` or `"globex   "`. Nothing was sent.
    #[error(
        "tenant column `{table}.{column}` is `{column_type}`, under which distinct tenant \
         keys compare equal (case- or padding-insensitive); nothing was sent. Use \
         `text` (with a deterministic collation), `uuid`, `integer` or `bigint`"
    )]
    UnsafeTenantColumn {
        /// The table.
        table: &'static str,
        /// The tenant column.
        column: &'static str,
        /// Its type (and collation, where that is the cause).
        column_type: String,
    },

    /// A model field's type does not match its column's type, which would
    /// otherwise surface as a protocol error. Nothing was sent.
    #[error(
        "model `{model}`: column `{table}.{column}` is `{column_type}` in the database but \
         the field is a `{field_type}` column; nothing was sent. Change the field to the \
         Rust type of `{column_type}` (bigint: i64, integer: i32, smallint: i16, \
         double precision: f64, real: f32, timestamptz: DateTime<Utc>) or alter the column"
    )]
    ColumnTypeMismatch {
        /// The Rust model.
        model: &'static str,
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The SQL type the field maps to.
        field_type: &'static str,
        /// The column's type in the database.
        column_type: String,
    },

    /// [`SchemaReport::check`](crate::SchemaReport::check): the models do
    /// not match their tables; the report lists every mismatch.
    #[error("the schema does not match the models ({} mismatch(es)):\n{report}", report.mismatches().len())]
    SchemaMismatch {
        /// Every mismatch, by model and column.
        report: Box<crate::SchemaReport>,
    },

    /// [`AuditReport::check`](crate::AuditReport::check) found gaps in row-level security.
    #[error("row-level security audit found {} gap(s):\n{}", gaps.len(), gaps.join("\n"))]
    RlsAudit {
        /// Each gap, as printed in the report.
        gaps: Vec<String>,
    },

    /// Raw SQL was sent through a handle that is not under row-level
    /// security, where nothing would confine it to the tenant. (The typed
    /// API does not offer it; this guards the crate's own paths.)
    #[error(
        "raw SQL on a tenant handle needs row-level security (an RlsDb): nothing else confines it"
    )]
    RawSqlNeedsRls,

    /// From an insert's `build()` / `to_sql()`: there are no rows, so no
    /// statement would be sent. Running the insert is not an error: `exec()`
    /// returns `0` and `returning()` no rows, without going to the server.
    #[error("an insert of no rows into `{table}` sends no statement")]
    NothingToInsert {
        /// The table the rows were meant for.
        table: &'static str,
    },

    /// The statement needed a connection of a tenant that
    /// [`TenantManager::drop_tenant`](crate::TenantManager::drop_tenant)
    /// has dropped (or is dropping): its database is gone. Statements that
    /// were already running when the drop began finished normally.
    #[error("tenant {id:?} was dropped (drop_tenant): its pool hands out no connection any more")]
    TenantDropped {
        /// The tenant id.
        id: String,
    },

    /// The database a [`TenantManager`](crate::TenantManager) pool was
    /// opened on no longer exists (SQLSTATE `3D000` on a pool that had
    /// connected before): another process dropped the tenant, perhaps
    /// re-creating it on another server. The manager has forgotten that
    /// pool, so the next [`TenantManager::db`](crate::TenantManager::db)
    /// reads the registry again and opens the tenant where it is now.
    /// The statement was not sent anywhere and is not retried: a handle is
    /// bound to one database, and a write meant for the old one must not
    /// land silently in a new one. Later statements through the same
    /// handle fail the same way; ask `db(id)` for a new handle.
    #[error(
        "tenant {id:?}: the database this handle was opened on no longer exists \
         (dropped, moved or re-created by another process); nothing was sent: call db(id) again"
    )]
    TenantDatabaseGone {
        /// The tenant id.
        id: String,
    },

    /// [`TenantManager::drop_tenant`](crate::TenantManager::drop_tenant)
    /// refused to drop a database pebble did not provision (it carries no
    /// pebble marker comment). Nothing was touched.
    #[error(
        "database {database:?} of tenant {id:?} was not provisioned by pebble \
         (no pebble marker comment), so it was not dropped"
    )]
    NotProvisionedByPebble {
        /// The tenant id.
        id: String,
        /// The database the tenant id names.
        database: String,
    },

    /// The tenant registry (`pebble_tenants`) has no row for this tenant:
    /// it was never provisioned, or it was dropped. Nothing was sent to a
    /// tenant schema or database.
    #[error("tenant {id:?} is not in the tenant registry")]
    UnknownTenant {
        /// The tenant id.
        id: String,
    },

    /// The tenant is registered but not `ready`: its provisioning has not
    /// finished (or crashed: see `cleanup`), or it is being dropped.
    #[error("tenant {id:?} is not ready (registry status `{status}`)")]
    TenantNotReady {
        /// The tenant id.
        id: String,
        /// Its registry status: `pending` or `dropping`.
        status: String,
    },

    /// The tenant is registered with another isolation strategy (a schema
    /// tenant asked for as a database, or the other way round). Nothing
    /// was touched.
    #[error("tenant {id:?} is registered as a {registered} tenant")]
    StrategyMismatch {
        /// The tenant id.
        id: String,
        /// The strategy in the registry: `schema` or `database`.
        registered: String,
    },

    /// The registry places the tenant on a server this handle was not
    /// given (see `SchemaTenantsBuilder::server`).
    #[error("tenant {id:?} is placed on server {server:?}, which is not configured here")]
    UnknownServer {
        /// The tenant id.
        id: String,
        /// The server named by the tenant's registry placement.
        server: String,
    },

    /// Dropping a schema tenant refused a `tenant_<id>` schema pebble did
    /// not provision (it carries no pebble marker comment). Nothing was
    /// touched.
    #[error(
        "schema {schema:?} of tenant {id:?} was not provisioned by pebble \
         (no pebble marker comment), so it was not dropped"
    )]
    SchemaNotProvisionedByPebble {
        /// The tenant id.
        id: String,
        /// The schema the tenant id names.
        schema: String,
    },

    /// A tenant's login role (`tenant_<id>`, or a tenant login's
    /// `pebble_<database oid>_<id>` and its group) exists but pebble did not
    /// create it (it carries no pebble marker comment): an operator's,
    /// another application's on the same cluster, another strategy's.
    /// Adopting it, or giving it a new password
    /// ([`TenantManager::reset_role_password`](crate::TenantManager::reset_role_password)),
    /// would hand out whatever it was granted, so nothing was done: schema
    /// provisioning created nothing (the registry row stays `pending`),
    /// database provisioning dropped its staging database.
    #[error(
        "role {role:?} for tenant {id:?} exists and was not created by pebble \
         (no pebble marker comment), so it was not adopted"
    )]
    RoleNotProvisionedByPebble {
        /// The tenant id.
        id: String,
        /// The role the tenant id names.
        role: String,
    },

    /// A [`LoginSecret`](crate::LoginSecret) shorter than 16 bytes: every
    /// tenant login's password derives from it, so it must be as hard to
    /// guess as a strong password.
    #[error("a login secret must be at least 16 bytes long, got {len}")]
    LoginSecretTooShort {
        /// The length given.
        len: usize,
    },

    /// Tenant `id`'s login role name (`pebble_<database oid>_<id>`) would
    /// be longer than the 63 bytes PostgreSQL keeps of a name (it would
    /// silently cut it, and two tenants could share a login). Nothing was
    /// sent. Use shorter tenant keys for tenant logins.
    #[error(
        "tenant {id:?} makes the login role name {role:?}, {} bytes long: role names hold at most 63",
        role.len()
    )]
    TenantLoginNameTooLong {
        /// The tenant key, as text.
        id: String,
        /// The role name it would need.
        role: String,
    },

    /// The server refused to log in as tenant login `role`: the login does
    /// not exist (never created, or dropped), or its password is not the one
    /// derived from this [`LoginSecret`](crate::LoginSecret) (SQLSTATE 28P01
    /// or 28000). Create it with
    /// [`Db::create_tenant_login`](crate::Db::create_tenant_login), with
    /// the same secret the application uses.
    #[error("the server refused tenant login {role:?} (missing, or another secret): {message}")]
    TenantLoginRefused {
        /// The tenant login role.
        role: String,
        /// The server's message.
        message: String,
    },

    /// [`Db::create_tenant_login`](crate::Db::create_tenant_login) refused a
    /// key whose text is another spelling of a value of a protected tenant
    /// column's type (`"042"` or `" 42"` for a `bigint` column, upper-case
    /// uuid text for a `uuid` one): the policy casts the login's tenant to
    /// the column's type, so the login would be confined to the tenant of
    /// that value. Create the login from the key of the column's type.
    #[error(
        "tenant key {id:?} is not how PostgreSQL writes it as {sql_type}: its login would be \
         another spelling of that tenant's"
    )]
    TenantLoginKeyNotCanonical {
        /// The tenant key, as text.
        id: String,
        /// The tenant column type it casts to.
        sql_type: String,
    },

    /// A tenant login pool's connection is not logged in as its tenant's
    /// login role (a pooler between the application and the server logs
    /// every client in as one user, say): `pebble_tenant()` would not read
    /// the tenant from it, so the pool is not used. Connect to the server,
    /// or through a pooler that logs in as each client's own user.
    #[error(
        "tenant login {role:?} is not in effect: the server's session user is {session_user:?}"
    )]
    TenantLoginNotInEffect {
        /// The tenant login role the pool connected as.
        role: String,
        /// The session user the server reported.
        session_user: String,
    },

    /// [`Db::install_rls_tables`](crate::Db::install_rls_tables) refused a
    /// table whose tenant-column record contradicts the tenant column it was
    /// asked to protect: a policy on the wrong column would confine by it.
    /// Nothing was installed.
    #[error("row-level security not installed on `{table}`: {reason}")]
    RlsInstallRefused {
        /// The table.
        table: String,
        /// What its record says against the request.
        reason: String,
    },

    /// The driver could not convert a value on this side of the wire: a
    /// Rust value whose type does not match a parameter's (`&str` for an
    /// `int4`), a column read as the wrong type, a string with a NUL byte.
    /// A bug in the calling code, not an outage: not retryable.
    #[error("value conversion: {0}")]
    Conversion(#[source] tokio_postgres::Error),

    /// A model was asked to decode from a join's row at a column offset,
    /// but its [`Model`](crate::Model) impl is hand-written without
    /// `from_row_at` (derive it). Nothing was decoded.
    #[error(
        "`{table}` cannot be decoded from a join's row: its Model impl has no from_row_at \
         (derive it with #[derive(Model)])"
    )]
    NoOffsetDecode {
        /// The model's table.
        table: &'static str,
    },

    /// `join`, `left_join`, `columns` or an aggregate was called on a
    /// select that already had filters, an order, a limit or a key: those
    /// were written for one table and would be ambiguous in a join. Start
    /// the join right after `select::<M>()` and filter after it. Nothing
    /// was sent.
    #[error(
        "`{table}`: join, columns and aggregates must come right after select::<M>(), before \
         filter, order_by, limit, offset or find; nothing was sent"
    )]
    ShapedBeforeJoin {
        /// The base model's table.
        table: &'static str,
    },

    /// A statement on a transaction while a row stream of that transaction
    /// ([`Select::stream`](crate::query::Select::stream)) is still open:
    /// the connection is busy delivering the stream's rows, so the statement
    /// would wait for a stream nobody reads. Nothing was sent; finish or
    /// drop the stream first.
    #[error(
        "a row stream is still open on this transaction; finish or drop it before \
         running another statement on it (nothing was sent)"
    )]
    StreamOpen,

    /// A statement of a transaction (or savepoint) while a savepoint begun
    /// inside it is still open: it would run inside the savepoint and be
    /// undone with it. Nothing was sent; end the savepoint first. (Only a
    /// builder made before the savepoint began can get here: the handle
    /// itself is borrowed by the savepoint.)
    #[error(
        "a savepoint is open inside this transaction: its statements run in the savepoint; \
         end the savepoint first (nothing was sent)"
    )]
    SavepointOpen,

    /// A savepoint's `commit()` found that a statement inside it had
    /// failed: the savepoint was rolled back instead (its writes undone),
    /// and the enclosing transaction goes on as it was before the savepoint.
    #[error(
        "a statement inside the savepoint failed: it was rolled back to the savepoint; \
         the enclosing transaction continues"
    )]
    SavepointAborted,

    /// `build()` / `to_sql()` of an `insert_many` too large for one
    /// statement (PostgreSQL takes at most 65,535 bind parameters): running
    /// it sends `statements` statements in one transaction; see
    /// [`Insert::statements`](crate::query::Insert::statements).
    #[error(
        "an insert into `{table}` of {rows} rows is sent as {statements} statements \
         (PostgreSQL takes at most 65,535 bind parameters per statement); use statements() to see them"
    )]
    SplitInsert {
        /// The table of the insert.
        table: &'static str,
        /// How many rows it writes.
        rows: usize,
        /// How many statements it is sent as.
        statements: usize,
    },

    /// A `COPY` load in which some rows leave a `#[pebble(default)]` column
    /// unset (for the database to fill) and others set it: `COPY` cannot
    /// write `DEFAULT` for some rows only. Nothing was sent; load the two
    /// kinds of rows separately, or use `insert_many`.
    #[error(
        "COPY into `{table}`: column `{column}` is #[pebble(default)] and some rows leave it \
         unset while others set it; COPY can only omit the column for every row. Nothing was \
         sent: load those rows separately or use insert_many"
    )]
    CopyMixedDefaults {
        /// The table of the load.
        table: &'static str,
        /// The defaulted column.
        column: &'static str,
    },
}

impl Error {
    /// The SQLSTATE of a [`Error::Database`] error. A connect the server
    /// refused (missing database, bad password) is a `Database` error too.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Error::Database { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the statement broke a unique constraint (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// True when the statement broke a foreign key (SQLSTATE 23503): a
    /// `#[pebble(references = ...)]` column pointing at a row the tenant
    /// does not have (another tenant's row included).
    pub fn is_foreign_key_violation(&self) -> bool {
        self.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
    }

    /// True when a read-only transaction refused a write (SQLSTATE 25006,
    /// `read_only_sql_transaction`; see [`TransactionOptions::read_only`](crate::TransactionOptions::read_only)).
    pub fn is_read_only_violation(&self) -> bool {
        self.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
    }

    /// True when a `NOWAIT` lock found a row locked by another transaction
    /// (SQLSTATE 55P03, `lock_not_available`).
    pub fn is_lock_not_available(&self) -> bool {
        self.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }

    /// True for an outage: the server is down, restarting, refusing
    /// connections, or the connection broke ([`Error::Connection`]). Errors
    /// the server sends while shutting down or starting up (SQLSTATE 57P01,
    /// 57P02, 57P03) and class 08 are classified here too, never as
    /// [`Error::Database`].
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Connection(_))
    }

    /// True when running the same operation again may succeed: an outage
    /// ([`Error::is_connection_error`]), no pooled connection free in time,
    /// or a transaction the server aborted to resolve a conflict
    /// (serialization failure 40001, deadlock 40P01). A statement that
    /// failed with a connection error may or may not have been applied;
    /// retry only what is safe to repeat.
    ///
    /// ```
    /// # async fn op() -> pebble_core::Result<()> { Ok(()) }
    /// # async fn demo() -> pebble_core::Result<()> {
    /// let mut attempts = 0;
    /// loop {
    ///     match op().await {
    ///         Err(e) if e.is_retryable() && attempts < 3 => attempts += 1,
    ///         other => break other,
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connection(_) => true,
            Error::Pool(deadpool_postgres::PoolError::Timeout(_)) => true,
            Error::Database { code, .. } => {
                *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            }
            _ => false,
        }
    }

    /// True when the statement was refused because of another tenant or an
    /// invalid tenant id, i.e. pebble stopped it before it reached the server.
    pub fn is_tenant_error(&self) -> bool {
        matches!(
            self,
            Error::TenantMismatch { .. } | Error::InvalidTenantId { .. }
        )
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // A TenantManager's refusal to open a connection, carried through the driver.
        if let Some(refused) = crate::manager::refusal(&e) {
            return refused;
        }
        match e.as_db_error() {
            // The server going down or not yet accepting connections is an
            // outage like a refused connect, whatever form it arrives in.
            Some(db) if is_outage(db.code()) => Error::Connection(e),
            Some(db) => Error::Database {
                code: db.code().clone(),
                message: db.message().to_owned(),
                source: e,
            },
            None if is_conversion(&e) => Error::Conversion(e),
            None if is_tls(&e) => Error::Tls(e),
            None => Error::Connection(e),
        }
    }
}

/// The driver's message and its cause: for a decode error the message
/// only names the column's position, the cause says what was wrong (an
/// unknown enum label, the Rust and PostgreSQL types that differ).
fn with_cause(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A driver error raised on this side before or after the wire, not by
/// the connection. tokio-postgres keeps its error kinds private; its
/// messages for them are stable (`error serializing parameter ..`,
/// `error deserializing column ..`, `error encoding message to server`).
fn is_conversion(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return false;
    }
    let message = e.to_string();
    ["error serializing", "error deserializing", "error encoding"]
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

/// What went wrong in a TLS handshake: tokio-postgres's own message stops
/// at "error performing TLS handshake" and hides why.
fn tls_cause(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => e.to_string(),
    }
}

/// A failed TLS handshake: tokio-postgres's message for its TLS error
/// kind (`error performing TLS handshake: ..`), whatever the cause
/// (certificate refused, no TLS on the server).
fn is_tls(e: &tokio_postgres::Error) -> bool {
    !e.is_closed() && e.to_string().starts_with("error performing TLS handshake")
}

/// SQLSTATEs that mean the server (not the statement) is the problem:
/// class 08 (connection exception), 57P01 `admin_shutdown`, 57P02
/// `crash_shutdown`, 57P03 `cannot_connect_now` (starting up or shutting
/// down), 53300 `too_many_connections`.
fn is_outage(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            // A failed connect is a connection (or server) problem, not a pool one:
            // surface it the same way as an error on an open connection.
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Error::Pool(other),
        }
    }
}

/// Why a row was refused while an insert was being built: reported by
/// every `build()` and run of that insert, so it must be copyable, which
/// an [`Error`] (it may carry a driver error) is not.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// See [`Error::TenantMismatch`].
    TenantMismatch {
        table: &'static str,
        expected: String,
        found: String,
    },
    /// See [`Error::MalformedRow`].
    MalformedRow {
        table: &'static str,
        columns: usize,
        values: usize,
    },
}

impl Refusal {
    pub(crate) fn tenant_mismatch(
        table: &'static str,
        expected: &dyn fmt::Debug,
        found: &dyn fmt::Debug,
    ) -> Self {
        Refusal::TenantMismatch {
            table,
            expected: format!("{expected:?}"),
            found: format!("{found:?}"),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::TenantMismatch {
                table,
                expected,
                found,
            } => Error::TenantMismatch {
                table,
                expected,
                found,
            },
            Refusal::MalformedRow {
                table,
                columns,
                values,
            } => Error::MalformedRow {
                table,
                columns,
                values,
            },
        }
    }
}
