//! The three contenders and what one operation of each workload is for each.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pebble::{Db, PoolOptions, RlsDb, TenantLogins};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_postgres::{Client, NoTls, Statement};

use crate::setup::{
    aggregate_query, begin_rls, join_query, login_secret, new_item, new_loads, Fixture, Item,
    AGGREGATE_SQL, COPY_SQL, INSERT_SQL, JOIN_ONE_SQL, LOAD_ROWS, SELECT_SQL, TENANTS, UNNEST_SQL,
    UPDATE_SQL,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Select,
    Insert,
    Update,
    RlsSelect,
    RlsLogin,
    Join,
    Aggregate,
    Bulk,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::Select,
        Workload::Insert,
        Workload::Update,
        Workload::RlsSelect,
        Workload::RlsLogin,
        Workload::Join,
        Workload::Aggregate,
        Workload::Bulk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Select => "select",
            Workload::Insert => "insert",
            Workload::Update => "update",
            Workload::RlsSelect => "rls",
            Workload::RlsLogin => "rls-login",
            Workload::Join => "join",
            Workload::Aggregate => "aggregate",
            Workload::Bulk => "bulk",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::Select => "point select by tenant and key",
            Workload::Insert => "insert one row",
            Workload::Update => "update one column by key",
            Workload::RlsSelect => "point select under row-level security",
            Workload::RlsLogin => "point select under row-level security, as the tenant's login",
            Workload::Join => "an item joined with its stock row, by key",
            Workload::Aggregate => "count and sum over 50 keys of a tenant",
            Workload::Bulk => "load 1,000 rows of a tenant (sqlx: INSERT of arrays)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Limit,
    Sqlx,
    Pebble,
    /// Raw tokio-postgres through a deadpool-postgres pool set up as
    /// pebble's is (`--pool`, `--only deadpool`): tells the pool's cost
    /// from pebble's own.
    Deadpool,
}

impl Contender {
    /// In the order each round runs them.
    pub const ALL: [Contender; 3] = [Contender::Limit, Contender::Sqlx, Contender::Pebble];

    /// `--pool`'s line-up: the limit, the same pool used by hand, pebble.
    pub const POOL: [Contender; 3] = [Contender::Limit, Contender::Deadpool, Contender::Pebble];

    /// Every contender `--only` accepts.
    pub const NAMED: [Contender; 4] = [
        Contender::Limit,
        Contender::Sqlx,
        Contender::Pebble,
        Contender::Deadpool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Limit => "limit",
            Contender::Sqlx => "sqlx",
            Contender::Pebble => "pebble",
            Contender::Deadpool => "deadpool",
        }
    }
}

/// A raw tokio-postgres connection with every statement prepared once.
struct LimitConn {
    client: Client,
    select: Statement,
    insert: Statement,
    update: Statement,
    join: Statement,
    aggregate: Statement,
}

impl LimitConn {
    async fn connect(config: &tokio_postgres::Config) -> Result<LimitConn, BoxError> {
        let (client, connection) = config.connect(NoTls).await?;
        // Ends when the client is dropped.
        tokio::spawn(connection);
        let select = client.prepare(SELECT_SQL).await?;
        let insert = client.prepare(INSERT_SQL).await?;
        let update = client.prepare(UPDATE_SQL).await?;
        let join = client.prepare(JOIN_ONE_SQL).await?;
        let aggregate = client.prepare(AGGREGATE_SQL).await?;
        Ok(LimitConn {
            client,
            select,
            insert,
            update,
            join,
            aggregate,
        })
    }
}

/// Everything connected, for up to `clients` concurrent clients each.
pub struct Contenders {
    keys: Arc<Vec<(i64, i64)>>,
    /// One connection per client, as the owner and as the app role.
    limit: Vec<Arc<LimitConn>>,
    limit_app: Vec<Arc<LimitConn>>,
    sqlx: PgPool,
    sqlx_app: PgPool,
    pebble: Db,
    pebble_app: RlsDb,
    deadpool: deadpool_postgres::Pool,
    /// Per tenant (index `tenant - 1`), connected as its login: two
    /// connections for the limit (client `c` uses `c % 2`), a pool of at
    /// most two for sqlx and for pebble.
    limit_login: Vec<[Arc<LimitConn>; 2]>,
    sqlx_login: Vec<PgPool>,
    pebble_login: TenantLogins,
}

/// Connections per tenant login (pool size), for every contender.
const PER_LOGIN: usize = 2;

