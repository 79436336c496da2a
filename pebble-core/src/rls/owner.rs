//! What the tables' owner does for row-level security: install the
//! policies, create the roles, audit. Methods of [`Db`] connected as the
//! owner (migrations and provisioning connect as the owner; the
//! application does not).

use crate::conn::send::StatementMode;
use crate::conn::table_check::parse_record;
use crate::error::{Error, Result};
use crate::handle::db::Db;
use crate::handle::private::Sealed;
use crate::handle::rls::RlsDb;
use crate::model::TenantScoped;
use crate::query::record_statement;

use super::audit::{self, AuditReport};
use super::install::install_sql;
use super::roles::{generate_password, grants_sql, role_sql, RoleKind};
use super::{quote_ident, RlsTable};

/// Serialises concurrent installs (two deploys at once): `CREATE OR
/// REPLACE FUNCTION` and policy replacement race otherwise.
const INSTALL_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('pebble.install_rls'))";

impl Db {
    /// Puts tenant model `M`'s table under row-level security (see
    /// [`Db::install_rls_tables`]).
    ///
    /// ```no_run
    /// # use pebble::{Db, Model};
    /// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64 }
    /// # async fn demo(owner: Db) -> pebble::Result<()> {
    /// owner.create_table::<Task>().await?;
    /// owner.install_rls::<Task>().await?; // idempotent: run it at every deploy
    /// # Ok(()) }
    /// ```
    pub async fn install_rls<M: TenantScoped>(&self) -> Result<()> {
        self.install_rls_tables(&[RlsTable::of::<M>()]).await
    }

    /// Puts `tables` under row-level security, in one transaction:
    /// `pebble_tenant()` (NULL when no tenant is set: fail-closed), `ENABLE`
    /// and `FORCE ROW LEVEL SECURITY`, a restrictive policy `pebble_tenant`
    /// with `USING` and `WITH CHECK` on `tenant_col = (SELECT
    /// pebble_tenant()::type)`, beside a permissive `pebble_base` (policies
    /// a user adds later can then only narrow access), and the table's
    /// tenant-column record. Idempotent and safe at every deploy: what is
    /// already as it should be is left alone, without taking its locks.
    pub async fn install_rls_tables(&self, tables: &[RlsTable]) -> Result<()> {
        self.refuse_contradicted_records(tables).await?;
        let database = self.database_oid().await?;
        let mut sql = vec![INSTALL_LOCK.to_owned(), install_sql(database, tables)];
        sql.extend(
            tables
                .iter()
                .map(|t| record_statement(t.table(), Some(t.tenant_column()))),
        );
        let tx = self.begin().await?;
        tx.conn().batch(&sql.join(";\n")).await?;
        tx.commit().await
    }

