//! What the processes the controller starts do: a worker pool that runs
//! chaos jobs until its stdin closes (optionally on a host clock that runs
//! ahead, see [`OffsetClock`]), and a dispatcher that writes the run's jobs
//! in paced batches.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use hopper::clock::OffsetClock;
use hopper::{DispatchOptions, Hopper, WorkerConfig};
use tokio::io::AsyncReadExt;

use crate::db;
use crate::job::{ChaosCallback, ChaosJob, Recorder};

/// Settings of one worker process.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The run's database.
    #[arg(long)]
    pub database_url: String,
    /// This process's worker id.
    #[arg(long)]
    pub id: String,
    /// Jobs run at the same time.
    #[arg(long)]
    pub concurrency: usize,
    /// The lease on a claimed job, in milliseconds.
    #[arg(long)]
    pub lease_ms: u64,
    /// How often the leading pool looks for expired leases, in milliseconds.
    #[arg(long)]
    pub rescue_ms: u64,
    /// The most milliseconds one run works.
    #[arg(long)]
    pub max_work_ms: u64,
    /// How many milliseconds this process's clock runs ahead of the real
    /// one (0: the system clock). Leases, their renewal and rescue must go
    /// by the database's clock, so a skewed host must not cost a job.
    #[arg(long, default_value_t = 0)]
    pub clock_ahead_ms: u64,
}

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs a worker pool until stdin closes, then stops it gracefully.
pub async fn worker(args: WorkerArgs) -> Result<()> {
    init_logs();
    let (store, db) = db::open(&args.database_url).await?;
    let mut builder = Hopper::builder()
        .register(ChaosJob)?
        .register(ChaosCallback)?
        .state(Recorder {
            db,
            worker: args.id.clone(),
            max_work_ms: args.max_work_ms,
        });
    if args.clock_ahead_ms > 0 {
        builder = builder.clock(OffsetClock::ahead(Duration::from_millis(
            args.clock_ahead_ms,
        )));
    }
    let hopper = builder.build(store);
    let pool = hopper.start(
        WorkerConfig::new(args.concurrency)
            .worker_id(&args.id)
            .lease(Duration::from_millis(args.lease_ms))
            .rescue_interval(Duration::from_millis(args.rescue_ms))
            .poll_interval(Duration::from_millis(100))
            .shutdown_timeout(Duration::from_secs(10))
            .prune_interval(None),
    )?;
    // The controller closes stdin to stop this process (and so does its death).
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    pool.stop().await?;
    Ok(())
}

/// Settings of the dispatcher process.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// The run's database.
    #[arg(long)]
    pub database_url: String,
    /// The first sequence number to dispatch.
    #[arg(long)]
    pub from: u64,
    /// One past the last sequence number.
    #[arg(long)]
    pub to: u64,
    /// When the run started, in milliseconds since the Unix epoch.
    #[arg(long)]
    pub epoch_ms: i64,
    /// Microseconds between two jobs' due times: job `n` is dispatched once
    /// `epoch + n * pace` has passed.
    #[arg(long)]
    pub pace_us: u64,
    /// How long each batch's transaction stays open after its rows are written.
    #[arg(long)]
    pub hold_ms: u64,
    /// Partition keys the jobs are spread over: job `n` gets key
    /// `key:<n % keys>` (0: no keys).
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Dispatch each batch of jobs as a Hopper batch with a success and a
    /// completion callback.
    #[arg(long)]
    pub batches: bool,
    /// Dispatch each batch of jobs as a workflow (1 → n → 1) with the same
    /// two callbacks.
    #[arg(long)]
    pub workflows: bool,
    /// Exactly this many jobs in each batch: the groups of [`group_end`],
    /// each dispatched once its last job is due (none: whatever became due,
    /// up to [`MAX_BATCH`]).
    #[arg(long)]
    pub group_size: Option<u64>,
}

/// Sequence numbers `seqs` as `dispatch_many` calls: one without options,
/// or with `keys` one per key (`key:<seq % keys>`) present in the batch.
pub fn groups(seqs: std::ops::Range<u64>, keys: u64) -> Vec<(DispatchOptions, Vec<u64>)> {
    if keys == 0 {
        return vec![(DispatchOptions::new(), seqs.collect())];
    }
    let mut by_key: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for seq in seqs {
        by_key.entry(seq % keys).or_default().push(seq);
    }
    by_key
        .into_iter()
        .map(|(key, seqs)| (DispatchOptions::new().partition(format!("key:{key}")), seqs))
        .collect()
}

/// The name of the batch holding jobs `first..end` (the audit reads it back).
pub fn batch_name(first: u64, end: u64) -> String {
    format!("chaos {first} {end}")
}

/// The events each batch of a batched run has a callback for.
pub const BATCH_EVENTS: [&str; 2] = ["success", "complete"];

