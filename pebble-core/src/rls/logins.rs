//! The owner's side of tenant logins: a LOGIN role per tenant, member of
//! one NOLOGIN group role per database that holds the grants on the
//! protected tables, with a password derived from the application's
//! [`LoginSecret`]. The application connects as them with
//! [`TenantLogins`](crate::TenantLogins).

use crate::conn::send::StatementMode;
use crate::error::{Error, Result, SqlState};
use crate::handle::db::Db;
use crate::scope::login::{self, LoginSecret};
use crate::scope::Strategy;
use crate::sql_type::TenantKey;

use super::roles::grants_sql;
use super::{quote_ident, quote_literal, RlsTable, TENANT_POLICY};

/// Serialises concurrent creates and drops of this database's logins:
/// two `CREATE ROLE`s of one name race otherwise.
const LOGINS_LOCK: &str =
    "SELECT pg_catalog.pg_advisory_xact_lock(hashtext('pebble.tenant_logins'))";

/// What a tenant login may do: log in, and inherit its group's grants;
/// nothing that would let it past row-level security or make roles.
const LOGIN_ATTRIBUTES: &str =
    "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT";

/// The group holds grants, and nobody logs in as it.
const GROUP_ATTRIBUTES: &str =
    "NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT";

/// The SQLSTATE raised for a role of a tenant login's name that pebble did
/// not create.
const FOREIGN_LOGIN: &str = "PB003";

/// The same, for the group role's name.
const FOREIGN_GROUP: &str = "PB004";

/// The SQLSTATE raised for a key whose text another spelling of a value of
/// a protected tenant column's type; the message is that type.
const NOT_CANONICAL: &str = "PB005";

/// A dollar-quote tag for a `DO` block that embeds `text` (a tenant key,
/// or a role name carrying one): `$pebble$`, or `$pebble<n>$` for the least
/// `n` that `text` does not contain, so no key can close the block early
/// and have the rest parsed as the owner's SQL. Quoting never adds a `$`.
fn dollar_tag(text: &str) -> String {
    (0_u64..)
        .map(|n| match n {
            0 => "$pebble$".to_owned(),
            n => format!("$pebble{n}$"),
        })
        .find(|tag| !text.contains(tag.as_str()))
        .unwrap_or_default()
}

/// Refuses tenant text `key` when a tenant column under pebble's policy
/// (found through the policy's dependencies, in every schema) has a type
/// the text casts to but prints differently: the policy compares
/// `column = pebble_tenant()::type`, so the login would be that value's
/// tenant. Text that does not cast is no value of the type and no alias.
fn canonical_key_sql(key: &str) -> String {
    format!(
        "DO {tag} DECLARE t text; v text; BEGIN \
         FOR t IN SELECT DISTINCT pg_catalog.format_type(a.atttypid, a.atttypmod) \
           FROM pg_catalog.pg_policy p \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass \
             AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjsubid > 0 \
           JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
           WHERE p.polname = {policy} LOOP \
         BEGIN \
           EXECUTE pg_catalog.format('SELECT (%L::%s)::text', {key}, t) INTO v; \
         EXCEPTION WHEN others THEN v := NULL; \
         END; \
         IF v IS DISTINCT FROM {key} AND v IS NOT NULL THEN \
           RAISE EXCEPTION USING ERRCODE = '{NOT_CANONICAL}', MESSAGE = t; \
         END IF; END LOOP; END {tag}",
        tag = dollar_tag(key),
        key = quote_literal(key),
        policy = quote_literal(TENANT_POLICY),
    )
}

/// The comment pebble puts on the roles it creates for tenant logins; a
/// role of the same name without it is someone else's and is not adopted
/// (it may hold grants of its own, which a new password would hand out).
pub(super) const MARKER: &str = "pebble tenant login";