    /// Refuses a table whose record names another tenant column (or none):
    /// the policy would confine by the wrong column.
    async fn refuse_contradicted_records(&self, tables: &[RlsTable]) -> Result<()> {
        const RECORD: &str = "SELECT pg_catalog.obj_description(to_regclass($1), 'pg_class')";
        let client = self.pool().get().await?;
        for table in tables {
            let name = quote_ident(table.table());
            let row = match self.mode() {
                StatementMode::Prepared => client.query_one(RECORD, &[&name]).await?,
                StatementMode::Unnamed => {
                    client
                        .query_typed_one(RECORD, &[(&name, tokio_postgres::types::Type::TEXT)])
                        .await?
                }
            };
            let comment: Option<String> = row.try_get(0)?;
            match comment.as_deref().and_then(parse_record) {
                Some(Some(recorded)) if recorded != table.tenant_column() => {
                    return Err(Error::RlsInstallRefused {
                        table: table.table().to_owned(),
                        reason: format!(
                            "its record names `{recorded}` as the tenant column, not `{}`",
                            table.tenant_column()
                        ),
                    });
                }
                Some(None) => {
                    return Err(Error::RlsInstallRefused {
                        table: table.table().to_owned(),
                        reason: "its record says it has no tenant column".to_owned(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Creates the application's role `name` (or brings it up to date):
    /// LOGIN, NOSUPERUSER, NOBYPASSRLS, not the owner, with SELECT, INSERT,
    /// UPDATE and DELETE on `tables` and never TRUNCATE (it ignores
    /// row-level security and would empty every tenant). Returns its new
    /// password, generated here and handed out only this once: pebble
    /// never logs it, and the server only receives its SCRAM verifier.
    /// Every call sets a new password; to add grants at a deploy without
    /// changing it, use [`Db::grant_app_role`].
    pub async fn create_app_role(&self, name: &str, tables: &[RlsTable]) -> Result<String> {
        self.create_role(name, RoleKind::App, tables).await
    }

    /// Creates a role for cross-tenant work (admin, analytics): like
    /// [`Db::create_app_role`] but BYPASSRLS. Give it its own pool and use
    /// `db.cross_tenant()` on it; never a setting the application role
    /// could change itself.
    pub async fn create_bypass_role(&self, name: &str, tables: &[RlsTable]) -> Result<String> {
        self.create_role(name, RoleKind::Bypass, tables).await
    }

    /// Grants role `name` what it needs on `tables` (and revokes TRUNCATE,
    /// REFERENCES and TRIGGER), leaving its password alone.
    pub async fn grant_app_role(&self, name: &str, tables: &[RlsTable]) -> Result<()> {
        check_role_name(name)?;
        let sql = grants_sql(&quote_ident(name), tables).join(";\n");
        self.conn().batch(&sql).await
    }

    async fn create_role(&self, name: &str, kind: RoleKind, tables: &[RlsTable]) -> Result<String> {
        check_role_name(name)?;
        let password = generate_password();
        let sql = role_sql(name, kind, &password, tables);
        // Not through `batch`: its SQL log would carry the verifier.
        let client = self.pool().get().await?;
        client.batch_execute(&sql).await?;
        tracing::info!(target: "pebble::rls", role = name, ?kind, "role created or updated");
        Ok(password)
    }

    /// Audits row-level security on `tables` for the role this pool
    /// connects as: per table, whether it is enabled and forced, whether
    /// pebble's policy is there as expected, whether the role owns the
    /// table or may TRUNCATE it; and whether the role is a superuser or has
    /// BYPASSRLS. Print the report, or fail with
    /// [`AuditReport::check`].
    ///
    /// ```no_run
    /// # use pebble::{Model, RlsDb, RlsTable};
    /// # #[derive(Model)] struct Task { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64 }
    /// # async fn demo(app: RlsDb) -> pebble::Result<()> {
    /// let report = app.audit(&[RlsTable::of::<Task>()]).await?;
    /// println!("{report}");
    /// report.check()?; // a deployment can fail on any gap
    /// # Ok(()) }
    /// ```
    pub async fn audit_rls(&self, tables: &[RlsTable]) -> Result<AuditReport> {
        let client = self.pool().get().await?;
        audit::run(&client, self.mode(), tables).await
    }

    /// The tables in the current schema whose record (see
    /// [`Db::create_table`]) names a tenant column, with that column's
    /// type: what a tool without the models (the `pebble audit` command)
    /// audits. Tables without a record are not listed.
    pub async fn recorded_tenant_tables(&self) -> Result<Vec<RlsTable>> {
        let client = self.pool().get().await?;
        let rows = match self.mode() {
            StatementMode::Prepared => client.query(RECORDED_TABLES, &[]).await?,
            StatementMode::Unnamed => client.query_typed(RECORDED_TABLES, &[]).await?,
        };
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let (table, comment, columns): (String, String, Vec<String>) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let Some(Some(column)) = parse_record(&comment) else {
                continue;
            };
            // `columns` holds `name:type` for every column of the table.
            let tenant_type = columns.iter().find_map(|c| {
                c.split_once(':')
                    .filter(|(name, _)| *name == column)
                    .map(|(_, ty)| ty.to_owned())
            });
            if let Some(tenant_type) = tenant_type {
                tables.push(RlsTable::new(table, column, tenant_type));
            }
        }
        Ok(tables)
    }
}

/// Ordinary tables of the current schema with a pebble record comment.
const RECORDED_TABLES: &str = "\
SELECT c.relname::text, pg_catalog.obj_description(c.oid, 'pg_class'), \
  ARRAY(SELECT a.attname || ':' || pg_catalog.format_type(a.atttypid, a.atttypmod) \
        FROM pg_catalog.pg_attribute a \
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
FROM pg_catalog.pg_class c \
WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema()) \
  AND c.relkind IN ('r', 'p') \
  AND pg_catalog.obj_description(c.oid, 'pg_class') LIKE 'pebble: tenant column %' \
ORDER BY 1";

impl RlsDb {
    /// Audits `tables` as this pool's role: see [`Db::audit_rls`].
    pub async fn audit(&self, tables: &[RlsTable]) -> Result<AuditReport> {
        self.db().audit_rls(tables).await
    }
}

fn check_role_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.starts_with("pg_") {
        return Err(Error::Config(format!(
            "invalid role name {name:?}: 1 to 63 bytes, not starting with pg_"
        )));
    }
    Ok(())
}
