//! [`TenantManager`]: a database per tenant, each reached through a pool
//! opened lazily, shared safely, and closed when no longer needed.

mod admin;
mod builder;
mod registry;
mod tenant_id;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use builder::TenantManagerBuilder;

use builder::Settings;

use crate::conn::pool::IntoConfig;
use crate::error::{Error, Result};
use crate::handle::db::Db;
use crate::SqlState;

use registry::Registry;

type SetupFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type SetupHook = Arc<dyn Fn(Db, String) -> SetupFuture + Send + Sync>;

/// How long `drop_tenant` waits for queries still running on the tenant.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A pool per tenant database (`tenant_<id>`), opened on first use.
///
/// - `db(id)` for a tenant whose pool is open is a map lookup and an `Arc`
///   clone. For a new tenant, many concurrent callers open exactly one pool,
///   and opening it never blocks lookups or opens of other tenants.
/// - Tenant ids are validated (lowercase ASCII letters, digits, `_`; the
///   database name at most 63 bytes) and always quoted; a bad id is
///   [`Error::InvalidTenantId`] and touches nothing.
/// - At most `max_open_pools` pools are open; opening another evicts the
///   least recently used (idle ones first), and pools idle longer than
///   `idle_timeout` are closed. An evicted pool's idle connections close at
///   once; queries running on it finish normally.
/// - With `create_missing(true)` a tenant's database is created on first
///   access and the `setup` hook runs on it once.
///
/// Cheap to clone; clones share the pools.
///
/// ```no_run
/// # use pebble::{Model, TenantManager};
/// # #[derive(Model, Debug)] #[pebble(per_tenant)] struct Note { #[pebble(primary_key, default)] id: i64, body: String }
/// # async fn demo() -> pebble::Result<()> {
/// let manager = TenantManager::builder("postgres://app@localhost/postgres")
///     .create_missing(true)
///     .setup(|db, _tenant| async move { db.create_table::<Note>().await })
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
    base: tokio_postgres::Config,
    /// Where `CREATE DATABASE` / `DROP DATABASE` run.
    maintenance: tokio_postgres::Config,
    settings: Settings,
    registry: Registry,
    pools_opened: AtomicU64,
    /// The idle-pool reaper, restarted if its runtime went away.
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TenantManager {
    /// Settings for a manager whose tenant databases live on the server of
    /// `base` (a URL, key-value string or [`tokio_postgres::Config`]). The
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
    /// again.
    pub async fn db(&self, id: &str) -> Result<Db> {
        if let Some(db) = self.inner.registry.get(id) {
            return Ok(db);
        }
        self.open(id).await
    }

    async fn open(&self, id: &str) -> Result<Db> {
        let inner = &self.inner;
        let database = inner.database(id)?;
        inner.start_reaper();
        loop {
            let slot = inner.registry.slot(id);
            // Single flight: one task opens, the others wait here and then
            // find the pool published. A cancelled opener lets the next try.
            let _opening = slot.lock_opening().await;
            if let Some(db) = slot.db() {
                if inner.registry.is_current(id, &slot) {
                    inner.registry.touch(&slot);
                    return Ok(db.clone());
                }
                // Evicted or closed while we waited: start over with a new slot.
                continue;
            }
            let db = match inner.connect(id, &database).await {
                Ok(db) => db,
                Err(e) => {
                    inner.registry.forget_failed(id, &slot);
                    return Err(e);
                }
            };
            let evicted =
                inner
                    .registry
                    .publish(id, &slot, db.clone(), inner.settings.max_open_pools);
            for (evicted, db) in evicted {
                tracing::debug!(target: "pebble::manager", tenant = %evicted, "evicting least recently used pool");
                release(db);
            }
            return Ok(db);
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
        match self.inner.registry.remove(id) {
            Some(db) => {
                db.close();
                true
            }
            None => false,
        }
    }

    /// Closes tenant `id`'s pool, waits (up to 30 s) for its running
    /// statements to finish, then drops its database. Refuses an invalid id
    /// without touching anything.
    pub async fn drop_tenant(&self, id: &str) -> Result<()> {
        let database = self.inner.database(id)?;
        if let Some(db) = self.inner.registry.remove(id) {
            db.close();
            drain(&db).await?;
        }
        admin::drop_database(&self.inner.maintenance, &database).await
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
        let maintenance = self.maintenance.get_dbname().unwrap_or("postgres");
        if ["postgres", "template0", "template1", maintenance].contains(&database.as_str()) {
            return Err(Error::InvalidTenantId {
                id: id.to_owned(),
                reason: "its database name is a system or maintenance database",
            });
        }
        Ok(database)
    }

    /// Opens the pool of `database`, provisioning it first if it is missing
    /// and `create_missing` is on.
    async fn connect(&self, id: &str, database: &str) -> Result<Db> {
        let db = self.pool_on(database)?;
        if let Err(e) = db.pool().get().await {
            let e = Error::from(e);
            if !(self.settings.create_missing && e.code() == Some(&SqlState::INVALID_CATALOG_NAME))
            {
                return Err(e);
            }
            self.provision(id, database).await?;
            drop(db.pool().get().await?);
        }
        self.pools_opened.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "pebble::manager", tenant = id, database, "opened tenant pool");
        Ok(db)
    }

    fn pool_on(&self, database: &str) -> Result<Db> {
        let mut config = self.base.clone();
        config.dbname(database);
        Ok(Db::from_pool(self.settings.pool.build(config)?))
    }

    /// Creates `database`. With a setup hook, the database is created under
    /// a temporary name, set up, and only then renamed into place, so the
    /// tenant's database exists exactly when it is fully set up: a setup
    /// that fails, panics or is cancelled never leaves a half-provisioned
    /// tenant behind (at worst an unused `pebble_new_*` database).
    async fn provision(&self, id: &str, database: &str) -> Result<()> {
        let Some(setup) = &self.settings.setup else {
            return admin::create_database(&self.maintenance, database).await;
        };
        let temporary = format!("pebble_new_{}", uuid::Uuid::new_v4().simple());
        admin::create_database(&self.maintenance, &temporary).await?;
        let staged = async {
            let db = self.pool_on(&temporary)?;
            let result = setup(db.clone(), id.to_owned()).await;
            db.close();
            drain(&db).await?;
            result
        };
        if let Err(e) = staged.await {
            let _ = admin::drop_database(&self.maintenance, &temporary).await;
            return Err(e);
        }
        let renamed = admin::rename_database(&self.maintenance, &temporary, database).await;
        if renamed.is_err() {
            let _ = admin::drop_database(&self.maintenance, &temporary).await;
        }
        match renamed {
            // Another process provisioned it meanwhile: use theirs.
            Err(e) if admin::already_exists(&e) => Ok(()),
            other => other,
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

/// Waits until a closed pool has no connection left (its running statements finished).
async fn drain(db: &Db) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while db.pool().status().size > 0 {
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                "the tenant's running statements did not finish within 30 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

impl fmt::Debug for TenantManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantManager")
            .field("open", &self.tenants().len())
            .field("pools_opened", &self.pools_opened())
            .field("max_open_pools", &self.inner.settings.max_open_pools)
            .finish_non_exhaustive()
    }
}
