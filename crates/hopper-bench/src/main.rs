//! `hopper-bench`: the workloads of DESIGN.md ("Benchmarks") run through
//! Hopper and, in the same run, as raw SQL on the same driver and schema,
//! so every Hopper figure is quoted as a ratio to the database's own limit.
//!
//! ```text
//! cargo run --release -p hopper-bench -- [--database-url sqlite://dir/bench.db]
//!     [--jobs 20000] [--workers 10] [--repeat 1] [--json]
//! ```

mod db;
mod raw;
mod report;
mod workloads;

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;

use crate::db::Databases;
use crate::report::{Pass, Report, Setup};

/// Benchmarks Hopper against raw SQL on the same SQLite schema.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where the databases go: `sqlite://dir/name.db` makes one fresh file per
    /// workload beside it (`dir/name.<workload>.db`). Default: a temporary folder.
    #[arg(long)]
    database_url: Option<String>,

    /// Jobs per workload (W1, W2 and the raw limits).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,

    /// Concurrent workers draining in W2.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..10_000))]
    workers: u64,

    /// Passes over every workload; each figure is the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..1_000))]
    repeat: u64,

    /// Jobs claimed (and then finished) per statement in the raw drain loop.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    raw_claim_batch: u32,

    /// Jobs dispatched to the idle pool in W3.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    latency_jobs: u32,

    /// Milliseconds between W3 dispatches.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..60_000))]
    latency_interval_ms: u64,

    /// Workers in W3's idle pool.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..10_000))]
    latency_workers: u64,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let databases = Databases::new(args.database_url.as_deref())?;
    let mut passes = Vec::new();
    for pass in 1..=args.repeat {
        passes.push(run_pass(&args, &databases, pass).await?);
    }
    let report = Report::new(
        Setup {
            jobs: args.jobs,
            workers: args.workers as usize,
            raw_claim_batch: args.raw_claim_batch,
            latency_samples: args.latency_jobs,
            databases: databases.describe(),
        },
        &passes,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if !report.drain_ok() {
        bail!(
            "W2 did not run every job exactly once: {:?}",
            report.drain_check
        );
    }
    Ok(())
}

/// One pass over every workload, each on its own fresh database, Hopper and
/// raw SQL interleaved so machine noise hits both alike.
async fn run_pass(args: &Args, dbs: &Databases, pass: u64) -> Result<Pass> {
    let n = args.jobs;
    let step = |what: &str| eprintln!("[pass {pass}/{}] {what}", args.repeat);

    step("W1 enqueue, one per transaction");
    let hopper_one = workloads::enqueue_one(&dbs.fresh("w1-one")?, n).await?;
    let raw_one = raw::insert_one(&dbs.fresh("raw-one")?, n).await?;
    eprintln!("  hopper {hopper_one:.0} jobs/s, raw {raw_one:.0} jobs/s");

    step("W1 enqueue, bulk");
    let hopper_bulk = workloads::enqueue_bulk(&dbs.fresh("w1-bulk")?, n).await?;
    let raw_bulk = raw::insert_bulk(&dbs.fresh("raw-bulk")?, n).await?;
    eprintln!("  hopper {hopper_bulk:.0} jobs/s, raw {raw_bulk:.0} jobs/s");

    step("W2 drain");
    let drain = workloads::drain(&dbs.fresh("w2-drain")?, n, args.workers as usize).await?;
    let raw_drain = raw::drain(&dbs.fresh("raw-drain")?, n, args.raw_claim_batch).await?;
    eprintln!(
        "  hopper {:.0} jobs/s, raw {raw_drain:.0} jobs/s",
        drain.jobs_per_s
    );

    step("W3 latency");
    let latency = workloads::latency(
        &dbs.fresh("w3-latency")?,
        args.latency_jobs,
        Duration::from_millis(args.latency_interval_ms),
        args.latency_workers as usize,
    )
    .await?;
    eprintln!(
        "  p50 {:.2} ms, p99 {:.2} ms",
        latency.p50_ms, latency.p99_ms
    );

    Ok(Pass {
        enqueue_one: (hopper_one, raw_one),
        enqueue_bulk: (hopper_bulk, raw_bulk),
        drain,
        raw_drain,
        latency,
    })
}
