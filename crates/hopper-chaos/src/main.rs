//! `hopper-chaos`: runs a queue of jobs across several worker processes
//! while killing them, their database connections and (on PostgreSQL) the
//! server, then audits that every job finished, none is stuck, and every
//! job that ran twice was held by a process that was killed or cut off.
//!
//! One worker process at a time runs on a host clock set ahead of the
//! others' (`--clock-skew`, 60 s by default; a killed skewed worker is
//! replaced by another). Leases, their renewal and the rescue of expired
//! ones are measured on the database server's clock, so that worker's
//! leases must not look longer to anyone, and when it holds the maintenance
//! lease it must not rescue the other workers' jobs early: a job rescued
//! from a live worker that was neither killed nor cut off shows up as a
//! stalled duplicate and fails the run.
//!
//! ```text
//! cargo run --release -p hopper-chaos -- --database-url <url> [--jobs 50000]
//!     [--workers 3] [--duration 120s] [--clock-skew 60s]
//!     [--limited [--keys 100] [--key-limit 1] [--queue-limit 10]]
//!     [--batches | --workflows [--group-size <N>]] [--json]
//! ```
//!
//! `--limited` spreads the jobs over partition keys and gives the queue a
//! per-key and a global concurrency limit; the audit then also checks,
//! from each recorded execution's start and end, that no more runs of a
//! key, or of the queue, overlapped than the limits allow (leaving out
//! runs whose process was SIGKILLed before they ended).
//!
//! `--batches` dispatches each paced group of jobs as one batch with a
//! success and a completion callback; the audit then also checks that
//! every batch counted all its jobs finished, and that each callback was
//! inserted once and ran once (twice only where a SIGKILLed process
//! explains it).
//!
//! `--workflows` makes each group a workflow instead (its first job, then
//! the others after it, then its last job after all of those), audited as
//! `--batches` is, and for order: no step's execution started before every
//! step it waits on had its last execution end.
//!
//! `--group-size <N>` (with `--batches` or `--workflows`) gives every group
//! exactly `N` jobs instead of whatever became due since the last dispatch:
//! group `k` is jobs `k·N..(k+1)·N` (the last group holds what is left of
//! the run), and the dispatcher waits until the group's last job is due.
//! A workflow is then 1 → `N − 2` → 1 for `N` of 3 or more (`--jobs 3000
//! --group-size 1000`: three workflows of 1 → 998 → 1). A dispatcher
//! killed mid-write and restarted where the stored jobs end starts again
//! on the group it was writing, and the audit also fails the run unless
//! every batch is one of those groups.
//!
//! Exits 0 only when the audit passes.

mod audit;
mod batch_audit;
mod child;
mod db;
mod job;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{ArgGroup, Parser, Subcommand};

use crate::run::{Limits, Plan};

fn duration(text: &str) -> Result<Duration, String> {
    hopper_cli::duration::parse(text).map_err(|e| e.to_string())
}

/// Kills workers, connections and the database server under load, then
/// audits that no job was lost or stuck.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Child>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("grouped").args(["batches", "workflows"])))]
struct RunArgs {
    /// The database: `sqlite:` (a temporary file), `sqlite://<new file>`, or
    /// a PostgreSQL / MySQL server URL whose database is used to create (and
    /// afterwards drop) a fresh `hopper_chaos_<random>` one.
    #[arg(long, default_value = "sqlite:")]
    database_url: String,

    /// Jobs dispatched, evenly over the damage.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,

    /// Worker processes alive at a time.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..100))]
    workers: u64,

    /// Jobs each worker process runs at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..1000))]
    concurrency: u64,

    /// How long the damage goes on (e.g. 120s, 2m).
    #[arg(long, default_value = "120s", value_parser = duration)]
    duration: Duration,

    /// The lease on a claimed job.
    #[arg(long, default_value = "2s", value_parser = duration)]
    lease: Duration,

    /// How often expired leases are looked for.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    rescue_interval: Duration,

    /// About how often a worker process is SIGKILLed.
    #[arg(long, default_value = "3s", value_parser = duration)]
    kill_every: Duration,

    /// About how often the dispatcher is killed with a transaction open.
    #[arg(long, default_value = "5s", value_parser = duration)]
    writer_kill_every: Duration,

    /// About how often a burst of connection kills hits a server database.
    #[arg(long, default_value = "8s", value_parser = duration)]
    burst_every: Duration,

