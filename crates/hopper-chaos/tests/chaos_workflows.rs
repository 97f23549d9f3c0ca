//! Short workflow chaos runs of the real binary (`--workflows`): each
//! paced group of jobs is one workflow (its first job, then the others
//! after it, then its last job after all of those: 1 → n → 1) with a
//! success and a completion callback, under the same damage as `chaos.rs`.
//! Besides nothing lost or stuck, the audit must find every workflow
//! counted finished whole, each callback inserted once and finished, and no
//! step started before the steps it waits on ended.
//!
//! A test binary of its own, so its PostgreSQL restart never overlaps
//! another chaos binary's PostgreSQL run.

mod common;

use common::{MYSQL_URL, POSTGRES_URL, figure, run_chaos};

const JOBS: u64 = 2_000;

fn workflows(url: &str) -> serde_json::Value {
    let report = run_chaos(url, JOBS, "12s", &["--workflows"]);
    let figure = |pointer: &str| figure(&report, pointer);
    assert_eq!(figure("/finished"), JOBS, "{report:#}");
    assert_eq!(figure("/lost"), 0, "{report:#}");
    assert_eq!(figure("/stuck"), 0, "{report:#}");
    assert_eq!(figure("/duplicates_unexplained"), 0, "{report:#}");
    assert!(figure("/worker_kills") >= 2, "{report:#}");
    let workflows = figure("/batches/batches");
    assert!(workflows >= 10, "{report:#}");
    assert_eq!(figure("/batches/jobs_in_batches"), JOBS, "{report:#}");
    assert_eq!(figure("/batches/miscounted"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks"), 2 * workflows, "{report:#}");
    assert_eq!(figure("/batches/callbacks_not_fired"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks_inserted_twice"), 0, "{report:#}");
    assert_eq!(figure("/batches/callbacks_not_finished"), 0, "{report:#}");
    assert_eq!(figure("/batches/steps_out_of_order"), 0, "{report:#}");
    assert_eq!(report["passed"], true, "{report:#}");
    report
}

#[test]
fn sqlite_workflows_run_in_order_through_killed_workers() {
    workflows("sqlite:");
}

#[test]
fn postgres_workflows_run_in_order_through_a_restart() {
    let report = workflows(POSTGRES_URL);
    assert_eq!(report["server_restarts"], 1, "{report:#}");
}

#[test]
fn mysql_workflows_run_in_order_through_killed_connections() {
    let report = workflows(MYSQL_URL);
    assert_eq!(report["backend"], "mysql", "{report:#}");
}
