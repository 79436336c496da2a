//! The tenant registry: the shared table `public.pebble_tenants` (id,
//! strategy, status, placement, created_at) on the home server, written by
//! schema provisioning, by the [`TenantManager`](crate::TenantManager) and
//! by pebble-migrate, and listed by all of them.
//!
//! A tenant's row goes `pending` → `ready` when it is provisioned and
//! `ready` → `dropping` → (deleted) when it is dropped. The row is the
//! tenant's lock across processes: whoever provisions or drops it holds
//! the row (`SELECT ... FOR UPDATE`) for the whole operation, so a drop and
//! a concurrent provisioning of the same tenant take turns, and a
//! provisioning that finds the row gone or `dropping` after its turn knows
//! the tenant was dropped under it and stops ([`Error::TenantDropped`])
//! instead of recreating it. A row that stays `pending` or `dropping`
//! without a holder is the remains of a crashed process: `cleanup` finds
//! those with `FOR UPDATE SKIP LOCKED`, which never touches one in progress.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::conn::client::{Object, PooledClient};

use crate::error::{Error, Result};
use crate::handle::db::Db;

/// The registry table. pebble-migrate creates it with the same text.
pub(crate) const REGISTRY_DDL: &str = "CREATE TABLE IF NOT EXISTS public.pebble_tenants (\
    id text PRIMARY KEY, \
    strategy text NOT NULL CHECK (strategy IN ('schema', 'database')), \
    status text NOT NULL CHECK (status IN ('pending', 'ready', 'dropping')), \
    placement text NOT NULL, \
    created_at timestamptz NOT NULL DEFAULT now())";

/// Brings a registry created before `dropping` existed up to date; a no-op
/// (and no lock on the table) when it already allows it.
const REGISTRY_UPGRADE: &str = "DO $pebble$ BEGIN \
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint \
               WHERE conrelid = 'public.pebble_tenants'::regclass \
                 AND conname = 'pebble_tenants_status_check' \
                 AND pg_catalog.pg_get_constraintdef(oid) NOT LIKE '%dropping%') THEN \
      ALTER TABLE public.pebble_tenants DROP CONSTRAINT pebble_tenants_status_check, \
        ADD CONSTRAINT pebble_tenants_status_check CHECK (status IN ('pending', 'ready', 'dropping')); \
    END IF; END $pebble$";

/// The statements that create (or upgrade) the registry, serialised with
/// pebble-migrate's under the same advisory lock: concurrent `CREATE TABLE
/// IF NOT EXISTS` can still collide in the catalog.
pub fn ensure_sql() -> String {
    format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('pebble-migrate'), hashtext('registry')); \
         {REGISTRY_DDL}; {REGISTRY_UPGRADE}; COMMIT"
    )
}

/// How a registered tenant is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TenantStrategy {
    /// A schema `tenant_<id>`.
    Schema,
    /// A database `tenant_<id>` (the [`TenantManager`](crate::TenantManager)).
    Database,
}

impl TenantStrategy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TenantStrategy::Schema => "schema",
            TenantStrategy::Database => "database",
        }
    }
}

impl fmt::Display for TenantStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a registered tenant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TenantStatus {
    /// Being provisioned, or its provisioning crashed (see `cleanup`).
    Pending,
    /// Fully provisioned: its schema or database exists with its tables.
    Ready,
    /// Being dropped, or its drop crashed (see `cleanup`).
    Dropping,
}

impl TenantStatus {
    fn parse(s: &str) -> Result<TenantStatus> {
        match s {
            "pending" => Ok(TenantStatus::Pending),
            "ready" => Ok(TenantStatus::Ready),
            "dropping" => Ok(TenantStatus::Dropping),
            other => Err(Error::Config(format!(
                "unrecognised status {other:?} in public.pebble_tenants"
            ))),
        }
    }

