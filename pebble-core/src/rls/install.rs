//! The idempotent DDL that puts a tenant table under row-level security.
//!
//! Safe to run at every deploy: each part is only (re)created when it is
//! missing or differs from what this version of pebble installs (known by
//! a marker comment on the policy), so an unchanged table takes no lock
//! beyond a catalog read.

use super::{quote_ident, quote_literal, RlsTable, BASE_POLICY, TENANT_POLICY, TENANT_SETTING};
use crate::scope::login::prefix;

/// Bumped whenever the policy's text changes, so installs replace it.
const POLICY_VERSION: &str = "1";

/// `pebble_tenant()`: the tenant of the session, or NULL when there is none.
///
/// First the login: a session logged in as one of this database's tenant
/// logins (its name starts with [`prefix`]`(database)`, baked in here) is
/// that tenant, whatever any setting says, so SQL on such a connection
/// cannot pick another tenant. `session_user` is the role that logged in;
/// `SET ROLE` does not change it, and `SET SESSION AUTHORIZATION` needs a
/// superuser.
///
/// Otherwise the transaction's setting. `current_setting(.., true)` is
/// NULL if the setting was never set in the session, but `''` after a
/// transaction that set it locally has ended, hence the NULLIF: both mean
/// "no tenant", and NULL matches no row.
///
/// One `SELECT` without a table, `STABLE`, not `SECURITY DEFINER`: the
/// planner inlines it into the policy's initplan, so it costs no lookup.
/// A body that differs (an older pebble's, another database's oid) is
/// replaced.
pub(crate) fn function_sql(database: u32) -> String {
    let body = function_body(database);
    format!(
        "DO $pebble$ BEGIN \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = 'pebble_tenant' \
         AND pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema()) \
         AND prosrc = {src}) THEN \
         CREATE OR REPLACE FUNCTION pebble_tenant() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE \
         AS {src}; \
         END IF; END $pebble$",
        src = quote_literal(&body),
    )
}

/// The body of `pebble_tenant()` in the database with oid `database`, as
/// `pg_proc.prosrc` holds it: install compares it to repair a replaced
/// body, the audit to report one (the policy calls the function by oid,
/// so its text and digest do not change when the body does).
pub(crate) fn function_body(database: u32) -> String {
    let prefix = prefix(database);
    format!(
        "SELECT CASE WHEN pg_catalog.starts_with(SESSION_USER, {}) \
         THEN pg_catalog.substr(SESSION_USER, {}) \
         ELSE NULLIF(pg_catalog.current_setting({}, true), '') END",
        quote_literal(&prefix),
        prefix.len() + 1,
        quote_literal(TENANT_SETTING)
    )
}

/// A digest of a policy `p`'s definition as PostgreSQL holds it (its
/// expressions deparsed, roles, command, kind), kept in the policy's marker
/// comment when pebble creates it: a policy altered afterwards (`ALTER
/// POLICY ... USING (true)`) no longer matches, so install replaces it and
/// the audit reports it, whatever the comment says.
pub(crate) const POLICY_DIGEST: &str = "pg_catalog.md5(pg_catalog.concat_ws('|', \
pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), \
p.polroles::text, p.polcmd::text, p.polpermissive::text))";

/// The marker comment of an installed tenant policy (followed by its digest).
pub(crate) fn policy_marker(table: &RlsTable) -> String {
    format!(
        "pebble v{POLICY_VERSION}: {} {}",
        table.tenant_column(),
        table.tenant_type()
    )
}

/// The policy's condition: `col = (SELECT pebble_tenant()::type)`. The
/// sub-select makes PostgreSQL evaluate it once per statement (an initplan),
/// not once per row, and lets the planner use the tenant column's index.
pub(crate) fn condition(table: &RlsTable) -> String {
    format!(
        "{} = (SELECT pebble_tenant()::{})",
        quote_ident(table.tenant_column()),
        table.tenant_type()
    )
}

/// ENABLE + FORCE row-level security on `table`, a permissive base policy
/// (row-level security with only restrictive policies grants nothing) and
/// the restrictive tenant policy: declared restrictive, a policy a user
/// adds later can only narrow access, never widen it across tenants.
pub(crate) fn table_sql(table: &RlsTable) -> String {
    let name = quote_ident(table.table());
    let regclass = format!("{}::regclass", quote_literal(&name));
    let condition = condition(table);
    let marker = quote_literal(&policy_marker(table));
    let digest = POLICY_DIGEST;
    format!(
        "DO $pebble$ BEGIN \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = {regclass} \
         AND p.polname = '{TENANT_POLICY}' AND NOT p.polpermissive \
         AND pg_catalog.obj_description(p.oid, 'pg_policy') = {marker} || ' ' || {digest}) THEN \
         DROP POLICY IF EXISTS {TENANT_POLICY} ON {name}; \
         CREATE POLICY {TENANT_POLICY} ON {name} AS RESTRICTIVE FOR ALL \
         USING ({condition}) WITH CHECK ({condition}); \
         EXECUTE pg_catalog.format('COMMENT ON POLICY {TENANT_POLICY} ON %s IS %L', {regclass}, \
         {marker} || ' ' || (SELECT {digest} FROM pg_catalog.pg_policy p \
         WHERE p.polrelid = {regclass} AND p.polname = '{TENANT_POLICY}')); \
         END IF; \
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = {regclass} \
         AND p.polname = '{BASE_POLICY}' AND p.polpermissive) THEN \
         DROP POLICY IF EXISTS {BASE_POLICY} ON {name}; \
         CREATE POLICY {BASE_POLICY} ON {name} AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true); \
         END IF; \
         IF NOT (SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = {regclass}) THEN \
         ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; \
         END IF; \
         IF NOT (SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = {regclass}) THEN \
         ALTER TABLE {name} FORCE ROW LEVEL SECURITY; \
         END IF; \
         END $pebble$"
    )
}

/// Everything `install` runs for `tables`, in one transaction, in the
/// database with oid `database`.
pub(crate) fn install_sql(database: u32, tables: &[RlsTable]) -> String {
    let mut statements = vec![function_sql(database)];
    statements.extend(tables.iter().map(table_sql));
    statements.join(";\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_casts_the_context_to_the_column_type() {
        let table = RlsTable::new("tasks", "org", "bigint");
        assert_eq!(
            condition(&table),
            r#""org" = (SELECT pebble_tenant()::bigint)"#
        );
        assert!(table_sql(&table).contains("AS RESTRICTIVE FOR ALL"));
        assert_eq!(policy_marker(&table), "pebble v1: org bigint");
    }

    #[test]
    fn the_function_reads_this_databases_logins_first() {
        let sql = function_sql(16384);
        let login = sql.find("'pebble_16384_'").unwrap();
        let setting = sql.find("current_setting").unwrap();
        assert!(login < setting);
        // `pebble_16384_` is 13 bytes: the tenant starts at the 14th.
        assert!(sql.contains("substr(SESSION_USER, 14)"));
        assert!(!sql.contains("SECURITY DEFINER"));
    }
}
