//! `scale`: what an open tenant pool costs the client process in memory,
//! and how long opening a thousand tenants takes, one by one and with 16
//! concurrent tasks, through the `TenantManager` (a database per tenant).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pebble::{PoolOptions, TenantManager};
use pebble_testkit::{ServerOptions, TempServer};
use tokio_postgres::NoTls;

use crate::contenders::BoxError;

const CONCURRENT: usize = 16;

/// The process's resident set in KiB (`VmRSS`).
fn rss_kib() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

fn manager(server: &TempServer, tenants: usize) -> Result<TenantManager, BoxError> {
    Ok(TenantManager::builder(server.config())
        .pool(PoolOptions::default())
        .max_open_pools(tenants)
        .idle_timeout(None)
        .build()?)
}

pub async fn run(tenants: usize) -> Result<(), BoxError> {
    eprintln!("starting a server with room for {tenants} tenant connections and more ...");
    let max_connections = u32::try_from(tenants + 50)?;
    let server = TempServer::start_with(ServerOptions::default().max_connections(max_connections))?;

    eprintln!("creating {tenants} tenant databases (not timed) ...");
    let created = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..4)
        .map(|_| {
            let next = Arc::clone(&next);
            let config = server.config();
            tokio::spawn(async move {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tenants {
                        return Ok::<_, BoxError>(());
                    }
                    let name = format!("tenant_{i}");
                    client
                        .batch_execute(&format!("CREATE DATABASE {name} STRATEGY FILE_COPY"))
                        .await?;
                    // The first connection to a new database builds the
                    // server's relation cache file for it: paid here, so
                    // that both timed runs open warm databases alike.
                    let mut tenant = config.clone();
                    tenant.dbname(&name);
                    let (warm, connection) = tenant.connect(NoTls).await?;
                    let connection = tokio::spawn(connection);
                    warm.batch_execute("SELECT 1").await?;
                    drop(warm);
                    let _ = connection.await;
                }
            })
        })
        .collect();
    for creator in creators {
        creator.await??;
    }
    eprintln!("created in {:.1} s", created.elapsed().as_secs_f64());

    let ids: Vec<String> = (0..tenants).map(|i| i.to_string()).collect();

    let sequential = manager(&server, tenants)?;
    let before = rss_kib()?;
    let start = Instant::now();
    for id in &ids {
        sequential.db(id).await?;
    }
    let one_by_one = start.elapsed();
    let after = rss_kib()?;
    let status = sequential.status();
    sequential.close_all();
    drop(sequential);

    let concurrent = Arc::new(manager(&server, tenants)?);
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let openers: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (manager, ids, next) =
                (Arc::clone(&concurrent), Arc::clone(&ids), Arc::clone(&next));
            tokio::spawn(async move {
                while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                    manager.db(id).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for opener in openers {
        opener.await??;
    }
    let in_parallel = start.elapsed();
    concurrent.close_all();

    let per_pool = (after.saturating_sub(before)) as f64 / tenants as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n{tenants} tenant databases; pools of up to 4 connections, each left with the one its open verified \
         ({} pools and {} connections open after the sequential run)\n",
        status.open_pools, status.connections_open
    );
    println!("| measure | value |\n|---|---|");
    println!(
        "| client RSS, 0 pools open | {:.1} MiB |",
        before as f64 / 1024.0
    );
    println!(
        "| client RSS, {tenants} pools open | {:.1} MiB |",
        after as f64 / 1024.0
    );
    println!("| memory per open pool (RSS delta / pools) | {per_pool:.0} KiB |");
    println!(
        "| open {tenants} tenants one by one | {:.2} s ({:.2} ms per tenant) |",
        one_by_one.as_secs_f64(),
        ms(one_by_one) / tenants as f64
    );
    println!(
        "| open {tenants} tenants, {CONCURRENT} concurrent tasks | {:.2} s (wall clock / tenants: {:.2} ms) |",
        in_parallel.as_secs_f64(),
        ms(in_parallel) / tenants as f64
    );
    Ok(())
}
