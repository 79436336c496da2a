//! Statements on the server's maintenance database: creating and dropping
//! tenant databases.

use tokio_postgres::{error::SqlState, NoTls};

use crate::error::{Error, Result};

use super::tenant_id::quote;

/// Creates `database`; already existing (say, created by a concurrent
/// caller) counts as success.
pub(crate) async fn create_database(
    maintenance: &tokio_postgres::Config,
    database: &str,
) -> Result<()> {
    match execute(maintenance, &format!("CREATE DATABASE {}", quote(database))).await {
        Err(e) if already_exists(&e) => Ok(()),
        other => other,
    }
}

/// Renames `from` to `to`; fails with [`already_exists`] if `to` exists.
pub(crate) async fn rename_database(
    maintenance: &tokio_postgres::Config,
    from: &str,
    to: &str,
) -> Result<()> {
    let sql = format!("ALTER DATABASE {} RENAME TO {}", quote(from), quote(to));
    execute(maintenance, &sql).await
}

/// Drops `database` if it exists.
pub(crate) async fn drop_database(
    maintenance: &tokio_postgres::Config,
    database: &str,
) -> Result<()> {
    execute(
        maintenance,
        &format!("DROP DATABASE IF EXISTS {}", quote(database)),
    )
    .await
}

pub(crate) fn already_exists(e: &Error) -> bool {
    // Two CREATE DATABASE racing can also collide in the catalog's unique index.
    matches!(
        e.code(),
        Some(code) if *code == SqlState::DUPLICATE_DATABASE || *code == SqlState::UNIQUE_VIOLATION
    )
}

async fn execute(config: &tokio_postgres::Config, sql: &str) -> Result<()> {
    tracing::info!(target: "pebble::manager", sql, "maintenance statement");
    let (client, connection) = config.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = connection.await;
    Ok(result?)
}
