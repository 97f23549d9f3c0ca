//! Runs the benchmark binary on tiny workloads, on SQLite and on the
//! PostgreSQL server at 127.0.0.1:5432, and checks its JSON report. Speed
//! is not checked: only that every figure is there and every job ran once.

use std::process::Command;

/// The PostgreSQL server the tests use; the benchmark creates and drops
/// databases of its own on it.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hopper-bench"))
        .args(args)
        .output()
        .expect("the benchmark binary runs")
}

/// Runs a small benchmark (with W4 at a small size, and W9 with 1 and 2
/// worker processes) on `url` and returns its report.
fn small_run(url: &str) -> serde_json::Value {
    let out = bench(&[
        "--database-url",
        url,
        "--jobs",
        "200",
        "--workers",
        "4",
        "--latency-jobs",
        "10",
        "--latency-interval-ms",
        "5",
        "--idle-secs",
        "0.2",
        "--w4",
        "--w4-jobs",
        "300",
        "--w6-big",
        "300",
        "--w6-small-keys",
        "3",
        "--w6-small-jobs",
        "10",
        "--w9",
        "--w9-processes",
        "1,2",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "benchmark on {url} failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn positive(report: &serde_json::Value, pointer: &str) {
    let value = report.pointer(pointer).and_then(serde_json::Value::as_f64);
    assert!(value.is_some_and(|v| v > 0.0), "{pointer}: {value:?}");
}

fn check(report: &serde_json::Value, database: &str) {
    assert_eq!(report["database"], database);
    assert_eq!(report["jobs"], 200);
    assert_eq!(report["workers"], 4);
    assert_eq!(report["repeat"], 1);
    assert_eq!(report["raw_claim_batch"], 100);
    assert_eq!(report["raw_best_claim_batch"], 1000);
    assert_eq!(report["raw_best_loops"], 2);
    for pair in ["enqueue_one", "enqueue_bulk", "drain", "drain_best"] {
        for figure in ["hopper_jobs_per_s", "raw_jobs_per_s", "ratio"] {
            positive(report, &format!("/{pair}/{figure}"));
        }
    }
    for figure in ["/latency_p50_ms", "/latency_p99_ms", "/worker_peak_rss_mb"] {
        positive(report, figure);
    }
    assert_eq!(report["latency_samples"], 10);
    assert_eq!(report["drain_check"]["finished"], 200);
    assert_eq!(report["drain_check"]["lost"], 0);
    assert_eq!(report["drain_check"]["duplicates"], 0);
    assert_eq!(report["idle"]["workers"], 4);
    assert!(
        report["idle"]["cpu_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );

    for (limited, keys) in [
        ("w5", serde_json::json!(1000)),
        ("w5g", serde_json::Value::Null),
    ] {
        let w = &report[limited];
        assert_eq!(w["jobs"], 200, "{limited}");
        assert_eq!(w["keys"], keys, "{limited}");
        assert_eq!(w["finished"], 200, "{limited}");
        assert_eq!(w["lost"], 0, "{limited}");
        assert_eq!(w["duplicates"], 0, "{limited}");
        positive(report, &format!("/{limited}/jobs_per_s"));
        positive(report, &format!("/{limited}/ratio_to_w2"));
    }
    assert_eq!(report["w5"]["key_limit"], 1);
    assert_eq!(report["w5g"]["concurrency_limit"], 1000);
    let w6 = &report["w6"];
    assert_eq!(w6["big_jobs"], 300);
    assert_eq!(w6["small_keys"], 3);
    assert_eq!(w6["small_jobs_per_key"], 10);
    assert_eq!(w6["finished"], 330);
    assert_eq!(w6["lost"], 0);
    assert_eq!(w6["duplicates"], 0);
    for figure in [
        "small_wait_p99_ms",
        "small_done_s",
        "fair_bound_s",
        "jobs_per_s",
    ] {
        positive(report, &format!("/w6/{figure}"));
    }

    let w8 = &report["w8"];
    assert_eq!(w8["tasks"], 50);
    assert_eq!(w8["jobs"], 200);
    for figure in [
        "hopper_jobs_per_s",
        "raw_jobs_per_s",
        "ratio",
        "hopper_p50_ms",
        "hopper_p99_ms",
    ] {
        positive(report, &format!("/w8/{figure}"));
    }

    let w9 = &report["w9"];
    if database == "sqlite" {
        assert!(w9["skipped"].is_string(), "{w9}");
        assert_eq!(w9["runs"], serde_json::json!([]));
    } else {
        assert!(w9["skipped"].is_null(), "{w9}");
        let runs = w9["runs"].as_array().expect("W9 runs");
        assert_eq!(runs.len(), 2);
        for (index, run) in runs.iter().enumerate() {
            assert_eq!(run["processes"], index + 1);
            assert_eq!(
                run["ran_per_process"].as_array().map(Vec::len),
                Some(index + 1)
            );
            assert_eq!(run["runs"], 200);
            assert_eq!(run["finished"], 200);
            assert_eq!(run["lost"], 0);
            assert_eq!(run["duplicates"], 0);
            positive(run, "/hopper_jobs_per_s");
            positive(run, "/raw_jobs_per_s");
        }
    }

    for (growth, jobs, kept) in [("queued", 300, 0), ("finished_kept", 200, 300)] {
        let g = &report["w4"][growth];
        assert_eq!(g["jobs"], jobs, "{growth}");
        assert_eq!(g["finished_rows_kept"], kept, "{growth}");
        assert_eq!(g["finished"], jobs, "{growth}");
        assert_eq!(g["lost"], 0, "{growth}");
        assert_eq!(g["duplicates"], 0, "{growth}");
        positive(report, &format!("/w4/{growth}/jobs_per_s"));
        positive(report, &format!("/w4/{growth}/ratio_to_w2"));
        positive(report, &format!("/w4/{growth}/worker_peak_rss_mb"));
    }
}

#[test]
fn a_small_sqlite_run_reports_every_figure_and_runs_each_job_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("smoke.db").display());
    check(&small_run(&url), "sqlite");

    // Every workload's database file was removed when it was done.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("folder readable")
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn a_small_postgres_run_reports_every_figure_and_drops_its_databases() {
    let report = small_run(POSTGRES_URL);
    check(&report, "postgres");

    // The run's databases were dropped when it was done.
    let prefix = report["databases"]
        .as_str()
        .and_then(|text| text.split_whitespace().nth(2))
        .and_then(|name| name.strip_suffix("_<workload>"))
        .expect("the report names the run's databases")
        .to_owned();
    let out = Command::new("psql")
        .args([POSTGRES_URL, "-Atc"])
        .arg(format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{prefix}')"
        ))
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn an_unreachable_server_fails_loudly() {
    let out = bench(&[
        "--database-url",
        "postgres://postgres@127.0.0.1:1/x",
        "--jobs",
        "1",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not reachable"), "{stderr}");
}

#[test]
fn unknown_databases_are_refused_clearly() {
    let out = bench(&["--database-url", "oracle://localhost/jobs", "--jobs", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
}
