//! What the chaos test binaries share: the servers' URLs, running the
//! real binary to its JSON audit, and the checks every batched run shares.

use std::process::Command;

/// The PostgreSQL server's `test` database; a run creates its own next to it.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The MariaDB server's `test` database; a run creates its own next to it.
#[allow(dead_code)]
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Runs `hopper-chaos` on `url` with `jobs` jobs and `duration` of damage
/// (worker processes killed about every 2 s, 3 workers), then `args`, and
/// answers its audit, failing the test with the report and stderr if the
/// audit failed.
pub fn run_chaos(url: &str, jobs: u64, duration: &str, args: &[&str]) -> serde_json::Value {
    let jobs = jobs.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_hopper-chaos"))
        .args(["--database-url", url])
        .args(["--jobs", &jobs, "--workers", "3", "--duration", duration])
        .args(["--kill-every", "2s"])
        // A lease long enough that a busy CI machine stalling a worker is
        // not mistaken for a lost worker.
        .args(["--lease", "5s", "--drain-timeout", "60s"])
        .args(args)
        .arg("--json")
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

/// The whole number at `pointer` in `report`, failing the test if it is
/// missing.
pub fn figure(report: &serde_json::Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing in {report:#}"))
}

/// Runs a batched run (`--batches` or `--workflows` among `args`) of
/// `jobs` jobs with `duration` of damage, checks what both kinds share
/// (nothing lost or stuck, at least `min_batches` batches, every batch
/// counted whole, each of its two callbacks inserted once, finished, and
/// run twice only where a kill explains it), and answers the audit.
#[allow(dead_code)]
pub fn batched_run(
    url: &str,
    jobs: u64,
    duration: &str,
    args: &[&str],
    min_batches: u64,
) -> serde_json::Value {
    let report = run_chaos(url, jobs, duration, args);
    let figure = |pointer: &str| figure(&report, pointer);
    assert_eq!(figure("/finished"), jobs, "{report:#}");
    assert_eq!(figure("/lost"), 0, "{report:#}");
    assert_eq!(figure("/stuck"), 0, "{report:#}");
    assert_eq!(figure("/duplicates_unexplained"), 0, "{report:#}");
    assert!(figure("/worker_kills") >= 2, "{report:#}");
    let batches = figure("/batches/batches");
    assert!(batches >= min_batches, "{report:#}");
    assert_eq!(figure("/batches/jobs_in_batches"), jobs, "{report:#}");
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

/// A workflow run (`--workflows`, then `args`) checked as [`batched_run`]
/// checks it, and for order: no step started before the steps it waits on
/// ended.
#[allow(dead_code)]
pub fn workflow_run(
    url: &str,
    jobs: u64,
    duration: &str,
    args: &[&str],
    min_batches: u64,
) -> serde_json::Value {
    let args = [&["--workflows"], args].concat();
    let report = batched_run(url, jobs, duration, &args, min_batches);
    assert_eq!(
        figure(&report, "/batches/steps_out_of_order"),
        0,
        "{report:#}"
    );
    report
}

/// Jobs in each of the wide workflows of [`wide_workflow_run`].
#[allow(dead_code)]
pub const WIDE: u64 = 1_000;

/// The wide workflow case: 3,000 jobs as three workflows of 1,000 jobs
/// (`--group-size 1000`: 1 → 998 → 1 each) under 12 s of damage, checked
/// as [`workflow_run`] checks a run, and that the batches are exactly the
/// three groups of 1,000.
#[allow(dead_code)]
pub fn wide_workflow_run(url: &str) -> serde_json::Value {
    let jobs = 3 * WIDE;
    let size = WIDE.to_string();
    let report = workflow_run(url, jobs, "12s", &["--group-size", &size], 3);
    let figure = |pointer: &str| figure(&report, pointer);
    assert_eq!(figure("/batches/batches"), 3, "{report:#}");
    assert_eq!(figure("/batches/group_size"), WIDE, "{report:#}");
    assert_eq!(figure("/batches/misaligned"), 0, "{report:#}");
    report
}
