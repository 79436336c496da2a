//! [`SchemaTenants`]: schema-per-tenant provisioning, placement over
//! servers, and the handles on provisioned tenants.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::handle::db::Db;
use crate::handle::private::Sealed;
use crate::handle::schema::SchemaDb;
use crate::ident::{literal, quote, tenant_schema};
use crate::model::PerTenantModel;
use crate::query::ddl::create_table_sql_in;
use crate::SqlState;

use super::flights::Flights;
use super::registry::{Claim, Claimed, Registry, TenantRecord, TenantStrategy};
use super::roles::{self, TenantRole};

type Ddl = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The SQLSTATE pebble's own check raises when a `tenant_<id>` schema
/// exists that pebble did not provision.
const FOREIGN_SCHEMA: &str = "PB001";

/// Schema-per-tenant: provisions tenant schemas `tenant_<id>` with their
/// tables (and optionally a login role per tenant), records them in the
/// tenant registry, places them over one or more servers, and hands out
/// [`SchemaDb`] handles on the right server.
///
/// - **Atomic.** A tenant's schema, its tables, its marker comment and its
///   role are created in one transaction on its server, under the same
///   per-tenant advisory lock pebble-migrate takes: the schema exists
///   exactly when it is fully set up.
/// - **Registered.** The registry row (`public.pebble_tenants` on the home
///   server) is `pending` from the start and `ready` once the schema is
///   committed; [`SchemaTenants::db`] only hands out `ready` tenants.
///   Any number of tasks or processes creating one tenant at once make one
///   schema and one row: they take turns on the tenant's row.
/// - **Placed.** With several servers ([`SchemaTenantsBuilder::server`]),
///   a new tenant goes to the server holding the fewest tenants; its
///   registry row names it, and every handle connects there.
/// - **Dropped cleanly.** [`SchemaTenants::drop_tenant`] drops the schema
///   (CASCADE), the role and the row; a schema pebble did not provision is
///   refused. A drop and a concurrent creation take turns; a creation that
///   was waiting behind the drop fails with [`Error::TenantDropped`]
///   rather than bringing the tenant back.
/// - **Crash-safe.** A process that dies mid-provisioning (or mid-drop)
///   leaves a `pending` (or `dropping`) row and never a `ready` tenant;
///   [`SchemaTenants::cleanup`] removes what it left.
///
/// Cheap to clone; clones share the placement cache.
///
/// ```no_run
/// # use pebble::{Db, Model, SchemaTenants};
/// # #[derive(Model, Debug)] #[pebble(table = "tasks", per_tenant)] struct Task { #[pebble(primary_key, default)] id: i64, title: String }
/// # async fn demo() -> pebble::Result<()> {
/// let owner = Db::connect("postgres://owner@localhost/app").await?;
/// let tenants = SchemaTenants::builder(owner).table::<Task>().build()?;
/// tenants.create("acme").await?;                     // schema tenant_acme, table tasks, registry row
/// let acme = tenants.db("acme").await?;              // SchemaDb on acme's server
/// acme.insert(Task { id: 0, title: "ship".into() }).exec().await?;
/// for tenant in tenants.list().await? {
///     println!("{} {} on {}", tenant.id, tenant.status, tenant.placement);
/// }
/// tenants.drop_tenant("acme").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SchemaTenants {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    servers: Vec<Server>,
    ddl: Vec<Ddl>,
    roles: bool,
    /// Ready tenants seen by this value: their server's index.
    placed: RwLock<HashMap<String, usize>>,
    flights: Flights,
}

struct Server {
    name: String,
    db: Db,
}

/// What [`SchemaTenants::create`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Provisioned {
    /// The tenant id.
    pub id: String,
    /// Its schema, `tenant_<id>`.
    pub schema: String,
    /// The server it lives on.
    pub server: String,
    /// `true` if this call provisioned it, `false` if it was already ready.
    pub created: bool,
    /// Its login role with the generated password, when roles are on and
    /// this call created it: the only time the password is available.
    pub role: Option<TenantRole>,
}

