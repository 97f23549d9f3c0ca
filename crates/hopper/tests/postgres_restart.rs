//! Workers outlive a PostgreSQL restart: a dispatch while the server is down
//! returns an error, and once it is back every job finishes, none stuck.
//!
//! This stops and starts the local server, so it lives in a test binary of
//! its own: `cargo test` runs test binaries one after another.
#![cfg(feature = "postgres")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::postgres::database;
use common::*;
use hopper::{DispatchOptions, JobState, WorkerConfig};

fn cluster(action: &str) {
    let versions = std::fs::read_dir("/etc/postgresql")
        .expect("a PostgreSQL installation under /etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect::<Vec<_>>();
    let version = versions.iter().max().expect("a PostgreSQL cluster");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
}

/// Starts the server again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -V | tail -n 1) main start",
            ])
            .status();
    }
}

async fn count(hopper: &hopper::Hopper, state: JobState) -> u64 {
    hopper
        .counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == state)
        .map(|c| c.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_server_restart_and_a_dispatch_while_down_fails() {
    let db = database().await;
    let hopper = builder().connect(&db.url).await.unwrap();
    let pool = hopper
        .start(WorkerConfig::new(4).poll_interval(Duration::from_millis(200)))
        .unwrap();
    let jobs = 400;
    hopper
        .dispatch_many::<Slow>(std::iter::repeat_n(10, jobs), DispatchOptions::new())
        .await
        .unwrap();
    // The pool signals its activity on every claim attempt and every batch
    // of outcomes written, even while the server is down.
    let mut activity = pool.activity();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&hopper, JobState::Finished).await < 40 {
        assert!(Instant::now() < deadline, "jobs never started finishing");
        activity.borrow_and_update();
        let _ = tokio::time::timeout_at(deadline.into(), activity.changed()).await;
    }

    let restart = Restart;
    cluster("stop");
    let started = Instant::now();
    let dispatched = tokio::time::timeout(Duration::from_secs(30), hopper.dispatch::<Noop>(()))
        .await
        .expect("a dispatch while the server is down answers");
    assert!(
        dispatched.is_err(),
        "a dispatch while the server is down is an error"
    );
    // Within the pool's 5 s acquire timeout, with room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(15));
    cluster("start");
    drop(restart);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let finished = count(&hopper, JobState::Finished).await;
        if finished == jobs as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {finished} of {jobs} finished after the restart"
        );
        activity.borrow_and_update();
        let _ = tokio::time::timeout_at(deadline.into(), activity.changed()).await;
    }
    pool.stop().await.unwrap();
    assert_eq!(
        count(&hopper, JobState::Started).await,
        0,
        "none stuck in started"
    );
    assert_eq!(count(&hopper, JobState::Pending).await, 0);
    assert_eq!(count(&hopper, JobState::Failed).await, 0);
}