    /// `pending`, `ready` or `dropping`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "pending",
            TenantStatus::Ready => "ready",
            TenantStatus::Dropping => "dropping",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A row of the tenant registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantRecord {
    /// The tenant id.
    pub id: String,
    /// Schema or database.
    pub strategy: TenantStrategy,
    /// Pending, ready or dropping.
    pub status: TenantStatus,
    /// Which server it lives on (the name given to
    /// `SchemaTenantsBuilder::server`), or, for rows pebble-migrate wrote,
    /// the database holding it.
    pub placement: String,
    /// When it was registered.
    pub created_at: SystemTime,
}

const SELECT_RECORD: &str = "SELECT id, strategy, status, placement, \
    extract(epoch FROM created_at)::float8 FROM public.pebble_tenants";

fn record(row: &tokio_postgres::Row) -> Result<TenantRecord> {
    let strategy: String = row.try_get(1)?;
    let status: String = row.try_get(2)?;
    let epoch: f64 = row.try_get(4)?;
    Ok(TenantRecord {
        id: row.try_get(0)?,
        strategy: if strategy == "database" {
            TenantStrategy::Database
        } else {
            TenantStrategy::Schema
        },
        status: TenantStatus::parse(&status)?,
        placement: row.try_get(3)?,
        created_at: SystemTime::UNIX_EPOCH + Duration::from_secs_f64(epoch.max(0.0)),
    })
}

/// What the registry says of a tenant id right now ([`Registry::row_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowState {
    /// No row: not a tenant of this registry.
    Absent,
    /// A row a provisioning or drop holds.
    Held,
    /// A row no one holds, as it was read.
    Free(TenantRecord),
}

/// The registry on a home server's database.
pub(crate) struct Registry {
    home: Db,
    ensured: AtomicBool,
}

impl Registry {
    pub(crate) fn new(home: Db) -> Registry {
        Registry {
            home,
            ensured: AtomicBool::new(false),
        }
    }

    /// A connection on the home server, the registry table created first
    /// (once per registry value).
    async fn client(&self) -> Result<Object> {
        let client = self.home.pool().get().await?;
        if !self.ensured.load(Ordering::Acquire) {
            client.batch_execute(&ensure_sql()).await?;
            self.ensured.store(true, Ordering::Release);
        }
        Ok(client)
    }

