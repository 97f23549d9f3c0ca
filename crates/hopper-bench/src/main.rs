//! `hopper-bench`: the workloads of DESIGN.md ("Benchmarks") run through
//! Hopper and, in the same run, as raw SQL on the same driver and schema,
//! so every Hopper figure is quoted as a ratio to the database's own limit.
//!
//! ```text
//! cargo run --release -p hopper-bench -- [--database-url <url>]
//!     [--jobs 20000] [--workers 10] [--repeat 1]
//!     [--raw-claim-batch 100] [--raw-best-batch 1000] [--raw-best-loops 2] [--w4 [--w4-jobs 1000000]]
//!     [--w5-keys 1000] [--w5g-limit 1000] [--w6-big 100000] [--w6-small-keys 10]
//!     [--w6-small-jobs 100] [--w8-tasks 50] [--w9 [--w9-processes 1,2,3] [--w9-jobs N]] [--json]
//! ```
//!
//! `<url>` is `sqlite://dir/bench.db`, `postgres://user@host/db` or
//! `mysql://user@host/db`; on a server the benchmark creates (and drops) a
//! database of its own for each workload.
//!
//! W8 dispatches `--jobs` single jobs from `--w8-tasks` tasks at once
//! through one Hopper handle, against as many tasks making raw single-row
//! inserts. W9 (with `--w9`, on PostgreSQL and MySQL only) drains `--jobs`
//! with as many worker processes of `--workers` each on one database as
//! each of `--w9-processes` says (1, 2 and 3), against the raw best drain
//! on as many connections.

mod concurrent;
mod db;
mod raw;
mod report;
mod scale;
mod usage;
mod workloads;

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;

use crate::concurrent::Concurrent;
use crate::db::{Databases, Kind};
use crate::report::{Idle, Pass, Report, ScaleOut, Setup, W4, W9Report};
use crate::workloads::{FairShape, Setup as Queued};
use hopper::store::QueueFlow;

/// Benchmarks Hopper against raw SQL on the same database and schema.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where the databases go: `sqlite://dir/name.db` makes one fresh file per
    /// workload beside it (`dir/name.<workload>.db`); `postgres://…` and
    /// `mysql://…` name a server (and a database to connect through) on which
    /// a fresh database is created per workload and dropped after it.
    /// Default: SQLite files in a temporary folder.
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

    /// Jobs claimed per statement in the raw best drain, whose loops run at
    /// once, each on its own connection.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    raw_best_batch: u32,

    /// Loops (connections) in the raw best drain.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..100))]
    raw_best_loops: u32,

    /// Jobs dispatched to the idle pool in W3.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    latency_jobs: u32,

    /// Milliseconds between W3 dispatches.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..60_000))]
    latency_interval_ms: u64,

    /// Workers in W3's idle pool.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..10_000))]
    latency_workers: u64,

    /// Also run W4: drains with `--w4-jobs` queued, and with `--w4-jobs`
    /// finished rows kept in the table (run once, after the passes).
    #[arg(long)]
    w4: bool,

    /// Jobs queued (and finished rows kept) in W4.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    w4_jobs: u32,

    /// Distinct partition keys in W5 (job `i` has key `i % keys`), each
    /// limited to one job at a time.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    w5_keys: u32,

    /// W5g's queue concurrency limit, meant not to bind (above `--workers`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    w5g_limit: u32,

    /// Jobs of W6's one big key, queued before the small keys' jobs.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    w6_big: u32,

    /// W6's small keys.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..10_000))]
    w6_small_keys: u32,

    /// Jobs per small key in W6.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..100_000))]
    w6_small_jobs: u32,

    /// Tasks dispatching at once in W8, through one Hopper handle (and, for
    /// the raw limit, making single-row inserts).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..10_000))]
    w8_tasks: u32,

    /// Also run W9: the W2 drain by several worker processes at once on one
    /// database (run once, after the passes; PostgreSQL and MySQL only).
    #[arg(long)]
    w9: bool,

    /// W9's counts of worker processes, each with `--workers` workers, drained
    /// against the raw best drain on as many connections (at most 10, the
    /// size of the store's pool those connections come from).
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [1, 2, 3],
        value_parser = clap::value_parser!(u32).range(1..=10)
    )]
    w9_processes: Vec<u32>,

    /// Jobs each W9 drain takes (default: `--jobs`); more makes each
    /// drain long enough to watch the server's and the workers' CPU.
    #[arg(long)]
    w9_jobs: Option<u32>,

    /// Seconds an idle pool's CPU time is measured over.
    #[arg(long, default_value_t = 5.0)]
    idle_secs: f64,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,

    /// Internal: drain the jobs queued at `--database-url` in this process
    /// and print the drain's figures as JSON.
    #[arg(long, hide = true)]
    drain_worker: bool,

    /// Internal: one of W9's worker processes on `--database-url`: say
    /// `ready`, start its pool on `go` (stdin), run jobs until none is
    /// live, and print what it ran as JSON.
    #[arg(long, hide = true)]
    scale_worker: bool,
}