/// `CREATE ROLE name attributes` unless it exists; a role of that name
/// without pebble's marker raises `foreign` (a SQLSTATE). An existing role
/// whose attributes someone changed gets them back with `ALTER ROLE`, and
/// only then: PostgreSQL lets only a superuser name SUPERUSER, BYPASSRLS or
/// REPLICATION in `ALTER ROLE` (even to turn them off), so an owner with
/// CREATEROLE alone can keep creating logins that nobody tampered with.
fn ensure_role_sql(name: &str, attributes: &str, foreign: &str) -> String {
    let login = attributes.starts_with("LOGIN");
    let inherit = attributes.ends_with(" INHERIT");
    format!(
        "DO {tag} BEGIN \
         IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal} \
           AND pg_catalog.shobj_description(oid, 'pg_authid') IS DISTINCT FROM {marker}) THEN \
         RAISE EXCEPTION USING ERRCODE = '{foreign}', \
           MESSAGE = 'role ' || {literal} || ' was not created by pebble'; END IF; \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal}) THEN \
         CREATE ROLE {role} {attributes}; \
         COMMENT ON ROLE {role} IS {marker}; \
         ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal} \
           AND (rolsuper OR rolbypassrls OR rolreplication OR rolcreaterole OR rolcreatedb \
           OR rolcanlogin <> {login} OR rolinherit <> {inherit})) THEN \
         ALTER ROLE {role} {attributes}; END IF; END {tag}",
        tag = dollar_tag(name),
        literal = quote_literal(name),
        role = quote_ident(name),
        marker = quote_literal(MARKER),
    )
}

impl Db {
    /// The name of tenant `key`'s login role in this database:
    /// `pebble_<database oid>_<tenant>` (what [`Db::create_tenant_login`]
    /// creates and [`TenantLogins`](crate::TenantLogins) logs in as).
    pub async fn tenant_login_name<K: TenantKey>(&self, key: &K) -> Result<String> {
        login::role(self.database_oid().await?, key)
    }

    /// Grants the group role of this database's tenant logins what the
    /// application role gets on `tables` (see [`Db::create_app_role`]):
    /// SELECT, INSERT, UPDATE, DELETE, USAGE on the schema and its
    /// sequences, CONNECT on the database, never TRUNCATE. Every tenant
    /// login inherits them, so a table added later is granted once, here,
    /// not per tenant. Creates the group if missing; idempotent.
    ///
    /// ```no_run
    /// # use pebble::{Db, LoginSecret, Model, RlsTable};
    /// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64 }
    /// # async fn demo(owner: Db, secret: LoginSecret) -> pebble::Result<()> {
    /// let tables = [RlsTable::of::<Task>()];
    /// owner.install_rls_tables(&tables).await?;
    /// owner.grant_tenant_logins(&tables).await?;
    /// let role = owner.create_tenant_login(&42_i64, &secret).await?;
    /// # Ok(()) }
    /// ```
    pub async fn grant_tenant_logins(&self, tables: &[RlsTable]) -> Result<()> {
        let group = login::group(self.database_oid().await?);
        let quoted = quote_ident(&group);
        let mut sql = vec![
            LOGINS_LOCK.to_owned(),
            ensure_role_sql(&group, GROUP_ATTRIBUTES, FOREIGN_GROUP),
        ];
        // CONNECT is PUBLIC's by default; granting it needs the database's
        // owner, so only where it was revoked.
        sql.push(format!(
            "DO $pebble$ BEGIN \
             IF NOT pg_catalog.has_database_privilege({group}, pg_catalog.current_database(), 'CONNECT') THEN \
             EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO %I', \
             pg_catalog.current_database(), {group}); END IF; END $pebble$",
            group = quote_literal(&group)
        ));
        sql.extend(grants_sql(&quoted, tables));
        // One message: one implicit transaction, rolled back whole on an error.
        self.run_login_sql(&sql.join(";\n"), &group, None).await
    }

