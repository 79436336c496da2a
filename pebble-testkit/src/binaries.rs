//! Finding the binaries: PostgreSQL's on `PATH`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian and Ubuntu keep them off
//! `PATH`); PgBouncer's on `PATH`, else in `/usr/sbin`.

use std::path::{Path, PathBuf};

use crate::Error;

pub(crate) struct Binaries {
    pub(crate) initdb: PathBuf,
    pub(crate) postgres: PathBuf,
}

impl Binaries {
    pub(crate) fn find() -> Result<Binaries, Error> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .into_iter()
            .chain(debian_dirs())
            .find_map(|dir| Binaries::in_dir(&dir))
            .ok_or(Error::NoServerBinaries)
    }

    /// `name` (a client program such as `pgbench` or `psql`) from the
    /// installation whose server the throwaway clusters run.
    ///
    /// Beside `initdb`, or beside what it links to (a `PATH` entry is often
    /// a symbolic link into the installation's own directory).
    pub(crate) fn sibling(&self, name: &str) -> Option<PathBuf> {
        let resolved = std::fs::canonicalize(&self.initdb).ok();
        [Some(self.initdb.clone()), resolved]
            .into_iter()
            .flatten()
            .filter_map(|initdb| Some(initdb.parent()?.join(name)))
            .find(|binary| binary.is_file())
    }

    fn in_dir(dir: &Path) -> Option<Binaries> {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        (initdb.is_file() && postgres.is_file()).then_some(Binaries { initdb, postgres })
    }
}

/// `/usr/lib/postgresql/*/bin`, newest major version first.
fn debian_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// The `pgbouncer` binary: on `PATH`, else `/usr/sbin/pgbouncer` (where the
/// Debian package puts it, which is not on a non-root user's `PATH`).
pub(crate) fn pgbouncer() -> Result<PathBuf, Error> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    pgbouncer_in(on_path.into_iter().chain([PathBuf::from("/usr/sbin")]))
}

fn pgbouncer_in(dirs: impl IntoIterator<Item = PathBuf>) -> Result<PathBuf, Error> {
    dirs.into_iter()
        .map(|dir| dir.join("pgbouncer"))
        .find(|binary| binary.is_file())
        .ok_or(Error::NoPgBouncer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_beside_initdb_and_a_missing_one_is_named() {
        let error = crate::postgres_program("pebble-no-such-program").map_err(|e| e.to_string());
        let message = error.err().unwrap_or_default();
        // Without server binaries (tests given a `DATABASE_URL`) the
        // error says that instead.
        let Ok(binaries) = Binaries::find() else {
            assert!(message.contains("server binaries"), "{message}");
            return;
        };
        let postgres = binaries
            .sibling("postgres")
            .expect("postgres beside initdb");
        assert_eq!(postgres.file_name(), Some("postgres".as_ref()));
        assert!(binaries.sibling("pebble-no-such-program").is_none());
        assert!(message.contains("`pebble-no-such-program`"), "{message}");
    }

    #[test]
    fn a_missing_pgbouncer_says_how_to_install_it() {
        let empty = std::env::temp_dir().join("pebble-testkit-no-such-dir");
        let error = pgbouncer_in([empty]).map_err(|e| e.to_string());
        let message = error.err().unwrap_or_default();
        assert!(message.contains("apt-get install pgbouncer"), "{message}");
    }
}
