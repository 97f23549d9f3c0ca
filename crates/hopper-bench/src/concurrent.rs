//! W8, concurrent dispatch: many tasks dispatching single jobs at once
//! through one Hopper handle, as the request handlers of a busy web server
//! do, against the same number of tasks making raw single-row inserts on
//! the same store's connections.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::db::FreshDb;
use crate::raw;
use crate::workloads::{NoopJob, percentile_ms, rate};
use hopper::Hopper;

/// What one side of W8 measured.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Dispatches {
    /// Jobs stored per second, from the first task's start until the last
    /// dispatch returned.
    pub jobs_per_s: f64,
    /// Median time one dispatch call took, ms.
    pub p50_ms: f64,
    /// 99th percentile of that time, ms.
    pub p99_ms: f64,
}

/// W8's figures from one pass: Hopper with and without group commit, and
/// the raw inserts.
#[derive(Clone, Copy, Debug)]
pub struct Concurrent {
    /// `Hopper::dispatch` from every task, group commit on (the default):
    /// dispatches made at once share transactions.
    pub hopper: Dispatches,
    /// The same with group commit off: one transaction per dispatch.
    pub alone: Dispatches,
    /// Raw single-row INSERT commits from every task.
    pub raw: Dispatches,
}

/// W8 through Hopper: `tasks` tokio tasks share one `Hopper` handle and
/// dispatch no-op jobs `0..jobs` between them, one awaited `dispatch` at a
/// time each; with `group_commit`, dispatches made at once share
/// transactions, else each is one.
pub async fn hopper(db: &FreshDb, jobs: u32, tasks: u32, group_commit: bool) -> Result<Dispatches> {
    let bench = db.open().await?;
    let handle = Hopper::builder()
        .register(NoopJob::new(0))?
        .group_commit(group_commit)
        .build(bench.store());
    let measured = run_tasks(jobs, tasks, move |index| {
        let handle = handle.clone();
        async move {
            handle.dispatch::<NoopJob>(index).await?;
            Ok(())
        }
    })
    .await;
    let stored = bench.count_live().await;
    bench.close().await;
    let figures = measured?;
    check_stored("Hopper's", stored?, jobs)?;
    Ok(figures)
}

/// W8's raw limit: `tasks` tokio tasks making W1's raw single-row INSERTs
/// of jobs `0..jobs` between them, each committed on its own, on the same
/// store's connections (on SQLite, its one writing connection).
pub async fn raw(db: &FreshDb, jobs: u32, tasks: u32) -> Result<Dispatches> {
    let bench = Arc::new(db.open().await?);
    let shared = Arc::clone(&bench);
    let measured = run_tasks(jobs, tasks, move |index| {
        let bench = Arc::clone(&shared);
        async move { raw::insert_single(&bench, index).await }
    })
    .await;
    let stored = bench.count_live().await;
    bench.close().await;
    let figures = measured?;
    check_stored("the raw", stored?, jobs)?;
    Ok(figures)
}

/// Fails unless `stored` rows are queued, one per job dispatched.
fn check_stored(side: &str, stored: u64, jobs: u32) -> Result<()> {
    if stored != u64::from(jobs) {
        bail!("{side} concurrent dispatch left {stored} jobs queued, not {jobs}");
    }
    Ok(())
}

/// Runs `dispatch` for indexes `0..jobs` from `tasks` tokio tasks at once,
/// task `t` taking indexes `t`, `t + tasks`, `t + 2 * tasks`, … one after
/// another, and times every call and the whole.
async fn run_tasks<F, Fut>(jobs: u32, tasks: u32, dispatch: F) -> Result<Dispatches>
where
    F: Fn(u32) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let tasks = tasks.max(1);
    let start = Instant::now();
    let mut running = JoinSet::new();
    for first in 0..tasks.min(jobs) {
        let dispatch = dispatch.clone();
        running.spawn(async move {
            let mut took = Vec::new();
            for index in (first..jobs).step_by(tasks as usize) {
                let sent = Instant::now();
                dispatch(index).await?;
                took.push(sent.elapsed());
            }
            anyhow::Ok(took)
        });
    }
    let mut took: Vec<Duration> = Vec::with_capacity(jobs as usize);
    while let Some(task) = running.join_next().await {
        took.extend(task??);
    }
    let elapsed = start.elapsed();
    took.sort_unstable();
    Ok(Dispatches {
        jobs_per_s: rate(jobs, elapsed),
        p50_ms: percentile_ms(&took, 0.50),
        p99_ms: percentile_ms(&took, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn every_index_is_dispatched_once_across_tasks() -> Result<()> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let figures = run_tasks(103, 7, move |index| {
            let record = Arc::clone(&record);
            async move {
                record
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(index);
                Ok(())
            }
        })
        .await?;
        let mut seen = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        assert!(figures.jobs_per_s > 0.0);
        Ok(())
    }
}