    /// Every registered tenant, by id.
    pub(crate) async fn list(&self) -> Result<Vec<TenantRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT_RECORD} ORDER BY id"), &[])
            .await?;
        rows.iter().map(record).collect()
    }

    /// Tenant `id`'s row.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<TenantRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{SELECT_RECORD} WHERE id = $1"), &[&id])
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// How many tenants each placement holds, for placing a new one.
    pub(crate) async fn load(&self) -> Result<Vec<(String, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT placement, count(*) FROM public.pebble_tenants GROUP BY placement",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Registers `id` `pending` at `placement` unless it has a row, then
    /// takes its row for the caller's provisioning. `Ok(Claimed::Ready)`
    /// when it is already provisioned (by another task or process, whose
    /// turn came first).
    pub(crate) async fn claim(
        &self,
        id: &str,
        strategy: TenantStrategy,
        placement: &str,
    ) -> Result<Claimed> {
        let client = self.client().await?;
        // Committed on its own, so a provisioning that crashes leaves a
        // `pending` row for `cleanup` to find.
        client
            .execute(
                "INSERT INTO public.pebble_tenants (id, strategy, status, placement) \
                 VALUES ($1, $2, 'pending', $3) ON CONFLICT (id) DO NOTHING",
                &[&id, &strategy.as_str(), &placement],
            )
            .await?;
        let held = Held::begin(client).await?;
        let row = held
            .client()?
            .query_opt(&format!("{SELECT_RECORD} WHERE id = $1 FOR UPDATE"), &[&id])
            .await?;
        // Gone after waiting for the row: a drop deleted it meanwhile.
        let Some(row) = row else {
            return Err(Error::TenantDropped { id: id.to_owned() });
        };
        let found = record(&row)?;
        if found.strategy != strategy {
            return Err(Error::StrategyMismatch {
                id: id.to_owned(),
                registered: found.strategy.to_string(),
            });
        }
        match found.status {
            TenantStatus::Ready => {
                held.commit().await?;
                Ok(Claimed::Ready(found))
            }
            TenantStatus::Dropping => Err(Error::TenantDropped { id: id.to_owned() }),
            TenantStatus::Pending => Ok(Claimed::Provision(Claim {
                held,
                id: id.to_owned(),
                record: found,
            })),
        }
    }

    /// Marks `id` `dropping` (committed, so a crash leaves it for `cleanup`)
    /// and takes its row for the caller's drop. `None` if it has no row.
    pub(crate) async fn claim_drop(
        &self,
        id: &str,
        strategy: TenantStrategy,
    ) -> Result<Option<Claim>> {
        let client = self.client().await?;
        // Waits for a provisioning holding the row to finish.
        let marked = client
            .execute(
                "UPDATE public.pebble_tenants SET status = 'dropping' \
                 WHERE id = $1 AND strategy = $2",
                &[&id, &strategy.as_str()],
            )
            .await?;
        if marked == 0 {
            return Ok(None);
        }
        let held = Held::begin(client).await?;
        let row = held
            .client()?
            .query_opt(&format!("{SELECT_RECORD} WHERE id = $1 FOR UPDATE"), &[&id])
            .await?;
        match row {
            // Another drop finished first.
            None => Ok(None),
            Some(row) => Ok(Some(Claim {
                record: record(&row)?,
                held,
                id: id.to_owned(),
            })),
        }
    }

    /// Takes `id`'s row (of any strategy) for a drop and holds it, as it
    /// is: the caller learns where the tenant is from the row it holds,
    /// checks what it must, then [`DropLock::mark`]s it. Waits for a
    /// provisioning holding the row to finish. `None` if it has no row.
    pub(crate) async fn lock_for_drop(&self, id: &str) -> Result<Option<DropLock>> {
        let held = Held::begin(self.client().await?).await?;
        let row = held
            .client()?
            .query_opt(&format!("{SELECT_RECORD} WHERE id = $1 FOR UPDATE"), &[&id])
            .await?;
        match row {
            // Dropping `held` ends its (empty) transaction.
            None => Ok(None),
            Some(row) => Ok(Some(DropLock {
                record: record(&row)?,
                held,
                id: id.to_owned(),
            })),
        }
    }

    /// Whether `id` has a row in this registry and whether a provisioning
    /// or drop holds it right now (the row as it is, when no one does).
    pub(crate) async fn row_state(&self, id: &str) -> Result<RowState> {
        let held = Held::begin(self.client().await?).await?;
        let free = held
            .client()?
            .query_opt(
                &format!("{SELECT_RECORD} WHERE id = $1 FOR UPDATE SKIP LOCKED"),
                &[&id],
            )
            .await?;
        let state = match free {
            Some(row) => RowState::Free(record(&row)?),
            None => {
                let exists = held
                    .client()?
                    .query_opt("SELECT 1 FROM public.pebble_tenants WHERE id = $1", &[&id])
                    .await?
                    .is_some();
                if exists {
                    RowState::Held
                } else {
                    RowState::Absent
                }
            }
        };
        held.commit().await?;
        Ok(state)
    }

    /// The `pending` and `dropping` rows nobody holds: what crashed
    /// provisionings and drops left. Each is returned held, so no one can
    /// start on it while the caller cleans it up.
    pub(crate) async fn abandoned(&self, strategy: TenantStrategy) -> Result<Vec<Claim>> {
        let ids: Vec<String> = {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id FROM public.pebble_tenants \
                     WHERE status <> 'ready' AND strategy = $1 ORDER BY id",
                    &[&strategy.as_str()],
                )
                .await?;
            rows.iter()
                .map(|row| row.try_get(0))
                .collect::<std::result::Result<_, _>>()?
        };
        let mut claims = Vec::new();
        for id in ids {
            let held = Held::begin(self.client().await?).await?;
            let row = held
                .client()?
                .query_opt(
                    &format!(
                        "{SELECT_RECORD} WHERE id = $1 AND status <> 'ready' \
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&id],
                )
                .await?;
            if let Some(row) = row {
                claims.push(Claim {
                    record: record(&row)?,
                    held,
                    id,
                });
            }
        }
        Ok(claims)
    }
}

/// The outcome of [`Registry::claim`].
pub(crate) enum Claimed {
    /// Already provisioned.
    Ready(TenantRecord),
    /// Registered `pending` and held: provision it, then [`Claim::ready`].
    Provision(Claim),
}

