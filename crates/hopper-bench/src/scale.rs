//! W9, scale-out: W2's drain by several worker processes at once on one
//! database, each a pool of the same size, all draining one queue. Each
//! process runs until the database shows no job pending or started and
//! reports how many handlers it ran; the benchmark checks, across them,
//! that every job finished and ran exactly once.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use hopper::WorkerConfig;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::db::{Bench, FreshDb, Kind};
use crate::usage;
use crate::workloads::{NoopJob, dispatch_all, hopper_on, rate};

/// The line a worker process prints once it is connected and set to start.
const READY: &str = "ready";
/// The line the benchmark sends every worker process to start them at once.
const GO: &str = "go";
/// How long the worker processes may take to connect.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A worker process gives up after this long with neither its own runs
/// nor the database's count of live jobs moving.
const STALL: Duration = Duration::from_secs(30);

/// What one worker process of W9 ran, as it reports it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Share {
    /// Handler runs in this process.
    pub ran: u64,
    /// Payloads this process itself ran more than once.
    pub duplicates: u64,
    /// When its pool started, µs since the Unix epoch.
    pub started_us: i64,
    /// When it saw no job pending or started, µs since the Unix epoch.
    pub ended_us: i64,
    /// Its peak resident memory (VmHWM), MB.
    pub peak_rss_mb: Option<f64>,
}

/// W9's check over every worker process of one drain.
#[derive(Clone, Debug, Serialize)]
pub struct SpreadCheck {
    /// Handler runs per process, in the order they were started.
    pub ran_per_process: Vec<u64>,
    /// Handler runs summed over the processes.
    pub runs: u64,
    /// Rows `finished` after the drain.
    pub finished: u64,
    /// Jobs that did not finish (a no-op job that runs finishes).
    pub lost: u64,
    /// Runs beyond one per finished job, across the processes.
    pub duplicates: u64,
    /// The highest peak resident memory of the worker processes, MB.
    pub worker_peak_rss_mb: Option<f64>,
}

impl SpreadCheck {
    /// The check of a drain of `jobs` that left `finished` rows finished,
    /// from the reports of the processes that drained it.
    fn new(jobs: u32, finished: u64, shares: &[Share]) -> Self {
        let runs: u64 = shares.iter().map(|share| share.ran).sum();
        let own_duplicates: u64 = shares.iter().map(|share| share.duplicates).sum();
        Self {
            ran_per_process: shares.iter().map(|share| share.ran).collect(),
            runs,
            finished,
            lost: u64::from(jobs).saturating_sub(finished),
            duplicates: runs.saturating_sub(finished).max(own_duplicates),
            worker_peak_rss_mb: shares
                .iter()
                .filter_map(|share| share.peak_rss_mb)
                .reduce(f64::max),
        }
    }

    /// Every one of `jobs` finished after exactly one run.
    pub fn ok(&self, jobs: u32) -> bool {
        let jobs = u64::from(jobs);
        self.lost == 0 && self.duplicates == 0 && self.finished == jobs && self.runs == jobs
    }
}

/// One W9 drain by several processes.
#[derive(Clone, Debug)]
pub struct Spread {
    /// Jobs per second, from the first pool's start until the last process
    /// saw no job live.
    pub jobs_per_s: f64,
    /// The check across the processes.
    pub check: SpreadCheck,
}

/// W9 through Hopper: `jobs` no-op jobs queued, then `processes` worker
/// processes, each a pool of `workers`, started together and drained the
/// queue between them.
pub async fn hopper(db: &FreshDb, jobs: u32, workers: usize, processes: u32) -> Result<Spread> {
    let bench = db.open().await?;
    dispatch_all(&bench, jobs).await?;
    bench.close().await;

    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let mut started = Vec::new();
    for _ in 0..processes {
        started.push(Worker::start(&exe, db.url(), jobs, workers)?);
    }
    let ready = futures::future::try_join_all(started.iter_mut().map(Worker::ready));
    tokio::time::timeout(START_TIMEOUT, ready)
        .await
        .map_err(|_| anyhow!("the worker processes did not connect within {START_TIMEOUT:?}"))??;
    // Marks for whoever watches the machine's CPU during the drain.
    eprintln!("  {processes} worker process(es) draining");
    for worker in &mut started {
        worker.go().await?;
    }
    let shares = futures::future::try_join_all(started.into_iter().map(Worker::finish)).await?;
    eprintln!("  drained");

    let bench = db.open().await?;
    let finished = bench.count_finished().await;
    bench.close().await;
    let finished = finished?;

    let first = shares.iter().map(|share| share.started_us).min();
    let last = shares.iter().map(|share| share.ended_us).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => u64::try_from(last - first).unwrap_or(0),
        _ => 0,
    };
    Ok(Spread {
        jobs_per_s: rate(jobs, Duration::from_micros(span)),
        check: SpreadCheck::new(jobs, finished, &shares),
    })
}

/// One worker process of W9, started by the benchmark.
struct Worker {
    process: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Everything the process writes to stderr, once it exits.
    stderr: JoinHandle<String>,
}

