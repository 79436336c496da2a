//! [`TenantManager`]: a database per tenant, each reached through a pool
//! opened lazily, shared safely, and closed when no longer needed.

mod admin;
mod builder;
mod connect;
mod placement;
mod registry;
mod tenant_id;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::conn::client::{Hook, PgManager, Pool, WeakPool};
use deadpool_postgres::{HookError, ManagerConfig, RecyclingMethod, Runtime};
use tokio::time::Instant;

pub use builder::TenantManagerBuilder;
pub use placement::{Placement, PlacementFn, ServerLoad};

use builder::Settings;

use crate::conn::pool::IntoConfig;
use crate::error::{Error, Result};
use crate::handle::database::TenantDatabase;
use crate::handle::db::Db;
use crate::provision::registry::{
    Claimed, Registry as Catalog, RowState, TenantRecord, TenantStrategy,
};
use crate::provision::roles::TenantRole;
use crate::SqlState;

pub(crate) use connect::refusal;
use connect::{Budget, Connector, PoolConnect, PoolState};
use placement::{index_of, Server};
use registry::{Registry, Reservation};

type SetupFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type SetupHook = Arc<dyn Fn(TenantDatabase, String) -> SetupFuture + Send + Sync>;

/// How long `drop_tenant` waits for queries still running on the tenant.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an opener waiting for room under `max_open_pools` looks for an
/// idle pool. Nothing signals when a pool becomes idle (a handle dropped, a
/// connection returned), so the one waiter at the head of the queue looks.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// A pool per tenant database (`tenant_<id>`), opened on first use.
///
/// - `db(id)` for a tenant whose pool is open is a map lookup and an `Arc`
///   clone. For a new tenant, many concurrent callers open exactly one pool,
///   and opening it never blocks lookups or opens of other tenants.
/// - Tenant ids are validated (lowercase ASCII letters, digits, `_`; the
///   database name at most 63 bytes) and always quoted; a bad id is
///   [`Error::InvalidTenantId`] and touches nothing.
/// - At most `max_open_pools` pools are open. Opening another evicts the
///   least recently used *idle* pool; while every open pool is busy it waits
///   (up to the pool's `wait_timeout`) for one to become idle, and fails
///   with [`Error::Timeout`] after that. Pools idle longer than
///   `idle_timeout` are closed.
/// - At most `max_open_pools × max_size` connections are open to the server
///   from this manager, counting every pool (also closed ones whose
///   statements still run), setup's staging pools and its own `CREATE` /
///   `DROP DATABASE` connections. A connection beyond that waits for one to
///   close (idle connections of other pools are closed for it) up to the
///   pool's `wait_timeout`, then fails with [`Error::Timeout`].
///   [`TenantManager::status`] shows the counts.
/// - With `create_missing(true)` a tenant's database is created on first
///   access and the `setup` hook runs on it once.
/// - With [`server`](TenantManagerBuilder::server) (and the registry),
///   tenant databases are placed over several servers: a new one where the
///   [`Placement`] policy says, every later operation on the server its
///   registry row names. A manager with a registry only ever takes a
///   tenant for its own when the row places it on one of its servers;
///   other rows are [`Error::UnknownServer`].
/// - A pool whose database went away (another process dropped the tenant,
///   perhaps re-creating it on another server or under the same name on
///   the same one: a pool remembers the oid of the database it first
///   reached) is forgotten at its first failed connect; statements through it fail with
///   [`Error::TenantDatabaseGone`] and the next `db(id)` reads the
///   registry again.
///
/// Cheap to clone; clones share the pools.
///
/// ```no_run
/// # use pebble::{Model, TenantManager};
/// # #[derive(Model, Debug)] #[pebble(per_tenant)] struct Note { #[pebble(primary_key, default)] id: i64, body: String }
/// # async fn demo() -> pebble::Result<()> {
/// let manager = TenantManager::builder("postgres://app@localhost/postgres")
///     .create_missing(true)
///     .setup(|db, _tenant| async move { db.create_table::<Note>().await }) // db: TenantDatabase
///     .build()?;
/// let acme = manager.db("acme").await?;
/// acme.insert(Note { id: 0, body: "only in tenant_acme".into() }).exec().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantManager {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The servers tenant databases live on: the base one first.
    servers: Vec<Server>,
    settings: Settings,
    registry: Registry,
    pools_opened: AtomicU64,
    /// The idle-pool reaper, restarted if its runtime went away.
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The connection bound shared by every pool of this manager.
    budget: Arc<Budget>,
    /// Every pool this manager made that still exists, open or not.
    pools: Mutex<Vec<(WeakPool, Arc<PoolState>)>>,
    /// How many pools `pools` held after its last sweep.
    pools_swept: AtomicUsize,
    /// Openers waiting for room under `max_open_pools`, first come first served.
    room: tokio::sync::Mutex<()>,
    /// How many openers wait for `room`.
    queued: AtomicUsize,
    /// The tenant registry.
    catalog: Option<Catalog>,
}

