//! The `pebble` binary as a process, on a real PostgreSQL: output and exit codes.

mod common;

use common::*;

fn path(dir: &std::path::Path) -> &str {
    dir.to_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_created_migrated_failed_fixed_and_completed() -> TestResult {
    let db = pebble_testkit::database().await?;
    let url = url(&db.config());
    let v1 = migrations(&[CREATE_TASKS])?;
    for i in 0..50 {
        let id = format!("t{i:02}");
        let (code, out, err) = pebble(&url, &["tenant", "create", &id, "--dir", path(&v1)])?;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            out.trim(),
            format!("created tenant {id} (schema tenant_{id}, 1 migration)")
        );
    }
    let (code, out, _) = pebble(&url, &["tenant", "list"])?;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 51);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("t00  schema    ready")),
        "{out}"
    );

    let c = client(&db.config()).await?;
    for i in 0..50 {
        c.batch_execute(&format!(
            "INSERT INTO tenant_t{i:02}.tasks (title) VALUES ('a')"
        ))
        .await?;
    }
    c.batch_execute("INSERT INTO tenant_t07.tasks (title) VALUES (NULL)")
        .await?;

    // One tenant first, then the rest (only the new migrations run).
    let v2 = migrations(&[CREATE_TASKS, TITLE_NOT_NULL])?;
    let (code, out, _) = pebble(&url, &["migrate", "--tenant", "t00", "--dir", path(&v2)])?;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "ok tenant t00 (schema tenant_t00): applied 0002_title_not_null.sql\n\
         1 target: 1 ok, 0 failed; applied 1 migration\n"
    );
    let v3 = migrations(&[CREATE_TASKS, TITLE_NOT_NULL, ADD_DUE])?;
    let (code, out, _) = pebble(
        &url,
        &["migrate", "--all", "--jobs", "4", "--dir", path(&v3)],
    )?;
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(
        failed,
        ["FAILED tenant t07 (schema tenant_t07): 0002_title_not_null.sql failed: 23502 column \"title\" of relation \"tasks\" contains null values"]
    );
    assert!(out.contains("ok tenant t00 (schema tenant_t00): applied 0003_add_due.sql\n"));
    assert!(out.contains(
        "ok tenant t01 (schema tenant_t01): applied 0002_title_not_null.sql, 0003_add_due.sql\n"
    ));
    assert!(
        out.ends_with("50 targets: 49 ok, 1 failed; applied 97 migrations\n"),
        "{out}"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM tenant_t07.pebble_migrations").await?,
        1
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tenant_t07' AND column_name = 'due'").await?,
        0
    );

    let (code, out, _) = pebble(&url, &["health", "--dir", path(&v3)])?;
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "tenant t07: migration 0002_title_not_null.sql not applied\n\
         tenant t07: migration 0003_add_due.sql not applied\n\
         tenant t07: table labels missing\n\
         3 findings in 50 tenants checked\n"
    );

    c.batch_execute("UPDATE tenant_t07.tasks SET title = 'fixed' WHERE title IS NULL")
        .await?;
    let (code, out, _) = pebble(&url, &["--json", "migrate", "--all", "--dir", path(&v3)])?;
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let applied: Vec<&serde_json::Value> = report["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["applied"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0]["target"],
        serde_json::json!({"kind": "schema", "tenant": "t07"})
    );

    let (code, out, _) = pebble(&url, &["health", "--dir", path(&v3)])?;
    assert_eq!((code, out.as_str()), (0, "healthy: 50 tenants checked\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_checksum_dry_run_and_drop() -> TestResult {
    let db = pebble_testkit::database().await?;
    let url = url(&db.config());
    let v1 = migrations(&[CREATE_TASKS])?;
    assert_eq!(
        pebble(&url, &["tenant", "create", "acme", "--dir", path(&v1)])?.0,
        0
    );
    let v2 = migrations(&[CREATE_TASKS, TITLE_NOT_NULL])?;
    let (code, out, _) = pebble(&url, &["migrate", "--all", "--dry-run", "--dir", path(&v2)])?;
    assert_eq!(code, 0);
    assert!(
        out.ends_with("1 target: 1 ok, 0 failed; would apply 1 migration\n"),
        "{out}"
    );
    let (_, out, _) = pebble(&url, &["health", "--dir", path(&v2)])?;
    assert!(out.starts_with("tenant acme: migration 0002_title_not_null.sql not applied\n"));

    let tampered = migrations(&[
        ("0001_create_tasks.sql", "CREATE TABLE tasks (id int);\n"),
        TITLE_NOT_NULL,
    ])?;
    let (code, out, _) = pebble(
        &url,
        &["migrate", "--tenant", "acme", "--dir", path(&tampered)],
    )?;
    assert_eq!(code, 1);
    assert!(out.starts_with("FAILED tenant acme (schema tenant_acme): 0001_create_tasks.sql was changed after it was applied"), "{out}");
    let c = client(&db.config()).await?;
    assert_eq!(
        count(&c, "SELECT count(*) FROM tenant_acme.pebble_migrations").await?,
        1
    );

    let (code, out, _) = pebble(&url, &["tenant", "drop", "acme"])?;
    assert_eq!(
        (code, out.as_str()),
        (0, "dropped tenant acme (schema tenant_acme)\n")
    );
    let (code, out, _) = pebble(&url, &["--json", "tenant", "list"])?;
    assert_eq!((code, out.trim()), (0, "[]"));
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrate_all_processes_at_once_apply_each_migration_once() -> TestResult {
    let db = pebble_testkit::database().await?;
    let url = url(&db.config());
    let v1 = migrations(&[CREATE_TASKS])?;
    for i in 0..20 {
        assert_eq!(
            pebble(
                &url,
                &["tenant", "create", &format!("p{i}"), "--dir", path(&v1)]
            )?
            .0,
            0
        );
    }
    let v3 = migrations(&[CREATE_TASKS, TITLE_NOT_NULL, ADD_DUE])?;
    let args = [
        "--json",
        "migrate",
        "--all",
        "--jobs",
        "2",
        "--dir",
        path(&v3),
    ];
    let first = command(&url, &args)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let second = command(&url, &args)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut applied = 0;
    for child in [first, second] {
        let (code, out, err) = split(child.wait_with_output()?);
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out)?;
        for target in report["targets"].as_array().into_iter().flatten() {
            applied += target["applied"].as_array().map_or(0, Vec::len);
        }
    }
    assert_eq!(applied, 40);
    let c = client(&db.config()).await?;
    for i in 0..20 {
        assert_eq!(
            count(
                &c,
                &format!("SELECT count(*) FROM tenant_p{i}.pebble_migrations")
            )
            .await?,
            3
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_json_lists_orphans_and_vanished() -> TestResult {
    let db = pebble_testkit::database().await?;
    let url = url(&db.config());
    let v1 = migrations(&[CREATE_TASKS])?;
    for id in ["kept", "gone"] {
        assert_eq!(
            pebble(&url, &["tenant", "create", id, "--dir", path(&v1)])?.0,
            0
        );
    }
    let c = client(&db.config()).await?;
    c.batch_execute("DROP SCHEMA tenant_gone CASCADE; CREATE SCHEMA tenant_stray")
        .await?;
    let (code, out, _) = pebble(&url, &["--json", "health", "--dir", path(&v1)])?;
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(
        report,
        serde_json::json!({
            "tenants": 2,
            "findings": [
                {"finding": "vanished", "tenant": "gone", "missing": "schema tenant_gone"},
                {"finding": "orphan_schema", "schema": "tenant_stray"},
            ]
        })
    );
    Ok(())
}

#[test]
fn usage_and_connection_errors_exit_2_with_a_clear_message() -> TestResult {
    let dir = migrations(&[CREATE_TASKS])?;
    let down = "postgres://postgres@127.0.0.1:1/app";
    let (code, _, err) = pebble(down, &["migrate", "--all", "--dir", path(&dir)])?;
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: cannot connect to PostgreSQL at 127.0.0.1:1 (database \"app\"): "),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");

    let (code, _, err) = pebble("postgres://x@host:notaport/db", &["tenant", "list"])?;
    assert_eq!(code, 2);
    assert!(err.starts_with("error: invalid database URL"), "{err}");

    let (code, _, err) = pebble("", &["tenant", "list"])?;
    assert_eq!(code, 2);
    assert!(err.contains("--database-url or set DATABASE_URL"), "{err}");

    let (code, _, err) = pebble(down, &["tenant", "create", "Acme-1", "--dir", path(&dir)])?;
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "error: invalid tenant id \"Acme-1\": a tenant id may only contain lowercase ASCII letters, digits and `_`\n"
    );

    let (code, _, err) = pebble(down, &["migrate"])?;
    assert_eq!(code, 2);
    assert!(err.contains("--tenant <TENANT>|--all|--shared"), "{err}");
    Ok(())
}
