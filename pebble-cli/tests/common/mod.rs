//! Running the built `pebble` binary against a test database.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub const CREATE_TASKS: (&str, &str) = (
    "0001_create_tasks.sql",
    "CREATE TABLE tasks (id bigserial PRIMARY KEY, title text, done boolean NOT NULL DEFAULT false);\nCREATE INDEX tasks_done ON tasks (done);\n",
);
pub const TITLE_NOT_NULL: (&str, &str) = (
    "0002_title_not_null.sql",
    "ALTER TABLE tasks ALTER COLUMN title SET NOT NULL;\n",
);
pub const ADD_DUE: (&str, &str) = (
    "0003_add_due.sql",
    "ALTER TABLE tasks ADD COLUMN due date;\nCREATE TABLE labels (id bigserial PRIMARY KEY, name text NOT NULL);\n",
);

/// A URL for `config` (host, port, user, password, database).
pub fn url(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}{password}@{host}:{port}/{db}")
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory holding `files` as migrations.
pub fn migrations(files: &[(&str, &str)]) -> std::io::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "migrations_{}_{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql)?;
    }
    Ok(dir)
}

/// The binary with `DATABASE_URL` set to `url` (or unset if empty).
pub fn command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pebble"));
    command.args(args).env_remove("DATABASE_URL");
    if !url.is_empty() {
        command.env("DATABASE_URL", url);
    }
    command
}

/// Runs it; returns exit code, stdout, stderr.
pub fn pebble(url: &str, args: &[&str]) -> std::io::Result<(i32, String, String)> {
    let output = command(url, args).output()?;
    Ok(split(output))
}

pub fn split(output: Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub async fn client(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

pub async fn count(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}