/// A snapshot of a [`TenantManager`]'s pools and connections, from
/// [`TenantManager::status`].
///
/// `connections_open` never exceeds `max_connections`
/// (`max_open_pools × pool max_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerStatus {
    /// Tenant pools open (what [`TenantManager::tenants`] lists).
    pub open_pools: usize,
    /// Tenant pools being opened (they hold room under `max_open_pools`).
    pub opening_pools: usize,
    /// Opens waiting for room under `max_open_pools` (every open pool busy).
    pub opens_waiting: usize,
    /// Pools no longer open in the manager (evicted, closed or dropped)
    /// that still exist because a handle on them is held.
    pub detached_pools: usize,
    /// The cap on open pools (`max_open_pools`).
    pub max_open_pools: usize,
    /// Connections this manager has open to the server right now, of every
    /// pool, setup's staging pools and maintenance statements, including
    /// connections being opened and closed ones the server has not yet
    /// finished closing.
    pub connections_open: usize,
    /// Connections of the manager's pools checked out by a statement (or
    /// about to be, for a caller waiting on that pool).
    pub connections_in_use: usize,
    /// Callers (statements, and the manager's own maintenance work)
    /// waiting for a connection because `connections_open` is at
    /// `max_connections`.
    pub connections_waiting: usize,
    /// The bound on `connections_open`: `max_open_pools × pool max_size`.
    pub max_connections: usize,
    /// Tenant pools opened since the manager was built (re-opening an
    /// evicted tenant counts again); see [`TenantManager::pools_opened`].
    pub pools_opened: u64,
    /// Connections opened (or attempted) since the manager was built.
    pub connections_opened: u64,
}

impl TenantManager {
    /// Settings for a manager whose tenant databases live on the server of
    /// `base` (a URL, key-value string or [`tokio_postgres::Config`]), and
    /// on any server added with [`TenantManagerBuilder::server`]. The
    /// database named in `base` (default `postgres`) is where tenant
    /// databases are created and dropped.
    pub fn builder(base: impl IntoConfig) -> TenantManagerBuilder {
        TenantManagerBuilder::new(base)
    }

    /// The handle on tenant `id`'s database, opening its pool if needed.
    ///
    /// Errors: [`Error::InvalidTenantId`] for a bad id; a missing database is
    /// [`Error::Database`] with SQLSTATE `3D000` unless `create_missing`; a
    /// server that is down is [`Error::Connection`], and the next call tries
    /// again. With several servers, a tenant the registry does not know is
    /// [`Error::UnknownTenant`] unless `create_missing` (then it is placed
    /// and provisioned). With a registry, a tenant whose row names a server
    /// this manager was not given is [`Error::UnknownServer`], also for a
    /// manager of one server: it never opens, or creates, a database of
    /// that name on its own server.
    ///
    /// The pool goes to the server of the row the open acts on: if
    /// provisioning finds that another process registered the tenant
    /// meanwhile, on another server, the pool is opened there.
    ///
    /// A handle stays bound to the database it was opened on. If that
    /// database goes away (another process drops the tenant and perhaps
    /// re-creates it, elsewhere or on the same server), statements through the handle fail with
    /// [`Error::TenantDatabaseGone`] without being sent or retried, the
    /// manager forgets the pool, and the next `db(id)` reads the registry
    /// again and opens the tenant where it is now. (A statement on a
    /// connection the server ended meanwhile fails as the connection does,
    /// [`Error::Connection`] say; the next one gets `TenantDatabaseGone`.)
    ///
    /// The handle is a [`TenantDatabase`]: it queries `#[pebble(per_tenant)]`
    /// (and shared) models, which a plain [`Db`] refuses.
    pub async fn db(&self, id: &str) -> Result<TenantDatabase> {
        let db = match self.inner.registry.get(id) {
            Some(db) => db,
            None => self.open(id).await?,
        };
        Ok(TenantDatabase::new(db, id))
    }

    async fn open(&self, id: &str) -> Result<Db> {
        let inner = &self.inner;
        let database = inner.database(id)?;
        inner.start_reaper();
        loop {
            let slot = inner.registry.slot(id);
            let room_failures = slot.room_failures.load(Ordering::Relaxed);
            // Single flight: one task opens, the others wait here and then
            // find the pool published. A cancelled opener lets the next try.
            let _opening = slot.lock_opening().await;
            if slot.room_failures.load(Ordering::Relaxed) != room_failures {
                return Err(no_room());
            }
            if let Some(db) = slot.db() {
                if inner.registry.is_current(id, &slot) {
                    inner.registry.touch(&slot);
                    return Ok(db.clone());
                }
                // Evicted or closed while we waited: start over with a new slot.
                continue;
            }
            let reservation = match inner.reserve(id).await {
                Ok(reservation) => reservation,
                Err(e) => {
                    slot.room_failures.fetch_add(1, Ordering::Relaxed);
                    inner.registry.forget_failed(id, &slot);
                    return Err(e);
                }
            };
            let db = match inner.connect(id, &database, &slot.state).await {
                Ok(db) => db,
                Err(e) => {
                    drop(reservation);
                    inner.registry.forget_failed(id, &slot);
                    return Err(e);
                }
            };
            inner.registry.publish(id, &slot, db.clone(), reservation);
            return Ok(db);
        }
    }