/// Creates one batch of chaos jobs `first..end`, sealed, with a success and
/// a completion callback, in one transaction.
async fn dispatch_batch(hopper: &Hopper, first: u64, end: u64, keys: u64) -> Result<()> {
    let jobs = groups(first..end, keys)
        .into_iter()
        .flat_map(|(options, seqs)| {
            seqs.into_iter()
                .map(move |seq| hopper.prepare::<ChaosJob>(seq, options.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let [success, complete] = BATCH_EVENTS.map(|event| (first, end, event.to_owned()));
    hopper
        .batch(batch_name(first, end))
        .on_success::<ChaosCallback>(success)?
        .on_complete::<ChaosCallback>(complete)?
        .dispatch_jobs(jobs)
        .await?;
    Ok(())
}

/// Creates one workflow of chaos jobs `first..end` with a success and a
/// completion callback, in one transaction: job `first`, then the jobs
/// between each after it, then job `end - 1` after all of those (1 → n → 1;
/// a group of one or two jobs is a chain).
async fn dispatch_workflow(hopper: &Hopper, first: u64, end: u64) -> Result<()> {
    let [success, complete] = BATCH_EVENTS.map(|event| (first, end, event.to_owned()));
    let mut workflow = hopper
        .workflow(batch_name(first, end))
        .on::<ChaosCallback>(hopper::store::BatchEvent::Success, success)?
        .on::<ChaosCallback>(hopper::store::BatchEvent::Complete, complete)?;
    let names: Vec<String> = (first..end).map(|seq| seq.to_string()).collect();
    let last = end.saturating_sub(1);
    let root = first.to_string();
    for (seq, name) in (first..end).zip(&names) {
        let after: Vec<&str> = if seq == first {
            Vec::new()
        } else if seq == last && last > first + 1 {
            names[1..names.len() - 1]
                .iter()
                .map(String::as_str)
                .collect()
        } else {
            vec![root.as_str()]
        };
        workflow = workflow.add_after::<ChaosJob>(&after, name, seq)?;
    }
    workflow.dispatch().await?;
    Ok(())
}

/// One past the last job of the fixed-size group holding job `seq`, in a
/// run of jobs `0..to` cut into groups of `size`: group `k` is jobs
/// `k·size..(k+1)·size`, the last one ending at `to`. The groups are
/// aligned on sequence numbers, not on where a dispatcher started, so one
/// restarted where the stored jobs end (always a group's end, since each
/// group is stored in one transaction) writes the same groups.
pub fn group_end(seq: u64, size: u64, to: u64) -> u64 {
    let size = size.max(1);
    (seq / size).saturating_add(1).saturating_mul(size).min(to)
}

const TICK: Duration = Duration::from_millis(250);
/// The most jobs in one batch of what became due (no fixed group size).
const MAX_BATCH: u64 = 2_000;

/// Dispatches jobs `from..to` in batches, each in one transaction, paced
/// over the run: each batch holds the jobs that became due since the last
/// one (at most [`MAX_BATCH`]), or with a group size the next fixed-size
/// group ([`group_end`]) once all its jobs are due. Before a batch's
/// transaction commits it prints `written <first> <end>`, and after it
/// `committed <end>`: the controller kills this process between the two.
/// Any database error ends the process with an error; the controller
/// starts another where the stored jobs end.
pub async fn dispatch(args: DispatchArgs) -> Result<()> {
    init_logs();
    let (store, db) = db::open(&args.database_url).await?;
    let hopper = Hopper::builder()
        .register(ChaosJob)?
        .register(ChaosCallback)?
        .build(store);
    let pace = args.pace_us.max(1);
    let mut next = args.from;
    let mut stdout = std::io::stdout();
    while next < args.to {
        let elapsed_us = u64::try_from(
            (chrono::Utc::now().timestamp_millis() - args.epoch_ms).saturating_mul(1_000),
        )
        .unwrap_or(0);
        let due = (elapsed_us / pace + 1).min(args.to);
        let end = match args.group_size {
            Some(size) => group_end(next, size, args.to),
            None => due.min(next + MAX_BATCH),
        };
        if end <= next || due < end {
            tokio::time::sleep(TICK).await;
            continue;
        }
        let first = next;
        if args.batches || args.workflows {
            // A batch is created in a transaction of its own: the kill
            // that follows "written" lands before or inside it.
            let _ = writeln!(stdout, "written {first} {end}");
            let _ = stdout.flush();
            let dispatched = if args.workflows {
                dispatch_workflow(&hopper, first, end).await
            } else {
                dispatch_batch(&hopper, first, end, args.keys).await
            };
            dispatched.with_context(|| format!("dispatching the batch of jobs {first}..{end}"))?;
            writeln!(stdout, "committed {end}")?;
            stdout.flush()?;
            next = end;
            if next < args.to {
                tokio::time::sleep(TICK).await;
            }
            continue;
        }
        db.dispatch_held::<ChaosJob>(
            &hopper,
            groups(next..end, args.keys),
            Duration::from_millis(args.hold_ms),
            || {
                let _ = writeln!(stdout, "written {first} {end}");
                let _ = stdout.flush();
            },
        )
        .await
        .with_context(|| format!("dispatching jobs {first}..{end}"))?;
        writeln!(stdout, "committed {end}")?;
        stdout.flush()?;
        next = end;
        if next < args.to {
            tokio::time::sleep(TICK).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_groups_are_aligned_on_sequence_numbers_and_the_last_is_cut_at_the_end() {
        assert_eq!(group_end(0, 1_000, 3_000), 1_000);
        assert_eq!(group_end(999, 1_000, 3_000), 1_000);
        assert_eq!(group_end(1_000, 1_000, 3_000), 2_000);
        // A dispatcher started inside a group finishes that group only.
        assert_eq!(group_end(1_500, 1_000, 3_000), 2_000);
        assert_eq!(group_end(2_000, 1_000, 2_500), 2_500);
        assert_eq!(group_end(7, 1, 10), 8);
        assert_eq!(group_end(u64::MAX - 1, 1_000, u64::MAX), u64::MAX);
    }
}