/// A deadpool-postgres pool configured as pebble's `Db` configures its own.
fn deadpool_pool(
    config: &tokio_postgres::Config,
    clients: usize,
) -> Result<deadpool_postgres::Pool, BoxError> {
    use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .queue_mode(QueueMode::Lifo)
        .max_size(clients)
        .runtime(Runtime::Tokio1)
        .build()?)
}

fn sqlx_options(config: &tokio_postgres::Config) -> Result<PgConnectOptions, BoxError> {
    let mut options = PgConnectOptions::new();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        options = options.host(host);
    }
    if let Some(port) = config.get_ports().first() {
        options = options.port(*port);
    }
    if let Some(user) = config.get_user() {
        options = options.username(user);
    }
    if let Some(password) = config.get_password() {
        options = options.password(std::str::from_utf8(password)?);
    }
    if let Some(db) = config.get_dbname() {
        options = options.database(db);
    }
    Ok(options)
}

async fn sqlx_pool(config: &tokio_postgres::Config, clients: usize) -> Result<PgPool, BoxError> {
    Ok(PgPoolOptions::new()
        .max_connections(clients as u32)
        .min_connections(clients as u32)
        // pebble's pool does not ping a connection before handing it out
        // (it checks that the socket is open); neither does sqlx's here.
        .test_before_acquire(false)
        .connect_with(sqlx_options(config)?)
        .await?)
}

impl Contenders {
    /// Connected for up to `clients` clients, whose operations spread over
    /// the first `active_tenants` tenants.
    pub async fn connect(
        fixture: &Fixture,
        clients: usize,
        active_tenants: i64,
    ) -> Result<Contenders, BoxError> {
        let mut limit = Vec::with_capacity(clients);
        let mut limit_app = Vec::with_capacity(clients);
        for _ in 0..clients {
            limit.push(Arc::new(LimitConn::connect(&fixture.owner).await?));
            limit_app.push(Arc::new(LimitConn::connect(&fixture.app).await?));
        }
        let options = PoolOptions::default().max_size(clients);
        let mut limit_login = Vec::with_capacity(fixture.logins.len());
        let mut sqlx_login = Vec::with_capacity(fixture.logins.len());
        for login in &fixture.logins {
            limit_login.push([
                Arc::new(LimitConn::connect(login).await?),
                Arc::new(LimitConn::connect(login).await?),
            ]);
            sqlx_login.push(
                PgPoolOptions::new()
                    .max_connections(PER_LOGIN as u32)
                    .test_before_acquire(false)
                    .connect_lazy_with(sqlx_options(login)?),
            );
        }
        let pebble_login = TenantLogins::connect(
            fixture.app.clone(),
            login_secret()?,
            PoolOptions::default().max_size(PER_LOGIN),
            TENANTS as usize,
        )
        .await?;
        let keys = fixture
            .keys
            .iter()
            .copied()
            .filter(|(tenant, _)| *tenant <= active_tenants)
            .collect();
        Ok(Contenders {
            limit_login,
            sqlx_login,
            pebble_login,
            keys: Arc::new(keys),
            limit,
            limit_app,
            sqlx: sqlx_pool(&fixture.owner, clients).await?,
            sqlx_app: sqlx_pool(&fixture.app, clients).await?,
            pebble: Db::connect_with(fixture.owner.clone(), options.clone()).await?,
            deadpool: deadpool_pool(&fixture.owner, clients)?,
            pebble_app: RlsDb::connect_with(fixture.app.clone(), options).await?,
        })
    }

