//! Statements on the server's maintenance database: creating, marking and
//! dropping tenant databases. Their connections count against the
//! manager's connection budget like any other.

use tokio_postgres::{error::SqlState, Client};

use crate::error::{Error, Result};
use crate::provision::roles::TenantRole;

use super::connect::Connector;
use super::tenant_id::quote;

/// Creates `database`; already existing (say, created by a concurrent
/// caller) counts as success.
pub(crate) async fn create_database(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    database: &str,
) -> Result<()> {
    let sql = format!("CREATE DATABASE {}", quote(database));
    match execute(connector, maintenance, &sql).await {
        Err(e) if already_exists(&e) => Ok(()),
        other => other,
    }
}

/// How every marker of a tenant database starts; the tenant id follows.
const MARKER_PREFIX: &str = "pebble tenant ";

/// The comment that marks a database as provisioned by pebble for `id`,
/// as pebble wrote it before markers named the database (still accepted).
fn marker_text(id: &str) -> String {
    format!("{MARKER_PREFIX}{id}")
}

/// The comment that marks a database as provisioned by pebble for `id`
/// under the name `database`. Written on the staging database, where the
/// name tells one application's provisioning of tenant `id` from
/// another's on the same server (they name their databases differently:
/// `TenantManagerBuilder::database_name`); after the rename it names the
/// database itself.
fn named_marker_text(id: &str, database: &str) -> String {
    format!("{MARKER_PREFIX}{id} as {database}")
}

/// Marks `staging` as provisioned by pebble for tenant `id`, to become
/// `database`. Written on the staging database, so the marker arrives
/// with the rename.
pub(crate) async fn mark(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    staging: &str,
    id: &str,
    database: &str,
) -> Result<()> {
    // Ids are validated (letters, digits, `_`); doubling quotes keeps the
    // literal a literal whatever the database name holds.
    let sql = format!(
        "COMMENT ON DATABASE {} IS '{}'",
        quote(staging),
        named_marker_text(id, database).replace('\'', "''")
    );
    execute(connector, maintenance, &sql).await
}

/// Whose `database` is, as far as its marker tells.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// No such database.
    Missing,
    /// Provisioned by pebble for this tenant.
    Pebble,
    /// Anything else: another tenant's marker, another comment, none.
    Foreign,
}

/// Whose `database` is, according to its marker, for tenant `id`.
pub(crate) async fn marker(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    database: &str,
    id: &str,
) -> Result<Marker> {
    let session = Session::open(connector, maintenance).await?;
    let result = read_marker(&session.client, database, id).await;
    session.close().await;
    result
}

/// Drops `database` if it exists and carries `id`'s marker; refuses one
/// without it, touching nothing.
pub(crate) async fn drop_tenant_database(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    database: &str,
    id: &str,
) -> Result<()> {
    let session = Session::open(connector, maintenance).await?;
    // Checked again on the connection that drops: the check before the
    // drain may be long ago.
    let result = match read_marker(&session.client, database, id).await {
        Ok(Marker::Missing) => Ok(()),
        Ok(Marker::Foreign) => Err(Error::NotProvisionedByPebble {
            id: id.to_owned(),
            database: database.to_owned(),
        }),
        Ok(Marker::Pebble) => {
            let sql = format!("DROP DATABASE IF EXISTS {}", quote(database));
            tracing::info!(target: "pebble::manager", sql, "maintenance statement");
            session
                .client
                .batch_execute(&sql)
                .await
                .map_err(Error::from)
        }
        Err(e) => Err(e),
    };
    session.close().await;
    result
}

async fn read_marker(client: &Client, database: &str, id: &str) -> Result<Marker> {
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Marker::Missing);
    };
    let comment: Option<String> = row.try_get(0)?;
    Ok(
        if comment.is_some_and(|comment| {
            comment == named_marker_text(id, database) || comment == marker_text(id)
        }) {
            Marker::Pebble
        } else {
            Marker::Foreign
        },
    )
}

