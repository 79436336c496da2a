//! Migration files: `NNNN_name.sql`, read from a directory or embedded.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The first-line marker of a migration that must run outside a transaction
/// (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE ... ADD VALUE` before PG 12).
pub const NO_TRANSACTION_MARKER: &str = "-- pebble:no_transaction";

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: String,
    file: String,
    sql: String,
    checksum: String,
    no_transaction: bool,
}

impl Migration {
    /// A migration from its file name (`0003_add_due_date.sql`) and contents.
    pub fn new(file: &str, sql: impl Into<String>) -> Result<Migration> {
        let (version, name) = parse_file_name(file)?;
        let sql = sql.into();
        let no_transaction = sql
            .lines()
            .next()
            .is_some_and(|line| line.trim() == NO_TRANSACTION_MARKER);
        Ok(Migration {
            version,
            name,
            file: file.to_owned(),
            checksum: checksum(&sql),
            sql,
            no_transaction,
        })
    }

    /// The number before the first `_`.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name after it, without `.sql`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name, for reports.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// SHA-256 of the SQL, lowercase hex: what the ledger records.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// Whether the file starts with [`NO_TRANSACTION_MARKER`].
    pub fn no_transaction(&self) -> bool {
        self.no_transaction
    }
}

/// SHA-256 of `sql` as lowercase hex. Line endings are normalised so a file
/// checked out with CRLF on one machine does not look tampered on another.
pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.replace("\r\n", "\n").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_file_name(file: &str) -> Result<(i64, String)> {
    let refuse = |reason| {
        Err(Error::InvalidMigrationName {
            file: file.to_owned(),
            reason,
        })
    };
    let Some(stem) = file.strip_suffix(".sql") else {
        return refuse("a migration file name ends with `.sql`");
    };
    let Some((digits, name)) = stem.split_once('_') else {
        return refuse("expected `NNNN_name.sql`");
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return refuse("the version before the first `_` must be digits");
    }
    if name.is_empty() {
        return refuse("the name after the version is empty");
    }
    let Ok(version) = digits.parse::<i64>() else {
        return refuse("the version is too large");
    };
    Ok((version, name.to_owned()))
}

/// The ordered migrations of one kind of target (tenant schemas, tenant
/// databases or the shared schema).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrations {
    list: Vec<Migration>,
}

impl Migrations {
    /// Builds the set, sorted by version; duplicate versions are refused.
    pub fn new(mut list: Vec<Migration>) -> Result<Migrations> {
        list.sort_by_key(Migration::version);
        for pair in list.windows(2) {
            if pair[0].version == pair[1].version {
                return Err(Error::DuplicateVersion {
                    version: pair[0].version,
                    first: pair[0].file.clone(),
                    second: pair[1].file.clone(),
                });
            }
        }
        Ok(Migrations { list })
    }

    /// From `(file name, SQL)` pairs: what `embed_migrations!` expands to.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Migrations> {
        Migrations::new(
            files
                .into_iter()
                .map(|(file, sql)| Migration::new(file, sql))
                .collect::<Result<_>>()?,
        )
    }

    /// Every `*.sql` file of `dir` (not recursive), read now. Other files
    /// (a README) are ignored; a `.sql` file with a bad name is an error.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Migrations> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut list = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("sql") {
                continue;
            }
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .ok_or_else(|| Error::InvalidMigrationName {
                    file: path.display().to_string(),
                    reason: "the file name is not UTF-8",
                })?
                .to_owned();
            let sql = std::fs::read_to_string(&path).map_err(io(&path))?;
            list.push(Migration::new(&file, sql)?);
        }
        Migrations::new(list)
    }

    /// The migrations in version order.
    pub fn iter(&self) -> std::slice::Iter<'_, Migration> {
        self.list.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The migration with `version`.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.list
            .binary_search_by_key(&version, Migration::version)
            .ok()
            .map(|i| &self.list[i])
    }

    /// The tables these migrations leave behind: every `CREATE TABLE` name
    /// not dropped again by a later `DROP TABLE`, unqualified, lowercase
    /// unless quoted. A heuristic for the health check, which also takes an
    /// explicit list.
    pub fn declared_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = Vec::new();
        for migration in &self.list {
            for (created, name) in crate::tables::table_statements(&migration.sql) {
                if created {
                    if !tables.contains(&name) {
                        tables.push(name);
                    }
                } else {
                    tables.retain(|t| *t != name);
                }
            }
        }
        tables
    }
}

impl<'a> IntoIterator for &'a Migrations {
    type Item = &'a Migration;
    type IntoIter = std::slice::Iter<'a, Migration>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let m = Migration::new("0007_add_due_date.sql", "ALTER TABLE t ADD c int;");
        let m = m.ok();
        assert_eq!(m.as_ref().map(Migration::version), Some(7));
        assert_eq!(m.as_ref().map(Migration::name), Some("add_due_date"));
        for bad in ["0001.sql", "x_a.sql", "0001_a.txt", "_a.sql", "0001_.sql"] {
            assert!(Migration::new(bad, "").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sorts_and_refuses_duplicates() {
        let set = Migrations::from_files([("0002_b.sql", ""), ("0001_a.sql", "")]);
        let versions: Vec<i64> = set
            .iter()
            .flat_map(|s| s.iter().map(Migration::version))
            .collect();
        assert_eq!(versions, [1, 2]);
        let dup = Migrations::from_files([("0001_a.sql", ""), ("1_b.sql", "")]);
        assert!(matches!(
            dup,
            Err(Error::DuplicateVersion { version: 1, .. })
        ));
    }

    #[test]
    fn no_transaction_marker_on_the_first_line_only() {
        let yes = Migration::new(
            "1_a.sql",
            "-- pebble:no_transaction\nCREATE INDEX CONCURRENTLY i ON t (c);",
        );
        assert!(yes.is_ok_and(|m| m.no_transaction()));
        let no = Migration::new("1_a.sql", "SELECT 1;\n-- pebble:no_transaction");
        assert!(no.is_ok_and(|m| !m.no_transaction()));
    }

    #[test]
    fn checksum_ignores_line_endings() {
        assert_eq!(checksum("a\r\nb"), checksum("a\nb"));
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("").len(), 64);
    }
}
