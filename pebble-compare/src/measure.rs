//! Client CPU time, samples and the markdown table they make.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Duration;

use crate::contenders::{Contender, Workload};

/// User and system CPU time this process has used: every thread of the
/// client. The server is another process and is not counted.
pub fn cpu_time() -> Cpu {
    // SAFETY: `getrusage` only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Cpu::default();
        }
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Cpu {
        user: Duration::from_micros(micros(usage.ru_utime)),
        system: Duration::from_micros(micros(usage.ru_stime)),
    }
}

/// The server's postmaster, whose processes [`server_cpu_time`] counts.
static POSTMASTER: OnceLock<i32> = OnceLock::new();

/// Remembers the server's postmaster: the parent of `backend`, the process
/// of one of its connections (`pg_backend_pid()`).
pub fn watch_server(backend: i32) {
    if let Some(parent) = stat(backend).and_then(|fields| fields.get(1)?.parse().ok()) {
        let _ = POSTMASTER.set(parent);
    }
}

/// CPU time (user + system) the server has used: its backends still
/// running, plus every process of it that has exited (the postmaster's
/// `cutime`/`cstime`). Zero when the server is not on this machine.
/// Counted in clock ticks (10 ms), so only long runs read well.
pub fn server_cpu_time() -> Duration {
    let Some(&postmaster) = POSTMASTER.get() else {
        return Duration::ZERO;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // Fields after the command (from field 3, "state"): utime is 14, stime
    // 15, cutime 16, cstime 17 in proc(5), so 11..=14 here.
    let ticks = |fields: &[String], at: std::ops::RangeInclusive<usize>| -> u64 {
        at.filter_map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
    };
    let mut total = stat(postmaster).map_or(0, |f| ticks(&f, 13..=14));
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(fields) = stat(pid) {
                if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(postmaster) {
                    total += ticks(&fields, 11..=12);
                }
            }
        }
    }
    Duration::from_micros(total * 1_000_000 / hz)
}

/// `/proc/<pid>/stat` from the field after the command name on (the name
/// may hold spaces), split on spaces: `[0]` is the state, `[1]` the parent.
fn stat(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time in user space (the client's own code) and in the kernel (its
/// system calls: mostly sockets and waking threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

/// One timed run of one contender.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub ops: u64,
    pub wall: Duration,
    pub cpu: Cpu,
    /// Heap allocations by the whole client during the run.
    pub allocations: u64,
    /// CPU time the server used during the run (see [`server_cpu_time`]).
    pub server: Duration,
}

impl Sample {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }

    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu.total().as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    pub fn server_us_per_op(&self) -> f64 {
        self.server.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    pub fn allocations_per_op(&self) -> f64 {
        self.allocations as f64 / self.ops.max(1) as f64
    }

    /// Of [`Sample::cpu_us_per_op`], the part spent in user space.
    pub fn user_us_per_op(&self) -> f64 {
        self.cpu.user.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
}

/// The rounds of one workload at one client count: `samples[round][i]` is
/// `contenders[i]`'s, and the limit is always first.
pub struct Series {
    pub workload: Workload,
    pub clients: usize,
    pub contenders: Vec<Contender>,
    pub samples: Vec<Vec<Sample>>,
}

/// Median, min and max.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

impl Series {
    fn index(&self, contender: Contender) -> usize {
        self.contenders
            .iter()
            .position(|c| *c == contender)
            .unwrap_or(0)
    }

    fn of(&self, contender: Contender, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        let i = self.index(contender);
        self.samples.iter().map(|r| f(&r[i])).collect()
    }

    fn median(&self, contender: Contender, f: impl Fn(&Sample) -> f64) -> f64 {
        spread(self.of(contender, f)).0
    }

    /// `contender`'s ops/s over `base`'s, round by round.
    fn ratio_to(&self, contender: Contender, base: Contender) -> (f64, f64, f64) {
        let (i, b) = (self.index(contender), self.index(base));
        spread(
            self.samples
                .iter()
                .map(|r| r[i].ops_per_sec() / r[b].ops_per_sec())
                .collect(),
        )
    }

    fn ratio(&self, contender: Contender) -> (f64, f64, f64) {
        self.ratio_to(contender, Contender::Limit)
    }

    pub fn line(&self, round: usize) -> String {
        let mut line = format!(
            "{:<7} {:>2} clients round {}:",
            self.workload.name(),
            self.clients,
            round + 1
        );
        for (contender, sample) in self.contenders.iter().zip(&self.samples[round]) {
            let _ = write!(
                line,
                "  {} {:>7.0}/s {:>5.1} µs ({:>5.1})",
                contender.name(),
                sample.ops_per_sec(),
                sample.cpu_us_per_op(),
                sample.server_us_per_op(),
            );
        }
        line
    }
}

/// `--pool`: pebble against the same pool used by hand (deadpool-postgres
/// set up as pebble's, statements through its cache) and the limit.
pub fn pool_table(series: &[Series]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | clients | limit ops/s | deadpool ops/s | pebble ops/s | deadpool / limit | pebble / limit | pebble / deadpool, median (min–max) | client CPU µs/op: limit / deadpool / pebble | allocations/op: limit / deadpool / pebble |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for s in series {
        let (d, p) = (Contender::Deadpool, Contender::Pebble);
        let (pd, pdmin, pdmax) = s.ratio_to(p, d);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} ({:.2}–{:.2}) | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} |",
            s.workload.describe(),
            s.clients,
            s.median(Contender::Limit, Sample::ops_per_sec),
            s.median(d, Sample::ops_per_sec),
            s.median(p, Sample::ops_per_sec),
            s.ratio(d).0,
            s.ratio(p).0,
            pd,
            pdmin,
            pdmax,
            s.median(Contender::Limit, Sample::cpu_us_per_op),
            s.median(d, Sample::cpu_us_per_op),
            s.median(p, Sample::cpu_us_per_op),
            s.median(Contender::Limit, Sample::allocations_per_op),
            s.median(d, Sample::allocations_per_op),
            s.median(p, Sample::allocations_per_op),
        );
    }
    out
}

/// The markdown table: medians over the rounds, ratios per round.
pub fn table(series: &[Series]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | clients | limit ops/s | sqlx ops/s | pebble ops/s | pebble / limit, median (min–max) | sqlx / limit, median (min–max) | client CPU µs/op: limit / sqlx / pebble | server CPU µs/op: limit / sqlx / pebble | allocations/op: limit / sqlx / pebble |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for s in series {
        let ops = |c| s.median(c, Sample::ops_per_sec);
        let cpu = |c| s.median(c, Sample::cpu_us_per_op);
        let allocations = |c| s.median(c, Sample::allocations_per_op);
        let server = |c| s.median(c, Sample::server_us_per_op);
        let (pm, pmin, pmax) = s.ratio(Contender::Pebble);
        let (sm, smin, smax) = s.ratio(Contender::Sqlx);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} |",
            s.workload.describe(),
            s.clients,
            ops(Contender::Limit),
            ops(Contender::Sqlx),
            ops(Contender::Pebble),
            pm,
            pmin,
            pmax,
            sm,
            smin,
            smax,
            cpu(Contender::Limit),
            cpu(Contender::Sqlx),
            cpu(Contender::Pebble),
            server(Contender::Limit),
            server(Contender::Sqlx),
            server(Contender::Pebble),
            allocations(Contender::Limit),
            allocations(Contender::Sqlx),
            allocations(Contender::Pebble),
        );
    }
    out
}