/// Renames `from` to `to`; fails with [`already_exists`] if `to` exists.
pub(crate) async fn rename_database(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    from: &str,
    to: &str,
) -> Result<()> {
    let sql = format!("ALTER DATABASE {} RENAME TO {}", quote(from), quote(to));
    execute(connector, maintenance, &sql).await
}

/// Drops `database` if it exists. Only for pebble's own staging databases.
pub(crate) async fn drop_database(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    database: &str,
) -> Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {}", quote(database));
    execute(connector, maintenance, &sql).await
}

pub(crate) fn already_exists(e: &Error) -> bool {
    // Two CREATE DATABASE racing can also collide in the catalog's unique index.
    matches!(
        e.code(),
        Some(code) if *code == SqlState::DUPLICATE_DATABASE || *code == SqlState::UNIQUE_VIOLATION
    )
}

async fn execute(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    sql: &str,
) -> Result<()> {
    tracing::info!(target: "pebble::manager", sql, "maintenance statement");
    let session = Session::open(connector, maintenance).await?;
    let result = session.client.batch_execute(sql).await;
    session.close().await;
    Ok(result?)
}

/// A maintenance connection.
struct Session {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn open(connector: &Connector, maintenance: &tokio_postgres::Config) -> Result<Session> {
        let (client, connection) = connector.connect(maintenance).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Session { client, connection })
    }

    /// Closes the connection and waits until it has ended.
    async fn close(self) {
        drop(self.client);
        let _ = self.connection.await;
    }
}

/// A staging database, as its marker describes it.
#[derive(Debug)]
pub(crate) struct Staging {
    /// The staging database's own name.
    pub(crate) name: String,
    /// The tenant it is set up for.
    pub(crate) id: String,
    /// The name it is to be renamed to; `None` for a marker written before
    /// markers named it, which could be any application's.
    pub(crate) database: Option<String>,
}

impl Staging {
    /// Whether it is tenant `id`'s, to become `database`: another
    /// application's tenant of the same id on this server has a database
    /// of another name.
    pub(crate) fn is_for(&self, id: &str, database: &str) -> bool {
        self.id == id && !self.named_elsewhere(database)
    }

    /// Whether its marker names a database other than `database`: set up
    /// for another application's tenant of the same id.
    pub(crate) fn named_elsewhere(&self, database: &str) -> bool {
        self.database
            .as_deref()
            .is_some_and(|name| name != database)
    }
}

/// The `<prefix>*` databases carrying a pebble marker, with the tenant the
/// marker names: staging databases.
pub(crate) async fn staging_databases(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    prefix: &str,
) -> Result<Vec<Staging>> {
    let session = Session::open(connector, maintenance).await?;
    let rows = session
        .client
        .query(
            "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
             WHERE starts_with(datname, $1) ORDER BY datname",
            &[&prefix],
        )
        .await;
    session.close().await;
    let mut staging = Vec::new();
    for row in rows? {
        let name: String = row.try_get(0)?;
        let comment: Option<String> = row.try_get(1)?;
        if let Some(marked) = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(MARKER_PREFIX))
        {
            // Ids have no spaces: the first " as " ends the id.
            let (id, database) = match marked.split_once(" as ") {
                Some((id, database)) => (id, Some(database.to_owned())),
                None => (marked, None),
            };
            staging.push(Staging {
                name,
                id: id.to_owned(),
                database,
            });
        }
    }
    Ok(staging)
}

/// Drops an abandoned staging database even if a connection of the
/// cancelled setup has not closed yet.
pub(crate) async fn drop_database_forced(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    database: &str,
) -> Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(database));
    execute(connector, maintenance, &sql).await
}

