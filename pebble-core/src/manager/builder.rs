//! [`TenantManagerBuilder`]: how a [`TenantManager`] connects, names and
//! bounds its tenant databases.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::pool::{IntoConfig, PoolOptions};
use crate::conn::tls::ConnectConfig;
use crate::error::Result;
use crate::handle::database::TenantDatabase;
use crate::handle::db::Db;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

use super::connect::Budget;
use super::placement::{Placement, Server};
use super::registry::Registry;
use super::{Inner, SetupHook, TenantManager};
use crate::provision::registry::Registry as Catalog;

/// Settings of a [`TenantManager`], from [`TenantManager::builder`].
///
/// ```no_run
/// # use std::time::Duration;
/// # use pebble::{Model, PoolOptions, TenantDatabase, TenantManager};
/// # #[derive(Model)] #[pebble(per_tenant)] struct Note { #[pebble(primary_key, default)] id: i64, body: String }
/// # async fn demo() -> pebble::Result<()> {
/// let manager = TenantManager::builder("postgres://app@localhost/postgres")
///     .pool(PoolOptions::default().max_size(4))
///     .max_open_pools(200)
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .create_missing(true)
///     .setup(|db: TenantDatabase, _tenant: String| async move { db.create_table::<Note>().await })
///     .build()?;
/// let acme = manager.db("acme").await?; // database "tenant_acme", created if missing
/// # Ok(()) }
/// ```
#[must_use = "call `.build()` to make the manager"]
pub struct TenantManagerBuilder {
    base: Result<ConnectConfig>,
    /// Servers added with `server`, beside the base one.
    servers: Vec<(String, Result<ConnectConfig>)>,
    settings: Settings,
}

/// What the builder sets and the manager then follows.
pub(super) struct Settings {
    pub(super) pool: PoolOptions,
    pub(super) database_name: Arc<dyn Fn(&str) -> String + Send + Sync>,
    pub(super) max_open_pools: usize,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) create_missing: bool,
    pub(super) setup: Option<SetupHook>,
    /// The tenant registry and this manager's server name in it.
    pub(super) catalog: Option<(Db, String)>,
    /// A login role per tenant database.
    pub(super) roles: bool,
    /// Which server a new tenant goes to.
    pub(super) placement: Placement,
}

impl TenantManagerBuilder {
    pub(super) fn new(base: impl IntoConfig) -> Self {
        TenantManagerBuilder {
            base: base.into_connect(),
            servers: Vec::new(),
            settings: Settings {
                pool: PoolOptions::default().max_size(4),
                database_name: Arc::new(|id| format!("tenant_{id}")),
                max_open_pools: 64,
                idle_timeout: Some(Duration::from_secs(300)),
                create_missing: false,
                setup: None,
                catalog: None,
                roles: false,
                placement: Placement::LeastLoaded,
            },
        }
    }

    /// Size and timeouts of each tenant's pool (default: 4 connections).
    /// At most `max_open_pools × max_size` connections of this manager are
    /// open at once, whatever their pool; a caller waits for one (then
    /// fails) as long as the pool's `wait_timeout`.
    pub fn pool(mut self, options: PoolOptions) -> Self {
        self.settings.pool = options;
        self
    }

    /// The database of a tenant id (default: `tenant_<id>`). Its result must
    /// be lowercase ASCII letters, digits and `_`, at most 63 bytes, and
    /// never a system database (`postgres`, `template0`, `template1`), the
    /// database of the manager's base configuration, or a `pebble_new_*`
    /// staging name; otherwise the id is [`Error::InvalidTenantId`](crate::Error::InvalidTenantId).
    pub fn database_name(mut self, name: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.settings.database_name = Arc::new(name);
        self
    }

    /// How many tenant pools may be open at once (default 64, at least 1).
    /// Opening one more evicts the least recently used idle pool; while
    /// every pool is busy, it waits for one to become idle (as long as the
    /// pool's `wait_timeout`).
    pub fn max_open_pools(mut self, max: usize) -> Self {
        self.settings.max_open_pools = max.max(1);
        self
    }

    /// Closes a tenant's pool once it has been idle this long (default
    /// 5 minutes; `None` keeps pools open until evicted by the cap).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Creates a tenant's database on first access when it does not exist
    /// (default `false`: a missing database is an error).
    pub fn create_missing(mut self, create: bool) -> Self {
        self.settings.create_missing = create;
        self
    }

    /// Runs once on each database the manager creates, before any caller
    /// gets it: create tables, run migrations. It gets the new database's
    /// [`TenantDatabase`] handle (so `create_table` takes per-tenant models)
    /// and the tenant id. If it fails, the new database is dropped again
    /// and the error returned, so the next access retries.
    pub fn setup<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(TenantDatabase, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.settings.setup = Some(Arc::new(move |db, tenant| Box::pin(hook(db, tenant))));
        self
    }

    /// Records the tenants this manager provisions in the tenant registry
    /// (`public.pebble_tenants`) on `home`, placed on server `server` (the
    /// name of the base server, which rows record as the placement; see
    /// [`server`](Self::server) for more servers). A database it creates is
    /// registered `pending` and marked `ready` once set up and renamed into
    /// place; [`TenantManager::drop_tenant`](crate::TenantManager::drop_tenant)
    /// marks the row `dropping` first and deletes it last.
    ///
    /// The row also serialises provisioning and dropping across tasks and
    /// processes: a `db(id)` racing a `drop_tenant(id)` fails with
    /// [`Error::TenantDropped`](crate::Error::TenantDropped) instead of
    /// creating the database again, and
    /// [`TenantManager::cleanup`](crate::TenantManager::cleanup) can tell a
    /// crashed provisioning from one in progress.
    pub fn registry(mut self, home: Db, server: &str) -> Self {
        self.settings.catalog = Some((home, server.to_owned()));
        self
    }