/// A tenant's registry row, held (`FOR UPDATE`) by the caller until
/// [`Claim::ready`] or [`Claim::delete`]. Dropped without either, the
/// transaction is rolled back by closing its connection, and the row is
/// left as it was committed (`pending` or `dropping`) for `cleanup`.
pub(crate) struct Claim {
    held: Held,
    id: String,
    record: TenantRecord,
}

impl Claim {
    pub(crate) fn record(&self) -> &TenantRecord {
        &self.record
    }

    /// Marks the tenant `ready` and lets the row go.
    pub(crate) async fn ready(self) -> Result<()> {
        self.held
            .client()?
            .execute(
                "UPDATE public.pebble_tenants SET status = 'ready' WHERE id = $1",
                &[&self.id],
            )
            .await?;
        self.held.commit().await
    }

    /// Deletes the tenant's row.
    pub(crate) async fn delete(self) -> Result<()> {
        self.held
            .client()?
            .execute(
                "DELETE FROM public.pebble_tenants WHERE id = $1",
                &[&self.id],
            )
            .await?;
        self.held.commit().await
    }
}

/// A tenant's registry row held for a drop, unchanged yet (from
/// [`Registry::lock_for_drop`]), or held while a ready tenant whose
/// database went missing is staged again. Dropped without
/// [`DropLock::mark`], the row is let go as it was.
pub(crate) struct DropLock {
    held: Held,
    id: String,
    record: TenantRecord,
}

impl DropLock {
    /// The row as held: where the tenant is.
    pub(crate) fn record(&self) -> &TenantRecord {
        &self.record
    }

    /// Marks the row `dropping` and commits that, so a drop that crashes
    /// from here on leaves it for `cleanup`, then holds it again for the
    /// drop. `None` if, in between, another drop (or `cleanup`) took the
    /// row and finished: the tenant this lock was taken on is gone. The
    /// row held again is the one marked: still `dropping`, on the same
    /// server (a row re-created since is never `dropping` before some drop
    /// holds it, and a drop that holds it leaves it gone or `dropping` on
    /// its own server).
    pub(crate) async fn mark(self) -> Result<Option<Claim>> {
        let client = self.held.client()?;
        client
            .execute(
                "UPDATE public.pebble_tenants SET status = 'dropping' WHERE id = $1",
                &[&self.id],
            )
            .await?;
        client.batch_execute("COMMIT").await?;
        client.batch_execute(BEGIN_HELD).await?;
        let row = client
            .query_opt(
                &format!(
                    "{SELECT_RECORD} WHERE id = $1 AND status = 'dropping' AND placement = $2 \
                     FOR UPDATE"
                ),
                &[&self.id, &self.record.placement],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(Claim {
                record: record(&row)?,
                held: self.held,
                id: self.id,
            })),
        }
    }
}

/// A connection inside `BEGIN`, taken out of the pool: it may wait long for
/// a tenant's row (behind a whole provisioning), and waiting on a pooled
/// connection would starve the pool the provisioning itself needs. Closed
/// when done; closed before `commit`, the server rolls back (and releases
/// the row).
struct Held {
    // Boxed: a client with its statement cache would make every `Claimed`
    // the size of one.
    client: Option<Box<PooledClient>>,
}

/// Begins a transaction that holds a row: through a tenant's setup, which
/// may take long, so a server or role `idle_in_transaction_session_timeout`
/// must not end it (and let the row go) under the setup.
const BEGIN_HELD: &str = "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0";

impl Held {
    async fn begin(client: Object) -> Result<Held> {
        let held = Held {
            client: Some(Box::new(Object::take(client))),
        };
        held.client()?.batch_execute(BEGIN_HELD).await?;
        Ok(held)
    }

    fn client(&self) -> Result<&PooledClient> {
        self.client.as_deref().ok_or(Error::TransactionEnded)
    }

    async fn commit(mut self) -> Result<()> {
        let client = self.client.take().ok_or(Error::TransactionEnded)?;
        Ok(client.batch_execute("COMMIT").await?)
    }
}