    /// Runs client `client` of `contender` on `workload` until `stop`; the
    /// operations it completed.
    pub async fn run_client(
        self: Arc<Self>,
        contender: Contender,
        workload: Workload,
        client: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<u64, BoxError> {
        // Each client walks the keys in its own order, the same for every
        // contender, so that all three touch the same rows.
        let mut position = (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut done = 0_u64;
        while !stop.load(Ordering::Relaxed) {
            position = position
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (tenant, id) = self.keys[((position >> 33) % self.keys.len() as u64) as usize];
            match contender {
                Contender::Limit => self.limit_op(workload, client, tenant, id, done).await?,
                Contender::Sqlx => self.sqlx_op(workload, tenant, id, done).await?,
                Contender::Pebble => self.pebble_op(workload, tenant, id, done).await?,
                Contender::Deadpool => self.deadpool_op(workload, tenant, id, done).await?,
            }
            done += 1;
        }
        Ok(done)
    }

    async fn limit_op(
        &self,
        workload: Workload,
        client: usize,
        tenant: i64,
        id: i64,
        n: u64,
    ) -> Result<(), BoxError> {
        let qty = n as i32;
        match workload {
            Workload::Select => {
                let conn = &self.limit[client];
                let row = conn
                    .client
                    .query_one(&conn.select, &[&tenant, &id, &1_i64])
                    .await?;
                black_box(limit_item(&row)?);
            }
            Workload::Insert => {
                let conn = &self.limit[client];
                let name = "inserted by the comparison";
                let note: Option<&str> = None;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&tenant, &name, &qty, &note];
                conn.client.execute(&conn.insert, &params).await?;
            }
            Workload::Update => {
                let conn = &self.limit[client];
                conn.client
                    .execute(&conn.update, &[&qty, &tenant, &id])
                    .await?;
            }
            Workload::RlsSelect => {
                // BEGIN with set_config, the statement and COMMIT, written
                // before the first reply is read: one round trip.
                let conn = &self.limit_app[client];
                let begin = begin_rls(tenant);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&tenant, &id, &1_i64];
                let (begin, row, commit) = tokio::join!(
                    conn.client.batch_execute(&begin),
                    conn.client.query_one(&conn.select, &params),
                    conn.client.batch_execute("COMMIT"),
                );
                begin?;
                black_box(limit_item(&row?)?);
                commit?;
            }
            Workload::Join => {
                let conn = &self.limit[client];
                let row = conn
                    .client
                    .query_one(&conn.join, &[&tenant, &tenant, &id, &1_i64])
                    .await?;
                black_box(limit_item(&row)?);
                black_box(row.try_get::<_, String>(7)?);
            }
            Workload::Aggregate => {
                let conn = &self.limit[client];
                let row = conn
                    .client
                    .query_one(&conn.aggregate, &[&tenant, &id, &(id + 49)])
                    .await?;
                black_box((row.try_get::<_, i64>(0)?, row.try_get::<_, Option<i64>>(1)?));
            }
            Workload::Bulk => {
                use tokio_postgres::binary_copy::BinaryCopyInWriter;
                use tokio_postgres::types::Type;
                let conn = &self.limit[client];
                let sink = conn.client.copy_in(COPY_SQL).await?;
                let types = [Type::INT8, Type::TEXT, Type::INT4, Type::TEXT];
                let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
                let name = "loaded by the comparison";
                let note: Option<&str> = None;
                for i in 0..LOAD_ROWS {
                    let qty = i as i32;
                    writer
                        .as_mut()
                        .write(&[&tenant, &name, &qty, &note])
                        .await?;
                }
                writer.as_mut().finish().await?;
            }
            Workload::RlsLogin => {
                // The login confines it: the statement alone, one exchange.
                let conn = &self.limit_login[(tenant - 1) as usize][client % PER_LOGIN];
                let row = conn
                    .client
                    .query_one(&conn.select, &[&tenant, &id, &1_i64])
                    .await?;
                black_box(limit_item(&row)?);
            }
        }
        Ok(())
    }

