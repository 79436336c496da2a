//! What row-level security does and does not cover, checked on the live
//! database for the connected role.

use std::fmt;
use std::sync::LazyLock;

use crate::conn::client::PooledClient;

use super::install::{function_body, policy_marker, POLICY_DIGEST};
use super::logins::MARKER;
use super::{quote_ident, RlsTable, TENANT_POLICY};
use crate::conn::send::StatementMode;
use crate::conn::table_check::parse_record;
use crate::error::{Error, Result};
use crate::scope::login::DATABASE_OID;
use tokio_postgres::types::{ToSql, Type};

/// The outcome of [`Db::audit_rls`](crate::Db::audit_rls): the connected
/// role's attributes and, per table, what is in place. Print it
/// (`Display`), inspect [`AuditReport::findings`], or fail a deployment
/// with [`AuditReport::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditReport {
    /// The role the audit connected as (`current_user`).
    pub role: String,
    /// The role is a superuser: it bypasses row-level security, even FORCEd.
    pub superuser: bool,
    /// The role has BYPASSRLS.
    pub bypass_rls: bool,
    /// Superuser or BYPASSRLS roles the role is a member of: even without
    /// inheriting their rights it can `SET ROLE` to them.
    pub privileged_roles: Vec<String>,
    /// The settings every session of the role starts with in this
    /// database (`name=value`, from `ALTER ROLE ... SET` and `ALTER
    /// DATABASE ... SET`); they come back after every reset. A default for
    /// `pebble.tenant_id` (only a superuser can set one) is a gap: a
    /// statement without tenant context would run as that tenant instead
    /// of seeing nothing. The others are warnings, to review: any role may
    /// set its own (`ALTER ROLE CURRENT_USER SET statement_timeout ...`),
    /// raw SQL under row-level security included.
    pub session_defaults: Vec<String>,
    /// Per audited table.
    pub tables: Vec<TableAudit>,
    /// This database's tenant logins (see
    /// [`Db::create_tenant_login`](crate::Db::create_tenant_login)) that
    /// row-level security would not confine, that could take over another
    /// tenant's login, that pebble did not create, or that may empty a
    /// table, and roles that log in with the logins' grants without being
    /// one: none after a correct install.
    pub tenant_logins: Vec<LoginAudit>,
}

/// A role named like a tenant login of the audited database with rights
/// that get it past row-level security, or that pebble did not create, or
/// a role that logs in with the tenant logins' grants without being one:
/// from [`AuditReport::tenant_logins`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginAudit {
    /// The login role.
    pub role: String,
    /// It is a superuser: it bypasses row-level security.
    pub superuser: bool,
    /// It has BYPASSRLS.
    pub bypass_rls: bool,
    /// It has CREATEROLE: it can set another tenant login's password (or
    /// create a role of another tenant's login name) and log in as it.
    pub create_role: bool,
    /// It has REPLICATION: a replication connection streams every
    /// tenant's rows.
    pub replication: bool,
    /// pebble did not create it (no marker comment), yet `pebble_tenant()`
    /// takes any session user of this name for the tenant it names:
    /// whoever knows its password reads that tenant's rows.
    pub foreign: bool,
    /// Superuser, BYPASSRLS, CREATEROLE or REPLICATION roles it is a
    /// member of (it can `SET ROLE` to them).
    pub privileged_roles: Vec<String>,
    /// Audited tables it owns (or whose owner it is a member of).
    pub owns: Vec<String>,
    /// Audited tables it may TRUNCATE.
    pub can_truncate: Vec<String>,
    /// It can log in and holds the tenant logins' grants (it is their
    /// group, or a member of it) but is not named as a tenant login, so
    /// `pebble_tenant()` reads its setting: it picks any tenant.
    pub unconfined: bool,
    /// Tenant column types (`uuid`, `bigint`, ...) its tenant text casts
    /// to but is not how PostgreSQL writes the value (`042`, upper-case
    /// uuid text): the policy casts it, so the login is the tenant of that
    /// value, under another name ([`Db::create_tenant_login`](crate::Db::create_tenant_login)
    /// refuses such keys; this finds logins made before, or renamed).
    pub aliases: Vec<String>,
}

