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

use common::{MYSQL_URL, POSTGRES_URL, figure, run_chaos};

const JOBS: u64 = 2_000;

fn batched(url: &str) -> serde_json::Value {
    let report = run_chaos(url, JOBS, "12s", &["--batches"]);
    let figure = |pointer: &str| figure(&report, pointer);
    assert_eq!(figure("/finished"), JOBS, "{report:#}");
    assert_eq!(figure("/lost"), 0, "{report:#}");
    assert_eq!(figure("/stuck"), 0, "{report:#}");
    assert_eq!(figure("/duplicates_unexplained"), 0, "{report:#}");
    assert!(figure("/worker_kills") >= 2, "{report:#}");
    let batches = figure("/batches/batches");
    assert!(batches >= 10, "{report:#}");
    assert_eq!(figure("/batches/jobs_in_batches"), JOBS, "{report:#}");
    assert_eq!(figure("/batches/miscounted"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks"), 2 * batches, "{report:#}");
    assert_eq!(figure("/batches/callbacks_not_fired"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks_inserted_twice"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks_not_finished"), 0, "{report:#}");
    assert_eq!(
        figure("/batches/callbacks_run_twice_unexplained"),
        0,
        "{report:#}"
    );
    assert_eq!(report["batches"]["passed"], true, "{report:#}");
    assert_eq!(report["passed"], true, "{report:#}");
    report
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