/// Settings of [`SchemaTenants`], from [`SchemaTenants::builder`].
#[must_use = "call `.build()`"]
pub struct SchemaTenantsBuilder {
    home: Db,
    servers: Vec<Server>,
    ddl: Vec<Ddl>,
    roles: bool,
}

impl SchemaTenants {
    /// Settings for schema tenants whose registry lives on `home` (an
    /// owner connection: provisioning creates schemas, tables and roles).
    /// Without [`SchemaTenantsBuilder::server`], tenants live on `home` too.
    pub fn builder(home: Db) -> SchemaTenantsBuilder {
        SchemaTenantsBuilder {
            home,
            servers: Vec::new(),
            ddl: Vec::new(),
            roles: false,
        }
    }

    /// Provisions tenant `id`: registers it `pending` (placed on the least
    /// loaded server), creates `tenant_<id>` with its tables (and its role)
    /// in one transaction, then marks it `ready`. A tenant already ready is
    /// left as it is (`created: false`).
    ///
    /// Errors: [`Error::InvalidTenantId`] (nothing is touched);
    /// [`Error::TenantDropped`] if a drop of it ran meanwhile;
    /// [`Error::StrategyMismatch`] if it is a database tenant;
    /// [`Error::SchemaNotProvisionedByPebble`] if a `tenant_<id>` schema
    /// pebble did not make is in the way;
    /// [`Error::RoleNotProvisionedByPebble`] (roles on) if a `tenant_<id>`
    /// role pebble did not create for this database is. A failure leaves no schema and a
    /// `pending` row, which the next `create` or [`SchemaTenants::cleanup`]
    /// takes up.
    pub async fn create(&self, id: &str) -> Result<Provisioned> {
        let schema = tenant_schema(id)?;
        let inner = &self.inner;
        let _turn = inner.flights.lock(id).await;
        let placement = inner.choose_server(id).await?;
        let claim = match inner
            .registry
            .claim(id, TenantStrategy::Schema, &placement)
            .await?
        {
            Claimed::Ready(record) => {
                let server = inner.server_of(&record)?;
                inner.remember(id, server);
                return Ok(Provisioned {
                    id: id.to_owned(),
                    schema,
                    server: inner.servers[server].name.clone(),
                    created: false,
                    role: None,
                });
            }
            Claimed::Provision(claim) => claim,
        };
        let server = inner.server_of(claim.record())?;
        let role = inner.roles.then(|| TenantRole::generate(schema.clone()));
        let sql = inner.provision_sql(id, &schema, role.as_ref());
        let db = &inner.servers[server].db;
        let tx = db.begin().await?;
        tx.conn()
            .batch(&sql)
            .await
            .map_err(|e| foreign(e, id, &schema))?;
        tx.commit().await?;
        if let Some(role) = &role {
            // Outside the logged batch; a crash before it leaves a role
            // that cannot log in and a `pending` tenant for `cleanup`.
            let client = db.pool().get().await?;
            client.batch_execute(&role.password_sql()).await?;
        }
        claim.ready().await?;
        tracing::info!(target: "pebble::provision", tenant = id, schema, server = %inner.servers[server].name, "provisioned schema tenant");
        inner.remember(id, server);
        Ok(Provisioned {
            id: id.to_owned(),
            schema,
            server: inner.servers[server].name.clone(),
            created: true,
            role,
        })
    }