    /// Creates tenant `key`'s login role, or brings it up to date: `LOGIN
    /// NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`, member of the group
    /// [`Db::grant_tenant_logins`] grants, password `hex(HMAC-SHA256(secret,
    /// role name))`, which the server receives only as its SCRAM verifier
    /// (it never reaches a log). Returns the role's name.
    ///
    /// Idempotent: an existing login gets its attributes, membership and
    /// password set again (from `secret`: pass a new one to rotate).
    /// Concurrent calls are serialised. A role of that name pebble did not
    /// create is [`Error::RoleNotProvisionedByPebble`] and is left alone.
    /// A key too long for a role name is [`Error::TenantLoginNameTooLong`],
    /// the unset value [`Error::InvalidTenantId`]; nothing is sent then.
    /// Text that is another spelling of a value of a protected tenant
    /// column's type (`"042"` where a column is `bigint`) would be that
    /// value's tenant: [`Error::TenantLoginKeyNotCanonical`], nothing created.
    pub async fn create_tenant_login<K: TenantKey>(
        &self,
        key: &K,
        secret: &LoginSecret,
    ) -> Result<String> {
        let database = self.database_oid().await?;
        let role = login::role(database, key)?;
        let group = login::group(database);
        let verifier =
            postgres_protocol::password::scram_sha_256(secret.password(&role)?.as_bytes());
        let tenant = Strategy::Login.tenant_context(key)?;
        let sql = [
            LOGINS_LOCK.to_owned(),
            canonical_key_sql(tenant.as_str()),
            ensure_role_sql(&group, GROUP_ATTRIBUTES, FOREIGN_GROUP),
            ensure_role_sql(&role, LOGIN_ATTRIBUTES, FOREIGN_LOGIN),
            format!(
                "ALTER ROLE {} PASSWORD {}",
                quote_ident(&role),
                quote_literal(&verifier)
            ),
            format!("GRANT {} TO {}", quote_ident(&group), quote_ident(&role)),
        ]
        .join(";\n");
        self.run_login_sql(&sql, &group, Some((tenant.as_str(), &role)))
            .await?;
        tracing::info!(target: "pebble::rls", role, "tenant login created or updated");
        Ok(role)
    }

    /// Drops tenant `key`'s login role if pebble created it; whether there
    /// was one. Its grants come from the group, so it holds nothing of its
    /// own and `CREATEROLE` suffices (a privilege someone granted it
    /// directly makes the drop fail, naming it). A role of that name pebble did not create is left alone
    /// ([`Error::RoleNotProvisionedByPebble`]). Connections already logged
    /// in as it keep their session but lose every grant (their group
    /// membership goes with the role); close the application's pool for
    /// the tenant ([`TenantLogins::close_tenant`](crate::TenantLogins::close_tenant)).
    pub async fn drop_tenant_login<K: TenantKey>(&self, key: &K) -> Result<bool> {
        let database = self.database_oid().await?;
        let role = login::role(database, key)?;
        let tenant = Strategy::Login.tenant_context(key)?;
        let sql = format!(
            "{LOGINS_LOCK};\n\
             DO {tag} BEGIN \
             IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal} \
               AND pg_catalog.shobj_description(oid, 'pg_authid') IS DISTINCT FROM {marker}) THEN \
             RAISE EXCEPTION USING ERRCODE = '{FOREIGN_LOGIN}', \
               MESSAGE = 'role ' || {literal} || ' was not created by pebble'; END IF; \
             IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal}) THEN \
             DROP ROLE {quoted}; END IF; END {tag}",
            tag = dollar_tag(&role),
            literal = quote_literal(&role),
            quoted = quote_ident(&role),
            marker = quote_literal(MARKER),
        );
        let existed = self.tenant_login_exists(&role).await?;
        self.run_login_sql(
            &sql,
            &login::group(database),
            Some((tenant.as_str(), &role)),
        )
        .await?;
        if existed {
            tracing::info!(target: "pebble::rls", role, "tenant login dropped");
        }
        Ok(existed)
    }