impl LoginAudit {
    fn findings(&self, found: &mut Vec<Finding>) {
        let role = &self.role;
        let mut gap = |message: String| {
            found.push(Finding {
                severity: Severity::Gap,
                table: None,
                message,
            })
        };
        if self.superuser {
            gap(format!(
                "tenant login `{role}` is a superuser, which bypasses row-level security; \
                 run create_tenant_login again"
            ));
        }
        if self.bypass_rls {
            gap(format!(
                "tenant login `{role}` has BYPASSRLS; run create_tenant_login again"
            ));
        }
        if self.create_role {
            gap(format!(
                "tenant login `{role}` has CREATEROLE: it can take over another tenant's login; \
                 run create_tenant_login again"
            ));
        }
        if self.replication {
            gap(format!(
                "tenant login `{role}` has REPLICATION, which streams every tenant's rows; \
                 run create_tenant_login again"
            ));
        }
        if self.unconfined {
            gap(format!(
                "`{role}` can log in with the tenant logins' grants but is not a tenant login, \
                 so it picks its tenant with a setting; revoke its membership in the logins' \
                 group (or its LOGIN, if it is the group: grant_tenant_logins does)"
            ));
        }
        for sql_type in &self.aliases {
            gap(format!(
                "tenant login `{role}` names its tenant in a form that is not how PostgreSQL \
                 writes a {sql_type}: it is the tenant of that value under another name; drop it"
            ));
        }
        if self.foreign {
            gap(format!(
                "role `{role}` is named like a tenant login but was not created by pebble: \
                 it is confined to that tenant, whose rows whoever made it can read; drop it"
            ));
        }
        for privileged in &self.privileged_roles {
            gap(format!(
                "tenant login `{role}` is a member of `{privileged}`, a superuser, BYPASSRLS, \
                 CREATEROLE or REPLICATION role; revoke the membership"
            ));
        }
        for table in &self.owns {
            gap(format!(
                "tenant login `{role}` owns `{table}` (or is a member of its owner) and can turn \
                 row-level security off"
            ));
        }
        for table in &self.can_truncate {
            gap(format!(
                "tenant login `{role}` may TRUNCATE `{table}`, which empties every tenant; revoke it"
            ));
        }
    }

    fn is_clean(&self) -> bool {
        !self.superuser
            && !self.bypass_rls
            && !self.create_role
            && !self.replication
            && !self.foreign
            && !self.unconfined
            && self.aliases.is_empty()
            && self.privileged_roles.is_empty()
            && self.owns.is_empty()
            && self.can_truncate.is_empty()
    }
}

/// What is in place on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableAudit {
    /// The table.
    pub table: String,
    /// The table exists.
    pub exists: bool,
    /// `ENABLE ROW LEVEL SECURITY`.
    pub enabled: bool,
    /// `FORCE ROW LEVEL SECURITY` (the owner is subject to it too).
    pub forced: bool,
    /// pebble's restrictive tenant policy is there, as this version installs it.
    pub policy_as_expected: bool,
    /// The `pebble_tenant()` that policy calls has the body this version
    /// of pebble installs for this database. The policy names the function
    /// by oid, so a body replaced in place (`CREATE OR REPLACE FUNCTION`)
    /// changes what every session is confined to without changing the
    /// policy.
    pub function_as_expected: bool,
    /// The connected role owns the table (or is a member of its owner):
    /// it bypasses row-level security unless FORCEd, and can turn it off.
    pub owned_by_role: bool,
    /// The connected role may TRUNCATE it, which ignores row-level
    /// security and empties every tenant.
    pub can_truncate: bool,
    /// Unique indexes that do not include the tenant column: an insert
    /// that conflicts tells a tenant that another tenant holds the value.
    pub unique_without_tenant: Vec<String>,
    /// Views over the table that run with their owner's rights (no
    /// `security_invoker`): they may bypass the policy.
    pub definer_views: Vec<String>,
    /// The tenant column the table's record names (see
    /// [`Db::create_table`](crate::Db::create_table)): `Some(None)` when it
    /// records none, `None` when the table has no record (pebble did not
    /// create it, and `install_rls` found a comment it would not overwrite).
    pub recorded_tenant_column: Option<Option<String>>,
    /// The tenant column the audited model declares.
    pub tenant_column: String,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Row-level security does not confine the role here: fails [`AuditReport::check`].
    Gap,
    /// Worth knowing, not a leak of rows: reported, does not fail the check.
    Warning,
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The table it concerns, or `None` for the role.
    pub table: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Gap => "GAP",
            Severity::Warning => "warning",
        };
        match &self.table {
            Some(table) => write!(f, "{severity}: table `{table}`: {}", self.message),
            None => write!(f, "{severity}: role: {}", self.message),
        }
    }
}

