//! Row-level security: PostgreSQL confines every tenant statement too, so
//! raw SQL, another client or a bug in pebble still cannot cross tenants.
//!
//!     cargo run --example row_level_security
//!
//! Uses `DATABASE_URL` when set (a role that may create databases and
//! roles); otherwise pebble-testkit starts a throwaway PostgreSQL and stops
//! it on exit. It drops the database and the roles it created.

use pebble::{Db, LoginSecret, Model, PoolOptions, RlsDb, RlsTable, TenantLogins};
use uuid::Uuid;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Model, Debug, Clone)]
#[pebble(table = "tasks")]
struct Task {
    #[pebble(primary_key, default)]
    id: i64,
    #[tenant_id]
    org: Uuid,
    title: String,
    done: bool,
}

fn task(title: &str) -> Task {
    Task {
        id: 0,            // the database generates it
        org: Uuid::nil(), // stamped by the tenant handle
        title: title.to_owned(),
        done: false,
    }
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let server = pebble_testkit::server()?;
    let database = server.create_database("pebble_rls_example").await?;

    // 1. The owner (migrations, provisioning) creates the table, puts it
    //    under row-level security, and creates the application's role.
    let owner = Db::connect(database.config()).await?;
    owner.create_table::<Task>().await?;
    owner.install_rls::<Task>().await?; // idempotent: run it at every deploy
    let app_role = format!("example_app_{}", Uuid::new_v4().simple());
    let password = owner
        .create_app_role(&app_role, &[RlsTable::of::<Task>()])
        .await?;
    println!("installed: ENABLE + FORCE ROW LEVEL SECURITY, a restrictive policy on tasks.org");
    println!("created role {app_role}: NOSUPERUSER, NOBYPASSRLS, not the owner, no TRUNCATE");
    println!("(its password was generated and returned once; pebble never logs it)\n");

    // 2. The application connects as that role.
    let mut config = database.config();
    config.user(&app_role).password(&password);
    let app = RlsDb::connect(config).await?;
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    app.tenant(acme)
        .insert_many([task("ship v2"), task("fix login")])
        .exec()
        .await?;
    app.tenant(globex)
        .insert(task("audit books"))
        .exec()
        .await?;

    // 3. Scoped statements: BEGIN; set_config('pebble.tenant_id', ..); statement;
    //    COMMIT, pipelined into one round trip.
    let acme_tasks = app.tenant(acme).select::<Task>().all().await?;
    println!("acme sees {} tasks through the builder", acme_tasks.len());

    // 4. Raw SQL on an RLS tenant handle: no WHERE, yet only the tenant's rows.
    let rows = app
        .tenant(globex)
        .query("SELECT title FROM tasks ORDER BY id", &[])
        .await?;
    let titles: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    println!("globex, raw `SELECT title FROM tasks` with no WHERE: {titles:?}");
    let changed = app
        .tenant(globex)
        .execute("UPDATE tasks SET done = true", &[])
        .await?;
    println!("globex, raw `UPDATE tasks SET done = true`: {changed} row(s) changed");
    let forged = app
        .tenant(globex)
        .execute(
            "INSERT INTO tasks (org, title, done) VALUES ($1, 'planted', false)",
            &[&acme],
        )
        .await;
    println!(
        "globex inserting a row for acme by raw SQL: {}",
        match forged {
            Ok(_) => "accepted (this would be a leak)".to_owned(),
            Err(e) => format!("refused by the database ({e})"),
        }
    );

    // 5. Fail-closed: a statement with no tenant set sees nothing.
    let unscoped = app.db().cross_tenant().select::<Task>().count().await?;
    println!("as the app role with no tenant set, tasks has {unscoped} rows visible");
    let total = owner.cross_tenant().select::<Task>().count().await?;
    println!("(the owner, a superuser here, sees all {total})\n");

    // 6. The audit, as the application role and as the owner.
    let report = app.audit(&[RlsTable::of::<Task>()]).await?;
    print!("{report}");
    println!(
        "check as the app role: {:?}\n",
        report.check().map(|()| "ok")
    );
    let report = owner.audit_rls(&[RlsTable::of::<Task>()]).await?;
    print!("{report}");
    println!(
        "check as the owner: {}",
        match report.check() {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!(
                "fails, as it should ({} gap(s))",
                e.to_string().lines().count() - 1
            ),
        }
    );

    // 7. Tenant logins: the tenant bound to the connection. Each tenant's
    //    pool logs in as its own role, whose password derives from one
    //    secret; no statement sets the tenant, so none can change it.
    let secret = LoginSecret::new("from the secret manager, 16+ bytes")?;
    owner.grant_tenant_logins(&[RlsTable::of::<Task>()]).await?;
    for org in [acme, globex] {
        owner.create_tenant_login(&org, &secret).await?;
    }
    let mut base = database.config();
    base.user(&app_role).password(&password); // read once: the database's oid
    let logins =
        TenantLogins::connect(base, secret, PoolOptions::default().max_size(2), 100).await?;
    let as_globex = logins.tenant(globex).await?;
    println!("\nglobex logged in as {}", as_globex.login_role());
    let hijack = as_globex
        .query(
            "SELECT count(*) FROM tasks WHERE set_config('pebble.tenant_id', $1, true) IS NOT NULL",
            &[&acme.to_string()],
        )
        .await?;
    println!(
        "globex's login, raw SQL setting acme as the tenant: {} row(s) visible (its own)",
        hijack[0].get::<_, i64>(0)
    );
    let as_acme = logins.tenant(acme).await?.select::<Task>().count().await?;
    println!(
        "acme's login, through the builder: {as_acme} tasks; one statement, no BEGIN/SET/COMMIT"
    );
    logins.close();
    owner.drop_all_tenant_logins().await?; // the logins and their group role

    app.db().close();
    owner
        .batch_execute(&format!("DROP OWNED BY {app_role}; DROP ROLE {app_role}"))
        .await?;
    owner.close();
    drop(database); // on a DATABASE_URL server, dropped here
    Ok(())
}