/// Sends Hopper's warnings (a claim that failed, say) to stderr, which the
/// benchmark shows if a worker process fails.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.drain_worker {
        log_to_stderr();
        let Some(url) = args.database_url.as_deref() else {
            bail!("--drain-worker needs --database-url");
        };
        let drain = workloads::drain_worker(url, args.jobs, args.workers as usize).await?;
        println!("{}", serde_json::to_string(&drain)?);
        return Ok(());
    }
    if args.scale_worker {
        log_to_stderr();
        let Some(url) = args.database_url.as_deref() else {
            bail!("--scale-worker needs --database-url");
        };
        let share = scale::worker(url, args.jobs, args.workers as usize).await?;
        println!("{}", serde_json::to_string(&share)?);
        return Ok(());
    }
    if !(args.idle_secs.is_finite() && args.idle_secs > 0.0 && args.idle_secs < 3600.0) {
        bail!("--idle-secs must be above 0 and below 3600");
    }
    let databases = Databases::new(args.database_url.as_deref())?;
    let result = run(&args, &databases).await;
    let cleaned = databases.cleanup().await;
    let report = result?;
    cleaned?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if !report.drain_ok() {
        bail!(
            "a drain did not run every job exactly once: W2 {:?}, W4 {:?}, W5 {:?}, W5g {:?}, W6 {:?}, W9 {:?}",
            report.drain_check,
            report.w4,
            report.w5,
            report.w5g,
            report.w6,
            report.w9
        );
    }
    Ok(())
}

/// Every pass, then W6, the idle pool, W4 and W9.
async fn run(args: &Args, databases: &Databases) -> Result<Report> {
    let mut passes = Vec::new();
    for pass in 1..=args.repeat {
        passes.push(run_pass(args, databases, pass).await?);
    }
    let w6 = w6(args, databases).await?;
    eprintln!("idle pool of {} workers", args.workers);
    let seconds = args.idle_secs;
    let db = databases.fresh("idle").await?;
    let cpu_ms =
        workloads::idle_cpu_ms(&db, args.workers as usize, Duration::from_secs_f64(seconds))
            .await?;
    db.finish().await?;
    eprintln!("  {cpu_ms:.1} ms CPU in {seconds} s");
    let idle = Idle {
        workers: args.workers as usize,
        seconds,
        cpu_ms,
    };
    let w4 = if args.w4 {
        Some(w4(args, databases).await?)
    } else {
        None
    };
    let w9 = if args.w9 {
        Some(w9(args, databases).await?)
    } else {
        None
    };
    Ok(Report::new(
        Setup {
            database: databases.kind().name(),
            jobs: args.jobs,
            workers: args.workers as usize,
            raw_claim_batch: args.raw_claim_batch,
            raw_best: (args.raw_best_batch, args.raw_best_loops),
            latency_samples: args.latency_jobs,
            databases: databases.describe(),
            w4_jobs: args.w4_jobs,
            w5: (args.w5_keys, W5_KEY_LIMIT),
            w5g_limit: args.w5g_limit,
            w8_tasks: args.w8_tasks,
        },
        &passes,
        idle,
        w4,
        w6,
        w9,
    ))
}

/// W9: W2's drain by each of `--w9-processes` worker processes at once,
/// against the raw best drain on as many connections (run once; skipped
/// on SQLite, whose one file has one writer).
async fn w9(args: &Args, dbs: &Databases) -> Result<W9Report> {
    let workers = args.workers as usize;
    let jobs = args.w9_jobs.unwrap_or(args.jobs);
    if dbs.kind() == Kind::Sqlite {
        eprintln!("W9 scale-out skipped on SQLite: one file has one writer");
        return Ok(W9Report::skipped(
            jobs,
            workers,
            "sqlite: one file has one writer",
        ));
    }
    let mut counts = args.w9_processes.clone();
    counts.sort_unstable();
    counts.dedup();
    let mut rows = Vec::new();
    for processes in counts {
        eprintln!(
            "W9 drain, {processes} processes x {workers} workers (raw: {processes} connections)"
        );
        let db = dbs.fresh(&format!("w9-{processes}p")).await?;
        let spread = scale::hopper(&db, jobs, workers, processes).await?;
        db.finish().await?;
        let db = dbs.fresh(&format!("raw-w9-{processes}")).await?;
        let raw = raw::drain(&db, jobs, args.raw_best_batch, processes).await?;
        db.finish().await?;
        eprintln!(
            "  hopper {:.0} jobs/s (runs per process {:?}), raw {raw:.0} jobs/s",
            spread.jobs_per_s, spread.check.ran_per_process
        );
        rows.push(ScaleOut::new(processes, spread, raw));
    }
    Ok(W9Report::new(jobs, workers, args.raw_best_batch, rows))
}

