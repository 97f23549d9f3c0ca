//! Short chaos runs of the real binary: worker processes SIGKILLed, the
//! dispatcher killed with its transaction open, on PostgreSQL and MariaDB
//! connection kills, and on PostgreSQL one server restart. In every run one
//! worker process at a time has its clock 60 s ahead (the tool's default
//! `--clock-skew`): leases and their rescue go by the database's clock, so
//! it must cost nothing. The audit must find every job finished, none
//! stuck, and every job that ran twice held by a process that was killed
//! or cut off.
//!
//! The PostgreSQL run restarts the local server. `cargo test` runs test
//! binaries one after another, so only the SQLite and MariaDB runs in this
//! binary share the time, and they do not use that server.

mod common;

use common::{MYSQL_URL, POSTGRES_URL, figure, run_chaos};

fn chaos(url: &str, jobs: u64) -> serde_json::Value {
    run_chaos(url, jobs, "20s", &[])
}

fn check(report: &serde_json::Value, jobs: u64) {
    let figure = |name: &str| figure(report, &format!("/{name}"));
    assert_eq!(figure("jobs"), jobs);
    assert_eq!(figure("dispatched"), jobs, "{report:#}");
    assert_eq!(figure("finished"), jobs, "{report:#}");
    assert_eq!(figure("lost"), 0, "{report:#}");
    assert_eq!(figure("stuck"), 0, "{report:#}");
    assert_eq!(figure("duplicates_unexplained"), 0, "{report:#}");
    assert_eq!(figure("duplicates_stalled"), 0, "{report:#}");
    assert_eq!(figure("duplicates_attempt_repeated"), 0, "{report:#}");
    assert_eq!(figure("torn_batches"), 0, "{report:#}");
    assert_eq!(figure("finished_without_execution"), 0, "{report:#}");
    assert_eq!(figure("unexpected_exits"), 0, "{report:#}");
    assert!(figure("worker_kills") >= 3, "{report:#}");
    assert!(figure("writer_kills") >= 1, "{report:#}");
    assert!(figure("executions") >= jobs, "{report:#}");
    // A worker whose clock runs ahead was started and ran jobs.
    assert!(figure("skewed_workers_started") >= 1, "{report:#}");
    assert!(figure("skewed_executions") >= 1, "{report:#}");
    // Every job that ran twice is listed with the reason.
    let duplicates = report["duplicates"].as_array().expect("a duplicate list");
    assert_eq!(duplicates.len() as u64, figure("executed_more_than_once"));
    assert_eq!(report["passed"], true);
}

#[test]
fn sqlite_survives_killed_workers_and_a_writer_killed_mid_transaction() {
    let jobs = 3_000;
    let report = chaos("sqlite:", jobs);
    check(&report, jobs);
    assert_eq!(report["integrity"], "ok", "{report:#}");
}

#[test]
fn postgres_survives_killed_workers_connections_and_a_server_restart() {
    let jobs = 3_000;
    let report = chaos(POSTGRES_URL, jobs);
    check(&report, jobs);
    assert_eq!(report["server_restarts"], 1, "{report:#}");
    assert!(
        report["connection_kill_bursts"].as_u64() >= Some(1),
        "{report:#}"
    );
}

#[test]
fn mysql_survives_killed_workers_connections_and_a_writer_killed_mid_transaction() {
    let jobs = 3_000;
    let report = chaos(MYSQL_URL, jobs);
    check(&report, jobs);
    assert_eq!(report["backend"], "mysql", "{report:#}");
    assert_eq!(report["server_restarts"], 0, "{report:#}");
    assert!(
        report["connection_kill_bursts"].as_u64() >= Some(1),
        "{report:#}"
    );
    assert!(
        report["connections_killed"].as_u64() >= Some(1),
        "{report:#}"
    );
}
