//! The workloads run through Hopper's public API: W1 enqueue, W2 drain,
//! W3 latency and W4 growth (DESIGN.md, "Benchmarks"), and the CPU time of
//! an idle pool.

use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hopper::{DispatchOptions, Hopper, Job, JobContext, JobError, JobResult, WorkerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::db::{Bench, FreshDb, Kind};
use crate::raw;
use crate::usage;

/// A job that does nothing but count its runs, per payload index.
#[derive(Clone, Debug)]
pub struct NoopJob {
    runs: Arc<Vec<AtomicU32>>,
    total: Arc<AtomicUsize>,
}

impl NoopJob {
    /// A job counting runs of payloads `0..jobs`.
    fn new(jobs: u32) -> Self {
        Self {
            runs: Arc::new((0..jobs).map(|_| AtomicU32::new(0)).collect()),
            total: Arc::default(),
        }
    }

    /// (never run, run more than once) over payloads `0..jobs`.
    fn lost_and_duplicates(&self) -> (u64, u64) {
        let runs = self.runs.iter().map(|runs| runs.load(Ordering::Relaxed));
        runs.fold((0, 0), |(lost, dup), n| match n {
            0 => (lost + 1, dup),
            1 => (lost, dup),
            _ => (lost, dup + 1),
        })
    }
}

impl Job for NoopJob {
    const TYPE: &'static str = "bench_noop";
    type Payload = u32;

    async fn handle(&self, index: u32, _ctx: JobContext) -> JobResult {
        let runs = self
            .runs
            .get(index as usize)
            .ok_or_else(|| JobError::permanent(format!("index {index} out of range")))?;
        runs.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// A job that reports how long after its dispatch its handler started.
/// The payload is the dispatch time, in nanoseconds since `base`.
#[derive(Clone, Debug)]
struct LatencyJob {
    base: Instant,
    delays: mpsc::UnboundedSender<Duration>,
}

impl Job for LatencyJob {
    const TYPE: &'static str = "bench_latency";
    type Payload = u64;

    async fn handle(&self, sent_nanos: u64, _ctx: JobContext) -> JobResult {
        let delay = self
            .base
            .elapsed()
            .saturating_sub(Duration::from_nanos(sent_nanos));
        // The receiver only goes away once the benchmark has given up waiting.
        let _ = self.delays.send(delay);
        Ok(())
    }
}

/// A Hopper handle over `bench`'s store, with `job` registered.
fn hopper_on<J: Job>(bench: &Bench, job: J) -> Result<Hopper> {
    Ok(Hopper::builder().register(job)?.build(bench.store()))
}

/// Jobs per second for `jobs` done in `elapsed`.
pub fn rate(jobs: u32, elapsed: Duration) -> f64 {
    f64::from(jobs) / elapsed.as_secs_f64().max(1e-9)
}

/// W1, one at a time: `jobs` awaited `Hopper::dispatch` calls, each its own
/// transaction. Returns jobs/s.
pub async fn enqueue_one(db: &FreshDb, jobs: u32) -> Result<f64> {
    let bench = db.open().await?;
    let hopper = hopper_on(&bench, NoopJob::new(0))?;
    let start = Instant::now();
    for index in 0..jobs {
        hopper.dispatch::<NoopJob>(index).await?;
    }
    let elapsed = start.elapsed();
    bench.close().await;
    Ok(rate(jobs, elapsed))
}

/// W1, bulk: the same `jobs` in one `Hopper::dispatch_many` call. Returns jobs/s.
pub async fn enqueue_bulk(db: &FreshDb, jobs: u32) -> Result<f64> {
    let bench = db.open().await?;
    let hopper = hopper_on(&bench, NoopJob::new(0))?;
    let start = Instant::now();
    let ids = hopper
        .dispatch_many::<NoopJob>(0..jobs, DispatchOptions::new())
        .await?;
    let elapsed = start.elapsed();
    bench.close().await;
    if ids.len() != jobs as usize {
        bail!("dispatch_many stored {} of {jobs} jobs", ids.len());
    }
    Ok(rate(jobs, elapsed))
}

/// What a drain measured and checked.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Drain {
    /// Jobs per second, from starting the pool until the database shows
    /// no job pending or started.
    pub jobs_per_s: f64,
    /// Rows that reached `finished` during the drain.
    pub finished: u64,
    /// Jobs whose handler never ran.
    pub lost: u64,
    /// Jobs whose handler ran more than once.
    pub duplicates: u64,
    /// The draining process's peak resident memory (VmHWM), MB.
    pub worker_peak_rss_mb: Option<f64>,
}

/// How the rows a drain works on are put in the table.
#[derive(Clone, Copy, Debug)]
pub enum Setup {
    /// `jobs` queued through `Hopper::dispatch_many`.
    Dispatched,
    /// `jobs` queued with raw multi-row inserts (fast for millions of rows),
    /// then the planner's statistics brought up to date.
    Filled,
    /// `kept` finished rows, statistics updated, then `jobs` queued through
    /// `Hopper::dispatch_many`.
    BehindFinished {
        /// Finished rows kept in the table.
        kept: u32,
    },
}

/// W2 (and W4): `jobs` queued no-op jobs, set up as `setup` says, drained by
/// a pool of `workers` in a child process of its own, so that process's
/// peak memory is the worker's alone.
pub async fn drain(db: &FreshDb, jobs: u32, workers: usize, setup: Setup) -> Result<Drain> {
    let bench = db.open().await?;
    let kept = match setup {
        Setup::Dispatched => {
            dispatch_all(&bench, jobs).await?;
            0
        }
        Setup::Filled => {
            raw::fill(&bench, 0..jobs, "pending").await?;
            bench.analyze().await?;
            0
        }
        Setup::BehindFinished { kept } => {
            raw::fill(&bench, 0..kept, "finished").await?;
            bench.analyze().await?;
            dispatch_all(&bench, jobs).await?;
            u64::from(kept)
        }
    };
    bench.close().await;

    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let output = Command::new(exe)
        .args(["--drain-worker", "--database-url", db.url()])
        .args([
            "--jobs",
            &jobs.to_string(),
            "--workers",
            &workers.to_string(),
        ])
        .output()
        .context("cannot start the draining worker process")?;
    if !output.status.success() {
        bail!(
            "the draining worker process failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut drain: Drain = serde_json::from_slice(&output.stdout)
        .context("the draining worker process printed no report")?;

    let bench = db.open().await?;
    drain.finished = bench.count_finished().await?.saturating_sub(kept);
    bench.close().await;
    Ok(drain)
}

async fn dispatch_all(bench: &Bench, jobs: u32) -> Result<()> {
    let hopper = hopper_on(bench, NoopJob::new(0))?;
    let ids = hopper
        .dispatch_many::<NoopJob>(0..jobs, DispatchOptions::new())
        .await?;
    if ids.len() != jobs as usize {
        bail!("dispatch_many stored {} of {jobs} jobs", ids.len());
    }
    Ok(())
}

/// The draining side of [`drain`], run in the child process: opens `url`,
/// starts a pool of `workers` and waits until the `jobs` queued jobs (payloads
/// `0..jobs`) have all run and none is pending or started.
pub async fn drain_worker(url: &str, jobs: u32, workers: usize) -> Result<Drain> {
    let bench = Bench::open(Kind::of(url)?, url).await?;
    let job = NoopJob::new(jobs);
    let hopper = hopper_on(&bench, job.clone())?;

    let start = Instant::now();
    let pool = hopper.start(WorkerConfig::new(workers))?;
    let waited = wait_all_done(&pool, &bench, &job, jobs).await;
    let elapsed = start.elapsed();
    pool.stop().await?;
    waited?;
    bench.close().await;

    let (lost, duplicates) = job.lost_and_duplicates();
    Ok(Drain {
        jobs_per_s: rate(jobs, elapsed),
        finished: 0,
        lost,
        duplicates,
        worker_peak_rss_mb: usage::peak_rss_mb(),
    })
}

/// Waits until every handler has run and the database shows no job pending
/// or started. Wakes on the pool's activity signal (each claim and each
/// written completion batch), with a 5 ms poll as a safety net; gives up
/// after 30 s without progress.
async fn wait_all_done(
    pool: &hopper::WorkerPool,
    bench: &Bench,
    job: &NoopJob,
    jobs: u32,
) -> Result<()> {
    const STALL: Duration = Duration::from_secs(30);
    let mut activity = pool.activity();
    let (mut seen, mut progress_at) = (0, Instant::now());
    loop {
        let ran = job.total.load(Ordering::Acquire);
        if ran >= jobs as usize && pool.in_flight() == 0 && bench.count_live().await? == 0 {
            return Ok(());
        }
        if ran != seen {
            (seen, progress_at) = (ran, Instant::now());
        } else if progress_at.elapsed() > STALL {
            let live = bench.count_live().await?;
            bail!("drain stalled: {ran} of {jobs} runs, {live} jobs still live, no progress for {STALL:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(5), activity.changed()).await;
    }
}

/// W3's measured delays from dispatch to handler start.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
}

/// W3: an idle pool of `workers`; `samples` jobs dispatched `interval` apart.
pub async fn latency(
    db: &FreshDb,
    samples: u32,
    interval: Duration,
    workers: usize,
) -> Result<Latency> {
    let (sender, mut delays) = mpsc::unbounded_channel();
    let base = Instant::now();
    let job = LatencyJob {
        base,
        delays: sender,
    };
    let bench = db.open().await?;
    let hopper = hopper_on(&bench, job)?;
    let pool = hopper.start(WorkerConfig::new(workers))?;

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; spend one interval letting the pool go idle.
    ticker.tick().await;
    ticker.tick().await;
    for _ in 0..samples {
        ticker.tick().await;
        let sent = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        hopper.dispatch::<LatencyJob>(sent).await?;
    }
    let mut measured = Vec::with_capacity(samples as usize);
    while measured.len() < samples as usize {
        match tokio::time::timeout(Duration::from_secs(30), delays.recv()).await {
            Ok(Some(delay)) => measured.push(delay),
            _ => break,
        }
    }
    pool.stop().await?;
    bench.close().await;
    if measured.len() < samples as usize {
        bail!("only {} of {samples} latency jobs ran", measured.len());
    }
    measured.sort_unstable();
    Ok(Latency {
        p50_ms: percentile_ms(&measured, 0.50),
        p99_ms: percentile_ms(&measured, 0.99),
    })
}

/// The CPU time (user + system, ms) this process spends over `period`
/// while a started pool of `workers` has nothing to do.
pub async fn idle_cpu_ms(db: &FreshDb, workers: usize, period: Duration) -> Result<f64> {
    let bench = db.open().await?;
    let hopper = hopper_on(&bench, NoopJob::new(0))?;
    let pool = hopper.start(WorkerConfig::new(workers))?;
    // Let start-up work (first claims, the listener's connection) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = usage::cpu_time()?;
    tokio::time::sleep(period).await;
    let used = usage::cpu_time()?.saturating_sub(before);
    pool.stop().await?;
    bench.close().await;
    Ok(used.as_secs_f64() * 1e3)
}

/// The nearest-rank `p` percentile of sorted, non-empty `values`, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let value = sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or_default();
    value.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&values, 0.50), 50.0);
        assert_eq!(percentile_ms(&values, 0.99), 99.0);
        assert_eq!(percentile_ms(&values[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn runs_are_checked_per_payload() {
        let job = NoopJob::new(3);
        job.runs[0].fetch_add(1, Ordering::Relaxed);
        job.runs[1].fetch_add(2, Ordering::Relaxed);
        assert_eq!(job.lost_and_duplicates(), (1, 1));
    }
}
