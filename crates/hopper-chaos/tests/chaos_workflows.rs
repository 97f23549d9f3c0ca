//! Short workflow chaos runs of the real binary (`--workflows`): each
//! paced group of jobs is one workflow (its first job, then the others
//! after it, then its last job after all of those: 1 → n → 1) with a
//! success and a completion callback, under the same damage as `chaos.rs`.
//! Besides nothing lost or stuck, the audit must find every workflow
//! counted finished whole, each callback inserted once and finished, and no
//! step started before the steps it waits on ended.
//!
//! Each run has 12 s of damage. The paced runs (2,000 jobs) make groups of
//! about 60 jobs; the wide run makes three workflows of 1,000 jobs each
//! (3,000 jobs, `--group-size 1000`: 1 → 998 → 1). The wide runs on the servers
//! are in `chaos_wide_workflows.rs`: PostgreSQL's restart would hit this
//! binary's PostgreSQL run, and MariaDB's shares that binary's time.
//!
//! A test binary of its own, so its PostgreSQL restart never overlaps
//! another chaos binary's PostgreSQL run.

mod common;

use common::{MYSQL_URL, POSTGRES_URL, wide_workflow_run, workflow_run};

const JOBS: u64 = 2_000;

fn workflows(url: &str) -> serde_json::Value {
    workflow_run(url, JOBS, "12s", &[], 10)
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

#[test]
fn sqlite_workflows_of_a_thousand_steps_run_in_order_through_killed_workers() {
    let report = wide_workflow_run("sqlite:");
    assert_eq!(report["integrity"], "ok", "{report:#}");
}