    /// Do not restart the local PostgreSQL server halfway.
    #[arg(long)]
    no_restart: bool,

    /// How long the surviving workers get to drain the queue afterwards.
    #[arg(long, default_value = "120s", value_parser = duration)]
    drain_timeout: Duration,

    /// The most milliseconds one job works after recording its execution.
    #[arg(long, default_value_t = 20)]
    max_work_ms: u64,

    /// How long each dispatch transaction stays open after writing its rows.
    #[arg(long, default_value_t = 20)]
    hold_ms: u64,

    /// How far ahead of the real time one worker process's clock runs (0:
    /// none). One such worker is alive at all times: the first one started,
    /// then the replacement of each one killed. Its leases and its rescues
    /// must still go by the database's clock, so the skew must cost no job
    /// and cause no unexplained or stalled duplicate.
    #[arg(long, default_value = "60s", value_parser = duration)]
    clock_skew: Duration,

    /// The limited workload: jobs spread over `--keys` partition keys, the
    /// queue limited to `--key-limit` running jobs per key and
    /// `--queue-limit` in all; the audit checks the limits held.
    #[arg(long)]
    limited: bool,

    /// Partition keys of a limited run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..1_000_000))]
    keys: u64,

    /// A limited run's most running jobs per key.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    key_limit: u32,

    /// A limited run's most running jobs of the queue.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    queue_limit: u32,

    /// The batched workload: each paced group of jobs (of a fixed size with
    /// --group-size) is one batch with a success and a completion callback;
    /// the audit checks every batch counted its jobs and ran each callback
    /// once (more only where a killed process explains it).
    #[arg(long, conflicts_with = "workflows")]
    batches: bool,

    /// The workflow workload: each paced group of jobs (of a fixed size
    /// with --group-size) is one workflow (its first job, then the others
    /// after it, then its last job after all of those) with a success and
    /// a completion callback; the audit checks the batches as `--batches`
    /// does, and that no step started before the steps it waits on ended.
    #[arg(long, conflicts_with = "limited")]
    workflows: bool,

    /// With --batches or --workflows: exactly N jobs in each batch or
    /// workflow (group k is jobs k·N..(k+1)·N, the last group what is left),
    /// each dispatched once its last job is due; a workflow is then
    /// 1 → N−2 → 1 (N of 3 or more). The audit also checks every batch is one of those
    /// groups. Without it, a group is whatever became due since the last
    /// dispatch (at most 2,000 jobs).
    #[arg(
        long,
        value_name = "N",
        requires = "grouped",
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    group_size: Option<u64>,

    /// Keep each child process's log (RUST_LOG, default warn) in this folder.
    #[arg(long)]
    log_dir: Option<PathBuf>,

    /// Print the audit as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// A worker process (started by the controller).
    #[command(hide = true)]
    Worker(child::WorkerArgs),
    /// The dispatcher process (started by the controller).
    #[command(hide = true)]
    Dispatch(child::DispatchArgs),
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Child::Worker(args)) => child::worker(args).await.map(|()| ExitCode::SUCCESS),
        Some(Child::Dispatch(args)) => child::dispatch(args).await.map(|()| ExitCode::SUCCESS),
        None => control(cli.run).await,
    }
}

async fn control(args: RunArgs) -> Result<ExitCode> {
    let plan = Plan {
        jobs: args.jobs,
        workers: args.workers as usize,
        concurrency: args.concurrency as usize,
        duration: args.duration,
        lease: args.lease,
        rescue_interval: args.rescue_interval,
        kill_every: args.kill_every,
        writer_kill_every: args.writer_kill_every,
        burst_every: args.burst_every,
        restart: !args.no_restart,
        drain_timeout: args.drain_timeout,
        max_work_ms: args.max_work_ms,
        hold_ms: args.hold_ms,
        log_dir: args.log_dir,
        clock_skew: args.clock_skew,
        limits: args.limited.then_some(Limits {
            keys: args.keys,
            key_limit: args.key_limit,
            queue_limit: args.queue_limit,
        }),
        batches: args.batches,
        workflows: args.workflows,
        group_size: args.group_size,
    };
    let outcome = run::run(&args.database_url, &plan).await?;
    let report = audit::audit(&outcome, &plan).await;
    outcome.db.close().await;
    if let Err(error) = outcome.fresh.remove().await {
        eprintln!("could not remove the run's database: {error:#}");
    }
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.text());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