impl AuditReport {
    /// Everything found, gaps first.
    pub fn findings(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        let role = |message: String| Finding {
            severity: Severity::Gap,
            table: None,
            message,
        };
        if self.superuser {
            found.push(role(format!(
                "`{}` is a superuser, which bypasses row-level security even when FORCEd; \
                 connect the application as a NOSUPERUSER role",
                self.role
            )));
        }
        if self.bypass_rls {
            found.push(role(format!(
                "`{}` has BYPASSRLS; only the cross-tenant role should",
                self.role
            )));
        }
        for privileged in &self.privileged_roles {
            found.push(role(format!(
                "`{}` is a member of `{privileged}`, a superuser or BYPASSRLS role it can \
                 SET ROLE to; revoke the membership",
                self.role
            )));
        }
        for setting in &self.session_defaults {
            let name = setting.split('=').next().unwrap_or(setting);
            if name.starts_with("pebble.") {
                found.push(role(format!(
                    "sessions of `{}` start with `{setting}`: a statement without tenant \
                     context runs as that tenant instead of seeing nothing; \
                     ALTER ROLE {} RESET {name} (or ALTER DATABASE ... RESET)",
                    self.role,
                    quote_ident(&self.role)
                )));
            } else {
                found.push(Finding {
                    severity: Severity::Warning,
                    table: None,
                    message: format!(
                        "sessions of `{}` start with `{setting}` (ALTER ROLE/DATABASE ... SET; \
                         raw SQL under row-level security can set its own role's): \
                         check it is yours",
                        self.role
                    ),
                });
            }
        }
        for t in &self.tables {
            t.findings(&self.role, &mut found);
        }
        for login in &self.tenant_logins {
            login.findings(&mut found);
        }
        found.sort_by_key(|f| f.severity == Severity::Warning);
        found
    }

    /// `Ok` when nothing lets the role past row-level security (warnings
    /// allowed); otherwise [`Error::RlsAudit`] listing every gap.
    pub fn check(&self) -> Result<()> {
        let gaps: Vec<String> = self
            .findings()
            .into_iter()
            .filter(|f| f.severity == Severity::Gap)
            .map(|f| f.to_string())
            .collect();
        if gaps.is_empty() {
            Ok(())
        } else {
            Err(Error::RlsAudit { gaps })
        }
    }
}