    /// The handle on ready tenant `id`'s schema, on the server it is placed
    /// on. The registry is read once per tenant (then cached in this
    /// value). Errors: [`Error::InvalidTenantId`], [`Error::UnknownTenant`]
    /// (not registered), [`Error::TenantNotReady`] (`pending` or `dropping`),
    /// [`Error::StrategyMismatch`] (a database tenant),
    /// [`Error::UnknownServer`] (placed on a server not configured here).
    ///
    /// The placement is cached per `SchemaTenants` value once seen ready:
    /// a tenant another process drops afterwards still gets a handle here,
    /// whose statements then fail (its schema is gone).
    pub async fn db(&self, id: &str) -> Result<SchemaDb> {
        let inner = &self.inner;
        tenant_schema(id)?;
        let cached = inner
            .placed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        let server = match cached {
            Some(server) => server,
            None => {
                let record = inner
                    .registry
                    .get(id)
                    .await?
                    .ok_or_else(|| Error::UnknownTenant { id: id.to_owned() })?;
                if record.strategy != TenantStrategy::Schema {
                    return Err(Error::StrategyMismatch {
                        id: id.to_owned(),
                        registered: record.strategy.to_string(),
                    });
                }
                if record.status != super::registry::TenantStatus::Ready {
                    return Err(Error::TenantNotReady {
                        id: id.to_owned(),
                        status: record.status.to_string(),
                    });
                }
                let server = inner.server_of(&record)?;
                inner.remember(id, server);
                server
            }
        };
        inner.servers[server].db.schema_tenant(id)
    }

    /// Drops tenant `id`: its schema with everything in it, its role, and
    /// its registry row. Returns `false` if it was not registered (nothing
    /// is touched). A `tenant_<id>` schema without pebble's marker is
    /// refused with [`Error::SchemaNotProvisionedByPebble`] before anything
    /// changes. Handles already given out then fail on their next statement
    /// (the schema is gone).
    pub async fn drop_tenant(&self, id: &str) -> Result<bool> {
        let schema = tenant_schema(id)?;
        let inner = &self.inner;
        let _turn = inner.flights.lock(id).await;
        if let Some(record) = inner.registry.get(id).await? {
            if record.strategy != TenantStrategy::Schema {
                return Err(Error::StrategyMismatch {
                    id: id.to_owned(),
                    registered: record.strategy.to_string(),
                });
            }
            // Refused before the row is marked, so a foreign schema leaves
            // the tenant as it was.
            let server = inner.server_of(&record)?;
            inner.check_marker(server, id, &schema).await?;
        }
        let Some(claim) = inner
            .registry
            .claim_drop(id, TenantStrategy::Schema)
            .await?
        else {
            return Ok(false);
        };
        inner.drop_claimed(claim, &schema).await?;
        Ok(true)
    }

    /// Every registered tenant (schema and database tenants), by id, with
    /// its status and placement.
    pub async fn list(&self) -> Result<Vec<TenantRecord>> {
        self.inner.registry.list().await
    }

    /// Removes what crashed provisionings and drops left: every schema
    /// tenant whose row is `pending` or `dropping` and held by no one
    /// (a provisioning in progress holds its row, and is never touched) has
    /// its schema (if pebble's), its role and its row dropped. Returns the
    /// ids cleaned up.
    pub async fn cleanup(&self) -> Result<Vec<String>> {
        let inner = &self.inner;
        let mut cleaned = Vec::new();
        for claim in inner.registry.abandoned(TenantStrategy::Schema).await? {
            let id = claim.record().id.clone();
            let schema = tenant_schema(&id)?;
            let server = inner.server_of(claim.record())?;
            inner.check_marker(server, &id, &schema).await?;
            inner.drop_claimed(claim, &schema).await?;
            tracing::info!(target: "pebble::provision", tenant = %id, "cleaned up abandoned schema tenant");
            cleaned.push(id);
        }
        Ok(cleaned)
    }
}

