//! Progress of fleet work: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use pebble_migrate::TargetOutcome;

/// Reports each finished target.
pub enum Progress {
    /// A terminal: a bar, with failures printed above it.
    Bar(ProgressBar),
    /// A pipe or file: one line per target.
    Lines,
    /// `--json`: nothing until the report.
    Quiet,
}

impl Progress {
    /// The right kind for stdout and `--json`.
    pub fn new(total: usize, json: bool) -> Progress {
        if json {
            return Progress::Quiet;
        }
        if !std::io::stdout().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} targets {elapsed_precise} {msg}")
        {
            bar.set_style(style);
        }
        Progress::Bar(bar)
    }

    /// One target is done.
    pub fn done(&self, outcome: &TargetOutcome, dry_run: bool) {
        match self {
            Progress::Bar(bar) => {
                if !outcome.is_ok() {
                    bar.println(outcome.to_string());
                }
                bar.inc(1);
            }
            Progress::Lines => println!("{}", crate::commands::line(outcome, dry_run)),
            Progress::Quiet => {}
        }
    }

    /// Removes the bar before the summary.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