impl TableAudit {
    fn findings(&self, role: &str, found: &mut Vec<Finding>) {
        let mut push = |severity, message: String| {
            found.push(Finding {
                severity,
                table: Some(self.table.clone()),
                message,
            })
        };
        if !self.exists {
            push(Severity::Gap, "does not exist".to_owned());
            return;
        }
        if !self.enabled {
            push(
                Severity::Gap,
                "row-level security is not enabled; run install_rls".to_owned(),
            );
        }
        if !self.forced {
            push(
                Severity::Gap,
                "row-level security is not FORCEd: the owner bypasses it; run install_rls"
                    .to_owned(),
            );
        }
        if !self.policy_as_expected {
            push(
                Severity::Gap,
                format!("pebble's restrictive `{TENANT_POLICY}` policy is missing or changed; run install_rls"),
            );
        }
        if self.policy_as_expected && !self.function_as_expected {
            push(
                Severity::Gap,
                "the body of the `pebble_tenant()` its policy calls was changed; run install_rls"
                    .to_owned(),
            );
        }
        if self.owned_by_role {
            push(
                Severity::Gap,
                format!(
                    "`{role}` owns it (or is a member of its owner): an owner can turn row-level \
                     security off; connect the application as a role that does not own the tables"
                ),
            );
        }
        if self.can_truncate {
            push(
                Severity::Gap,
                format!("`{role}` may TRUNCATE it, which empties every tenant; revoke TRUNCATE"),
            );
        }
        match &self.recorded_tenant_column {
            Some(Some(recorded)) if *recorded == self.tenant_column => {}
            Some(recorded) => push(
                Severity::Gap,
                format!(
                    "its record names {} as the tenant column, the model `{}`",
                    recorded
                        .as_deref()
                        .map_or("no column".to_owned(), |c| format!("`{c}`")),
                    self.tenant_column
                ),
            ),
            None => push(
                Severity::Warning,
                "carries no record of its tenant column (pebble did not create it and its \
                 comment is someone else's): models over it are trusted, not checked"
                    .to_owned(),
            ),
        }
        for index in &self.unique_without_tenant {
            push(
                Severity::Warning,
                format!(
                    "unique index `{index}` does not include the tenant column: a conflicting \
                     insert reveals that another tenant holds the value; lead it with the tenant column"
                ),
            );
        }
        for view in &self.definer_views {
            push(
                Severity::Warning,
                format!(
                    "view `{view}` runs with its owner's rights; create it WITH (security_invoker = true)"
                ),
            );
        }
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "row-level security audit as role `{}` (superuser: {}, bypassrls: {})",
            self.role, self.superuser, self.bypass_rls
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "  {}: enabled {}, forced {}, policy {}, owned by role {}, truncate {}",
                t.table,
                yes(t.enabled),
                yes(t.forced),
                match (t.policy_as_expected, t.function_as_expected) {
                    (true, true) => "ok",
                    (true, false) => "ok, pebble_tenant() CHANGED",
                    (false, _) => "MISSING",
                },
                yes(t.owned_by_role),
                yes(t.can_truncate),
            )?;
        }
        let findings = self.findings();
        if findings.is_empty() {
            writeln!(f, "no findings")
        } else {
            findings
                .iter()
                .try_for_each(|finding| writeln!(f, "  {finding}"))
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

const ROLE_QUERY: &str = "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
  ARRAY(SELECT o.rolname::text FROM pg_catalog.pg_roles o \
        WHERE (o.rolsuper OR o.rolbypassrls) AND o.rolname <> current_user \
        AND pg_catalog.pg_has_role(current_user, o.oid, 'MEMBER') ORDER BY 1), \
  ARRAY(SELECT s.setting FROM pg_catalog.pg_db_role_setting d, \
        LATERAL pg_catalog.unnest(d.setconfig) AS s(setting) \
        WHERE d.setrole IN (0, (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname = session_user)) \
        AND d.setdatabase IN (0, (SELECT b.oid FROM pg_catalog.pg_database b \
                                  WHERE b.datname = pg_catalog.current_database())) \
        ORDER BY 1) \
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// This database's tenant logins (named `pebble_<database oid>_...`), and
/// the roles that can log in with the logins' group's grants outside that
/// prefix (non-superusers: a superuser is a member of every role), with
/// their attributes, whether pebble made them (marker $2), and the audited
/// tables ($1, quoted names) they own or may TRUNCATE.
const LOGINS_QUERY: &str = "\
WITH db AS (SELECT 'pebble_' || d.oid || '_' AS prefix, \
  (SELECT g.oid FROM pg_catalog.pg_roles g WHERE g.rolname = 'pebble_logins_' || d.oid) AS grp \
  FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()), \
tenant_types AS (SELECT DISTINCT pg_catalog.format_type(a.atttypid, NULL) AS t \
  FROM pg_catalog.pg_policy p \
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass \
    AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
    AND d.refobjsubid > 0 \
  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
  WHERE p.polname = 'pebble_tenant') \