/// W5's per-key limit.
const W5_KEY_LIMIT: u32 = 1;

/// W6: small keys behind one big key's backlog on a fair queue (run once).
async fn w6(args: &Args, dbs: &Databases) -> Result<workloads::Fairness> {
    let shape = FairShape {
        big_jobs: args.w6_big,
        small_keys: args.w6_small_keys,
        small_jobs_per_key: args.w6_small_jobs,
        workers: args.workers as usize,
    };
    eprintln!(
        "W6 fairness: {} keys x {} jobs queued behind {} jobs of one key, fair queue",
        shape.small_keys, shape.small_jobs_per_key, shape.big_jobs
    );
    let db = dbs.fresh("w6-fair").await?;
    let fairness = workloads::fairness(&db, shape).await?;
    db.finish().await?;
    eprintln!(
        "  small-key wait p50 {:.0} ms, p99 {:.0} ms; small keys done in {:.2} s \
         (bound {:.2} s), all in {:.2} s ({:.0} jobs/s)",
        fairness.small_wait_p50_ms,
        fairness.small_wait_p99_ms,
        fairness.small_done_s,
        fairness.fair_bound_s,
        fairness.all_done_s,
        fairness.jobs_per_s
    );
    Ok(fairness)
}

/// W4: a drain of `--w4-jobs` queued, and of `--jobs` behind `--w4-jobs` finished rows.
async fn w4(args: &Args, dbs: &Databases) -> Result<W4> {
    let workers = args.workers as usize;
    eprintln!("W4 drain, {} queued", args.w4_jobs);
    let db = dbs.fresh("w4-queued").await?;
    let queued = workloads::drain(&db, args.w4_jobs, workers, Queued::Filled).await?;
    db.finish().await?;
    eprintln!("  hopper {:.0} jobs/s", queued.jobs_per_s);

    eprintln!(
        "W4 drain, {} queued behind {} finished",
        args.jobs, args.w4_jobs
    );
    let db = dbs.fresh("w4-kept").await?;
    let kept = Queued::BehindFinished { kept: args.w4_jobs };
    let finished_kept = workloads::drain(&db, args.jobs, workers, kept).await?;
    db.finish().await?;
    eprintln!("  hopper {:.0} jobs/s", finished_kept.jobs_per_s);
    Ok(W4 {
        queued,
        finished_kept,
    })
}

/// A drain of `--jobs` queued as `setup` on the fresh database `name`,
/// reported as a ratio to the pass's W2 `drain`.
async fn flow_drain(
    args: &Args,
    dbs: &Databases,
    name: &str,
    setup: Queued,
    drain: &workloads::Drain,
) -> Result<workloads::Drain> {
    let db = dbs.fresh(name).await?;
    let flow = workloads::drain(&db, args.jobs, args.workers as usize, setup).await?;
    db.finish().await?;
    eprintln!(
        "  hopper {:.0} jobs/s, {:.2} of W2",
        flow.jobs_per_s,
        flow.jobs_per_s / drain.jobs_per_s
    );
    Ok(flow)
}

