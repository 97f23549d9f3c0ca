//! The workloads run through Hopper's public API: W1 enqueue, W2 drain,
//! W3 latency and W4 growth (DESIGN.md, "Benchmarks"), W5 drains of
//! flow-controlled queues, W6 fairness between keys, and the CPU time of
//! an idle pool.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hopper::store::QueueFlow;
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
    pub fn new(jobs: u32) -> Self {
        Self {
            runs: Arc::new((0..jobs).map(|_| AtomicU32::new(0)).collect()),
            total: Arc::default(),
        }
    }

    /// (never run, run more than once) over payloads `0..jobs`.
    pub fn lost_and_duplicates(&self) -> (u64, u64) {
        lost_and_duplicates(&self.runs)
    }

    /// Handler runs so far, every payload's counted.
    pub fn runs(&self) -> usize {
        self.total.load(Ordering::Acquire)
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
pub fn hopper_on<J: Job>(bench: &Bench, job: J) -> Result<Hopper> {
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
    /// The default queue given `flow`, then `jobs` queued through one
    /// store insert; with `keys`, job `i` has partition key `key:<i % keys>`.
    Flow {
        /// Distinct partition keys (`None`: jobs without a key).
        keys: Option<u32>,
        /// The queue's flow settings.
        flow: QueueFlow,
    },
    /// One batch of `jobs - 1` jobs with an `on_success` callback, the
    /// `jobs`-th job, which runs only once all the others finished.
    Batch,
    /// One workflow: job 0, then `jobs - 2` jobs after it, then the last
    /// job after all of those (1 → n → 1).
    Workflow,
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
        Setup::Flow { keys, flow } => {
            dispatch_flow(&bench, jobs, keys, flow).await?;
            0
        }
        Setup::Batch => {
            dispatch_batch(&bench, jobs).await?;
            0
        }
        Setup::Workflow => {
            dispatch_workflow(&bench, jobs).await?;
            0
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

/// Queues no-op jobs `0..jobs` through one `Hopper::dispatch_many` call.
pub async fn dispatch_all(bench: &Bench, jobs: u32) -> Result<()> {
    let hopper = hopper_on(bench, NoopJob::new(0))?;
    let ids = hopper
        .dispatch_many::<NoopJob>(0..jobs, DispatchOptions::new())
        .await?;
    if ids.len() != jobs as usize {
        bail!("dispatch_many stored {} of {jobs} jobs", ids.len());
    }
    Ok(())
}

/// Creates one batch of jobs `0..jobs - 1` whose `on_success` callback is
/// job `jobs - 1`: the drain's last job runs only once the batch succeeded.
async fn dispatch_batch(bench: &Bench, jobs: u32) -> Result<()> {
    let hopper = hopper_on(bench, NoopJob::new(0))?;
    let last = jobs.saturating_sub(1);
    let batch = hopper
        .batch("w7")
        .on_success::<NoopJob>(last)?
        .dispatch_many::<NoopJob>(0..last, DispatchOptions::new())
        .await?;
    if batch.jobs.len() != last as usize {
        bail!("the batch stored {} of {last} jobs", batch.jobs.len());
    }
    Ok(())
}

/// Creates one workflow of no-op jobs: job 0, then jobs `1..jobs - 1`
/// each after it, then job `jobs - 1` after all of those.
async fn dispatch_workflow(bench: &Bench, jobs: u32) -> Result<()> {
    let hopper = hopper_on(bench, NoopJob::new(0))?;
    let job = |index: u32| hopper.prepare::<NoopJob>(index, DispatchOptions::new());
    let last = jobs.saturating_sub(1);
    let middle: Vec<String> = (1..last).map(|index| index.to_string()).collect();
    let mut workflow = hopper.workflow("w7").step(&[], false, "0", job(0)?)?;
    for (index, name) in (1..last).zip(&middle) {
        workflow = workflow.step(&["0"], false, name, job(index)?)?;
    }
    let after: Vec<&str> = middle.iter().map(String::as_str).collect();
    let created = workflow
        .step(&after, false, &last.to_string(), job(last)?)?
        .dispatch()
        .await?;
    if created.jobs.len() != jobs as usize {
        bail!("the workflow stored {} of {jobs} jobs", created.jobs.len());
    }
    Ok(())
}

/// Sets the default queue's `flow`, then queues `jobs` no-op jobs in one
/// insert, job `i` keyed `key:<i % keys>` when `keys` is given.
async fn dispatch_flow(bench: &Bench, jobs: u32, keys: Option<u32>, flow: QueueFlow) -> Result<()> {
    let hopper = hopper_on(bench, NoopJob::new(0))?;
    hopper.set_queue_flow(hopper::DEFAULT_QUEUE, flow).await?;
    let rows = (0..jobs)
        .map(|index| {
            let options = match keys {
                Some(keys) => DispatchOptions::new().partition(format!("key:{}", index % keys)),
                None => DispatchOptions::new(),
            };
            hopper.prepare::<NoopJob>(index, options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids = bench.store().insert(&rows).await?;
    if ids.len() != jobs as usize {
        bail!("the insert stored {} of {jobs} jobs", ids.len());
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
    let waited = wait_all_done(&pool, &bench, || job.runs(), jobs).await;
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

/// Waits until `jobs` handlers have run (as `runs` counts them) and the database shows no job pending
/// or started. Wakes on the pool's activity signal (each claim and each
/// written completion batch), with a 5 ms poll as a safety net; gives up
/// after 30 s without progress.
async fn wait_all_done(
    pool: &hopper::WorkerPool,
    bench: &Bench,
    runs: impl Fn() -> usize,
    jobs: u32,
) -> Result<()> {
    const STALL: Duration = Duration::from_secs(30);
    let mut activity = pool.activity();
    let (mut seen, mut progress_at) = (0, Instant::now());
    loop {
        let ran = runs();
        if ran >= jobs as usize && pool.in_flight() == 0 && bench.count_live().await? == 0 {
            return Ok(());
        }
        if ran != seen {
            (seen, progress_at) = (ran, Instant::now());
        } else if progress_at.elapsed() > STALL {
            let live = bench.count_live().await?;
            bail!(
                "drain stalled: {ran} of {jobs} runs, {live} jobs still live, no progress for {STALL:?}"
            );
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

/// A job that notes, per payload index, how often its handler ran and when
/// (nanoseconds since `base`, plus one, so 0 means never) it first started
/// and last ended.
#[derive(Clone, Debug)]
struct StampJob {
    base: Instant,
    runs: Arc<Vec<AtomicU32>>,
    started: Arc<Vec<AtomicU64>>,
    ended: Arc<Vec<AtomicU64>>,
    total: Arc<AtomicUsize>,
}

impl StampJob {
    fn new(jobs: u32, base: Instant) -> Self {
        let zeros = |_| AtomicU64::new(0);
        Self {
            base,
            runs: Arc::new((0..jobs).map(|_| AtomicU32::new(0)).collect()),
            started: Arc::new((0..jobs).map(zeros).collect()),
            ended: Arc::new((0..jobs).map(zeros).collect()),
            total: Arc::default(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// When payload `index` first started and last ended, if it ran.
    fn times(&self, index: usize) -> Option<(Duration, Duration)> {
        let started = self.started[index].load(Ordering::Relaxed);
        let ended = self.ended[index].load(Ordering::Relaxed);
        (started > 0 && ended > 0).then(|| {
            (
                Duration::from_nanos(started - 1),
                Duration::from_nanos(ended - 1),
            )
        })
    }
}

impl Job for StampJob {
    const TYPE: &'static str = "bench_stamp";
    type Payload = u32;

    async fn handle(&self, index: u32, _ctx: JobContext) -> JobResult {
        let index = index as usize;
        let (Some(runs), Some(started), Some(ended)) = (
            self.runs.get(index),
            self.started.get(index),
            self.ended.get(index),
        ) else {
            return Err(JobError::permanent(format!("index {index} out of range")));
        };
        let _ = started.compare_exchange(0, self.now(), Ordering::Relaxed, Ordering::Relaxed);
        runs.fetch_add(1, Ordering::Relaxed);
        ended.store(self.now(), Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// W6's shape: one big key's backlog queued before a few small keys' jobs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FairShape {
    /// Jobs of the one big key, queued first.
    pub big_jobs: u32,
    /// Small keys, whose jobs are queued after the big key's.
    pub small_keys: u32,
    /// Jobs per small key.
    pub small_jobs_per_key: u32,
    /// Workers in the pool.
    pub workers: usize,
}

/// What W6 measured and checked.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Fairness {
    /// The workload.
    #[serde(flatten)]
    pub shape: FairShape,
    /// Median wait of the small keys' jobs, from their dispatch (just
    /// before the pool started) to their handler starting, ms.
    pub small_wait_p50_ms: f64,
    /// 99th percentile of that wait, ms.
    pub small_wait_p99_ms: f64,
    /// From the pool's start until the last small-key job's handler
    /// ended, s.
    pub small_done_s: f64,
    /// From the pool's start until every job had run and none was pending
    /// or started in the database, s.
    pub all_done_s: f64,
    /// The whole drain's rate, jobs/s.
    pub jobs_per_s: f64,
    /// How long the pool needs, at `jobs_per_s`, for twice the small keys'
    /// jobs: the goal for `small_done_s`, s.
    pub fair_bound_s: f64,
    /// `small_done_s / fair_bound_s` (at most 1: the small keys were not
    /// held behind the big key's backlog).
    pub small_done_vs_bound: f64,
    /// Big-key jobs whose handler started before the last small-key job
    /// ended (strictly oldest first: all of them).
    pub big_jobs_before_small_done: u64,
    /// Rows `finished` after the drain.
    pub finished: u64,
    /// Jobs whose handler never ran.
    pub lost: u64,
    /// Jobs whose handler ran more than once.
    pub duplicates: u64,
}

impl Fairness {
    /// Every job ran exactly once and ended `finished`.
    pub fn ok(&self) -> bool {
        let jobs = u64::from(self.shape.big_jobs)
            + u64::from(self.shape.small_keys) * u64::from(self.shape.small_jobs_per_key);
        self.lost == 0 && self.duplicates == 0 && self.finished == jobs
    }
}

/// Rows inserted per statement when queuing W6's big key.
const FAIR_CHUNK: u32 = 10_000;

/// W6: the default queue set `fair()`; `shape.big_jobs` jobs of key `big`
/// queued, then `shape.small_jobs_per_key` jobs of each of
/// `shape.small_keys` keys (key by key), then a pool of `shape.workers`
/// started in this process drains them all.
pub async fn fairness(db: &FreshDb, shape: FairShape) -> Result<Fairness> {
    let small = shape.small_keys * shape.small_jobs_per_key;
    let jobs = shape.big_jobs + small;
    let base = Instant::now();
    let job = StampJob::new(jobs, base);
    let bench = db.open().await?;
    let hopper = hopper_on(&bench, job.clone())?;
    hopper
        .set_queue_flow(hopper::DEFAULT_QUEUE, QueueFlow::default().fair())
        .await?;
    let mut next = 0;
    while next < shape.big_jobs {
        let end = (next + FAIR_CHUNK).min(shape.big_jobs);
        hopper
            .dispatch_many::<StampJob>(next..end, DispatchOptions::new().partition("big"))
            .await?;
        next = end;
    }
    let small_rows = (0..small)
        .map(|n| {
            let key = format!("small:{}", n / shape.small_jobs_per_key);
            hopper.prepare::<StampJob>(shape.big_jobs + n, DispatchOptions::new().partition(key))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sent = base.elapsed();
    let ids = bench.store().insert(&small_rows).await?;
    if ids.len() != small as usize {
        bail!("the insert stored {} of {small} small-key jobs", ids.len());
    }

    let start = base.elapsed();
    let pool = hopper.start(WorkerConfig::new(shape.workers))?;
    let waited = wait_all_done(&pool, &bench, || job.total.load(Ordering::Acquire), jobs).await;
    let all_done = base.elapsed() - start;
    pool.stop().await?;
    waited?;
    let finished = bench.count_finished().await?;
    bench.close().await;

    let small_times: Vec<(Duration, Duration)> = (shape.big_jobs..jobs)
        .filter_map(|index| job.times(index as usize))
        .collect();
    let mut waits: Vec<Duration> = small_times
        .iter()
        .map(|(started, _)| started.saturating_sub(sent))
        .collect();
    waits.sort_unstable();
    let small_done_at = small_times
        .iter()
        .map(|(_, ended)| *ended)
        .max()
        .unwrap_or_default();
    let big_before = (0..shape.big_jobs)
        .filter_map(|index| job.times(index as usize))
        .filter(|(started, _)| *started < small_done_at)
        .count() as u64;
    let (lost, duplicates) = lost_and_duplicates(&job.runs);
    let jobs_per_s = rate(jobs, all_done);
    let small_done_s = small_done_at.saturating_sub(start).as_secs_f64();
    let fair_bound_s = 2.0 * f64::from(small) / jobs_per_s;
    Ok(Fairness {
        shape,
        small_wait_p50_ms: percentile_ms(&waits, 0.50),
        small_wait_p99_ms: percentile_ms(&waits, 0.99),
        small_done_s,
        all_done_s: all_done.as_secs_f64(),
        jobs_per_s,
        fair_bound_s,
        small_done_vs_bound: small_done_s / fair_bound_s,
        big_jobs_before_small_done: big_before,
        finished,
        lost,
        duplicates,
    })
}

/// (never run, run more than once) over per-payload run counts.
fn lost_and_duplicates(runs: &[AtomicU32]) -> (u64, u64) {
    let runs = runs.iter().map(|runs| runs.load(Ordering::Relaxed));
    runs.fold((0, 0), |(lost, dup), n| match n {
        0 => (lost + 1, dup),
        1 => (lost, dup),
        _ => (lost, dup + 1),
    })
}

/// The nearest-rank `p` percentile of sorted, non-empty `values`, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
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