    /// Pools, connections and their bounds right now. Looks at every pool
    /// of the manager, so it costs in proportion to their number: fine for
    /// metrics and health checks, not for every request.
    ///
    /// ```no_run
    /// # async fn demo(manager: pebble::TenantManager) {
    /// let status = manager.status();
    /// assert!(status.connections_open <= status.max_connections);
    /// # }
    /// ```
    pub fn status(&self) -> ManagerStatus {
        let inner = &self.inner;
        let (open_pools, opening_pools) = inner.registry.counts();
        let (mut detached_pools, mut connections_in_use) = (0, 0);
        for (pool, state) in inner.live_pools() {
            let status = pool.status();
            connections_in_use += status.size - status.available;
            if state.is_detached() {
                detached_pools += 1;
            }
        }
        ManagerStatus {
            open_pools,
            opening_pools,
            opens_waiting: inner.queued.load(Ordering::Relaxed),
            detached_pools,
            max_open_pools: inner.settings.max_open_pools,
            connections_open: inner.budget.in_use(),
            connections_in_use,
            connections_waiting: inner.budget.waiting(),
            max_connections: inner.budget.limit(),
            pools_opened: self.pools_opened(),
            connections_opened: inner.budget.opened(),
        }
    }

    /// Ids of the tenants whose pools are open, sorted.
    pub fn tenants(&self) -> Vec<String> {
        self.inner.registry.open_ids()
    }

    /// How many tenant pools this manager has opened since it was built
    /// (re-opening an evicted tenant counts again).
    pub fn pools_opened(&self) -> u64 {
        self.inner.pools_opened.load(Ordering::Relaxed)
    }

    /// Closes tenant `id`'s pool: new statements through handles already
    /// given out fail with [`Error::Pool`]; statements running finish. The
    /// next `db(id)` opens a fresh pool. Returns whether a pool was open.
    pub fn close_tenant(&self, id: &str) -> bool {
        match self.inner.registry.remove(id, false) {
            Some(db) => {
                db.close();
                true
            }
            None => false,
        }
    }

    /// Drops tenant `id`'s database, if pebble provisioned it.
    ///
    /// Only a database carrying the marker pebble writes when it provisions
    /// one (the comment `pebble tenant <id>`) is dropped; any other
    /// database of that name is refused with
    /// [`Error::NotProvisionedByPebble`] before anything is touched.
    /// Databases provisioned by pebble versions before the marker carry
    /// none: adopt one with `COMMENT ON DATABASE "tenant_x" IS 'pebble tenant x'`.
    ///
    /// Then closes the tenant's pool: statements running on it finish (this
    /// waits up to 30 s for them); statements waiting for one of its
    /// connections fail with [`Error::TenantDropped`] as soon as a running
    /// one frees a connection ([`Error::Pool`] if their wait timeout comes
    /// first), and so does any statement later sent through a handle on it.
    /// Then `DROP DATABASE`. A database that does not exist is not an
    /// error. Refuses an invalid id without touching anything.
    ///
    /// With a registry, the drop first takes the tenant's row and goes to
    /// the server *that row* names (read in the transaction that holds it,
    /// so a drop and re-create by another process meanwhile is never
    /// mixed up with it); a row naming a server this manager was not given
    /// is [`Error::UnknownServer`], and nothing is touched. With several
    /// servers, a tenant the registry does not know has nothing to drop
    /// (pools of it this manager still has are closed as dropped).
    pub async fn drop_tenant(&self, id: &str) -> Result<()> {
        let inner = &self.inner;
        let database = inner.database(id)?;
        // Where the tenant is comes from the row this drop holds, read in
        // the transaction that holds it: a row read before taking it may be
        // stale by then (another process dropped the tenant and created it
        // again on another server), and dropping on the server it named
        // would miss the database and delete the new tenant's row.
        let target = match &inner.catalog {
            Some(catalog) => match catalog.lock_for_drop(id).await? {
                Some(lock) => {
                    let record = lock.record();
                    // A schema tenant's row names a server of
                    // `SchemaTenants`, not one of this manager's.
                    if record.strategy != TenantStrategy::Database {
                        return Err(Error::StrategyMismatch {
                            id: id.to_owned(),
                            registered: record.strategy.to_string(),
                        });
                    }
                    let server = inner.server_of(record)?;
                    // Refused while the row is still as it was.
                    inner.refuse_foreign(server, &database, id).await?;
                    // Marked `dropping` (and held) before the pool goes: an
                    // open racing this drop then sees it and refuses
                    // instead of handing out (or re-creating) the database.
                    // `None`: another drop finished it meanwhile.
                    lock.mark().await?.map(|claim| (server, Some(claim)))
                }
                // Without a row, a one-server manager still drops the
                // database it would open (made before the registry, or by
                // hand); with several, nothing says where one would be.
                None if inner.servers.len() == 1 => {
                    inner.refuse_foreign(0, &database, id).await?;
                    Some((0, None))
                }
                None => None,
            },
            None => {
                inner.refuse_foreign(0, &database, id).await?;
                Some((0, None))
            }
        };
        if let Some(db) = inner.registry.remove(id, true) {
            drain(db.pool()).await?;
        }
        // Pools of this tenant that already left the registry (evicted)
        // while something still holds them: marked too, or such a holder
        // would reach a database re-created under the same id. Only
        // detached ones: a pool an open racing this drop is making is not
        // this database's.
        for (pool, state) in inner.live_pools() {
            if state.id == id && state.is_detached() && !state.is_dropped() {
                state.mark_dropped();
                drain(&pool).await?;
            }
        }
        let Some((server, claim)) = target else {
            return Ok(());
        };
        let connector = inner.connector(server);
        let maintenance = &inner.servers[server].maintenance;
        admin::drop_tenant_database(&connector, maintenance, &database, id).await?;
        // A crashed provisioning's leftovers, before the role, which one of
        // them may have been granted CONNECT on: while the held row says
        // they are this registry's, or, without a registry, as everything
        // of this tenant on the one server (a caller such as
        // pebble-migrate holds its own registry's row).
        if claim.is_some() || inner.catalog.is_none() {
            drop_staging_of(&connector, maintenance, id, &database).await?;
        }
        if inner.settings.roles {
            admin::drop_role(&connector, maintenance, &database).await?;
        }
        if let Some(claim) = claim {
            claim.delete().await?;
        }
        Ok(())
    }