impl Inner {
    /// The server a new tenant goes to: the one with the fewest registered
    /// tenants (ties: the first configured). A tenant already registered
    /// keeps its row's placement (the insert does not overwrite it).
    async fn choose_server(&self, _id: &str) -> Result<String> {
        if self.servers.len() == 1 {
            return Ok(self.servers[0].name.clone());
        }
        let load = self.registry.load().await?;
        let count = |name: &str| {
            load.iter()
                .find(|(placement, _)| placement == name)
                .map_or(0, |(_, n)| *n)
        };
        let best = self
            .servers
            .iter()
            .min_by_key(|server| count(&server.name))
            .map(|server| server.name.clone());
        best.ok_or_else(|| Error::Config("no server to place tenants on".into()))
    }

    /// The server a registry row places its tenant on. With one server,
    /// every tenant is there (rows written by pebble-migrate name the
    /// database instead of a server).
    fn server_of(&self, record: &TenantRecord) -> Result<usize> {
        if self.servers.len() == 1 {
            return Ok(0);
        }
        self.servers
            .iter()
            .position(|server| server.name == record.placement)
            .ok_or_else(|| Error::UnknownServer {
                id: record.id.clone(),
                server: record.placement.clone(),
            })
    }

    fn remember(&self, id: &str, server: usize) {
        self.placed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), server);
    }

    fn forget(&self, id: &str) {
        self.placed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The transaction that makes tenant `id`: the tenant's lock (the key
    /// pebble-migrate uses, so a migration and a provisioning of one tenant
    /// take turns), a check that a schema of that name is pebble's if it
    /// exists, the schema, its marker, its tables, extra DDL, its role.
    fn provision_sql(&self, id: &str, schema: &str, role: Option<&TenantRole>) -> String {
        let quoted = quote(schema);
        let mut sql = vec![
            lock_sql(schema),
            marker_check_sql(id, schema),
            format!("CREATE SCHEMA IF NOT EXISTS {quoted}"),
            format!("COMMENT ON SCHEMA {quoted} IS {}", literal(&marker(id))),
        ];
        sql.extend(self.ddl.iter().map(|ddl| ddl(schema)));
        if let Some(role) = role {
            sql.push(role.create_sql());
            sql.push(roles::schema_grants_sql(role.name(), schema));
        }
        sql.join(";\n")
    }

    /// Refuses a `tenant_<id>` schema on `server` that pebble did not make.
    async fn check_marker(&self, server: usize, id: &str, schema: &str) -> Result<()> {
        self.servers[server]
            .db
            .conn()
            .batch(&marker_check_sql(id, schema))
            .await
            .map_err(|e| foreign(e, id, schema))
    }

    /// Drops a held tenant's schema and role (one transaction on its
    /// server), then its row.
    async fn drop_claimed(&self, claim: Claim, schema: &str) -> Result<()> {
        let id = claim.record().id.clone();
        let server = self.server_of(claim.record())?;
        let db = &self.servers[server].db;
        let sql = [
            lock_sql(schema),
            marker_check_sql(&id, schema),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)),
            roles::drop_sql(schema),
        ]
        .join(";\n");
        let tx = db.begin().await?;
        tx.conn()
            .batch(&sql)
            .await
            .map_err(|e| foreign(e, &id, schema))?;
        tx.commit().await?;
        db.tables().forget_schema(schema);
        self.forget(&id);
        claim.delete().await?;
        tracing::info!(target: "pebble::provision", tenant = %id, schema, "dropped schema tenant");
        Ok(())
    }
}

fn marker(id: &str) -> String {
    format!("pebble tenant {id}")
}

fn lock_sql(schema: &str) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(hashtext('pebble-migrate'), hashtext({}))",
        literal(&format!("pebble-migrate:{schema}"))
    )
}

/// Raises [`FOREIGN_SCHEMA`] if `schema` exists without `id`'s marker.
fn marker_check_sql(id: &str, schema: &str) -> String {
    format!(
        "DO $pebble$ BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace \
         WHERE nspname = {name} AND pg_catalog.obj_description(oid, 'pg_namespace') \
         IS DISTINCT FROM {marker}) THEN RAISE EXCEPTION USING ERRCODE = '{FOREIGN_SCHEMA}', \
         MESSAGE = 'schema ' || {name} || ' was not provisioned by pebble'; END IF; END $pebble$",
        name = literal(schema),
        marker = literal(&marker(id)),
    )
}

