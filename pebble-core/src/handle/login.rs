//! [`TenantLogins`]: row-level security with the tenant bound to the
//! connection. Each tenant's statements go over a pool logged in as that
//! tenant's own role, which `pebble_tenant()` reads: no statement sets the
//! tenant, so none (raw SQL included) can change it, and a statement is one
//! exchange with no transaction around it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::options::TransactionOptions;
use crate::conn::pool::{IntoConfig, PoolOptions};
use crate::conn::send::StatementMode;
use crate::conn::tls::ConnectConfig;
use crate::conn::Conn;
use crate::error::{Error, Result, SqlState};
use crate::scope::login::{self, LoginSecret, DATABASE_OID};
use crate::scope::Strategy;
use crate::sql_type::TenantKey;

use super::db::Db;
use super::login_pools::Pools;
use super::rls::{begin_rls_transaction, RlsTenantTransaction};
use super::tenant::TenantDb;
use super::{private::Sealed, Executor};

/// The role the server logged the connection in as.
const SESSION_USER: &str = "SELECT SESSION_USER::text";

/// How often an opener waiting for room under `max_open_pools` looks for
/// an idle pool to close: nothing signals when a handle is dropped or a
/// connection comes back.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// Tenant handles whose connections log in as the tenant's own role, made
/// by [`Db::create_tenant_login`]: the database confines every statement
/// to the tenant it logged in as, and nothing sent on the connection can
/// change that (a tenant login's `set_config('pebble.tenant_id', ..)` is
/// ignored). pebble's row condition stays as a second line of defence.
///
/// Each statement is sent as it is, one exchange, with no `BEGIN`, setting
/// or `COMMIT` around it. The price is a pool per tenant: at most
/// `max_open_pools` are open (the least recently used idle one is closed
/// to open another), so up to `max_open_pools × max_size` connections, and
/// the first statement of a tenant whose pool is closed opens a connection
/// (a login: about a millisecond on a local server, more with TLS).
///
/// Passwords derive from one [`LoginSecret`]; the base configuration names
/// the server and database. [`TenantLogins::connect`] logs in once as the
/// base configuration's user (the shared application role, say) to read
/// the database's oid, which tenant login names carry.
///
/// ```no_run
/// # use pebble::{LoginSecret, Model, PoolOptions, TenantLogins};
/// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, title: String }
/// # async fn demo() -> pebble::Result<()> {
/// let secret = LoginSecret::new(std::env::var("PEBBLE_LOGIN_SECRET").unwrap_or_default())?;
/// let options = PoolOptions::default().max_size(4);
/// let logins = TenantLogins::connect("postgres://app@db.internal/saas", secret, options, 100).await?;
/// let acme = logins.tenant(42_i64).await?;
/// let open = acme.select::<Task>().count().await?;
/// // Raw SQL too: the login confines it, whatever the text sets.
/// let rows = acme.query("SELECT title FROM task WHERE title ILIKE $1", &[&"%urgent%"]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantLogins {
    inner: Arc<Inner>,
}

struct Inner {
    base: ConnectConfig,
    secret: LoginSecret,
    options: PoolOptions,
    /// The database's oid, in every login name.
    database: u32,
    pools: Pools,
}

impl TenantLogins {
    /// Tenant logins of the database `base` names, with passwords derived
    /// from `secret`, pools of `options` (size, timeouts, statement mode:
    /// [`StatementMode::Unnamed`](crate::StatementMode::Unnamed) behind
    /// PgBouncer in transaction mode), and at most `max_open_pools` (at
    /// least 1) pools open at once. Connects once as `base`'s user to read
    /// the database's oid.
    pub async fn connect(
        base: impl IntoConfig,
        secret: LoginSecret,
        options: PoolOptions,
        max_open_pools: usize,
    ) -> Result<TenantLogins> {
        let mut base = base.into_connect()?;
        // Without a database name the server picks the one named after the
        // user: the base user's for the probe, each login's for the tenant
        // pools. Name it, so the pools reach the database whose oid is read.
        if base.pg().get_dbname().is_none() {
            if let Some(user) = base.pg().get_user().map(str::to_owned) {
                base.pg_mut().dbname(&user);
            }
        }
        let probe = Db::connect_lazy(base.clone(), options.clone().max_size(1))?;
        let database = probe.database_oid().await;
        probe.close();
        Ok(TenantLogins {
            inner: Arc::new(Inner {
                base,
                secret,
                options,
                database: database?,
                pools: Pools::new(max_open_pools.max(1)),
            }),
        })
    }

