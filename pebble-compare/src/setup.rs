//! The shared fixture: a throwaway server, one table of 50 tenants × 200
//! rows with row-level security installed, an application role, and a
//! tenant login per tenant.

use pebble::{Db, LoginSecret, Model, PoolOptions, RlsTable};
use pebble_testkit::{ServerOptions, TempServer};

pub const TENANTS: i64 = 50;
pub const ROWS_PER_TENANT: usize = 200;

/// The row every contender reads and writes.
#[derive(Model, Debug, Clone)]
#[pebble(table = "items")]
pub struct Item {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub tenant_id: i64,
    pub name: String,
    pub qty: i32,
    pub note: Option<String>,
}

/// What the bulk workload loads: the shape of [`Item`], in a table of its
/// own, so that the other workloads' table does not grow by thousands of
/// rows per second.
#[derive(Model, Debug, Clone)]
#[pebble(table = "loads")]
pub struct Load {
    #[pebble(primary_key, default)]
    pub id: i64,
    #[tenant_id]
    pub tenant_id: i64,
    pub name: String,
    pub qty: i32,
    pub note: Option<String>,
}

/// Rows per bulk load.
pub const LOAD_ROWS: usize = 1_000;

/// The `COPY` pebble sends for a load of [`Load`] rows (their `id` left to
/// the identity column).
pub const COPY_SQL: &str =
    r#"COPY "loads" ("tenant_id", "name", "qty", "note") FROM STDIN (FORMAT binary)"#;

/// sqlx has no binary `COPY` writer: its users load many rows with one
/// `INSERT` of arrays.
pub const UNNEST_SQL: &str = r#"INSERT INTO "loads" ("tenant_id", "name", "qty", "note") SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::text[])"#;

/// The rows of one bulk load (unstamped: the tenant handle stamps them).
pub fn new_loads() -> impl Iterator<Item = Load> {
    (0..LOAD_ROWS).map(|i| Load {
        id: 0,
        tenant_id: 0,
        name: String::from("loaded by the comparison"),
        qty: i as i32,
        note: None,
    })
}

/// The SQL pebble renders for each workload, used verbatim by the other
/// contenders so that the server does the same work for all three
/// (checked against pebble's own rendering in [`Fixture::load`]).
/// `find(id).one()` asks for at most one row.
pub const SELECT_SQL: &str = r#"SELECT "id", "tenant_id", "name", "qty", "note" FROM "items" WHERE "tenant_id" = $1 AND "id" = $2 LIMIT $3"#;
pub const INSERT_SQL: &str = r#"INSERT INTO "items" ("id", "tenant_id", "name", "qty", "note") VALUES (DEFAULT, $1, $2, $3, $4)"#;
/// One stock row per item: what the join workload joins items with.
#[derive(Model, Debug, Clone)]
#[pebble(table = "stock")]
pub struct Stock {
    #[pebble(primary_key)]
    pub item_id: i64,
    #[tenant_id]
    pub tenant_id: i64,
    pub warehouse: String,
    pub on_hand: i32,
}

pub const JOIN_SQL: &str = r#"SELECT "items"."id", "items"."tenant_id", "items"."name", "items"."qty", "items"."note", "stock"."item_id", "stock"."tenant_id", "stock"."warehouse", "stock"."on_hand" FROM "items" INNER JOIN "stock" ON "stock"."tenant_id" = $1 AND "stock"."item_id" = "items"."id" WHERE "items"."tenant_id" = $2 AND "items"."id" = $3"#;
/// What the join workload's `one()` sends: the join, at most one row.
pub const JOIN_ONE_SQL: &str = concat!(
    r#"SELECT "items"."id", "items"."tenant_id", "items"."name", "items"."qty", "items"."note", "stock"."item_id", "stock"."tenant_id", "stock"."warehouse", "stock"."on_hand" FROM "items" INNER JOIN "stock" ON "stock"."tenant_id" = $1 AND "stock"."item_id" = "items"."id" WHERE "items"."tenant_id" = $2 AND "items"."id" = $3"#,
    " LIMIT $4"
);
pub const AGGREGATE_SQL: &str = r#"SELECT COUNT(*), SUM("items"."qty") FROM "items" WHERE "items"."tenant_id" = $1 AND ("items"."id" BETWEEN $2 AND $3)"#;
pub const UPDATE_SQL: &str =
    r#"UPDATE "items" SET "qty" = $1 WHERE "tenant_id" = $2 AND "id" = $3"#;

/// The rows each tenant is loaded with (the tenant stamps them).
pub fn tenant_items() -> impl Iterator<Item = Item> {
    (0..ROWS_PER_TENANT).map(|i| Item {
        id: 0,
        tenant_id: 0,
        name: format!("item {i}"),
        qty: i as i32,
        note: None,
    })
}

/// `BEGIN` and the tenant setting in one simple-query message, as pebble
/// sends it under row-level security.
pub fn begin_rls(tenant: i64) -> String {
    format!("BEGIN; SET LOCAL pebble.tenant_id = '{tenant}'")
}