    /// Creates a login role per tenant database the manager provisions,
    /// named like the database (`tenant_<id>`): NOSUPERUSER, NOBYPASSRLS,
    /// NOINHERIT, with CONNECT on its own database only (CONNECT and
    /// TEMPORARY are revoked from PUBLIC on every tenant database) and row
    /// privileges on the tables `setup` created in `public`. A connection
    /// as one tenant's role cannot open another tenant's database. The
    /// password is returned by
    /// [`TenantManager::create_tenant`](crate::TenantManager::create_tenant)
    /// (a database created by `db(id)` with `create_missing` gets a role
    /// whose password nobody has until
    /// [`TenantManager::reset_role_password`](crate::TenantManager::reset_role_password)).
    pub fn roles(mut self, on: bool) -> Self {
        self.settings.roles = on;
        self
    }

    /// Adds a server tenant databases can be placed on, under `name` (what
    /// registry rows record as the placement), connecting as `config` says
    /// (its database, default `postgres`, is where tenant databases are
    /// created and dropped on that server; TLS as the pool options say).
    /// The base server given to [`TenantManager::builder`] is one of the
    /// servers too, named by [`registry`](Self::registry)'s `server`.
    ///
    /// A new tenant goes to the server the [`placement`](Self::placement)
    /// policy picks (default: the fewest registered tenants), its registry
    /// row records it, and every later `db`, `drop_tenant`,
    /// `create_tenant`, `reset_role_password` and `cleanup` goes to that
    /// server, from this manager or any other over the same registry.
    /// Needs the registry (`build` is [`Error::Config`](crate::Error::Config)
    /// without it: nothing else would remember where a tenant is).
    ///
    /// ```no_run
    /// # use pebble::{Db, TenantManager};
    /// # async fn demo(home: Db) -> pebble::Result<()> {
    /// let manager = TenantManager::builder("postgres://app@db1.internal/postgres")
    ///     .registry(home, "db1")                       // the base server is "db1"
    ///     .server("db2", "postgres://app@db2.internal/postgres")
    ///     .create_missing(true)
    ///     .build()?;
    /// let acme = manager.db("acme").await?;           // on db1 or db2, as registered
    /// # Ok(()) }
    /// ```
    pub fn server(mut self, name: &str, config: impl IntoConfig) -> Self {
        self.servers.push((name.to_owned(), config.into_connect()));
        self
    }

    /// How a new tenant's server is picked among several (default
    /// [`Placement::LeastLoaded`]). Ignored with one server.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.settings.placement = placement;
        self
    }

    /// The manager. Opens nothing until a tenant is asked for.
    /// [`Error::Config`](crate::Error::Config) for servers with the same or
    /// an empty name, or several servers without a registry.
    pub fn build(self) -> Result<TenantManager> {
        let base_name = match &self.settings.catalog {
            Some((_, name)) => name.clone(),
            None => "default".to_owned(),
        };
        let mut servers = Vec::with_capacity(1 + self.servers.len());
        for (name, config) in std::iter::once((base_name, self.base)).chain(self.servers) {
            // The TLS of every connection the manager opens, tenant pools
            // and maintenance alike.
            let (base, tls) = config?.with_tls(&self.settings.pool.tls).prepare()?;
            let mut maintenance = base.clone();
            if base.get_dbname().is_none() {
                maintenance.dbname("postgres");
            }
            if name.is_empty() || servers.iter().any(|s: &Server| s.name == name) {
                return Err(crate::Error::Config(format!(
                    "tenant manager server names must be unique and not empty: {name:?}"
                )));
            }
            servers.push(Server {
                name,
                base,
                maintenance,
                tls,
            });
        }
        if servers.len() > 1 && self.settings.catalog.is_none() {
            return Err(crate::Error::Config(
                "placing tenants over several servers needs the tenant registry \
                 (TenantManagerBuilder::registry): it records each tenant's server"
                    .into(),
            ));
        }
        Ok(TenantManager {
            inner: Arc::new(Inner {
                servers,
                registry: Registry::new(),
                pools_opened: AtomicU64::new(0),
                reaper: Mutex::new(None),
                budget: Budget::new(
                    self.settings
                        .max_open_pools
                        .saturating_mul(self.settings.pool.max_size),
                ),
                pools: Mutex::new(Vec::new()),
                pools_swept: AtomicUsize::new(0),
                room: tokio::sync::Mutex::new(()),
                queued: AtomicUsize::new(0),
                catalog: self
                    .settings
                    .catalog
                    .as_ref()
                    .map(|(home, _)| Catalog::new(home.clone())),
                settings: self.settings,
            }),
        })
    }
}

impl fmt::Debug for TenantManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.settings;
        f.debug_struct("TenantManagerBuilder")
            .field("pool", &settings.pool)
            .field("max_open_pools", &settings.max_open_pools)
            .field("idle_timeout", &settings.idle_timeout)
            .field("create_missing", &settings.create_missing)
            .field(
                "servers",
                &self
                    .servers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("placement", &settings.placement)
            .field("setup", &settings.setup.is_some())
            .field(
                "registry",
                &settings.catalog.as_ref().map(|(_, server)| server),
            )
            .finish_non_exhaustive()
    }
}