    /// A handle for tenant `key`, over a pool logged in as its login role,
    /// opened on first use (many tasks asking at once open one pool).
    /// Opening logs in once: a login the server refuses (it does not exist,
    /// or its password was derived from another secret) is
    /// [`Error::TenantLoginRefused`]; the unset key is
    /// [`Error::InvalidTenantId`]; a key too long for a role name
    /// [`Error::TenantLoginNameTooLong`]. With `max_open_pools` open and
    /// all in use, waits for one to become idle up to the pool's wait
    /// timeout, then fails with [`Error::Timeout`].
    pub async fn tenant<K: TenantKey>(&self, key: K) -> Result<TenantDb<K, LoginDb>> {
        let role = login::role(self.inner.database, &key)?;
        let db = self.pool(&role).await?;
        Ok(TenantDb::new(
            LoginDb {
                db,
                role: Arc::from(role),
            },
            key,
        ))
    }

    /// The name of tenant `key`'s login role (`pebble_<database oid>_<key>`).
    pub fn role_name<K: TenantKey>(&self, key: &K) -> Result<String> {
        login::role(self.inner.database, key)
    }

    /// How many tenant pools are open.
    pub fn open_pools(&self) -> usize {
        self.inner.pools.open()
    }

    /// Closes tenant `key`'s pool if it is open: its idle connections now,
    /// the others as they come back. The next handle for the tenant opens
    /// a new one (after [`Db::drop_tenant_login`], it fails to log in).
    pub fn close_tenant<K: TenantKey>(&self, key: &K) -> Result<()> {
        let role = login::role(self.inner.database, key)?;
        if let Some(db) = self.inner.pools.remove(&role) {
            db.close();
        }
        Ok(())
    }

    /// Closes every open pool.
    pub fn close(&self) {
        for db in self.inner.pools.drain() {
            db.close();
        }
    }

    async fn pool(&self, role: &str) -> Result<Db> {
        let pools = &self.inner.pools;
        if let Some(db) = pools.get(role) {
            return Ok(db);
        }
        let slot = pools.slot(role);
        let _opening = slot.lock_opening().await;
        if let Some(db) = pools.get(role) {
            return Ok(db); // another task opened it while this one waited
        }
        let deadline = self
            .inner
            .options
            .wait_timeout
            .map(|t| tokio::time::Instant::now() + t);
        let reservation = loop {
            if let Some((reservation, evicted)) = pools.try_reserve(role) {
                if let Some(evicted) = evicted {
                    evicted.close();
                }
                break reservation;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                pools.forget_failed(role, &slot);
                return Err(Error::Timeout(
                    "every open tenant login pool is in use (max_open_pools)",
                ));
            }
            tokio::time::sleep(IDLE_POLL).await;
        };
        match self.open(role).await {
            Ok(db) => {
                pools.publish(role, &slot, db.clone(), reservation);
                Ok(db)
            }
            Err(e) => {
                drop(reservation);
                pools.forget_failed(role, &slot);
                Err(e)
            }
        }
    }