SELECT r.rolname::text, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolreplication, \
  pg_catalog.starts_with(r.rolname, db.prefix) \
    AND pg_catalog.shobj_description(r.oid, 'pg_authid') IS DISTINCT FROM $2, \
  ARRAY(SELECT o.rolname::text FROM pg_catalog.pg_roles o \
        WHERE (o.rolsuper OR o.rolbypassrls OR o.rolcreaterole OR o.rolreplication) \
        AND o.oid <> r.oid \
        AND pg_catalog.pg_has_role(r.oid, o.oid, 'MEMBER') ORDER BY 1), \
  ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c \
        WHERE c.oid IN (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) t) \
        AND pg_catalog.pg_has_role(r.oid, c.relowner, 'MEMBER') ORDER BY 1), \
  ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c \
        WHERE c.oid IN (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) t) \
        AND pg_catalog.has_table_privilege(r.oid, c.oid, 'TRUNCATE') ORDER BY 1), \
  NOT pg_catalog.starts_with(r.rolname, db.prefix), \
  ARRAY(SELECT ty.t FROM tenant_types ty \
        WHERE pg_catalog.starts_with(r.rolname, db.prefix) AND CASE ty.t \
        WHEN 'uuid' THEN pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) \
          ~ '^\\{?[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}\\}?$' \
          AND pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) \
          !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
        WHEN 'bigint' THEN pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) \
          ~ '^\\s*[+-]?[0-9]+\\s*$' \
          AND pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) !~ '^-?[1-9][0-9]*$' \
        WHEN 'integer' THEN pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) \
          ~ '^\\s*[+-]?[0-9]+\\s*$' \
          AND pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) !~ '^-?[1-9][0-9]*$' \
        WHEN 'smallint' THEN pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) \
          ~ '^\\s*[+-]?[0-9]+\\s*$' \
          AND pg_catalog.substr(r.rolname, pg_catalog.length(db.prefix) + 1) !~ '^-?[1-9][0-9]*$' \
        ELSE false END ORDER BY 1) \
FROM pg_catalog.pg_roles r, db \
WHERE pg_catalog.starts_with(r.rolname, db.prefix) \
  OR (r.rolcanlogin AND NOT r.rolsuper AND pg_catalog.pg_has_role(r.oid, db.grp, 'MEMBER')) \
ORDER BY 1";