    /// Drops every tenant login pebble created for this database, and
    /// their group role: when the database is retired, or to stop using
    /// tenant logins (roles are cluster-wide and outlive a dropped
    /// database). Returns how many logins were dropped. Roles of those
    /// names that pebble did not create are left alone.
    pub async fn drop_all_tenant_logins(&self) -> Result<u64> {
        const COUNT: &str = "SELECT count(*) FROM pg_catalog.pg_roles \
            WHERE pg_catalog.starts_with(rolname, $1) \
            AND pg_catalog.shobj_description(oid, 'pg_authid') = $2";
        let database = self.database_oid().await?;
        let (prefix, group) = (login::prefix(database), login::group(database));
        let client = self.pool().get().await?;
        let row = match self.mode() {
            StatementMode::Prepared => client.query_one(COUNT, &[&prefix, &MARKER]).await?,
            StatementMode::Unnamed => {
                use tokio_postgres::types::Type;
                client
                    .query_typed_one(COUNT, &[(&prefix, Type::TEXT), (&MARKER, Type::TEXT)])
                    .await?
            }
        };
        drop(client);
        let count: i64 = row.try_get(0)?;
        let sql = format!(
            "{LOGINS_LOCK};\n\
             DO $pebble$ DECLARE r text; BEGIN \
             FOR r IN SELECT rolname FROM pg_catalog.pg_roles \
               WHERE (pg_catalog.starts_with(rolname, {prefix}) OR rolname = {group}) \
               AND pg_catalog.shobj_description(oid, 'pg_authid') = {marker} \
               ORDER BY rolname = {group} LOOP \
             EXECUTE pg_catalog.format('DROP OWNED BY %I', r); \
             EXECUTE pg_catalog.format('DROP ROLE %I', r); \
             END LOOP; END $pebble$",
            prefix = quote_literal(&prefix),
            group = quote_literal(&group),
            marker = quote_literal(MARKER),
        );
        self.run_login_sql(&sql, &group, None).await?;
        tracing::info!(target: "pebble::rls", count, "tenant logins dropped");
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn tenant_login_exists(&self, role: &str) -> Result<bool> {
        const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)";
        let client = self.pool().get().await?;
        let row = match self.mode() {
            StatementMode::Prepared => client.query_one(EXISTS, &[&role]).await?,
            StatementMode::Unnamed => {
                client
                    .query_typed_one(EXISTS, &[(&role, tokio_postgres::types::Type::TEXT)])
                    .await?
            }
        };
        Ok(row.try_get(0)?)
    }

    /// Runs role DDL as one simple-query message: one implicit transaction
    /// (the advisory lock holds to its end, an error rolls back all of it
    /// and leaves the connection clean). Not through `batch`, whose SQL
    /// log would carry password verifiers. `login` is (tenant, role) of
    /// the login concerned, for the error naming a role pebble did not create.
    async fn run_login_sql(
        &self,
        sql: &str,
        group: &str,
        login: Option<(&str, &str)>,
    ) -> Result<()> {
        let client = self.pool().get().await?;
        client.batch_execute(sql).await.map_err(|e| {
            let e = Error::from(e);
            let foreign = |id: &str, role: &str| Error::RoleNotProvisionedByPebble {
                id: id.to_owned(),
                role: role.to_owned(),
            };
            match (e.code().map(SqlState::code), login) {
                (Some(NOT_CANONICAL), Some((id, _))) => match e {
                    Error::Database { message, .. } => Error::TenantLoginKeyNotCanonical {
                        id: id.to_owned(),
                        sql_type: message,
                    },
                    e => e,
                },
                (Some(FOREIGN_LOGIN), Some((id, role))) => foreign(id, role),
                (Some(FOREIGN_GROUP), Some((id, _))) => foreign(id, group),
                (Some(FOREIGN_GROUP), None) => foreign("", group),
                _ => e,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_tags_are_never_inside_the_text() {
        assert_eq!(dollar_tag("acme"), "$pebble$");
        assert_eq!(dollar_tag("a$pebble$b"), "$pebble1$");
        assert_eq!(dollar_tag("$pebble$$pebble1$"), "$pebble2$");
        let sql = ensure_role_sql("pebble_1_$pebble$", LOGIN_ATTRIBUTES, FOREIGN_LOGIN);
        assert!(sql.starts_with("DO $pebble1$ ") && sql.ends_with(" END $pebble1$"));
    }

    #[test]
    fn attributes_are_only_altered_when_they_drifted() {
        let sql = ensure_role_sql("pebble_1_a", LOGIN_ATTRIBUTES, FOREIGN_LOGIN);
        assert!(sql.contains("rolcanlogin <> true OR rolinherit <> true"));
        let sql = ensure_role_sql("pebble_logins_1", GROUP_ATTRIBUTES, FOREIGN_GROUP);
        assert!(sql.contains("rolcanlogin <> false OR rolinherit <> false"));
        assert!(sql.contains("ELSIF EXISTS"));
    }
}
