//! Short limited chaos runs of the real binary (`--limited`): jobs over 100
//! partition keys, the queue limited to 1 running job per key and 10 in
//! all, under the same damage as `chaos.rs` (worker processes SIGKILLed,
//! the dispatcher killed with its transaction open, on the servers
//! connection kills, on PostgreSQL one server restart). Besides nothing
//! lost or stuck, the audit must find no more executions of a key, or of
//! the queue, overlapping than the limits allow (executions whose process
//! was SIGKILLed before they ended are left out and counted).
//!
//! A test binary of its own: `cargo test` runs test binaries one after
//! another, so the PostgreSQL restart here never hits `chaos.rs`'s
//! PostgreSQL run, and the other way round. The runs are shorter than
//! `chaos.rs`'s (12 s of damage, 2,000 jobs) to keep CI time down.

mod common;

use common::{MYSQL_URL, POSTGRES_URL, figure, run_chaos};

const JOBS: u64 = 2_000;

fn limited(url: &str) -> serde_json::Value {
    run_chaos(
        url,
        JOBS,
        "12s",
        &[
            "--limited",
            "--keys",
            "100",
            "--key-limit",
            "1",
            "--queue-limit",
            "10",
        ],
    )
}

fn check(report: &serde_json::Value) {
    let figure = |pointer: &str| figure(report, pointer);
    assert_eq!(figure("/jobs"), JOBS);
    assert_eq!(figure("/finished"), JOBS, "{report:#}");
    assert_eq!(figure("/lost"), 0, "{report:#}");
    assert_eq!(figure("/stuck"), 0, "{report:#}");
    assert_eq!(figure("/duplicates_unexplained"), 0, "{report:#}");
    assert!(figure("/worker_kills") >= 2, "{report:#}");
    let limits = "/limits";
    assert_eq!(figure(&format!("{limits}/keys")), 100);
    assert_eq!(figure(&format!("{limits}/unkeyed_jobs")), 0, "{report:#}");
    assert_eq!(
        figure(&format!("{limits}/runs_without_end")),
        0,
        "{report:#}"
    );
    assert!(
        figure(&format!("{limits}/runs_checked")) >= JOBS,
        "{report:#}"
    );
    assert_eq!(
        figure(&format!("{limits}/max_running_per_key")),
        1,
        "{report:#}"
    );
    let most = figure(&format!("{limits}/max_running"));
    assert!((1..=10).contains(&most), "{report:#}");
    assert_eq!(report["limits"]["passed"], true, "{report:#}");
    assert_eq!(report["passed"], true);
}

#[test]
fn sqlite_keeps_its_limits_through_killed_workers() {
    check(&limited("sqlite:"));
}

#[test]
fn postgres_keeps_its_limits_through_killed_workers_connections_and_a_restart() {
    let report = limited(POSTGRES_URL);
    check(&report);
    assert_eq!(report["server_restarts"], 1, "{report:#}");
}

#[test]
fn mysql_keeps_its_limits_through_killed_workers_and_connections() {
    let report = limited(MYSQL_URL);
    check(&report);
    assert_eq!(report["backend"], "mysql", "{report:#}");
}
