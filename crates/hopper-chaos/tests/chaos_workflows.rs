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

use common::{MYSQL_URL, POSTGRES_URL, batched_run, figure};

const JOBS: u64 = 2_000;

fn workflows(url: &str) -> serde_json::Value {
    let report = batched_run(url, JOBS, "--workflows");
    assert_eq!(
        figure(&report, "/batches/steps_out_of_order"),
        0,
        "{report:#}"
    );
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
