//! What both chaos test binaries share: the servers' URLs and running the
//! real binary to its JSON audit.

use std::process::Command;

/// The PostgreSQL server's `test` database; a run creates its own next to it.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The MariaDB server's `test` database; a run creates its own next to it.
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