    /// Provisions tenant `id`'s database as `db(id)` with `create_missing`
    /// would (staged, set up, registered), without opening its pool, and
    /// returns its login role with the generated password when
    /// [`roles`](TenantManagerBuilder::roles) are on and this call created
    /// it: the only time the password is handed out. `Ok(None)` if the
    /// database already existed (or roles are off).
    ///
    /// With several servers, a tenant the registry already places stays on
    /// its server; a new one goes where the
    /// [`placement`](TenantManagerBuilder::placement) policy says. A
    /// tenant whose row names a server this manager was not given is
    /// [`Error::UnknownServer`] (with one server too), and nothing is
    /// created.
    pub async fn create_tenant(&self, id: &str) -> Result<Option<TenantRole>> {
        let inner = &self.inner;
        let database = inner.database(id)?;
        let server = match inner.locate(id).await? {
            Some(server) => server,
            None => inner.place_new(id).await?,
        };
        let connector = inner.connector(server);
        let maintenance = &inner.servers[server].maintenance;
        if admin::marker(&connector, maintenance, &database, id).await? != admin::Marker::Missing {
            return Ok(None);
        }
        Ok(inner.provision(id, &database, server).await?.1)
    }

    /// Gives tenant `id`'s login role a new generated password and returns
    /// it (the old one stops working). [`Error::UnknownTenant`] if the
    /// tenant has no role; [`Error::RoleNotProvisionedByPebble`] if the
    /// role of that name was not created by pebble (it is left as it is).
    pub async fn reset_role_password(&self, id: &str) -> Result<TenantRole> {
        let inner = &self.inner;
        let database = inner.database(id)?;
        let Some(server) = inner.locate(id).await? else {
            return Err(Error::UnknownTenant { id: id.to_owned() });
        };
        let role = TenantRole::generate(database);
        let maintenance = &inner.servers[server].maintenance;
        match admin::set_password(&inner.connector(server), maintenance, &role).await {
            Ok(true) => Ok(role),
            Ok(false) => Err(Error::UnknownTenant { id: id.to_owned() }),
            Err(Error::RoleNotProvisionedByPebble { role, .. }) => {
                Err(Error::RoleNotProvisionedByPebble {
                    id: id.to_owned(),
                    role,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this manager records its tenants in a
    /// [`registry`](TenantManagerBuilder::registry) (and holds a tenant's
    /// row while it provisions it).
    pub fn has_registry(&self) -> bool {
        self.inner.catalog.is_some()
    }

    /// The tenant registry's rows (every strategy), by id; empty without a
    /// [`registry`](TenantManagerBuilder::registry).
    pub async fn registered(&self) -> Result<Vec<TenantRecord>> {
        match &self.inner.catalog {
            Some(catalog) => catalog.list().await,
            None => Ok(Vec::new()),
        }
    }

    /// Removes what crashed provisionings and drops left on this manager's
    /// servers: database tenants whose registry row is `pending` or
    /// `dropping` and held by no one (their database, if pebble marked it,
    /// their staging databases, their role with
    /// [`roles`](TenantManagerBuilder::roles), and their row), and
    /// `pebble_new_*` staging databases whose tenant's row in this registry
    /// is a database tenant on that server that no provisioning holds
    /// right now. A staging database of a tenant the registry does not
    /// know, or places elsewhere, is left: on a server shared with another
    /// application, it may be that one's provisioning in progress. A role
    /// that cannot be dropped yet (privileges granted to it by hand) keeps
    /// its row for a later cleanup. Rows placing a tenant on a server
    /// this manager was not given are left for a manager that has it. A
    /// provisioning in progress holds its row and is never touched.
    /// Returns what was removed (tenant ids and staging database names).
    ///
    /// Needs the [`registry`](TenantManagerBuilder::registry): without it a
    /// staging database in use cannot be told from an abandoned one
    /// ([`Error::Config`]).
    pub async fn cleanup(&self) -> Result<Vec<String>> {
        let inner = &self.inner;
        let Some(catalog) = &inner.catalog else {
            return Err(Error::Config(
                "cleanup needs the tenant registry: set TenantManagerBuilder::registry".into(),
            ));
        };
        let mut removed = Vec::new();
        for claim in catalog.abandoned(TenantStrategy::Database).await? {
            let id = claim.record().id.clone();
            let database = inner.database(&id)?;
            let server = match inner.server_of(claim.record()) {
                Ok(server) => server,
                // On a server this manager does not know: a manager that
                // knows it cleans it up. Dropping the claim lets it go as is.
                Err(Error::UnknownServer { server, .. }) => {
                    tracing::debug!(target: "pebble::manager", tenant = %id, server = %server, "cleanup leaves a tenant of another server");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(db) = inner.registry.remove(&id, true) {
                drain(db.pool()).await?;
            }
            let maintenance = &inner.servers[server].maintenance;
            let connector = inner.connector(server);
            admin::drop_tenant_database(&connector, maintenance, &database, &id).await?;
            // Before the row goes: without it, its staging databases could
            // no longer be told from another registry's.
            removed.extend(drop_staging_of(&connector, maintenance, &id, &database).await?);
            // The role a crashed provisioning made, or a crashed drop left
            // (only pebble's: one merely sharing the name stays). One that
            // cannot go yet (privileges granted on it elsewhere) keeps its
            // row for a later cleanup, and does not stop the others.
            if inner.settings.roles {
                if let Err(e) = admin::drop_role(&connector, maintenance, &database).await {
                    tracing::warn!(target: "pebble::manager", tenant = %id, error = %e, "cleanup could not drop the tenant's role; its row stays for the next cleanup");
                    continue;
                }
            }
            claim.delete().await?;
            removed.push(id);
        }
        for (server, config) in inner.servers.iter().enumerate() {
            let connector = inner.connector(server);
            let maintenance = &config.maintenance;
            for found in admin::staging_databases(&connector, maintenance, STAGING_PREFIX).await? {
                // Named for another database than this manager gives the
                // tenant (or one it could not name): another application's,
                // with the same tenant id.
                let elsewhere = match inner.database(&found.id) {
                    Ok(database) => found.named_elsewhere(&database),
                    Err(_) => found.database.is_some(),
                };
                let admin::Staging {
                    name: staging, id, ..
                } = found;
                if elsewhere {
                    tracing::debug!(target: "pebble::manager", tenant = %id, database = %staging, server = %config.name, "cleanup leaves a staging database named for another application's database");
                    continue;
                }
                match catalog.row_state(&id).await? {
                    // Its provisioning crashed and the tenant was set up
                    // since (its row is `ready`, or pending for the next
                    // open): nobody will rename this one. Only if the row
                    // is a database tenant of this server: a schema
                    // tenant's, or another server's, says nothing of a
                    // staging database here (another application's, with
                    // the same tenant id).
                    RowState::Free(record) => {
                        let here = record.strategy == TenantStrategy::Database
                            && inner.server_of(&record).ok() == Some(server);
                        if !here {
                            tracing::debug!(target: "pebble::manager", tenant = %id, database = %staging, server = %config.name, "cleanup leaves a staging database its registry row does not place here");
                            continue;
                        }
                    }
                    // Held by a provisioning in progress: leave it.
                    RowState::Held => continue,
                    // Not a tenant of this registry: on a server shared
                    // with another application (another registry), it may
                    // be that one's provisioning in progress.
                    RowState::Absent => {
                        tracing::debug!(target: "pebble::manager", tenant = %id, database = %staging, server = %config.name, "cleanup leaves a staging database of a tenant not in its registry");
                        continue;
                    }
                }
                admin::drop_database_forced(&connector, maintenance, &staging).await?;
                tracing::info!(target: "pebble::manager", tenant = %id, database = %staging, server = %config.name, "dropped abandoned staging database");
                removed.push(staging);
            }
        }
        Ok(removed)
    }

    /// Closes every pool (as [`TenantManager::close_tenant`] does for one).
    pub fn close_all(&self) {
        for db in self.inner.registry.drain() {
            db.close();
        }
    }
}

impl Inner {
    /// The database of `id`, after validating both.
    fn database(&self, id: &str) -> Result<String> {
        tenant_id::validate_id(id)?;
        let database = (self.settings.database_name)(id);
        tenant_id::validate_database(id, &database)?;
        let reserved = self.servers.iter().flat_map(|server| {
            [
                server.maintenance.get_dbname().unwrap_or("postgres"),
                server.base.get_dbname().unwrap_or("postgres"),
            ]
        });
        if ["postgres", "template0", "template1"].contains(&database.as_str())
            || reserved.into_iter().any(|name| name == database)
        {
            return Err(Error::InvalidTenantId {
                id: id.to_owned(),
                reason: "its database name is a system, maintenance or base-configuration database",
            });
        }
        if database.starts_with(STAGING_PREFIX) {
            return Err(Error::InvalidTenantId {
                id: id.to_owned(),
                reason: "its database name is one pebble uses for databases being set up",
            });
        }
        Ok(database)
    }

    /// Refuses (with [`Error::NotProvisionedByPebble`]) a `database` on
    /// `server` that pebble did not provision for `id`.
    async fn refuse_foreign(
        self: &Arc<Self>,
        server: usize,
        database: &str,
        id: &str,
    ) -> Result<()> {
        let maintenance = &self.servers[server].maintenance;
        if admin::marker(&self.connector(server), maintenance, database, id).await?
            == admin::Marker::Foreign
        {
            return Err(Error::NotProvisionedByPebble {
                id: id.to_owned(),
                database: database.to_owned(),
            });
        }
        Ok(())
    }

    /// What opens connections to `server`, counted against the budget.
    fn connector(self: &Arc<Self>, server: usize) -> Connector {
        Connector {
            budget: Arc::clone(&self.budget),
            manager: Arc::downgrade(self),
            wait_timeout: self.settings.pool.wait_timeout,
            create_timeout: self.settings.pool.create_timeout,
            tls: self.servers[server].tls.clone(),
        }
    }

    fn server_names(&self) -> Vec<&str> {
        self.servers
            .iter()
            .map(|server| server.name.as_str())
            .collect()
    }

    /// The server tenant `id` lives on: where its registry row places it;
    /// without a row (`None` with several servers), a one-server manager's
    /// own server, as without a registry.
    async fn locate(&self, id: &str) -> Result<Option<usize>> {
        let Some(catalog) = &self.catalog else {
            return Ok(Some(0));
        };
        match catalog.get(id).await? {
            // A schema tenant's row names a server of `SchemaTenants`,
            // not one of this manager's databases.
            Some(record) if record.strategy != TenantStrategy::Database => {
                Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: record.strategy.to_string(),
                })
            }
            Some(record) => self.server_of(&record).map(Some),
            // A database this manager reaches without a row (made before
            // the registry, or by hand) stays reachable with one server;
            // with several, nothing says which server it would be on.
            None if self.servers.len() == 1 => Ok(Some(0)),
            None => Ok(None),
        }
    }

    /// The server a registry row places its tenant on.
    /// [`Error::UnknownServer`] for a server this manager was not given:
    /// a manager that shares its registry with one over more servers must
    /// never take another server's tenant for its own (it would open, or
    /// with `create_missing` create, an empty database of that name).
    ///
    /// With one server, a row naming the tenant's database is its too:
    /// that is what pebble-migrate records as a database tenant's
    /// placement. (Rows the manager wrote before it had several servers
    /// name the registry's server name, which is the base server's.)
    fn server_of(&self, record: &TenantRecord) -> Result<usize> {
        if self.servers.len() == 1 && (self.settings.database_name)(&record.id) == record.placement
        {
            return Ok(0);
        }
        index_of(&self.server_names(), &record.id, &record.placement)
    }

    /// The server for new tenant `id`, by the placement policy over the
    /// registry's load.
    async fn place_new(&self, id: &str) -> Result<usize> {
        match &self.catalog {
            Some(catalog) if self.servers.len() > 1 => {
                let load = catalog.load().await?;
                self.settings
                    .placement
                    .choose(id, &self.server_names(), &load)
            }
            _ => Ok(0),
        }
    }

    /// Room under `max_open_pools` for `id`'s pool, waiting (first come,
    /// first served) for a pool to become idle while all are busy.
    async fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let max = self.settings.max_open_pools;
        if self.queued.load(Ordering::Relaxed) == 0 {
            if let Some(reservation) = take_room(self.registry.try_reserve(id, max)) {
                return Ok(reservation);
            }
        }
        let deadline = self
            .settings
            .pool
            .wait_timeout
            .map(|wait| Instant::now() + wait);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _queued = Dequeue(&self.queued);
        let _turn = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.room.lock())
                .await
                .map_err(|_| no_room())?,
            None => self.room.lock().await,
        };
        loop {
            if let Some(reservation) = take_room(self.registry.try_reserve(id, max)) {
                return Ok(reservation);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(no_room());
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }

    /// Opens the pool of `database`, provisioning it first if it is missing
    /// and `create_missing` is on.
    async fn connect(
        self: &Arc<Self>,
        id: &str,
        database: &str,
        state: &Arc<PoolState>,
    ) -> Result<Db> {
        let server = match self.locate(id).await? {
            Some(server) => server,
            // Several servers and a tenant the registry does not know yet.
            None if self.settings.create_missing => {
                let placed = self.place_new(id).await?;
                self.provision(id, database, placed).await?.0
            }
            None => return Err(Error::UnknownTenant { id: id.to_owned() }),
        };
        let mut db = self.pool_on(server, database, Arc::clone(state))?;
        let mut server = server;
        if let Err(e) = db.pool().get().await {
            let e = Error::from(e);
            if !(self.settings.create_missing && e.code() == Some(&SqlState::INVALID_CATALOG_NAME))
            {
                return Err(e);
            }
            // A role made here has a password nobody was given:
            // `reset_role_password` hands one out.
            let (placed, _role) = self.provision(id, database, server).await?;
            if placed != server {
                // The row provisioning claimed (another process wrote it
                // since we looked) places the tenant elsewhere: the pool
                // goes there. The first one never connected.
                db.close();
                db = self.pool_on(placed, database, Arc::clone(state))?;
                server = placed;
            }
            drop(db.pool().get().await?);
        }
        if let Err(e) = self.refuse_dropping(id).await {
            db.close();
            return Err(e);
        }
        self.pools_opened.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "pebble::manager", tenant = id, database, server = %self.servers[server].name, "opened tenant pool");
        Ok(db)
    }

    /// A pool on `database` of `server` whose connections count against
    /// the budget.
    fn pool_on(
        self: &Arc<Self>,
        server: usize,
        database: &str,
        state: Arc<PoolState>,
    ) -> Result<Db> {
        let mut config = self.servers[server].base.clone();
        config.dbname(database);
        let options = &self.settings.pool;
        let connect = PoolConnect::new(self.connector(server), Arc::clone(&state));
        let manager = deadpool_postgres::Manager::from_connect(
            config,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let dropped = Arc::clone(&state);
        let pool = Pool::builder(PgManager::new(manager))
            .max_size(options.max_size)
            .wait_timeout(options.wait_timeout)
            // The connector applies the create timeout itself, after
            // waiting for a permit (bounded by the wait timeout).
            .create_timeout(None)
            // A dropped tenant's idle connections are never handed out:
            // the caller falls through to the connector, which says why.
            .pre_recycle(Hook::sync_fn(move |_, _| {
                if dropped.is_dropped() {
                    Err(HookError::message("the tenant was dropped"))
                } else {
                    Ok(())
                }
            }))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the connection pool: {e}")))?;
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        // Forget pools that are gone once the list has doubled since the
        // last sweep, so that opening stays amortised O(1) with many tenants.
        if pools.len() >= 2 * self.pools_swept.load(Ordering::Relaxed) {
            pools.retain(|(pool, _)| pool.upgrade().is_some());
            self.pools_swept
                .store(pools.len().max(16), Ordering::Relaxed);
        }
        pools.push((pool.weak(), state));
        Ok(Db::from_pool(pool))
    }

    /// Forgets the open pool whose connector shares `state` (its
    /// database is gone), if it is still the tenant's open pool.
    pub(crate) fn forget_pool(&self, state: &Arc<PoolState>) {
        // Dropped outside the map's lock.
        let _forgotten = self.registry.forget(state);
    }

    /// The pools of this manager that still exist.
    fn live_pools(&self) -> Vec<(Pool, Arc<PoolState>)> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .filter_map(|(pool, state)| Some((pool.upgrade()?, Arc::clone(state))))
            .collect()
    }

    /// Closes one idle connection for a caller waiting for the budget:
    /// of a pool no longer open first (nobody will look it up again), then
    /// of the least recently used open pool. Whether one was closed.
    fn reclaim_idle_connection(&self) -> bool {
        let detached = self
            .live_pools()
            .into_iter()
            .filter(|(_, state)| state.is_detached())
            .map(|(pool, _)| pool);
        for pool in detached.chain(self.registry.by_recency()) {
            let mut closed = false;
            let _ = pool.retain(|_, _| std::mem::replace(&mut closed, true));
            if closed {
                return true;
            }
        }
        false
    }

    /// Creates `database` under a temporary name, marks it as pebble's,
    /// runs the setup hook on it and only then renames it into place, so
    /// the tenant's database exists exactly when it is fully set up (and
    /// marked): a setup that fails, panics or is cancelled never leaves a
    /// half-provisioned tenant behind (at worst an unused `pebble_new_*`
    /// database).
    ///
    /// `server` is where a tenant not yet registered goes; one the registry
    /// already places (another process came first) goes where its row
    /// says. Returns the server it is on, and its role if this call made one.
    async fn provision(
        self: &Arc<Self>,
        id: &str,
        database: &str,
        server: usize,
    ) -> Result<(usize, Option<TenantRole>)> {
        // Registered `pending` and held for the whole provisioning; a drop
        // that ran meanwhile makes this fail with `TenantDropped`.
        let (claim, _ready_row, server) = match &self.catalog {
            Some(catalog) => loop {
                let name = &self.servers[server].name;
                match catalog.claim(id, TenantStrategy::Database, name).await? {
                    Claimed::Provision(claim) => {
                        let server = self.server_of(claim.record())?;
                        break (Some(claim), None, server);
                    }
                    Claimed::Ready(_) => {
                        // Held while its database is checked and, if it is
                        // missing, staged again: a `cleanup` leaves it
                        // alone and a `drop_tenant` waits for it, instead
                        // of dropping the staging database under it.
                        let Some(lock) = catalog.lock_for_drop(id).await? else {
                            return Err(Error::TenantDropped { id: id.to_owned() });
                        };
                        let record = lock.record();
                        if record.strategy != TenantStrategy::Database {
                            return Err(Error::StrategyMismatch {
                                id: id.to_owned(),
                                registered: record.strategy.to_string(),
                            });
                        }
                        match record.status {
                            crate::TenantStatus::Ready => {}
                            // Dropped and registered again meanwhile: claim
                            // that provisioning.
                            crate::TenantStatus::Pending => continue,
                            crate::TenantStatus::Dropping => {
                                return Err(Error::TenantDropped { id: id.to_owned() })
                            }
                        }
                        let server = self.server_of(record)?;
                        // Provisioned by another task or process while this
                        // one waited for the row: nothing to stage.
                        let connector = self.connector(server);
                        let maintenance = &self.servers[server].maintenance;
                        if admin::marker(&connector, maintenance, database, id).await?
                            == admin::Marker::Pebble
                        {
                            return Ok((server, None));
                        }
                        // Registered ready, yet missing: dropped behind
                        // pebble's back; `create_missing` makes it again.
                        break (None, Some(lock), server);
                    }
                }
            },
            None => (None, None, server),
        };
        let role = self.stage(id, database, server).await?;
        if let Some(claim) = claim {
            claim.ready().await?;
        }
        Ok((server, role))
    }

    /// Refuses a tenant the registry says is being dropped: an open that
    /// raced `drop_tenant` must not hand out its database.
    async fn refuse_dropping(&self, id: &str) -> Result<()> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        match catalog.get(id).await? {
            Some(record) if record.status == crate::TenantStatus::Dropping => {
                Err(Error::TenantDropped { id: id.to_owned() })
            }
            _ => Ok(()),
        }
    }

    /// Creates `database` under a staging name, sets it up and renames it
    /// into place (see `provision`).
    async fn stage(
        self: &Arc<Self>,
        id: &str,
        database: &str,
        server: usize,
    ) -> Result<Option<TenantRole>> {
        let connector = self.connector(server);
        let maintenance = &self.servers[server].maintenance;
        let temporary = format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple());
        admin::create_database(&connector, maintenance, &temporary).await?;
        let staged = async {
            admin::mark(&connector, maintenance, &temporary, id, database).await?;
            if let Some(setup) = &self.settings.setup {
                let db = self.pool_on(server, &temporary, PoolState::new(id))?;
                let result = setup(TenantDatabase::new(db.clone(), id), id.to_owned()).await;
                db.close();
                drain(db.pool()).await?;
                result?;
            }
            if !self.settings.roles {
                return Ok(None);
            }
            // After setup, so its tables get the grants; before the
            // rename, so the database arrives with its role.
            let mut staged = self.servers[server].base.clone();
            staged.dbname(&temporary);
            admin::tenant_role(&connector, maintenance, &staged, &temporary, database)
                .await
                .map_err(|e| match e {
                    Error::RoleNotProvisionedByPebble { role, .. } => {
                        Error::RoleNotProvisionedByPebble {
                            id: id.to_owned(),
                            role,
                        }
                    }
                    e => e,
                })
        };
        let role = match staged.await {
            Ok(role) => role,
            Err(e) => {
                let _ = admin::drop_database(&connector, maintenance, &temporary).await;
                return Err(e);
            }
        };
        let renamed = admin::rename_database(&connector, maintenance, &temporary, database).await;
        if renamed.is_err() {
            let _ = admin::drop_database(&connector, maintenance, &temporary).await;
        }
        match renamed {
            // Another process provisioned it meanwhile: use theirs (the
            // role, if this call created it, is the one theirs grants to).
            Err(e) if admin::already_exists(&e) => Ok(role),
            Err(e) => Err(e),
            Ok(()) => Ok(role),
        }
    }

    /// Closes idle pools past `idle_timeout`, from a background task that
    /// ends with the manager.
    fn start_reaper(self: &Arc<Self>) {
        let Some(timeout) = self.settings.idle_timeout else {
            return;
        };
        let mut reaper = self.reaper.lock().unwrap_or_else(|e| e.into_inner());
        if reaper.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        // The reaper runs on the runtime of the first `db()` call; if that
        // runtime ends, the next call starts it again on its own.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(self);
        let period = (timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(30));
        *reaper = Some(runtime.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { break };
                for (id, db) in inner.registry.evict_idle(timeout) {
                    tracing::debug!(target: "pebble::manager", tenant = %id, "closing idle pool");
                    release(db);
                }
            }
        }));
    }
}

