//! pebble's two main isolation patterns, for real, on PostgreSQL.
//!
//!     cargo run --example multi_tenancy
//!
//! Uses `DATABASE_URL` when set; otherwise pebble-testkit starts a throwaway
//! PostgreSQL from the machine's server binaries and stops it on exit. Safe
//! to run repeatedly against the same `DATABASE_URL`: it cleans up after itself.

use std::time::Instant;

use pebble::{Db, Model, TenantDatabase, TenantManager};
use uuid::Uuid;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------
// Pattern 1: shared tables. Every row carries its tenant; `db.tenant(id)`
// confines every statement to it.

#[derive(Model, Debug, Clone)]
#[pebble(table = "users")]
struct User {
    #[pebble(primary_key, default)]
    id: Uuid,
    #[tenant_id]
    tenant_id: Uuid,
    #[pebble(unique)]
    email: String,
    name: String,
    age: i32,
}

#[derive(Model, Debug, Clone)]
#[pebble(table = "documents")]
struct Document {
    #[pebble(primary_key, default)]
    id: Uuid,
    #[tenant_id]
    tenant_id: Uuid,
    title: String,
    pages: i32,
}

fn user(name: &str, age: i32) -> User {
    User {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(), // stamped by the tenant handle
        email: format!("{name}@example.com"),
        name: name.to_owned(),
        age,
    }
}

fn document(title: &str, pages: i32) -> Document {
    Document {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        title: title.to_owned(),
        pages,
    }
}

async fn shared_tables(server: &'static pebble_testkit::Server) -> Result<(), AnyError> {
    println!("== Pattern 1: shared tables, one tenant column ==");
    let database = server.create_database("pebble_example").await?;
    let db = Db::connect(database.config()).await?;
    db.create_table::<User>().await?;
    db.create_table::<Document>().await?;

    let (acme, widget) = (Uuid::new_v4(), Uuid::new_v4());
    println!("tenants: acme = {acme}, widget = {widget}");
    let (as_acme, as_widget) = (db.tenant(acme), db.tenant(widget));

    as_acme
        .insert_many([user("ann", 34), user("bob", 27), user("cy", 19)])
        .exec()
        .await?;
    as_acme
        .insert_many([document("Q3 plan", 12), document("Pricing", 40)])
        .exec()
        .await?;
    let dee = as_widget.insert(user("dee", 45)).returning().await?;
    as_widget.insert(document("Roadmap", 8)).exec().await?;
    println!(
        "inserted 3 users + 2 documents for acme, 1 + 1 for widget (each stamped with its tenant)"
    );

    let adults = as_acme
        .select::<User>()
        .filter(User::AGE.gte(21).or(User::NAME.eq("dee")))
        .order_by(User::NAME.asc());
    println!("scoped query SQL: {}", adults.to_sql()?);
    let names: Vec<String> = adults.all().await?.into_iter().map(|u| u.name).collect();
    println!("acme users aged 21+ or named dee: {names:?}  (widget's dee is not among them)");

    println!(
        "count: acme has {} users, widget has {}",
        as_acme.select::<User>().count().await?,
        as_widget.select::<User>().count().await?
    );

    let renamed = as_acme
        .update::<User>()
        .set(User::NAME, "Ann")
        .filter(User::NAME.eq("ann"))
        .exec()
        .await?;
    let removed = as_acme
        .delete::<Document>()
        .filter(Document::PAGES.gt(30))
        .exec()
        .await?;
    println!("update: {renamed} acme user renamed; delete: {removed} acme document removed");

    // Cross-tenant attempts from acme's handle: they find and change nothing.
    let by_key = as_acme.find::<User>(dee.id).optional().await?;
    let by_tenant = as_acme
        .select::<User>()
        .filter(User::TENANT_ID.eq(widget))
        .count()
        .await?;
    let changed = as_acme
        .update::<User>()
        .set(User::AGE, 0)
        .filter(User::ID.eq(dee.id))
        .exec()
        .await?;
    let mut forged = user("mallory", 30);
    forged.tenant_id = widget;
    let refused = as_acme.insert(forged).exec().await;
    println!("acme looking up widget's dee by key: {by_key:?}");
    println!(
        "acme filtering on widget's tenant id: {by_tenant} rows; acme updating dee: {changed} rows"
    );
    println!(
        "acme inserting a row stamped for widget: {}",
        refused
            .err()
            .map_or("accepted (BUG)".into(), |e| e.to_string())
    );
    let dee_now = as_widget.find::<User>(dee.id).one().await?;
    println!("widget's dee is untouched: age {}", dee_now.age);

    let everyone = db.cross_tenant().select::<User>().count().await?;
    println!("db.cross_tenant() (explicit, traced) sees all {everyone} users");
    db.close();
    Ok(())
}

// ---------------------------------------------------------------------------
// Pattern 2: a database per tenant, reached through a TenantManager.

#[derive(Model, Debug, Clone)]
#[pebble(table = "notes", per_tenant)]
struct Note {
    #[pebble(primary_key, default)]
    id: i64,
    author: String,
    body: String,
}

async fn database_per_tenant(server: &'static pebble_testkit::Server) -> Result<(), AnyError> {
    println!("\n== Pattern 2: a database per tenant (TenantManager) ==");
    let manager = TenantManager::builder(server.config())
        .create_missing(true)
        .setup(|db: TenantDatabase, tenant| async move {
            println!("  setup hook: creating tables in the new database of {tenant}");
            db.create_table::<Note>().await
        })
        .build()?;
    // Leftovers of an interrupted earlier run would skew the counts below.
    for tenant in ["acme", "widget"] {
        manager.drop_tenant(tenant).await?;
    }

    println!("100 concurrent tasks make the first requests for acme and widget...");
    let started = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|task| {
            let manager = manager.clone();
            let tenant = if task % 2 == 0 { "acme" } else { "widget" };
            tokio::spawn(async move {
                let db = manager.db(tenant).await?;
                db.insert(Note {
                    id: 0,
                    author: tenant.to_owned(),
                    body: format!("note from task {task}"),
                })
                .exec()
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!(
        "all 100 succeeded in {:?}; pools opened: {} for tenants {:?} (exactly one per tenant)",
        started.elapsed(),
        manager.pools_opened(),
        manager.tenants()
    );

    for tenant in ["acme", "widget"] {
        let db = manager.db(tenant).await?;
        let notes = db.select::<Note>().all().await?;
        let authors: std::collections::BTreeSet<&str> =
            notes.iter().map(|n| n.author.as_str()).collect();
        println!(
            "database tenant_{tenant} holds {} notes, written by {authors:?}",
            notes.len()
        );
    }
    for i in 0..1_000 {
        manager
            .db(if i % 2 == 0 { "acme" } else { "widget" })
            .await?;
    }
    println!(
        "1,000 more lookups reuse the open pools: pools opened is still {}",
        manager.pools_opened()
    );
    match manager.db("Robert'); DROP DATABASE postgres;--").await {
        Err(e) => println!("an invalid tenant id is refused: {e}"),
        Ok(_) => println!("an invalid tenant id was accepted (BUG)"),
    }

    for tenant in ["acme", "widget"] {
        manager.drop_tenant(tenant).await?;
    }
    println!(
        "dropped tenant_acme and tenant_widget; open pools: {:?}",
        manager.tenants()
    );
    Ok(())
}

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
    shared_tables(server).await?;
    database_per_tenant(server).await?;
    Ok(())
}
