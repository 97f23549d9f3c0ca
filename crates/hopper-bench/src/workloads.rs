//! The workloads run through Hopper's public API: W1 enqueue, W2 drain and
//! W3 latency (DESIGN.md, "Benchmarks").

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hopper::store::sqlite::SqliteStore;
use hopper::{DispatchOptions, Hopper, Job, JobContext, JobError, JobResult, WorkerConfig};
use tokio::sync::mpsc;

use crate::db::{close, FreshDb};

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

/// A Hopper handle over a fresh store, with `job` registered. The store is
/// returned too, so its pools can be closed and the rows counted.
async fn hopper_on<J: Job>(db: &FreshDb, job: J) -> Result<(Hopper, SqliteStore)> {
    let store = db.open().await?;
    let hopper = Hopper::builder()
        .register(job)?
        .build(Arc::new(store.clone()));
    Ok((hopper, store))
}

/// Jobs per second for `jobs` done in `elapsed`.
pub fn rate(jobs: u32, elapsed: Duration) -> f64 {
    f64::from(jobs) / elapsed.as_secs_f64().max(1e-9)
}

/// W1, one at a time: `jobs` awaited `Hopper::dispatch` calls, each its own
/// transaction. Returns jobs/s.
pub async fn enqueue_one(db: &FreshDb, jobs: u32) -> Result<f64> {
    let (hopper, store) = hopper_on(db, NoopJob::new(0)).await?;
    let start = Instant::now();
    for index in 0..jobs {
        hopper.dispatch::<NoopJob>(index).await?;
    }
    let elapsed = start.elapsed();
    close(&store).await;
    Ok(rate(jobs, elapsed))
}

/// W1, bulk: the same `jobs` in one `Hopper::dispatch_many` call. Returns jobs/s.
pub async fn enqueue_bulk(db: &FreshDb, jobs: u32) -> Result<f64> {
    let (hopper, store) = hopper_on(db, NoopJob::new(0)).await?;
    let start = Instant::now();
    let ids = hopper
        .dispatch_many::<NoopJob>(0..jobs, DispatchOptions::new())
        .await?;
    let elapsed = start.elapsed();
    close(&store).await;
    if ids.len() != jobs as usize {
        bail!("dispatch_many stored {} of {jobs} jobs", ids.len());
    }
    Ok(rate(jobs, elapsed))
}

/// What W2 measured and checked.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    /// Jobs per second, from starting the pool until the database shows every job finished.
    pub jobs_per_s: f64,
    /// Rows in state `finished` afterwards.
    pub finished: u64,
    /// Jobs whose handler never ran.
    pub lost: u64,
    /// Jobs whose handler ran more than once.
    pub duplicates: u64,
}

/// W2: `jobs` queued no-op jobs drained by a pool of `workers`.
pub async fn drain(db: &FreshDb, jobs: u32, workers: usize) -> Result<Drain> {
    let job = NoopJob::new(jobs);
    let (hopper, store) = hopper_on(db, job.clone()).await?;
    hopper
        .dispatch_many::<NoopJob>(0..jobs, DispatchOptions::new())
        .await?;

    let start = Instant::now();
    let pool = hopper.start(WorkerConfig::new(workers))?;
    let waited = wait_all_finished(&pool, &store, &job, jobs).await;
    let elapsed = start.elapsed();
    pool.stop().await?;
    waited?;

    let finished = count_finished(&store).await?;
    close(&store).await;
    let runs = job.runs.iter().map(|runs| runs.load(Ordering::Relaxed));
    let (lost, duplicates) = runs.fold((0, 0), |(lost, dup), n| match n {
        0 => (lost + 1, dup),
        1 => (lost, dup),
        _ => (lost, dup + 1),
    });
    Ok(Drain {
        jobs_per_s: rate(jobs, elapsed),
        finished,
        lost,
        duplicates,
    })
}

/// Waits until every handler has run and the database shows `jobs` rows
/// finished. Wakes on the pool's activity signal (each claim and each
/// written completion batch), with a 5 ms poll as a safety net; gives up
/// after 30 s without progress.
async fn wait_all_finished(
    pool: &hopper::WorkerPool,
    store: &SqliteStore,
    job: &NoopJob,
    jobs: u32,
) -> Result<()> {
    const STALL: Duration = Duration::from_secs(30);
    let mut activity = pool.activity();
    let (mut seen, mut progress_at) = (0, Instant::now());
    loop {
        let ran = job.total.load(Ordering::Acquire);
        if ran >= jobs as usize && pool.in_flight() == 0 {
            let finished = count_finished(store).await?;
            if finished >= u64::from(jobs) {
                return Ok(());
            }
        }
        if ran != seen {
            (seen, progress_at) = (ran, Instant::now());
        } else if progress_at.elapsed() > STALL {
            let finished = count_finished(store).await?;
            bail!("drain stalled: {ran} runs, {finished} of {jobs} jobs finished, no progress for {STALL:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(5), activity.changed()).await;
    }
}

async fn count_finished(store: &SqliteStore) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'finished'")
        .fetch_one(store.reader())
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
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
    let (hopper, store) = hopper_on(db, job).await?;
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
    close(&store).await;
    if measured.len() < samples as usize {
        bail!("only {} of {samples} latency jobs ran", measured.len());
    }
    measured.sort_unstable();
    Ok(Latency {
        p50_ms: percentile_ms(&measured, 0.50),
        p99_ms: percentile_ms(&measured, 0.99),
    })
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
}