/// Lets an evicted pool go. Its idle connections close now. If nobody else
/// holds it, that was everything; otherwise its holders keep using it
/// (statements running finish, new ones open connections as needed) and it
/// closes with their last handle.
fn release(db: Db) {
    db.pool().retain(|_, _| false);
}

/// Why an open found no room under `max_open_pools`.
fn no_room() -> Error {
    Error::Timeout(
        "all of the tenant manager's max_open_pools pools stayed busy for the pool's wait timeout",
    )
}

/// The reservation, after closing the idle pool it evicted (if any).
fn take_room(found: Option<(Reservation<'_>, Option<(String, Db)>)>) -> Option<Reservation<'_>> {
    let (reservation, evicted) = found?;
    if let Some((evicted, db)) = evicted {
        tracing::debug!(target: "pebble::manager", tenant = %evicted, "evicting least recently used idle pool");
        release(db);
    }
    Some(reservation)
}

/// The prefix of the temporary names databases are set up under.
const STAGING_PREFIX: &str = "pebble_new_";

/// Drops the staging databases marked for tenant `id`'s `database` on one
/// server (what its crashed provisionings left), for a caller holding
/// `id`'s row (no provisioning of it is in progress), or dropping the
/// tenant on a manager without a registry (whose provisionings of `id` the
/// drop outranks).
/// Returns their names.
async fn drop_staging_of(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    id: &str,
    database: &str,
) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for staging in admin::staging_databases(connector, maintenance, STAGING_PREFIX).await? {
        if staging.is_for(id, database) {
            admin::drop_database_forced(connector, maintenance, &staging.name).await?;
            tracing::info!(target: "pebble::manager", tenant = %id, database = %staging.name, "dropped abandoned staging database");
            dropped.push(staging.name);
        }
    }
    Ok(dropped)
}

struct Dequeue<'a>(&'a AtomicUsize);

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until a closed or dropped pool has no connection left (its
/// running statements finished). A dropped pool is not closed (so that its
/// callers learn why), so its idle connections are closed here as they come
/// back.
async fn drain(pool: &Pool) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let _ = pool.retain(|_, _| false);
        if pool.status().size == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                "the tenant's running statements did not finish within 30 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl fmt::Debug for TenantManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantManager")
            .field("open", &self.tenants().len())
            .field("pools_opened", &self.pools_opened())
            .field("max_open_pools", &self.inner.settings.max_open_pools)
            .field("connections_open", &self.inner.budget.in_use())
            .field("max_connections", &self.inner.budget.limit())
            .finish_non_exhaustive()
    }
}
