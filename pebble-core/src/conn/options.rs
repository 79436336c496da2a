//! [`TransactionOptions`]: the isolation level and access mode a
//! transaction begins with.

/// A transaction's isolation level (PostgreSQL's `SET TRANSACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Each statement sees what was committed before it began: PostgreSQL's default.
    #[default]
    ReadCommitted,
    /// Every statement sees the snapshot taken at the first one. A write
    /// that conflicts with a concurrent commit fails with SQLSTATE 40001.
    RepeatableRead,
    /// As if transactions ran one after another; one that cannot be placed
    /// in such an order fails with SQLSTATE 40001 (serialization failure),
    /// which [`Error::is_retryable`](crate::Error::is_retryable) reports:
    /// run the whole transaction again.
    Serializable,
}

impl IsolationLevel {
    fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// How a transaction begins: its isolation level, and whether it is read
/// only (and deferrable). For `begin_with` on [`Db`](crate::Db), tenant
/// handles and [`RlsDb`](crate::RlsDb) tenant handles.
///
/// ```
/// use pebble::{IsolationLevel, TransactionOptions};
///
/// let report = TransactionOptions::new()
///     .isolation(IsolationLevel::Serializable)
///     .read_only()
///     .deferrable();
/// assert_eq!(report.begin_sql(), "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
/// let literal = TransactionOptions { isolation: IsolationLevel::RepeatableRead, read_only: false, deferrable: false };
/// assert_eq!(literal.begin_sql(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionOptions {
    /// The isolation level (default: read committed).
    pub isolation: IsolationLevel,
    /// Refuse every write: a write fails with SQLSTATE 25006
    /// ([`Error::is_read_only_violation`](crate::Error::is_read_only_violation)).
    pub read_only: bool,
    /// With `Serializable` and `read_only`: wait, if need be, for a
    /// snapshot that cannot fail with a serialization error (long reports).
    /// Ignored by PostgreSQL otherwise.
    pub deferrable: bool,
}

impl TransactionOptions {
    /// Read committed, read-write: what a plain `begin()` gives on a
    /// server with default settings.
    pub fn new() -> Self {
        TransactionOptions::default()
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = level;
        self
    }

    /// Makes the transaction read only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Makes a serializable read-only transaction deferrable.
    pub fn deferrable(mut self) -> Self {
        self.deferrable = true;
        self
    }

    /// The `BEGIN` statement these options start a transaction with. Every
    /// option is spelled out, so a server's `default_transaction_*`
    /// settings do not change what was asked for.
    pub fn begin_sql(&self) -> String {
        let access = if self.read_only {
            "READ ONLY"
        } else {
            "READ WRITE"
        };
        let deferrable = if self.deferrable { " DEFERRABLE" } else { "" };
        format!(
            "BEGIN ISOLATION LEVEL {} {access}{deferrable}",
            self.isolation.sql()
        )
    }
}
