//! Short batched chaos runs of the real binary (`--batches`): each paced
//! group of jobs is one batch with a success and a completion callback,
//! under the same damage as `chaos.rs` (worker processes SIGKILLed, the
//! dispatcher killed while it creates a batch, on the servers connection
//! kills, on PostgreSQL one server restart). Besides nothing lost or
//! stuck, the audit must find every batch counting all its jobs finished,
//! and each callback inserted once, finished, and run twice only where a
//! killed process or a failed attempt explains it.
//!
//! A test binary of its own, so its PostgreSQL restart never overlaps
//! another chaos binary's PostgreSQL run. Runs are as short as
//! `chaos_limited.rs`'s (12 s of damage, 2,000 jobs).

mod common;

use common::{MYSQL_URL, POSTGRES_URL, batched_run};

const JOBS: u64 = 2_000;

fn batched(url: &str) -> serde_json::Value {
    batched_run(url, JOBS, "12s", &["--batches"], 10)
}

#[test]
fn sqlite_batches_count_every_job_and_fire_each_callback_once_through_killed_workers() {
    batched("sqlite:");
}

#[test]
fn postgres_batches_count_every_job_and_fire_each_callback_once_through_a_restart() {
    let report = batched(POSTGRES_URL);
    assert_eq!(report["server_restarts"], 1, "{report:#}");
}

#[test]
fn mysql_batches_count_every_job_and_fire_each_callback_once_through_killed_connections() {
    let report = batched(MYSQL_URL);
    assert_eq!(report["backend"], "mysql", "{report:#}");
}
