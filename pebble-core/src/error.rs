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

    /// The connection to the server failed or was lost (server down, network, protocol).
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
    #[error("cannot decode `{table}.{column}`: {source}")]
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

    /// A statement pebble refuses to build, such as an update with nothing to set.
    #[error("invalid query: {0}")]
    InvalidQuery(&'static str),

    /// A connection string or pool setting pebble cannot use.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The statement needed a connection of a tenant that
    /// [`TenantManager::drop_tenant`](crate::TenantManager::drop_tenant)
    /// has dropped (or is dropping): its database is gone. Statements that
    /// were already running when the drop began finished normally.
    #[error("tenant {id:?} was dropped (drop_tenant): its pool hands out no connection any more")]
    TenantDropped {
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

    /// True when the statement was refused because of another tenant or an
    /// invalid tenant id, i.e. pebble stopped it before it reached the server.
    pub fn is_tenant_error(&self) -> bool {
        matches!(
            self,
            Error::TenantMismatch { .. } | Error::InvalidTenantId { .. }
        )
    }

    pub(crate) fn tenant_mismatch(
        table: &'static str,
        expected: &dyn fmt::Debug,
        found: &dyn fmt::Debug,
    ) -> Self {
        Error::TenantMismatch {
            table,
            expected: format!("{expected:?}"),
            found: format!("{found:?}"),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // A TenantManager's refusal to open a connection, carried through the driver.
        if let Some(refused) = crate::manager::refusal(&e) {
            return refused;
        }
        match e.as_db_error() {
            Some(db) => Error::Database {
                code: db.code().clone(),
                message: db.message().to_owned(),
                source: e,
            },
            None => Error::Connection(e),
        }
    }
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