/// The secret every tenant login's password derives from.
pub fn login_secret() -> Result<LoginSecret, pebble::Error> {
    LoginSecret::new("pebble-compare's tenant login secret")
}

pub struct Fixture {
    /// Held so that the server lives as long as the fixture; stopped and
    /// deleted when it is dropped.
    _server: TempServer,
    pub owner: tokio_postgres::Config,
    pub app: tokio_postgres::Config,
    /// Tenant `t`'s login (user and password) at `logins[t - 1]`.
    pub logins: Vec<tokio_postgres::Config>,
    /// Every (tenant, id) loaded, in load order.
    pub keys: Vec<(i64, i64)>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Fixture {
    pub async fn load() -> Result<Fixture, BoxError> {
        // Room for every contender's connections, 50 tenant-login pools each included.
        let server = TempServer::start_with(ServerOptions::default().max_connections(700))?;
        let admin = server.config();
        let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        client.batch_execute("CREATE DATABASE compare").await?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        crate::measure::watch_server(backend);
        drop(client);
        let _ = connection.await;

        let owner = server.config_for("compare");
        let db = Db::connect_with(owner.clone(), PoolOptions::default().max_size(2)).await?;
        db.create_table::<Item>().await?;
        db.create_table::<Stock>().await?;
        db.create_table::<Load>().await?;
        db.install_rls::<Item>().await?;
        let password = db
            .create_app_role("compare_app", &[RlsTable::of::<Item>()])
            .await?;
        db.grant_tenant_logins(&[RlsTable::of::<Item>()]).await?;
        let mut logins = Vec::new();
        for tenant in 1..=TENANTS {
            let role = db.create_tenant_login(&tenant, &login_secret()?).await?;
            // The throwaway server trusts every login: no password needed
            // for the limit's own connections (pebble derives and sends it).
            let mut login = owner.clone();
            login.user(&role);
            logins.push(login);
            db.tenant(tenant).insert_many(tenant_items()).exec().await?;
        }
        let keys = db
            .cross_tenant()
            .select::<Item>()
            .all()
            .await?
            .into_iter()
            .map(|item| (item.tenant_id, item.id))
            .collect::<Vec<_>>();
        for tenant in 1..=TENANTS {
            let items = keys.iter().filter(|(t, _)| *t == tenant);
            db.tenant(tenant)
                .insert_many(items.map(|(_, id)| Stock {
                    item_id: *id,
                    tenant_id: 0,
                    warehouse: format!("w{}", id % 3),
                    on_hand: (*id % 17) as i32,
                }))
                .exec()
                .await?;
        }

        // The other contenders send exactly what pebble sends.
        let tenant = db.tenant(1_i64);
        check_sql(
            "select",
            tenant.find::<Item>(1).limit(1).to_sql()?,
            SELECT_SQL,
        )?;
        check_sql("insert", tenant.insert(new_item(0)).to_sql()?, INSERT_SQL)?;
        let update = tenant
            .update::<Item>()
            .set(Item::QTY, 1)
            .filter(Item::ID.eq(1));
        check_sql("update", update.to_sql()?, UPDATE_SQL)?;
        check_sql("join", join_query(&tenant, 1).to_sql()?, JOIN_SQL)?;
        check_sql(
            "aggregate",
            aggregate_query(&tenant, 1).to_sql()?,
            AGGREGATE_SQL,
        )?;
        db.batch_execute("VACUUM ANALYZE stock").await?;
        db.batch_execute("VACUUM ANALYZE items").await?;
        db.close();

        let mut app = owner.clone();
        app.user("compare_app").password(&password);
        Ok(Fixture {
            _server: server,
            owner,
            app,
            logins,
            keys,
        })
    }
}

fn check_sql(what: &str, pebble: String, ours: &str) -> Result<(), BoxError> {
    if pebble == ours {
        Ok(())
    } else {
        Err(format!("pebble's {what} is now `{pebble}`: update the compare crate's copy").into())
    }
}

/// The row each insert writes (unstamped: the tenant handle stamps it).
pub fn new_item(n: u64) -> Item {
    Item {
        id: 0,
        tenant_id: 0,
        name: String::from("inserted by the comparison"),
        qty: n as i32,
        note: None,
    }
}

/// The join workload: an item and its stock row, by key.
pub fn join_query(
    tenant: &pebble::TenantDb<i64>,
    id: i64,
) -> pebble::Join<i64, (Item, Stock), (Item, Stock)> {
    tenant
        .select::<Item>()
        .join::<Stock>()
        .on(Stock::ITEM_ID.eq_col(Item::ID))
        .filter(Item::ID.eq(id))
}

/// The aggregate workload: how many of a tenant's items have a key from
/// `id` to `id + 49`, and their total quantity (an index range scan of at
/// most 50 rows, however many rows the insert workload added).
pub fn aggregate_query(
    tenant: &pebble::TenantDb<i64>,
    id: i64,
) -> pebble::Projection<i64, (Item,), (Item,), (i64, Option<i64>)> {
    tenant
        .select::<Item>()
        .columns((pebble::count(), Item::QTY.sum()))
        .filter(Item::ID.between(id, id + 49))
}
