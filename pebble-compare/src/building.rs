//! `building`: what building a scoped statement costs the client alone,
//! with no server: `build()` of a point select, a one-row insert and an
//! update by key, on 1 and more threads at once (each its own tenant), so
//! that what the threads share (the shape cache, the pool's reference
//! count) shows as the difference between the two.

use std::time::Instant;

use pebble::{Db, PoolOptions};

use crate::alloc_count;
use crate::contenders::BoxError;
use crate::setup::{new_item, Item};

const STATEMENTS: u64 = 1_000_000;
const REPEATS: usize = 5;

#[derive(Clone, Copy)]
enum Kind {
    Select,
    Insert,
    Update,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Select, Kind::Insert, Kind::Update];

    fn name(self) -> &'static str {
        match self {
            Kind::Select => "point select by tenant and key",
            Kind::Insert => "insert one row",
            Kind::Update => "update one column by key",
        }
    }

    fn build(self, db: &Db, tenant: i64, n: u64) -> Result<(), BoxError> {
        let tenant = db.tenant(tenant);
        let id = (n % 200) as i64 + 1;
        let stmt = match self {
            Kind::Select => tenant.find::<Item>(id).build()?,
            Kind::Insert => tenant.insert(new_item(n)).build()?,
            Kind::Update => tenant
                .update::<Item>()
                .set(Item::QTY, n as i32)
                .filter(Item::ID.eq(id))
                .build()?,
        };
        std::hint::black_box(stmt);
        Ok(())
    }
}

/// Nanoseconds per statement on each of `threads` threads (the median of
/// [`REPEATS`] runs) and allocations per statement.
fn measure(db: &Db, kind: Kind, threads: usize) -> Result<(f64, f64), BoxError> {
    let mut runs = Vec::with_capacity(REPEATS);
    let mut allocations = 0;
    for _ in 0..REPEATS {
        let before = alloc_count::allocations();
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || -> Result<(), String> {
                        for n in 0..STATEMENTS {
                            kind.build(db, t as i64 + 1, n).map_err(|e| e.to_string())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().map_err(|_| "a thread panicked".to_owned())?)
        })?;
        runs.push(started.elapsed().as_nanos() as f64 / STATEMENTS as f64);
        allocations = alloc_count::allocations() - before;
    }
    runs.sort_by(f64::total_cmp);
    let per_statement = allocations as f64 / (STATEMENTS as f64 * threads as f64);
    Ok((runs[REPEATS / 2], per_statement))
}

pub fn run(thread_counts: &[usize]) -> Result<(), BoxError> {
    // Never connects: `build()` sends nothing.
    let db = Db::connect_lazy("host=/nonexistent", PoolOptions::default())?;
    println!(
        "\n`build()` of {STATEMENTS} statements per thread, median of {REPEATS} runs; \
         the builder's values are copied (`build` takes `&self`), which running one does not\n"
    );
    print!("| statement |");
    for threads in thread_counts {
        print!(
            " ns/statement, {threads} thread{} |",
            if *threads == 1 { "" } else { "s" }
        );
    }
    println!(" allocations/statement |");
    println!("|---|{}---|", "---|".repeat(thread_counts.len()));
    for kind in Kind::ALL {
        print!("| {} |", kind.name());
        let mut allocations = 0.0;
        for &threads in thread_counts {
            let (ns, per_statement) = measure(&db, kind, threads)?;
            allocations = per_statement;
            print!(" {ns:.0} |");
        }
        println!(" {allocations:.1} |");
    }
    Ok(())
}
