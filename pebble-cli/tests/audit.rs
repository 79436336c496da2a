//! `pebble audit` as a process: row-level security as the connected role
//! sees it, on the tables pebble recorded, with exit codes for CI.

mod common;

use common::*;
use pebble::{Db, RlsTable};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_fails_as_the_owner_and_passes_as_the_app_role() -> TestResult {
    let test_db = pebble_testkit::database().await?;
    let owner = Db::connect(test_db.config()).await?;
    owner
        .batch_execute(
            "CREATE TABLE tasks (id bigserial PRIMARY KEY, org uuid NOT NULL, title text)",
        )
        .await?;
    let tasks = RlsTable::new("tasks", "org", "uuid");
    owner
        .install_rls_tables(std::slice::from_ref(&tasks))
        .await?;
    let role = format!("cli_app_{}", std::process::id());
    let password = owner.create_app_role(&role, &[tasks]).await?;

    // As the superuser that owns the tables: gaps, exit 1.
    let owner_url = url(&test_db.config());
    let (code, out, err) = pebble(&owner_url, &["audit"])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("tasks: enabled yes, forced yes, policy ok"),
        "{out}"
    );
    assert!(
        out.contains("is a superuser, which bypasses row-level security"),
        "{out}"
    );

    // As the application role: no gap (a warning about the global key), exit 0.
    let mut app = test_db.config();
    app.user(&role).password(&password);
    let app_url = url(&app);
    let (code, out, err) = pebble(&app_url, &["audit"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("GAP"), "{out}");
    assert!(
        out.contains("warning: table `tasks`: unique index `tasks_pkey`"),
        "{out}"
    );
    let (code, out, _) = pebble(&app_url, &["--json", "audit"])?;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(json["role"], role.as_str());
    assert_eq!(json["tables"][0]["forced"], true);
    assert_eq!(json["findings"][0]["severity"], "warning");

    // A table named explicitly that is not under row-level security.
    owner
        .batch_execute("CREATE TABLE notes (id bigint PRIMARY KEY, org uuid NOT NULL)")
        .await?;
    let (code, out, _) = pebble(&app_url, &["audit", "--table", "notes:org:uuid"])?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("GAP: table `notes`: row-level security is not enabled"),
        "{out}"
    );
    // A malformed --table is a usage error.
    let (code, _, err) = pebble(&app_url, &["audit", "--table", "notes"])?;
    assert_eq!(code, 2);
    assert!(err.contains("expected NAME:TENANT_COLUMN:TYPE"), "{err}");

    owner
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await?;
    Ok(())
}
