//! Runs the benchmark binary on a tiny workload and checks its JSON report.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hopper-bench"))
        .args(args)
        .output()
        .expect("the benchmark binary runs")
}

#[test]
fn a_small_run_reports_every_figure_and_runs_each_job_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("smoke.db").display());
    let out = bench(&[
        "--database-url",
        &url,
        "--jobs",
        "200",
        "--workers",
        "4",
        "--latency-jobs",
        "10",
        "--latency-interval-ms",
        "5",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "benchmark failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");

    assert_eq!(report["jobs"], 200);
    assert_eq!(report["workers"], 4);
    assert_eq!(report["repeat"], 1);
    assert_eq!(report["raw_claim_batch"], 100);
    for pair in ["enqueue_one", "enqueue_bulk", "drain"] {
        for figure in ["hopper_jobs_per_s", "raw_jobs_per_s", "ratio"] {
            let value = report[pair][figure].as_f64();
            assert!(value.is_some_and(|v| v > 0.0), "{pair}.{figure}: {value:?}");
        }
    }
    for figure in ["latency_p50_ms", "latency_p99_ms", "peak_rss_mb"] {
        let value = report[figure].as_f64();
        assert!(value.is_some_and(|v| v > 0.0), "{figure}: {value:?}");
    }
    assert_eq!(report["latency_samples"], 10);
    assert_eq!(report["drain_check"]["finished"], 200);
    assert_eq!(report["drain_check"]["lost"], 0);
    assert_eq!(report["drain_check"]["duplicates"], 0);

    // Every workload's database file was removed when it was done.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("folder readable")
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn other_databases_are_refused_clearly() {
    let out = bench(&["--database-url", "postgres://localhost/jobs", "--jobs", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only sqlite://"), "{stderr}");
}
