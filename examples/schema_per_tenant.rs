//! Schema per tenant, for real, on PostgreSQL: provisioning two tenants
//! with their own login roles, the SQL with qualified names, a role that
//! cannot read the other tenant's schema, the registry, a drop.
//!
//!     cargo run --example schema_per_tenant
//!
//! Uses `DATABASE_URL` when set; otherwise pebble-testkit starts a throwaway
//! PostgreSQL from the machine's server binaries and stops it on exit. Safe
//! to run repeatedly against the same `DATABASE_URL`: it cleans up after itself.

use pebble::{Db, Model, SchemaTenants};
use tokio_postgres::NoTls;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A table in every tenant's schema: no tenant column, the schema is the tenant.
#[derive(Model, Debug, Clone)]
#[pebble(table = "tasks", per_tenant)]
struct Task {
    #[pebble(primary_key, default)]
    id: i64,
    title: String,
    done: bool,
}

fn task(title: &str) -> Task {
    Task {
        id: 0, // the database generates it
        title: title.to_owned(),
        done: false,
    }
}

const DATABASE: &str = "pebble_schema_example";

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let server = pebble_testkit::server()?;
    println!(
        "PostgreSQL: {}\n",
        if server.is_external() {
            "the server in DATABASE_URL"
        } else {
            "a throwaway server started by pebble-testkit (stopped on exit)"
        }
    );
    server
        .execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .await?;
    server
        .execute(&format!("CREATE DATABASE {DATABASE}"))
        .await?;
    let result = run(server.config_for(DATABASE)).await;
    server
        .execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .await?;
    result
}

async fn run(config: tokio_postgres::Config) -> Result<(), AnyError> {
    // The owner provisions; the registry (public.pebble_tenants) lives here.
    let owner = Db::connect(config.clone()).await?;
    let tenants = SchemaTenants::builder(owner.clone())
        .table::<Task>()
        .roles(true) // a login role per tenant, USAGE on its own schema only
        .build()?;

    println!("== Provisioning (schema, tables, role and registry row, atomically) ==");
    let mut roles = Vec::new();
    for id in ["acme", "globex"] {
        // Leftover roles of an interrupted run against DATABASE_URL.
        tenants.drop_tenant(id).await?;
        let made = tenants.create(id).await?;
        let role = made.role.ok_or("roles are on: a role was created")?;
        println!(
            "created tenant {id}: schema {}, role {:?} (password returned once, {} chars)",
            made.schema,
            role.name(),
            role.password().len()
        );
        roles.push(role);
    }
    let again = tenants.create("acme").await?;
    println!(
        "creating acme again: created = {} (it was ready)",
        again.created
    );
    match tenants.create("Robert'); DROP SCHEMA public;--").await {
        Err(e) => println!("an invalid tenant id is refused: {e}"),
        Ok(_) => println!("an invalid tenant id was accepted (BUG)"),
    }

    println!("\n== Queries: each tenant's handle names its own schema ==");
    let acme = tenants.db("acme").await?;
    let globex = tenants.db("globex").await?;
    acme.insert_many([task("ship the release"), task("write the changelog")])
        .exec()
        .await?;
    globex.insert(task("hire a designer")).exec().await?;
    let open = acme.select::<Task>().filter(Task::DONE.eq(false));
    println!("{}", open.to_sql()?);
    println!(
        "{}",
        globex
            .update::<Task>()
            .set(Task::DONE, true)
            .filter(Task::ID.eq(1))
            .to_sql()?
    );
    for (id, tenant) in [("acme", &acme), ("globex", &globex)] {
        let titles: Vec<String> = tenant
            .select::<Task>()
            .order_by(Task::ID.asc())
            .all()
            .await?
            .into_iter()
            .map(|t| t.title)
            .collect();
        println!("{id} sees {titles:?}");
    }
    let changed = globex
        .update::<Task>()
        .set(Task::DONE, true)
        .filter(Task::ID.eq(1))
        .exec()
        .await?;
    println!(
        "globex marked its task 1 done ({changed} row); acme's task 1 is still open: {}",
        !acme.find::<Task>(1).one().await?.done
    );

    println!("\n== The database confines a tenant's role, even for raw SQL ==");
    let (client, connection) = roles[0].config(&config).connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let own: i64 = client
        .query_one("SELECT count(*) FROM tenant_acme.tasks", &[])
        .await?
        .get(0);
    println!(
        "as role {}: SELECT count(*) FROM tenant_acme.tasks -> {own}",
        roles[0].name()
    );
    match client.query("SELECT * FROM tenant_globex.tasks", &[]).await {
        Err(e) => println!(
            "as role {}: SELECT * FROM tenant_globex.tasks -> {} ({})",
            roles[0].name(),
            e.as_db_error().map_or("error", |db| db.message()),
            e.code().map_or("", |code| code.code())
        ),
        Ok(rows) => println!("read {} rows of another tenant (BUG)", rows.len()),
    }
    drop(client);
    let _ = connection.await;

    println!("\n== The registry ==");
    for tenant in tenants.list().await? {
        println!(
            "{:<8} {:<8} {:<8} on {}",
            tenant.id, tenant.strategy, tenant.status, tenant.placement
        );
    }

    println!("\n== Dropping globex (schema, role, registry row) ==");
    tenants.drop_tenant("globex").await?;
    match tenants.db("globex").await {
        Err(e) => println!("globex afterwards: {e}"),
        Ok(_) => println!("globex still reachable (BUG)"),
    }
    println!(
        "acme is untouched: {} tasks",
        acme.select::<Task>().count().await?
    );
    println!(
        "cleanup of crashed provisionings removed: {:?}",
        tenants.cleanup().await?
    );
    tenants.drop_tenant("acme").await?;
    owner.close();
    Ok(())
}