/// One pass over every workload, each on its own fresh database, Hopper and
/// raw SQL interleaved so machine noise hits both alike.
async fn run_pass(args: &Args, dbs: &Databases, pass: u64) -> Result<Pass> {
    let n = args.jobs;
    let step = |what: &str| eprintln!("[pass {pass}/{}] {what}", args.repeat);

    step("W1 enqueue, one per transaction");
    let db = dbs.fresh("w1-one").await?;
    let hopper_one = workloads::enqueue_one(&db, n).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-one").await?;
    let raw_one = raw::insert_one(&db, n).await?;
    db.finish().await?;
    eprintln!("  hopper {hopper_one:.0} jobs/s, raw {raw_one:.0} jobs/s");

    step("W1 enqueue, bulk");
    let db = dbs.fresh("w1-bulk").await?;
    let hopper_bulk = workloads::enqueue_bulk(&db, n).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-bulk").await?;
    let raw_bulk = raw::insert_bulk(&db, n).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-copy").await?;
    let raw_copy = raw::insert_copy(&db, n).await?;
    db.finish().await?;
    eprintln!("  hopper {hopper_bulk:.0} jobs/s, raw {raw_bulk:.0} jobs/s");
    if let Some(raw_copy) = raw_copy {
        eprintln!("  raw COPY {raw_copy:.0} jobs/s");
    }

    step(&format!(
        "W8 concurrent dispatch, {} tasks, one per transaction",
        args.w8_tasks
    ));
    let db = dbs.fresh("w8-concurrent").await?;
    let hopper_concurrent = concurrent::hopper(&db, n, args.w8_tasks, true).await?;
    db.finish().await?;
    let db = dbs.fresh("w8-alone").await?;
    let hopper_alone = concurrent::hopper(&db, n, args.w8_tasks, false).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-concurrent").await?;
    let raw_concurrent = concurrent::raw(&db, n, args.w8_tasks).await?;
    db.finish().await?;
    eprintln!(
        "  hopper {:.0} jobs/s (p50 {:.2} ms, p99 {:.2} ms), without group commit {:.0} jobs/s (p50 {:.2} ms, p99 {:.2} ms), raw {:.0} jobs/s (p50 {:.2} ms, p99 {:.2} ms)",
        hopper_concurrent.jobs_per_s,
        hopper_concurrent.p50_ms,
        hopper_concurrent.p99_ms,
        hopper_alone.jobs_per_s,
        hopper_alone.p50_ms,
        hopper_alone.p99_ms,
        raw_concurrent.jobs_per_s,
        raw_concurrent.p50_ms,
        raw_concurrent.p99_ms
    );

    step("W2 drain");
    let db = dbs.fresh("w2-drain").await?;
    let drain = workloads::drain(&db, n, args.workers as usize, Queued::Dispatched).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-drain").await?;
    let raw_drain = raw::drain(&db, n, args.raw_claim_batch, 1).await?;
    db.finish().await?;
    let db = dbs.fresh("raw-drain-best").await?;
    let raw_drain_best = raw::drain(&db, n, args.raw_best_batch, args.raw_best_loops).await?;
    db.finish().await?;
    eprintln!(
        "  hopper {:.0} jobs/s, raw {raw_drain:.0} jobs/s, raw best {raw_drain_best:.0} jobs/s",
        drain.jobs_per_s
    );

    step("W3 latency");
    let db = dbs.fresh("w3-latency").await?;
    let latency = workloads::latency(
        &db,
        args.latency_jobs,
        Duration::from_millis(args.latency_interval_ms),
        args.latency_workers as usize,
    )
    .await?;
    db.finish().await?;
    eprintln!(
        "  p50 {:.2} ms, p99 {:.2} ms",
        latency.p50_ms, latency.p99_ms
    );

    step("W5 drain, per-key limit");
    let keyed = Queued::Flow {
        keys: Some(args.w5_keys),
        flow: QueueFlow::default().per_key(W5_KEY_LIMIT),
    };
    let flow_per_key = flow_drain(args, dbs, "w5-keyed", keyed, &drain).await?;

    step("W5g drain, global limit not binding");
    let global = Queued::Flow {
        keys: None,
        flow: QueueFlow::default().concurrency(args.w5g_limit),
    };
    let flow_global = flow_drain(args, dbs, "w5g-global", global, &drain).await?;

    step("W7 drain, one batch with an on_success callback");
    let batch = flow_drain(args, dbs, "w7-batch", Queued::Batch, &drain).await?;

    step("W7 drain, one workflow 1 -> n -> 1");
    let workflow = flow_drain(args, dbs, "w7-workflow", Queued::Workflow, &drain).await?;

    Ok(Pass {
        enqueue_one: (hopper_one, raw_one),
        enqueue_bulk: (hopper_bulk, raw_bulk),
        raw_copy,
        concurrent: Concurrent {
            hopper: hopper_concurrent,
            alone: hopper_alone,
            raw: raw_concurrent,
        },
        drain,
        raw_drain,
        raw_drain_best,
        latency,
        flow_per_key,
        flow_global,
        batch,
        workflow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w9_process_counts_are_a_list_of_one_to_ten() -> Result<()> {
        let args = Args::try_parse_from(["hopper-bench"])?;
        assert_eq!(
            (args.w9, args.w9_processes, args.w8_tasks),
            (false, vec![1, 2, 3], 50)
        );
        let args = Args::try_parse_from(["hopper-bench", "--w9", "--w9-processes", "4,1"])?;
        assert_eq!((args.w9, args.w9_processes), (true, vec![4, 1]));
        for wrong in ["0", "11", "1,x"] {
            assert!(Args::try_parse_from(["hopper-bench", "--w9-processes", wrong]).is_err());
        }
        Ok(())
    }
}