fn foreign(e: Error, id: &str, schema: &str) -> Error {
    if e.code() == Some(&SqlState::from_code(FOREIGN_SCHEMA)) {
        Error::SchemaNotProvisionedByPebble {
            id: id.to_owned(),
            schema: schema.to_owned(),
        }
    } else if e.code() == Some(&SqlState::from_code(roles::FOREIGN_ROLE)) {
        // The role is named like the schema.
        Error::RoleNotProvisionedByPebble {
            id: id.to_owned(),
            role: schema.to_owned(),
        }
    } else {
        e
    }
}

impl SchemaTenantsBuilder {
    /// Adds a server tenants can be placed on, under `name` (what registry
    /// rows record as the placement). The home server is only a placement
    /// target if it is added here too; with no server added, tenants live
    /// on the home server.
    pub fn server(mut self, name: &str, db: Db) -> Self {
        self.servers.push(Server {
            name: name.to_owned(),
            db,
        });
        self
    }

    /// Creates per-tenant model `M`'s table in every new tenant's schema
    /// (see [`create_table_sql`](crate::create_table_sql); every name is
    /// qualified with the schema).
    pub fn table<M: PerTenantModel>(mut self) -> Self {
        self.ddl
            .push(Arc::new(|schema| create_table_sql_in::<M>(Some(schema))));
        self
    }

    /// Runs more DDL in each new tenant's schema, in the same transaction,
    /// after the tables: `ddl` gets the schema name (`tenant_acme`, safe to
    /// quote as `"tenant_acme"`) and returns SQL text that names it
    /// explicitly. Never built from user input.
    ///
    /// ```
    /// # use pebble::{Db, PoolOptions, SchemaTenants};
    /// # let owner = Db::connect_lazy("host=localhost", PoolOptions::default()).unwrap();
    /// let tenants = SchemaTenants::builder(owner)
    ///     .sql(|schema| format!(r#"CREATE INDEX tasks_title ON "{schema}".tasks (title)"#));
    /// ```
    pub fn sql(mut self, ddl: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.ddl.push(Arc::new(ddl));
        self
    }

    /// Creates a login role per tenant (named like its schema,
    /// `tenant_<id>`) with USAGE on its schema and row privileges on its
    /// tables only, so that a connection as that role cannot reach another
    /// tenant even with raw SQL. The password is generated and returned
    /// once, in [`Provisioned::role`]. Roles are cluster-wide: tenant ids
    /// must then be unique across the databases of a server.
    pub fn roles(mut self, on: bool) -> Self {
        self.roles = on;
        self
    }

    /// The provisioner. Opens nothing until used. [`Error::Config`] for
    /// two servers with the same name.
    pub fn build(self) -> Result<SchemaTenants> {
        let mut servers = self.servers;
        if servers.is_empty() {
            servers.push(Server {
                name: "home".to_owned(),
                db: self.home.clone(),
            });
        }
        for (i, server) in servers.iter().enumerate() {
            if server.name.is_empty() || servers[..i].iter().any(|s| s.name == server.name) {
                return Err(Error::Config(format!(
                    "server names must be unique and not empty: {:?}",
                    server.name
                )));
            }
        }
        Ok(SchemaTenants {
            inner: Arc::new(Inner {
                registry: Registry::new(self.home),
                servers,
                ddl: self.ddl,
                roles: self.roles,
                placed: RwLock::new(HashMap::new()),
                flights: Flights::default(),
            }),
        })
    }
}

impl fmt::Debug for SchemaTenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaTenants")
            .field(
                "servers",
                &self
                    .inner
                    .servers
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .field("roles", &self.inner.roles)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SchemaTenantsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaTenantsBuilder")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}
