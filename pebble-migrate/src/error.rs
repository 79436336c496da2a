//! The library's error type.

use std::path::PathBuf;

/// What went wrong outside a single target's migration (those are reported
/// per target in a [`crate::TargetOutcome`], never as an `Error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant id that may not name a schema or database.
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenantId {
        /// The id as given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A migration file whose name is not `NNNN_name.sql`.
    #[error("invalid migration file name {file:?}: {reason}")]
    InvalidMigrationName {
        /// The file name.
        file: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Two migration files with the same version.
    #[error("migrations {first:?} and {second:?} have the same version {version}")]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// One file.
        first: String,
        /// The other file.
        second: String,
    },
    /// A migration directory or file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The server could not be reached (down, refused, bad credentials).
    #[error("cannot connect to PostgreSQL: {0}")]
    Connection(String),
    /// The server refused a statement.
    #[error("PostgreSQL error {sqlstate}: {message}")]
    Database {
        /// The SQLSTATE code, e.g. `42P01`.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// A tenant that the registry does not know.
    #[error("tenant {id:?} is not in the registry (pebble_tenants)")]
    NotRegistered {
        /// The tenant id.
        id: String,
    },
    /// A tenant registered with another strategy than the one asked for.
    #[error("tenant {id:?} is registered as a {registered} tenant")]
    StrategyMismatch {
        /// The tenant id.
        id: String,
        /// The strategy in the registry.
        registered: String,
    },
    /// The tenant's row was being dropped, or went, while it was being
    /// created: nothing was provisioned. Create it again once the drop
    /// has finished.
    #[error("tenant {id:?} was dropped, or is being dropped, while it was being created")]
    TenantDropped {
        /// The tenant id.
        id: String,
    },
    /// Provisioning the target's migrations failed (the tenant stays `pending`).
    #[error("migrating tenant {id:?} failed: {failure}")]
    Migration {
        /// The tenant id.
        id: String,
        /// What failed.
        failure: crate::TargetError,
    },
    /// The `TenantManager` refused (database tenants).
    #[error(transparent)]
    Manager(#[from] pebble::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Error::Database {
                sqlstate: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => Error::Connection(describe(&e)),
        }
    }
}

/// The error with its causes: tokio-postgres's own `Display` stops at
/// "error connecting to server" and hides "Connection refused".
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