    /// Opens `role`'s pool, logging in once to check the login.
    async fn open(&self, role: &str) -> Result<Db> {
        let mut config = self.inner.base.clone();
        let password = self.inner.secret.password(role)?;
        config.pg_mut().user(role).password(password);
        let db = Db::connect_lazy(config, self.inner.options.clone())?;
        let client = match db.pool().get().await {
            Ok(client) => client,
            Err(e) => {
                db.close();
                return Err(refused(role, Error::from(e)));
            }
        };
        // The whole confinement rests on the session user being the login:
        // a pooler that logs every client in as one server user would turn
        // this pool into one that picks its tenant with a setting (or one
        // of a superuser). Checked once, on the pool's first connection.
        let session_user = match db.mode() {
            StatementMode::Prepared => client.query_one(SESSION_USER, &[]).await,
            StatementMode::Unnamed => client.query_typed_one(SESSION_USER, &[]).await,
        }
        .map_err(Error::from)
        .and_then(|row| row.try_get::<_, String>(0).map_err(Error::from));
        drop(client);
        match session_user {
            Ok(user) if user == role => {}
            Ok(user) => {
                db.close();
                return Err(Error::TenantLoginNotInEffect {
                    role: role.to_owned(),
                    session_user: user,
                });
            }
            Err(e) => {
                db.close();
                return Err(e);
            }
        }
        tracing::debug!(target: "pebble::rls", role, "tenant login pool opened");
        Ok(db)
    }
}

/// A refused login as [`Error::TenantLoginRefused`]: wrong password
/// (28P01), or no such role (28000).
fn refused(role: &str, e: Error) -> Error {
    match &e {
        Error::Database { code, message, .. }
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Error::TenantLoginRefused {
                role: role.to_owned(),
                message: message.clone(),
            }
        }
        _ => e,
    }
}

impl Db {
    /// The oid of the database this pool connects to: tenant login names
    /// carry it.
    pub(crate) async fn database_oid(&self) -> Result<u32> {
        let client = self.pool().get().await?;
        let row = match self.mode() {
            StatementMode::Prepared => client.query_one(DATABASE_OID, &[]).await?,
            StatementMode::Unnamed => client.query_typed_one(DATABASE_OID, &[]).await?,
        };
        Ok(row.try_get(0)?)
    }
}

impl fmt::Debug for TenantLogins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantLogins")
            .field("database", &self.inner.database)
            .field("open_pools", &self.open_pools())
            .field("secret", &self.inner.secret)
            .finish()
    }
}

/// One tenant login's pool: what a [`TenantLogins::tenant`] handle runs
/// on. Every statement of it is confined by the login it connected as.
#[derive(Clone)]
pub struct LoginDb {
    db: Db,
    role: Arc<str>,
}

impl LoginDb {
    /// The login role this pool connects as.
    pub fn role(&self) -> &str {
        &self.role
    }
}

impl Executor for LoginDb {}

impl Sealed for LoginDb {
    fn conn(&self) -> Conn {
        self.db.conn()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Login
    }
}

impl fmt::Debug for LoginDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginDb")
            .field("role", &self.role)
            .field("db", &self.db)
            .finish()
    }
}

impl<K: TenantKey> TenantDb<K, LoginDb> {
    /// The login role this handle's connections log in as.
    pub fn login_role(&self) -> &str {
        self.executor().role()
    }

    /// Starts a transaction for this tenant on its login's pool: `BEGIN`,
    /// one round trip. Confined by the login like every statement of the
    /// pool (the tenant is also set for the transaction, as under
    /// [`RlsDb`](crate::RlsDb): it names the same tenant, and the login
    /// outranks it).
    pub async fn begin(&self) -> Result<RlsTenantTransaction<K>> {
        begin_rls_transaction(&self.executor().db, "BEGIN", self.key()).await
    }

    /// [`TenantDb::begin`] with an isolation level and access mode.
    pub async fn begin_with(&self, options: TransactionOptions) -> Result<RlsTenantTransaction<K>> {
        begin_rls_transaction(&self.executor().db, &options.begin_sql(), self.key()).await
    }
}