/// Creates tenant database `staging`'s login role `role` (named after the
/// database it will be renamed to), revokes CONNECT and TEMPORARY from
/// PUBLIC on `staging` and grants CONNECT to the role (both survive the
/// rename), and inside it grants row privileges on the tables and
/// sequences of `public`. The role with its password if this call created
/// it; `None` if it existed (another provisioning's, whose password this
/// one must not change).
pub(crate) async fn tenant_role(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    staged: &tokio_postgres::Config,
    staging: &str,
    role: &str,
) -> Result<Option<TenantRole>> {
    let tenant_role = TenantRole::generate(role.to_owned());
    let create = format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT",
        quote(role)
    );
    // Marked in the same implicit transaction: a role without the marker
    // was never pebble's.
    let create = format!(
        "{create}; COMMENT ON ROLE {} IS '{ROLE_MARKER}'",
        quote(role)
    );
    let created = match execute(connector, maintenance, &create).await {
        Ok(()) => true,
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => {
            // A crashed provisioning's role is adopted; anyone else's
            // (with whatever it was granted) is not.
            let session = Session::open(connector, maintenance).await?;
            let ours = role_is_pebbles(&session.client, role).await;
            session.close().await;
            if ours? != Some(true) {
                return Err(Error::RoleNotProvisionedByPebble {
                    id: role.to_owned(),
                    role: role.to_owned(),
                });
            }
            false
        }
        Err(e) => return Err(e),
    };
    if created {
        set_password(connector, maintenance, &tenant_role).await?;
    }
    let database = format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {db} TO {role}",
        db = quote(staging),
        role = quote(role),
    );
    execute(connector, maintenance, &database).await?;
    let inside = format!(
        "GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        role = quote(role),
    );
    execute(connector, staged, &inside).await?;
    Ok(created.then_some(tenant_role))
}

/// Sets `role`'s password to the SCRAM verifier of its generated one (the
/// clear text never reaches a statement). Whether the role exists.
pub(crate) async fn set_password(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    role: &TenantRole,
) -> Result<bool> {
    let verifier = postgres_protocol::password::scram_sha_256(role.password().as_bytes());
    let sql = format!(
        "ALTER ROLE {} PASSWORD '{}'",
        quote(role.name()),
        verifier.replace('\'', "''")
    );
    // Not through `execute`: its log line would carry the verifier.
    let session = Session::open(connector, maintenance).await?;
    let result = async {
        match role_is_pebbles(&session.client, role.name()).await? {
            None => return Ok(false),
            // A role that only shares the name: a password for it would
            // open whatever it was granted.
            Some(false) => {
                return Err(Error::RoleNotProvisionedByPebble {
                    id: role.name().to_owned(),
                    role: role.name().to_owned(),
                })
            }
            Some(true) => {}
        }
        match session.client.batch_execute(&sql).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    session.close().await;
    result
}

/// The comment a tenant database's role is created with: a role of the
/// same name without it is not pebble's, and is neither adopted, given a
/// password, nor dropped.
const ROLE_MARKER: &str = "pebble tenant database role";

/// Whether role `role` exists (`None` if not) and carries [`ROLE_MARKER`].
async fn role_is_pebbles(client: &Client, role: &str) -> Result<Option<bool>> {
    let row = client
        .query_opt(
            "SELECT pg_catalog.shobj_description(oid, 'pg_authid') IS NOT DISTINCT FROM $2 \
             FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&role, &ROLE_MARKER],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Drops a dropped tenant database's role, if it exists and is pebble's.
/// Call it after its database and the tenant's staging databases are
/// gone: their grants to it would make `DROP ROLE` fail (2BP01), as would
/// any privilege granted to it elsewhere by hand.
pub(crate) async fn drop_role(
    connector: &Connector,
    maintenance: &tokio_postgres::Config,
    role: &str,
) -> Result<()> {
    // Only pebble's: a role that merely shares the name is left alone.
    execute(
        connector,
        maintenance,
        &format!(
            "DO $pebble$ BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles \
             WHERE rolname = '{name}' \
               AND pg_catalog.shobj_description(oid, 'pg_authid') = '{ROLE_MARKER}') THEN \
             EXECUTE 'DROP ROLE ' || '{quoted}'; END IF; END $pebble$",
            name = role.replace('\'', "''"),
            quoted = quote(role).replace('\'', "''"),
        ),
    )
    .await
}
