//! Where a [`TenantManager`](crate::TenantManager)'s tenant databases
//! live: the servers it was given, and the policy that picks one for a new
//! tenant.

use std::fmt;
use std::sync::Arc;

use crate::conn::tls::MakeTls;
use crate::error::{Error, Result};

/// One server tenant databases can be placed on.
pub(super) struct Server {
    /// What registry rows record as the placement.
    pub(super) name: String,
    /// How tenant pools connect (the database is replaced by the tenant's).
    pub(super) base: tokio_postgres::Config,
    /// Where `CREATE` / `ALTER` / `DROP DATABASE` and roles run.
    pub(super) maintenance: tokio_postgres::Config,
    pub(super) tls: MakeTls,
}

/// A server a new tenant may be placed on, and how many tenants the
/// registry places there now: what a [`Placement::Custom`] policy chooses
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLoad {
    /// The server's name (as given to
    /// [`TenantManagerBuilder::server`](crate::TenantManagerBuilder::server),
    /// or the registry's server name for the base server).
    pub name: String,
    /// Tenants the registry places on it (every strategy and status).
    pub tenants: i64,
}

/// A placement function: tenant id and server loads to a server name.
pub type PlacementFn = Arc<dyn Fn(&str, &[ServerLoad]) -> String + Send + Sync>;

/// How a [`TenantManager`](crate::TenantManager) with several servers
/// picks the server of a new tenant database. A tenant already registered
/// stays where its registry row places it.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Placement {
    /// The server with the fewest registered tenants (ties: the first
    /// configured). The default.
    #[default]
    LeastLoaded,
    /// A function of the tenant id and the servers with their load,
    /// returning the name of the server to use (one of those given; any
    /// other name is [`Error::UnknownServer`] and nothing is created). For
    /// pinning tenants by region or plan, say.
    Custom(PlacementFn),
}

impl Placement {
    /// A [`Placement::Custom`] policy from a function.
    ///
    /// ```
    /// # use pebble::Placement;
    /// // Tenants whose id starts with "eu_" on server "eu", the rest on "us".
    /// let by_region = Placement::custom(|id, _servers| {
    ///     if id.starts_with("eu_") { "eu".to_owned() } else { "us".to_owned() }
    /// });
    /// ```
    pub fn custom(choose: impl Fn(&str, &[ServerLoad]) -> String + Send + Sync + 'static) -> Self {
        Placement::Custom(Arc::new(choose))
    }

    /// The index in `servers` (their names) of the server for new tenant
    /// `id`, given the registry's `load` (tenants per placement name).
    pub(super) fn choose(
        &self,
        id: &str,
        servers: &[&str],
        load: &[(String, i64)],
    ) -> Result<usize> {
        let loads: Vec<ServerLoad> = servers
            .iter()
            .map(|name| ServerLoad {
                name: (*name).to_owned(),
                tenants: load
                    .iter()
                    .find(|(placement, _)| placement == name)
                    .map_or(0, |(_, n)| *n),
            })
            .collect();
        let name = match self {
            Placement::LeastLoaded => {
                let least = loads
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, load)| (load.tenants, *i))
                    .map(|(i, _)| i);
                return least.ok_or_else(|| Error::Config("no server to place tenants on".into()));
            }
            Placement::Custom(choose) => choose(id, &loads),
        };
        index_of(servers, id, &name)
    }
}

/// The index of the server named `name`, or [`Error::UnknownServer`] for
/// tenant `id`.
pub(super) fn index_of(servers: &[&str], id: &str, name: &str) -> Result<usize> {
    servers
        .iter()
        .position(|server| *server == name)
        .ok_or_else(|| Error::UnknownServer {
            id: id.to_owned(),
            server: name.to_owned(),
        })
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::LeastLoaded => f.write_str("LeastLoaded"),
            Placement::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn least_loaded_picks_the_fewest_tenants_then_the_first() {
        let servers = ["a", "b", "c"];
        let policy = Placement::LeastLoaded;
        assert_eq!(policy.choose("x", &servers, &[]).unwrap(), 0);
        let counted = load(&[("a", 2), ("b", 1), ("c", 1), ("elsewhere", 0)]);
        assert_eq!(policy.choose("x", &servers, &counted).unwrap(), 1);
        // A server with no row counts as empty.
        let counted = load(&[("a", 1), ("b", 1)]);
        assert_eq!(policy.choose("x", &servers, &counted).unwrap(), 2);
    }

    #[test]
    fn a_custom_policy_sees_the_load_and_must_name_a_server() {
        let policy = Placement::custom(|id, servers| {
            assert_eq!(servers[1].tenants, 5);
            if id.starts_with("eu_") {
                "eu".to_owned()
            } else {
                "mars".to_owned()
            }
        });
        let servers = ["us", "eu"];
        let counted = load(&[("eu", 5)]);
        assert_eq!(policy.choose("eu_acme", &servers, &counted).unwrap(), 1);
        let err = policy.choose("acme", &servers, &counted).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownServer { id, server } if id == "acme" && server == "mars"),
            "{err:?}"
        );
    }
}
