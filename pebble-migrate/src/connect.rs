//! Opening the runner's own connections (never pooled application ones).

use tokio_postgres::{Client, Config, NoTls};

/// Connects and drives the connection on the runtime; the connection ends
/// when the client is dropped.
pub(crate) async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "pebble-migrate connection ended");
        }
    });
    Ok(client)
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
