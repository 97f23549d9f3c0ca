//! The wide workflow chaos runs on the servers: three workflows of 1,000
//! jobs each (1 → 998 → 1, `--group-size 1000`, 12 s of damage) under the
//! damage of `chaos.rs` (worker processes SIGKILLed, the dispatcher killed
//! while it writes a workflow, connection kills, on PostgreSQL one server
//! restart), checked as `chaos_workflows.rs`'s wide SQLite run is.
//!
//! A test binary of its own, so its PostgreSQL restart never overlaps
//! another chaos binary's PostgreSQL run (`chaos_workflows.rs` has one);
//! the MariaDB run shares this binary's time rather than adding to
//! `chaos_workflows.rs`'s.

mod common;

use common::{MYSQL_URL, POSTGRES_URL, wide_workflow_run};

#[test]
fn postgres_workflows_of_a_thousand_steps_run_in_order_through_a_restart() {
    let report = wide_workflow_run(POSTGRES_URL);
    assert_eq!(report["server_restarts"], 1, "{report:#}");
}

#[test]
fn mysql_workflows_of_a_thousand_steps_run_in_order_through_killed_connections() {
    let report = wide_workflow_run(MYSQL_URL);
    assert_eq!(report["backend"], "mysql", "{report:#}");
}
