//! Opening the runner's own connections (never pooled application ones).

use pebble::ConnectConfig;
use tokio_postgres::Client;

use crate::error::{describe, Error};
use crate::report::{pg_parts, TargetError};

/// Connects (with TLS as `config` says: pebble's connector, the same as
/// the application's pools) and drives the connection on the runtime; the
/// connection ends when the client is dropped.
pub(crate) async fn connect(config: &ConnectConfig) -> Result<Client, ConnectError> {
    config.connect_client().await.map_err(|e| match e {
        pebble::Error::Database { source, .. }
        | pebble::Error::Connection(source)
        | pebble::Error::Tls(source) => ConnectError::Pg(source),
        other => ConnectError::Setup(other),
    })
}

/// Why a connection could not be opened: the server or the network said
/// no, or the settings (TLS mode, CA certificates) could not be used.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Pg(tokio_postgres::Error),
    Setup(pebble::Error),
}

impl ConnectError {
    /// The server's SQLSTATE, if the server refused.
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Pg(e) => e.as_db_error().map(|db| db.code().code()),
            ConnectError::Setup(_) => None,
        }
    }

    pub(crate) fn target_error(&self) -> TargetError {
        let (sqlstate, message) = match self {
            ConnectError::Pg(e) => pg_parts(e),
            ConnectError::Setup(e) => (String::new(), describe(e)),
        };
        TargetError::Database { sqlstate, message }
    }
}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Error {
        match e {
            ConnectError::Pg(e) => e.into(),
            ConnectError::Setup(e) => Error::Connection(describe(&e)),
        }
    }
}

/// The first cell of the first row of a simple query's reply.
pub(crate) fn first_cell(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<&str> {
    messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    })
}

/// The rows of a simple query's reply.
pub(crate) fn rows(
    messages: &[tokio_postgres::SimpleQueryMessage],
) -> impl Iterator<Item = &tokio_postgres::SimpleQueryRow> {
    messages.iter().filter_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// `s` as a SQL string literal. Used only for validated names and hex
/// checksums, so that a target's set-up is one simple-query round trip.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