static TABLE_QUERY: LazyLock<String> = LazyLock::new(|| {
    format!("\
SELECT c.relrowsecurity, c.relforcerowsecurity, \
  pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER'), \
  pg_catalog.has_table_privilege(current_user, c.oid, 'TRUNCATE'), \
  (SELECT pg_catalog.obj_description(p.oid, 'pg_policy') = $4 || ' ' || {POLICY_DIGEST} \
   FROM pg_catalog.pg_policy p \
   WHERE p.polrelid = c.oid AND p.polname = $3 AND NOT p.polpermissive), \
  ARRAY(SELECT ic.relname::text FROM pg_catalog.pg_index i \
        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
        WHERE i.indrelid = c.oid AND i.indisunique \
        AND NOT (SELECT a.attnum FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attname = $2) = ANY (i.indkey::int2[]) \
        ORDER BY 1), \
  ARRAY(SELECT DISTINCT v.relname::text FROM pg_catalog.pg_depend d \
        JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid \
        JOIN pg_catalog.pg_class v ON v.oid = r.ev_class \
        WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = c.oid \
        AND v.relkind = 'v' AND v.oid <> c.oid \
        AND NOT COALESCE((SELECT o.option_value::bool FROM pg_catalog.pg_options_to_table(v.reloptions) o \
                          WHERE o.option_name = 'security_invoker'), false) \
        ORDER BY 1), \
  pg_catalog.obj_description(c.oid, 'pg_class'), \
  (SELECT pg_catalog.count(DISTINCT f.oid) = 1 AND pg_catalog.bool_and(f.prosrc = $5 AND l.lanname = 'sql') \
   FROM pg_catalog.pg_policy p \
   JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::regclass \
     AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_proc'::regclass \
   JOIN pg_catalog.pg_proc f ON f.oid = d.refobjid \
   JOIN pg_catalog.pg_language l ON l.oid = f.prolang \
   WHERE p.polrelid = c.oid AND p.polname = $3 AND f.proname = 'pebble_tenant') \
FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)")
});

pub(crate) async fn run(
    client: &PooledClient,
    mode: StatementMode,
    tables: &[RlsTable],
) -> Result<AuditReport> {
    let role = match mode {
        StatementMode::Prepared => client.query_one(ROLE_QUERY, &[]).await?,
        StatementMode::Unnamed => client.query_typed_one(ROLE_QUERY, &[]).await?,
    };
    let mut report = AuditReport {
        role: role.try_get(0)?,
        superuser: role.try_get(1)?,
        bypass_rls: role.try_get(2)?,
        privileged_roles: role.try_get(3)?,
        session_defaults: role.try_get(4)?,
        tables: Vec::with_capacity(tables.len()),
        tenant_logins: Vec::new(),
    };
    let names: Vec<String> = tables.iter().map(|t| quote_ident(t.table())).collect();
    let logins = match mode {
        StatementMode::Prepared => client.query(LOGINS_QUERY, &[&names, &MARKER]).await?,
        StatementMode::Unnamed => {
            client
                .query_typed(
                    LOGINS_QUERY,
                    &[(&names, Type::TEXT_ARRAY), (&MARKER, Type::TEXT)],
                )
                .await?
        }
    };
    let database: u32 = match mode {
        StatementMode::Prepared => client.query_one(DATABASE_OID, &[]).await?,
        StatementMode::Unnamed => client.query_typed_one(DATABASE_OID, &[]).await?,
    }
    .try_get(0)?;
    let body = function_body(database);
    for row in logins {
        let login = LoginAudit {
            role: row.try_get(0)?,
            superuser: row.try_get(1)?,
            bypass_rls: row.try_get(2)?,
            create_role: row.try_get(3)?,
            replication: row.try_get(4)?,
            foreign: row.try_get(5)?,
            privileged_roles: row.try_get(6)?,
            owns: row.try_get(7)?,
            can_truncate: row.try_get(8)?,
            unconfined: row.try_get(9)?,
            aliases: row.try_get(10)?,
        };
        if !login.is_clean() {
            report.tenant_logins.push(login);
        }
    }
    for table in tables {
        let name = quote_ident(table.table());
        let (column, policy) = (table.tenant_column(), TENANT_POLICY);
        let marker = policy_marker(table);
        let row = match mode {
            StatementMode::Prepared => {
                let query = client.prepare_cached(&TABLE_QUERY).await?;
                client
                    .query_opt(&query, &[&name, &column, &policy, &marker, &body])
                    .await?
            }
            StatementMode::Unnamed => {
                let params: [(&(dyn ToSql + Sync), Type); 5] = [
                    (&name, Type::TEXT),
                    (&column, Type::TEXT),
                    (&policy, Type::TEXT),
                    (&marker, Type::TEXT),
                    (&body, Type::TEXT),
                ];
                client.query_typed_opt(&TABLE_QUERY, &params).await?
            }
        };
        let audit = match row {
            None => TableAudit {
                table: table.table().to_owned(),
                exists: false,
                enabled: false,
                forced: false,
                policy_as_expected: false,
                function_as_expected: false,
                owned_by_role: false,
                can_truncate: false,
                unique_without_tenant: Vec::new(),
                definer_views: Vec::new(),
                recorded_tenant_column: None,
                tenant_column: table.tenant_column().to_owned(),
            },
            Some(row) => {
                let policy_ok: Option<bool> = row.try_get(4)?;
                let comment: Option<String> = row.try_get(7)?;
                let function_ok: Option<bool> = row.try_get(8)?;
                let recorded = comment
                    .as_deref()
                    .and_then(parse_record)
                    .map(|column| column.map(str::to_owned));
                TableAudit {
                    table: table.table().to_owned(),
                    exists: true,
                    enabled: row.try_get(0)?,
                    forced: row.try_get(1)?,
                    owned_by_role: row.try_get(2)?,
                    can_truncate: row.try_get(3)?,
                    policy_as_expected: policy_ok == Some(true),
                    function_as_expected: function_ok == Some(true),
                    unique_without_tenant: row.try_get(5)?,
                    definer_views: row.try_get(6)?,
                    recorded_tenant_column: recorded,
                    tenant_column: table.tenant_column().to_owned(),
                }
            }
        };
        report.tables.push(audit);
    }
    Ok(report)
}
