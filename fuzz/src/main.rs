//! `detour-fuzz`: runs the fuzz targets (see the library's doc) for a number of
//! cases each, bounded in time, and reports cases, rate, how the cases ended
//! and the first failure (shrunk). Exits 1 on a failure.
//!
//! Each case may allocate at most `--case-mib` MiB beyond what the harness
//! holds: a small input that asks for more aborts the run ("memory allocation
//! of N bytes failed"), which is a failure too.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use detour_fuzz::{Harness, Target};

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Fuzzes Detour's boundaries.
#[derive(Debug, Parser)]
struct Args {
    /// Targets to run: all, or a comma-separated list of requests, events,
    /// csv, artifacts.
    #[arg(long, default_value = "all")]
    targets: String,
    /// Cases per target.
    #[arg(long, default_value_t = 10_000)]
    cases: u32,
    /// Most seconds per target (a bound: a target stops early when reached).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seed of the generators; the same seed makes the same cases.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most MiB one case may allocate beyond the harness.
    #[arg(long, default_value_t = 256)]
    case_mib: usize,
    /// The shipped models and network.
    #[arg(long, default_value = "models")]
    models: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.seconds > 0 && args.seconds <= 24 * 3600,
        "seconds must be in 1..=86400"
    );
    let targets: Vec<Target> = if args.targets == "all" {
        Target::ALL.to_vec()
    } else {
        args.targets
            .split(',')
            .map(|name| {
                Target::ALL
                    .into_iter()
                    .find(|t| t.name() == name.trim())
                    .with_context(|| format!("no target {name:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let scratch = std::env::temp_dir().join(format!("detour-fuzz-{}", std::process::id()));
    let harness = Harness::new(&args.models, &scratch)?;
    let budget = args.case_mib << 20;
    let cap_case = || {
        let _ = ALLOCATOR.set_limit(ALLOCATOR.allocated().saturating_add(budget));
    };
    let mut failed = false;
    let mut total = 0;
    for target in targets {
        let until = Instant::now() + Duration::from_secs(args.seconds);
        let outcome = detour_fuzz::run(&harness, target, args.cases, until, args.seed, &cap_case);
        let _ = ALLOCATOR.set_limit(usize::MAX);
        total += outcome.cases;
        let seconds = outcome.elapsed.as_secs_f64();
        println!(
            "{:<10} {:>10} cases in {:>7.1} s ({:>8.0}/s)  {}",
            target.name(),
            outcome.cases,
            seconds,
            outcome.cases as f64 / seconds.max(1e-9),
            match &outcome.failure {
                None => "0 failures".to_string(),
                Some(_) => "FAILED".to_string(),
            }
        );
        if let Some(failure) = outcome.failure {
            println!("{failure}");
            failed = true;
        }
    }
    println!("total      {total:>10} cases; how they ended:");
    for (what, count) in harness.tally() {
        println!("  {what:<32} {count:>10}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
