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

use std::process::Command;

/// The PostgreSQL server's `test` database; a run creates its own next to it.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The MariaDB server's `test` database; a run creates its own next to it.
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

const JOBS: u64 = 2_000;

fn limited(url: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hopper-chaos"))
        .args(["--database-url", url, "--jobs", &JOBS.to_string()])
        .args(["--workers", "3", "--duration", "12s", "--kill-every", "2s"])
        .args(["--lease", "5s", "--drain-timeout", "60s"])
        .args(["--limited", "--keys", "100", "--key-limit", "1"])
        .args(["--queue-limit", "10", "--json"])
        .output()
        .expect("the chaos binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON audit ({e}); stderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "the audit failed:\n{report:#}\nstderr:\n{stderr}"
    );
    report
}

fn check(report: &serde_json::Value) {
    let figure = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} missing in {report:#}"))
    };
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
