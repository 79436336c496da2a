//! Database tenants through the binary. Tenant databases are server-wide,
//! so this binary (its own throwaway cluster) has one test.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_database_tenants_through_the_binary() -> TestResult {
    let db = pebble_testkit::database().await?;
    let url = url(&db.config());
    let v1 = migrations(&[CREATE_TASKS])?;
    let dir = v1.to_str().unwrap_or_default();
    for i in 0..10 {
        let id = format!("d{i}");
        let (code, out, err) = pebble(
            &url,
            &[
                "tenant",
                "create",
                &id,
                "--strategy",
                "database",
                "--dir",
                dir,
            ],
        )?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.trim(),
            format!("created tenant {id} (database tenant_{id}, 1 migration)")
        );
    }
    let v3 = migrations(&[CREATE_TASKS, TITLE_NOT_NULL, ADD_DUE])?;
    let dir3 = v3.to_str().unwrap_or_default();
    let (code, out, _) = pebble(&url, &["migrate", "--all", "--dir", dir3])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(
        "ok tenant d3 (database tenant_d3): applied 0002_title_not_null.sql, 0003_add_due.sql\n"
    ));
    assert!(
        out.ends_with("10 targets: 10 ok, 0 failed; applied 20 migrations\n"),
        "{out}"
    );
    let (code, out, _) = pebble(&url, &["health", "--dir", dir3])?;
    assert_eq!((code, out.as_str()), (0, "healthy: 10 tenants checked\n"));
    let (code, out, _) = pebble(&url, &["tenant", "drop", "d0"])?;
    assert_eq!(
        (code, out.as_str()),
        (0, "dropped tenant d0 (database tenant_d0)\n")
    );
    let c = client(&db.config()).await?;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%'"
        )
        .await?,
        9
    );
    Ok(())
}