impl Worker {
    /// Starts this executable as a worker process on `url`.
    fn start(exe: &Path, url: &str, jobs: u32, workers: usize) -> Result<Self> {
        let mut process = Command::new(exe)
            .args(["--scale-worker", "--database-url", url])
            .args([
                "--jobs",
                &jobs.to_string(),
                "--workers",
                &workers.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a worker process")?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            bail!("a worker process was started without its pipes");
        };
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Ok(Self {
            process,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr,
        })
    }

    /// Waits for the process to say it is connected.
    async fn ready(&mut self) -> Result<()> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).await?;
        if line.trim_end() != READY {
            return Err(self.failed("a worker process did not start").await);
        }
        Ok(())
    }

    /// Tells the process to start its pool.
    async fn go(&mut self) -> Result<()> {
        let Some(mut stdin) = self.stdin.take() else {
            bail!("a worker process was told to start twice");
        };
        stdin.write_all(format!("{GO}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the process to end and reads its report.
    async fn finish(mut self) -> Result<Share> {
        let mut report = String::new();
        self.stdout.read_to_string(&mut report).await?;
        let status = self.process.wait().await?;
        if !status.success() {
            let stderr = self.stderr.await.unwrap_or_default();
            bail!("a worker process failed ({status}): {stderr}");
        }
        serde_json::from_str(&report).context("a worker process printed no report")
    }

    /// Ends the process and describes how it failed.
    async fn failed(&mut self, what: &str) -> anyhow::Error {
        let _ = self.process.start_kill();
        let status = self.process.wait().await;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        let status = status.map_or_else(|e| e.to_string(), |s: ExitStatus| s.to_string());
        anyhow!("{what} ({status}): {stderr}")
    }
}

/// The worker process's side of [`hopper`]: opens `url`, says it is ready,
/// starts a pool of `workers` when told to, and runs jobs (payloads
/// `0..jobs`) until the database shows no job pending or started.
pub async fn worker(url: &str, jobs: u32, workers: usize) -> Result<Share> {
    let bench = Bench::open(Kind::of(url)?, url).await?;
    let job = NoopJob::new(jobs);
    let hopper = hopper_on(&bench, job.clone())?;

    println!("{READY}");
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    if line.trim_end() != GO {
        bail!("expected {GO:?} on stdin, got {line:?}");
    }

    let started_us = Utc::now().timestamp_micros();
    let pool = hopper.start(WorkerConfig::new(workers))?;
    let waited = wait_queue_empty(&pool, &bench, &job).await;
    let ended_us = Utc::now().timestamp_micros();
    pool.stop().await?;
    waited?;
    bench.close().await;

    Ok(Share {
        ran: u64::try_from(job.runs()).unwrap_or(u64::MAX),
        duplicates: job.lost_and_duplicates().1,
        started_us,
        ended_us,
        peak_rss_mb: usage::peak_rss_mb(),
    })
}

/// Waits until `pool` has nothing in flight and the database shows no job
/// pending or started. The database is asked only while the pool is idle,
/// on each claim or written outcome batch and every 5 ms; gives up after
/// [`STALL`] without this process's runs or the live count moving.
async fn wait_queue_empty(pool: &hopper::WorkerPool, bench: &Bench, job: &NoopJob) -> Result<()> {
    let mut activity = pool.activity();
    let (mut seen, mut progress_at) = ((job.runs(), None), Instant::now());
    loop {
        let live = if pool.in_flight() == 0 {
            let live = bench.count_live().await?;
            if live == 0 {
                return Ok(());
            }
            Some(live)
        } else {
            None
        };
        let now = (job.runs(), live.or(seen.1));
        if now != seen {
            (seen, progress_at) = (now, Instant::now());
        } else if progress_at.elapsed() > STALL {
            bail!(
                "drain stalled: {} runs here, {:?} jobs still live, no progress for {STALL:?}",
                now.0,
                now.1
            );
        }
        let _ = tokio::time::timeout(Duration::from_millis(5), activity.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(ran: u64, duplicates: u64) -> Share {
        Share {
            ran,
            duplicates,
            started_us: 0,
            ended_us: 1,
            peak_rss_mb: Some(ran as f64),
        }
    }

    #[test]
    fn runs_and_finished_rows_are_summed_across_processes() {
        let check = SpreadCheck::new(10, 10, &[share(6, 0), share(4, 0)]);
        assert_eq!((check.runs, check.lost, check.duplicates), (10, 0, 0));
        assert_eq!(check.ran_per_process, [6, 4]);
        assert_eq!(check.worker_peak_rss_mb, Some(6.0));
        assert!(check.ok(10));
    }

    #[test]
    fn a_job_run_twice_or_never_finished_fails_the_check() {
        // One job run in both processes.
        let twice = SpreadCheck::new(10, 10, &[share(6, 0), share(5, 0)]);
        assert_eq!(twice.duplicates, 1);
        assert!(!twice.ok(10));
        // One job run twice in one process, another never.
        let swapped = SpreadCheck::new(10, 9, &[share(6, 1), share(4, 0)]);
        assert_eq!((swapped.lost, swapped.duplicates), (1, 1));
        assert!(!swapped.ok(10));
        // One job never finished.
        let lost = SpreadCheck::new(10, 9, &[share(5, 0), share(4, 0)]);
        assert_eq!((lost.lost, lost.duplicates), (1, 0));
        assert!(!lost.ok(10));
    }
}
