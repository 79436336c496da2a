//! Errors that end the command, and their exit codes.

use std::fmt;

/// Exit code: everything is fine.
pub const OK: u8 = 0;
/// Exit code: the command ran and found problems (failed targets, health findings).
pub const FINDINGS: u8 = 1;
/// Exit code: bad usage, bad input or no connection.
pub const USAGE: u8 = 2;

/// A message for stderr and exit code 2.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<pebble_migrate::Error> for Failure {
    fn from(e: pebble_migrate::Error) -> Self {
        Failure(e.to_string())
    }
}

/// Parses the connection URL, with a message that says which input was bad.
/// TLS settings in it (`sslmode=verify-full`, `sslrootcert=`) are kept.
pub fn config(url: Option<&str>) -> Result<pebble::ConnectConfig, Failure> {
    let url = url.filter(|u| !u.is_empty()).ok_or_else(|| {
        Failure("no database: pass --database-url or set DATABASE_URL".to_owned())
    })?;
    pebble::IntoConfig::into_connect(url).map_err(|e| Failure(format!("invalid database URL: {e}")))
}

/// Adds where we tried to connect to a connection failure.
pub fn connection(e: pebble_migrate::Error, config: &pebble::ConnectConfig) -> Failure {
    let config = config.pg();
    match e {
        pebble_migrate::Error::Connection(message) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            Failure(format!(
                "cannot connect to PostgreSQL at {}:{port} (database {:?}): {message}",
                hosts.join(","),
                config.get_dbname().unwrap_or("postgres"),
            ))
        }
        other => other.into(),
    }
}
