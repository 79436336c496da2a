//! What a migration run reports, per target and for the fleet.

use std::fmt;

use crate::target::Target;

/// A migration applied (or, in a dry run, that would be applied).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Applied {
    /// The version.
    pub version: i64,
    /// The file name.
    pub file: String,
    /// How long it ran (0 in a dry run).
    pub duration_ms: i64,
}

/// Why a target was not (fully) migrated. The target's transaction was
/// rolled back: it is exactly as it was before the failing step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "error", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TargetError {
    /// A migration's SQL failed.
    #[error("{file} failed: {sqlstate} {message}")]
    Migration {
        /// Its version.
        version: i64,
        /// Its file.
        file: String,
        /// PostgreSQL's SQLSTATE (empty if the connection broke).
        sqlstate: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// An applied migration's file changed since: refused, nothing applied.
    #[error("{file} was changed after it was applied (ledger checksum {applied}, file {expected}); refusing to migrate")]
    ChecksumMismatch {
        /// Its version.
        version: i64,
        /// Its file.
        file: String,
        /// The checksum in the ledger.
        applied: String,
        /// The checksum of the file now.
        expected: String,
    },
    /// The ledger has a version no file has (a newer release ran, or a file
    /// was deleted): refused, since what it did is unknown to this run.
    #[error("migration {version} ({name}) is applied but has no file; refusing to migrate")]
    UnknownApplied {
        /// The version in the ledger.
        version: i64,
        /// Its name in the ledger.
        name: String,
    },
    /// The tenant's schema or database does not exist.
    #[error("{what} does not exist")]
    Missing {
        /// `schema tenant_x` or `database tenant_x`.
        what: String,
    },
    /// Another runner held the target's lock longer than the lock wait.
    #[error("another migration run held the lock for longer than {waited_ms} ms")]
    Busy {
        /// How long this run waited.
        waited_ms: u64,
    },
    /// Connecting or a ledger statement failed.
    #[error("{sqlstate} {message}")]
    Database {
        /// SQLSTATE, empty for a connection failure.
        sqlstate: String,
        /// The message.
        message: String,
    },
}

impl TargetError {
    pub(crate) fn from_pg(e: &tokio_postgres::Error) -> TargetError {
        let (sqlstate, message) = pg_parts(e);
        TargetError::Database { sqlstate, message }
    }
}

/// SQLSTATE and message of a server error, or `("", description)`.
pub(crate) fn pg_parts(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => (db.code().code().to_owned(), db.message().to_owned()),
        None => (String::new(), crate::error::describe(e)),
    }
}

/// One target's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TargetOutcome {
    /// The target.
    pub target: Target,
    /// Migrations applied by this run and committed, in order (those that
    /// would be, in a dry run). Empty when the target failed in its
    /// transaction, since that rolled back.
    pub applied: Vec<Applied>,
    /// Migrations that were already in the ledger.
    pub already_applied: usize,
    /// The failure, if any.
    pub error: Option<TargetError>,
}

impl TargetOutcome {
    /// Whether the target is fully migrated (or would be, in a dry run).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for TargetOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "FAILED {}: {e}", self.target),
            None if self.applied.is_empty() => write!(f, "ok {}: up to date", self.target),
            None => {
                let files: Vec<&str> = self.applied.iter().map(|a| a.file.as_str()).collect();
                write!(f, "ok {}: applied {}", self.target, files.join(", "))
            }
        }
    }
}

/// A fleet run's result: one outcome per target, in target order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FleetReport {
    /// Whether nothing was changed (a dry run).
    pub dry_run: bool,
    /// Per target.
    pub targets: Vec<TargetOutcome>,
}

impl FleetReport {
    /// The targets that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.targets.iter().filter(|t| !t.is_ok())
    }

    /// Whether every target is migrated.
    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Migrations applied over all targets.
    pub fn applied_count(&self) -> usize {
        self.targets.iter().map(|t| t.applied.len()).sum()
    }
}
