//! pebble side by side with raw tokio-postgres (every statement prepared
//! once per connection: the limit for a client library) and sqlx 0.8, on
//! a throwaway server this binary starts and deletes.
//!
//! ```text
//! cargo run --release -p pebble-compare -- [--rounds 5] [--clients 1,16] [--seconds 2]
//!                                          [--workloads select,insert,update,rls,rls-login]
//! cargo run --release -p pebble-compare -- --active-tenants 8 ...   (operations on the first 8 tenants only)
//! cargo run --release -p pebble-compare -- --only pebble ...   (one contender alone, to profile it)
//! cargo run --release -p pebble-compare -- --pool ...   (limit, deadpool-postgres by hand, pebble)
//! cargo run --release -p pebble-compare -- scale [--tenants 1000]
//! cargo run --release -p pebble-compare -- building [--clients 1,2]   (no server: building statements)
//! cargo run --release -p pebble-compare -- rls-floor [--clients 1,16] [--seconds 8] [--rounds 3]   (pgbench: what RLS costs the server)
//! ```
//!
//! Rounds are interleaved (limit, sqlx, pebble, limit, ...) so that a
//! machine's drift hits all three alike. Prints each round, then a markdown
//! table: median ops/s, each contender's ops/s over the limit's per round
//! (median, min, max), and the client's CPU time per operation.

mod alloc_count;
mod building;
mod contenders;
mod measure;
mod rls_floor;
mod scale;
mod setup;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contenders::{BoxError, Contender, Contenders, Workload};
use measure::{cpu_time, Sample, Series};

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