    async fn sqlx_op(
        &self,
        workload: Workload,
        tenant: i64,
        id: i64,
        n: u64,
    ) -> Result<(), BoxError> {
        let qty = n as i32;
        match workload {
            Workload::Select => {
                let row: SqlxRow = sqlx::query_as(SELECT_SQL)
                    .bind(tenant)
                    .bind(id)
                    .bind(1_i64)
                    .fetch_one(&self.sqlx)
                    .await?;
                black_box(sqlx_item(row));
            }
            Workload::Insert => {
                sqlx::query(INSERT_SQL)
                    .bind(tenant)
                    .bind("inserted by the comparison")
                    .bind(qty)
                    .bind(None::<String>)
                    .execute(&self.sqlx)
                    .await?;
            }
            Workload::Update => {
                sqlx::query(UPDATE_SQL)
                    .bind(qty)
                    .bind(tenant)
                    .bind(id)
                    .execute(&self.sqlx)
                    .await?;
            }
            Workload::RlsSelect => {
                // sqlx cannot pipeline: BEGIN, set_config, the statement and
                // COMMIT are four round trips.
                let mut tx = self.sqlx_app.begin().await?;
                sqlx::query("SELECT pg_catalog.set_config('pebble.tenant_id', $1, true)")
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await?;
                let row: SqlxRow = sqlx::query_as(SELECT_SQL)
                    .bind(tenant)
                    .bind(id)
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                black_box(sqlx_item(row));
                tx.commit().await?;
            }
            Workload::Join => {
                let row: SqlxJoinRow = sqlx::query_as(JOIN_ONE_SQL)
                    .bind(tenant)
                    .bind(tenant)
                    .bind(id)
                    .bind(1_i64)
                    .fetch_one(&self.sqlx)
                    .await?;
                black_box(row);
            }
            Workload::Aggregate => {
                let row: (i64, Option<i64>) = sqlx::query_as(AGGREGATE_SQL)
                    .bind(tenant)
                    .bind(id)
                    .bind(id + 49)
                    .fetch_one(&self.sqlx)
                    .await?;
                black_box(row);
            }
            Workload::Bulk => {
                let rows: Vec<_> = new_loads().collect();
                sqlx::query(UNNEST_SQL)
                    .bind(vec![tenant; rows.len()])
                    .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.qty).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.note.clone()).collect::<Vec<_>>())
                    .execute(&self.sqlx)
                    .await?;
            }
            Workload::RlsLogin => {
                let row: SqlxRow = sqlx::query_as(SELECT_SQL)
                    .bind(tenant)
                    .bind(id)
                    .bind(1_i64)
                    .fetch_one(&self.sqlx_login[(tenant - 1) as usize])
                    .await?;
                black_box(sqlx_item(row));
            }
        }
        Ok(())
    }

    async fn pebble_op(
        &self,
        workload: Workload,
        tenant: i64,
        id: i64,
        n: u64,
    ) -> Result<(), BoxError> {
        match workload {
            Workload::Select => {
                black_box(self.pebble.tenant(tenant).find::<Item>(id).one().await?);
            }
            Workload::Insert => {
                self.pebble
                    .tenant(tenant)
                    .insert(new_item(n))
                    .exec()
                    .await?;
            }
            Workload::Update => {
                self.pebble
                    .tenant(tenant)
                    .update::<Item>()
                    .set(Item::QTY, n as i32)
                    .filter(Item::ID.eq(id))
                    .exec()
                    .await?;
            }
            Workload::RlsSelect => {
                black_box(
                    self.pebble_app
                        .tenant(tenant)
                        .find::<Item>(id)
                        .one()
                        .await?,
                );
            }
            Workload::Join => {
                black_box(join_query(&self.pebble.tenant(tenant), id).one().await?);
            }
            Workload::Aggregate => {
                black_box(
                    aggregate_query(&self.pebble.tenant(tenant), id)
                        .one()
                        .await?,
                );
            }
            Workload::Bulk => {
                self.pebble
                    .tenant(tenant)
                    .copy_in(new_loads())
                    .exec()
                    .await?;
            }
            Workload::RlsLogin => {
                black_box(
                    self.pebble_login
                        .tenant(tenant)
                        .await?
                        .find::<Item>(id)
                        .one()
                        .await?,
                );
            }
        }
        Ok(())
    }

    async fn deadpool_op(
        &self,
        workload: Workload,
        tenant: i64,
        id: i64,
        n: u64,
    ) -> Result<(), BoxError> {
        type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
        let qty = n as i32;
        let client = self.deadpool.get().await?;
        match workload {
            Workload::Select => {
                let stmt = client.prepare_cached(SELECT_SQL).await?;
                let params: [Param; 3] = [&tenant, &id, &1_i64];
                let row = client.query_one(&stmt, &params).await?;
                black_box(limit_item(&row)?);
            }
            Workload::Insert => {
                let stmt = client.prepare_cached(INSERT_SQL).await?;
                let name = "inserted by the comparison";
                let note: Option<&str> = None;
                let params: [Param; 4] = [&tenant, &name, &qty, &note];
                client.execute(&stmt, &params).await?;
            }
            Workload::Update => {
                let stmt = client.prepare_cached(UPDATE_SQL).await?;
                client.execute(&stmt, &[&qty, &tenant, &id]).await?;
            }
            other => {
                return Err(format!(
                    "deadpool runs select, insert and update, not {}",
                    other.name()
                )
                .into())
            }
        }
        Ok(())
    }

    pub fn close(&self) {
        self.pebble.close();
        self.pebble_app.db().close();
        self.pebble_login.close();
    }

    pub async fn close_sqlx(&self) {
        self.sqlx.close().await;
        self.sqlx_app.close().await;
        for pool in &self.sqlx_login {
            pool.close().await;
        }
    }
}

type SqlxRow = (i64, i64, String, i32, Option<String>);
type SqlxJoinRow = (i64, i64, String, i32, Option<String>, i64, i64, String, i32);

fn sqlx_item((id, tenant_id, name, qty, note): SqlxRow) -> Item {
    Item {
        id,
        tenant_id,
        name,
        qty,
        note,
    }
}

fn limit_item(row: &tokio_postgres::Row) -> Result<Item, tokio_postgres::Error> {
    Ok(Item {
        id: row.try_get(0)?,
        tenant_id: row.try_get(1)?,
        name: row.try_get(2)?,
        qty: row.try_get(3)?,
        note: row.try_get(4)?,
    })
}
