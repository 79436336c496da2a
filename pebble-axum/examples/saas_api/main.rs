//! A multi-tenant REST API on axum and pebble: projects, tasks with an
//! assignee, users; every request confined to the tenant in `X-Tenant-Id`.
//!
//!     cargo run -p pebble-pg-axum --example saas_api
//!     cargo run -p pebble-pg-axum --example saas_api -- --serve-seconds 5 --port 0
//!
//! With no set-up: pebble-testkit starts a throwaway PostgreSQL (or uses
//! `DATABASE_URL`), the example creates a database, the tables under
//! row-level security and an application role, registers two tenants and
//! serves until Ctrl-C (or SIGTERM, or `--serve-seconds N` /
//! `SAAS_API_SERVE_SECONDS=N`), then drops what it created.
//!
//! `--port P` (default 3000; 0 for any free port). Logs: `RUST_LOG` as a
//! list of `target=level` (default `saas_api=info,pebble_axum=debug,pebble::sql=debug`).

#[allow(dead_code)] // the tests use the models' other fields
mod app;

use std::time::Duration;

use pebble::{Db, RlsDb};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use uuid::Uuid;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

const ACME: Uuid = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
const GLOBEX: Uuid = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);

struct Options {
    port: u16,
    serve_seconds: Option<u64>,
}

fn options() -> Result<Options, AnyError> {
    let mut options = Options {
        port: 3000,
        serve_seconds: std::env::var("SAAS_API_SERVE_SECONDS")
            .ok()
            .map(|s| s.parse())
            .transpose()?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => options.port = value()?.parse()?,
            "--serve-seconds" => options.serve_seconds = Some(value()?.parse()?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --port P and --serve-seconds N"
                )
                .into())
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let options = options()?;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_target("saas_api", tracing::Level::INFO)
                .with_target("pebble_axum", tracing::Level::DEBUG)
                .with_target("pebble::sql", tracing::Level::DEBUG)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(true))
        .with(filter)
        .init();

    let server = pebble_testkit::server()?;
    let database = server.create_database("pebble_saas_example").await?;

    // Deploy, as the owner: schema, row-level security, the app's role.
    let owner = Db::connect(database.config()).await?;
    let role = format!("saas_app_{}", Uuid::new_v4().simple());
    let served = serve(&owner, &database.config(), &role, &options).await;

    // Clean up whatever happened: the role is cluster-wide, so on a
    // DATABASE_URL server it would outlive the database otherwise.
    let dropped = owner
        .batch_execute(&format!(
            "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
        ))
        .await;
    owner.close();
    drop(database);
    served?;
    dropped?;
    println!("stopped; the example's database and role are dropped");
    Ok(())
}

async fn serve(
    owner: &Db,
    config: &pebble::tokio_postgres::Config,
    role: &str,
    options: &Options,
) -> Result<(), AnyError> {
    let password = app::provision(owner, role).await?;
    app::register(owner, ACME, "Acme").await?;
    app::register(owner, GLOBEX, "Globex").await?;

    // Serve, as the application role: NOSUPERUSER, NOBYPASSRLS, not the owner.
    let mut config = config.clone();
    config.user(role).password(&password);
    let pool = RlsDb::connect(config).await?;
    seed(&pool).await?;

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(target: "saas_api", port = options.port, "port in use; taking a free one");
            tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?
        }
        Err(e) => return Err(e.into()),
    };
    let url = format!("http://{}", listener.local_addr()?);
    print_usage(&url);

    axum::serve(listener, app::router(pool.clone()))
        .with_graceful_shutdown(shutdown(options.serve_seconds))
        .await?;
    pool.db().close();
    Ok(())
}

/// A little data, so the curl lines show something.
async fn seed(pool: &RlsDb) -> pebble::Result<()> {
    for (org, people, project) in [
        (ACME, ["ann", "bob"], "website"),
        (GLOBEX, ["cho", "dan"], "audit"),
    ] {
        let tenant = pool.tenant(org);
        let users = tenant
            .insert_many(people.map(|name| app::User {
                id: 0,
                org: Uuid::nil(),
                email: format!("{name}@example.com"),
                name: name.to_owned(),
            }))
            .returning()
            .await?;
        let project = tenant
            .insert(app::Project {
                id: 0,
                org: Uuid::nil(),
                name: project.to_owned(),
            })
            .returning()
            .await?;
        let tasks = ["write the brief", "fix the login page", "ship it"];
        tenant
            .insert_many(
                tasks
                    .iter()
                    .zip(users.iter().cycle())
                    .map(|(title, user)| app::Task {
                        id: 0,
                        org: Uuid::nil(),
                        project_id: project.id,
                        assignee_id: Some(user.id),
                        title: (*title).to_owned(),
                        done: false,
                    }),
            )
            .exec()
            .await?;
    }
    Ok(())
}

fn print_usage(url: &str) {
    println!("saas_api listening on {url}");
    println!("tenants: Acme {ACME}, Globex {GLOBEX}\n");
    println!("try:");
    println!("  curl -s {url}/tasks -H 'X-Tenant-Id: {ACME}'");
    println!(
        "  curl -s '{url}/tasks?q=login&done=false&page=1&per_page=10' -H 'X-Tenant-Id: {GLOBEX}'"
    );
    println!("  curl -s {url}/projects/stats -H 'X-Tenant-Id: {ACME}'");
    println!("  curl -s {url}/projects -H 'X-Tenant-Id: {ACME}' -H 'content-type: application/json' -d '{{\"name\":\"mobile\"}}'");
    println!("  curl -s {url}/tasks/done -H 'X-Tenant-Id: {ACME}' -H 'content-type: application/json' -d '{{\"ids\":[1,2]}}'");
    println!(
        "  curl -s -X DELETE {url}/projects/1 -H 'X-Tenant-Id: {GLOBEX}'   # not Globex's: 404"
    );
    println!("  curl -si {url}/tasks                                      # no tenant: 400");
    println!(
        "  curl -si {url}/tasks -H 'X-Tenant-Id: {}'  # unknown: 404",
        Uuid::from_u128(3)
    );
    println!("\nCtrl-C stops it.");
}

/// Ctrl-C, SIGTERM, or `--serve-seconds` elapsed: in-flight requests finish.
async fn shutdown(serve_seconds: Option<u64>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let elapsed = async {
        match serve_seconds {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
        _ = elapsed => {}
    }
    tracing::info!(target: "saas_api", "shutting down");
}