struct Args {
    rounds: usize,
    /// `--clients`, if given: each subcommand has its own default.
    clients: Option<Vec<usize>>,
    seconds: f64,
    workloads: Vec<Workload>,
    scale: bool,
    /// `rls-floor`: pgbench's shapes of the RLS select (no pebble).
    rls_floor: bool,
    /// `building`: statement building alone, `clients` threads at once.
    building: bool,
    tenants: usize,
    /// Operations spread over the first this many of the 50 tenants.
    active_tenants: i64,
    /// Only this contender, for profiling it alone (no table then).
    only: Option<Contender>,
    /// Limit, deadpool by hand and pebble, instead of limit, sqlx, pebble.
    pool: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rounds: 5,
        clients: None,
        seconds: 2.0,
        workloads: Workload::ALL.to_vec(),
        scale: false,
        rls_floor: false,
        building: false,
        tenants: 1000,
        active_tenants: setup::TENANTS,
        only: None,
        pool: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "scale" => args.scale = true,
            "building" => args.building = true,
            "rls-floor" => args.rls_floor = true,
            "--pool" => {
                args.pool = true;
                args.workloads = vec![Workload::Select, Workload::Insert, Workload::Update];
            }
            "--rounds" => args.rounds = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--tenants" => args.tenants = value()?.parse()?,
            "--active-tenants" => args.active_tenants = value()?.parse()?,
            "--clients" => {
                args.clients = Some(
                    value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?,
                )
            }
            "--only" => {
                let name = value()?;
                args.only = Some(
                    Contender::NAMED
                        .into_iter()
                        .find(|c| c.name() == name)
                        .ok_or_else(|| format!("unknown contender {name}"))?,
                );
            }
            "--workloads" => {
                let names = value()?;
                args.workloads = names
                    .split(',')
                    .map(|name| {
                        Workload::ALL
                            .into_iter()
                            .find(|w| w.name() == name)
                            .ok_or_else(|| format!("unknown workload {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let no_clients = args
        .clients
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.contains(&0));
    if args.rounds == 0 || no_clients || args.seconds <= 0.0 {
        return Err("rounds, clients and seconds must be positive".into());
    }
    if !(1..=setup::TENANTS).contains(&args.active_tenants) {
        return Err(format!("--active-tenants must be 1 to {}", setup::TENANTS).into());
    }
    Ok(args)
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    // The machine this was written for has 2 cores, shared with the server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.scale {
        return runtime.block_on(scale::run(args.tenants));
    }
    if args.rls_floor {
        let clients = args.clients.unwrap_or_else(|| vec![1, 16]);
        return runtime.block_on(rls_floor::run(&clients, args.seconds, args.rounds));
    }
    if args.building {
        // Two threads on the two cores this was written for: what they
        // share shows against one.
        let threads = args.clients.unwrap_or_else(|| vec![1, 2]);
        let _runtime = runtime.enter();
        return building::run(&threads);
    }
    runtime.block_on(compare(args))
}

async fn compare(args: Args) -> Result<(), BoxError> {
    let client_counts = args.clients.clone().unwrap_or_else(|| vec![1, 16]);
    eprintln!("starting a server and loading 50 tenants x 200 rows ...");
    let fixture = setup::Fixture::load().await?;
    let most = client_counts.iter().copied().max().unwrap_or(1);
    let contenders = Arc::new(Contenders::connect(&fixture, most, args.active_tenants).await?);
    let duration = Duration::from_secs_f64(args.seconds);
    let warm_up = duration.min(Duration::from_millis(500));

    let mut all = Vec::new();
    for &workload in &args.workloads {
        for &clients in &client_counts {
            // Statements prepared, pools full, caches warm, for everyone.
            if let Some(only) = args.only {
                timed(&contenders, only, workload, clients, warm_up).await?;
                for _ in 0..args.rounds {
                    let s = timed(&contenders, only, workload, clients, duration).await?;
                    eprintln!(
                        "{} {clients} clients {:?}: {:.0}/s {:.1} µs CPU/op, {:.2} of it in user space, {:.1} allocations/op, server {:.1} µs CPU/op",
                        workload.name(),
                        only,
                        s.ops_per_sec(),
                        s.cpu_us_per_op(),
                        s.user_us_per_op(),
                        s.allocations_per_op(),
                        s.server_us_per_op()
                    );
                }
                continue;
            }
            let lineup = if args.pool {
                Contender::POOL.to_vec()
            } else {
                Contender::ALL.to_vec()
            };
            for &contender in &lineup {
                timed(&contenders, contender, workload, clients, warm_up).await?;
            }
            let mut series = Series {
                workload,
                clients,
                contenders: lineup.clone(),
                samples: Vec::new(),
            };
            for round in 0..args.rounds {
                let mut samples = Vec::with_capacity(lineup.len());
                for &contender in &lineup {
                    samples.push(timed(&contenders, contender, workload, clients, duration).await?);
                }
                series.samples.push(samples);
                eprintln!("{}", series.line(round));
            }
            all.push(series);
        }
    }
    contenders.close();
    contenders.close_sqlx().await;

    if args.only.is_some() {
        return Ok(());
    }
    println!(
        "\n{} rounds of {} s per contender, interleaved; limit = tokio-postgres, statements prepared once per connection\n",
        args.rounds, args.seconds
    );
    if args.pool {
        println!("{}", measure::pool_table(&all));
    } else {
        println!("{}", measure::table(&all));
    }
    drop(fixture);
    Ok(())
}

/// `clients` concurrent clients of `contender` running `workload` for `duration`.
async fn timed(
    contenders: &Arc<Contenders>,
    contender: Contender,
    workload: Workload,
    clients: usize,
    duration: Duration,
) -> Result<Sample, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu = cpu_time();
    let allocations = alloc_count::allocations();
    let server = measure::server_cpu_time();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            tokio::spawn(Arc::clone(contenders).run_client(
                contender,
                workload,
                client,
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    for task in tasks {
        ops += task.await??;
    }
    let wall = start.elapsed();
    Ok(Sample {
        ops,
        wall,
        cpu: cpu_time().since(cpu),
        allocations: alloc_count::allocations() - allocations,
        server: measure::server_cpu_time().saturating_sub(server),
    })
}
