//! A worker process killed with SIGKILL in the middle of a job loses nothing:
//! once its lease expires, another worker finishes the job. And while a
//! worker lives, its heartbeat keeps the lease of a job that runs far longer
//! than the lease, so no other worker is handed that job.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hopper::{Hopper, Job, JobContext, JobResult, JobState, WorkerConfig};

/// Set in the worker process this test starts; names its database.
const CHILD_DB: &str = "HOPPER_CRASH_TEST_CHILD_DB";
const DOOMED: &str = "doomed-worker";

/// Hangs forever in the process that is going to be killed; finishes elsewhere.
struct Hang;

impl Job for Hang {
    const TYPE: &'static str = "hang";
    type Payload = u32;
    async fn handle(&self, _: u32, _: JobContext) -> JobResult {
        if std::env::var_os(CHILD_DB).is_some() {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// The worker process of `a_killed_worker_loses_no_job`; run only by it.
#[tokio::test]
#[ignore = "started as a child process by a_killed_worker_loses_no_job"]
async fn crash_child_worker() {
    child_pool(Hang, DOOMED).await;
}

/// Runs a pool of two workers for `job` as `worker_id`, on the database the
/// parent test named, until the process is killed.
async fn child_pool(job: impl Job, worker_id: &str) {
    let url = std::env::var(CHILD_DB).expect("run by the crash test");
    let hopper = Hopper::builder()
        .register(job)
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    let _pool = hopper
        .start(
            WorkerConfig::new(2)
                .lease(Duration::from_secs(1))
                .rescue_interval(Duration::from_millis(100))
                .worker_id(worker_id),
        )
        .unwrap();
    std::future::pending::<()>().await;
}

/// Starts this test binary again as the child test `name`, on the database
/// at `url`, with `env` set too.
fn spawn_child(name: &str, url: &str, env: &[(&str, &std::path::Path)]) -> Reaped {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(CHILD_DB, url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    Reaped(command.spawn().unwrap())
}

/// A child process that is killed, if still running, when the test ends,
/// even by a failed assertion.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_worker_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let hopper = Hopper::builder()
        .register(Hang)
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    let ids = hopper
        .dispatch_many::<Hang>(0..5, Default::default())
        .await
        .unwrap();

    let mut child = spawn_child("crash_child_worker", &url, &[]);

    let held_by_child = |hopper: Hopper, ids: Vec<i64>| async move {
        let mut held = Vec::new();
        for id in ids {
            let job = hopper.job(id).await.unwrap().unwrap();
            if job.state == JobState::Started && job.locked_by.as_deref() == Some(DOOMED) {
                held.push(id);
            }
        }
        held
    };
    wait_for("the child to start two jobs", async || {
        held_by_child(hopper.clone(), ids.clone()).await.len() == 2
    })
    .await;
    // The start of each run is recorded with the pool's next write, a
    // moment after its handler starts.
    let path = dir.path().join("crash.db");
    wait_for("the child to record both starts", async || {
        started_runs(&path, DOOMED) == 2
    })
    .await;
    let killed_holding = held_by_child(hopper.clone(), ids.clone()).await;

    child.0.kill().unwrap(); // SIGKILL
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was killed, not stopped");
    let killed_at = Instant::now();

    let pool = hopper
        .start(WorkerConfig::new(4).rescue_interval(Duration::from_millis(100)))
        .unwrap();
    common::wait_finished(&hopper, &pool, &ids).await;
    let recovery = killed_at.elapsed();
    pool.stop().await.unwrap();

    for id in &ids {
        let job = hopper.job(*id).await.unwrap().unwrap();
        if killed_holding.contains(id) {
            assert_eq!(job.attempts, 2, "the killed attempt counts");
            assert_eq!(job.errors.len(), 1);
            assert!(
                job.errors[0]
                    .error
                    .contains("lease expired: worker doomed-worker"),
                "{:?}",
                job.errors
            );
        } else {
            assert_eq!(job.attempts, 1);
            assert!(job.errors.is_empty());
        }
    }
    assert!(
        recovery < Duration::from_secs(30),
        "recovered in {recovery:?}"
    );
}

/// How many of `worker`'s claims have recorded that their handler started.
fn started_runs(path: &std::path::Path, worker: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state = 'started' AND locked_by = ?1 AND run_started = 1",
        [worker],
        |row| row.get(0),
    )
    .unwrap()
}

/// Set in the worker process of the prefetch test: the file it logs each
/// run's start in.
const BRISK_LOG: &str = "HOPPER_CRASH_TEST_BRISK_LOG";
const BRISK_WORKER: &str = "brisk-worker";

/// A short job with one attempt; in the process that is going to be killed
/// it logs its start, then works a couple of milliseconds.
struct Brisk;

impl Job for Brisk {
    const TYPE: &'static str = "brisk";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = u32;
    async fn handle(&self, _: u32, ctx: JobContext) -> JobResult {
        if let Some(log) = std::env::var_os(BRISK_LOG) {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(log)?;
            writeln!(file, "{}", ctx.id())?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

/// The worker process of `jobs_a_killed_worker_claimed_ahead_but_never_started_keep_their_attempt`.
#[tokio::test]
#[ignore = "started as a child process by jobs_a_killed_worker_claimed_ahead_but_never_started_keep_their_attempt"]
async fn crash_child_brisk_worker() {
    child_pool(Brisk, BRISK_WORKER).await;
}

/// A pool claims short jobs ahead of its free slots. When its process is
/// SIGKILLed, the jobs it held but never started come back with their
/// attempt unspent: with one attempt each, none of them fails, and every
/// job that failed had run in the killed process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_a_killed_worker_claimed_ahead_but_never_started_keep_their_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("brisk.db").display());
    let log = dir.path().join("starts.log");
    let hopper = Hopper::builder()
        .register(Brisk)
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    let ids = hopper
        .dispatch_many::<Brisk>(0..3_000, Default::default())
        .await
        .unwrap();
    let mut child = spawn_child("crash_child_brisk_worker", &url, &[(BRISK_LOG, &log)]);
    let started_in_child = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.parse::<i64>().ok())
            .collect::<std::collections::HashSet<_>>()
    };
    wait_for("the child to get going", async || {
        started_in_child().len() >= 300
    })
    .await;
    // Kill it while it holds more jobs than it runs.
    let held = || {
        let conn = rusqlite::Connection::open(dir.path().join("brisk.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE state = 'started' AND locked_by = ?1",
            [BRISK_WORKER],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
    };
    wait_for("the child to hold jobs beyond its two slots", async || {
        held() > 2
    })
    .await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let ran_in_child = started_in_child();

    let pool = hopper
        .start(WorkerConfig::new(4).rescue_interval(Duration::from_millis(100)))
        .unwrap();
    let mut activity = pool.activity();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        activity.borrow_and_update();
        let counts = hopper.counts().await.unwrap();
        let live: u64 = counts
            .iter()
            .filter(|c| matches!(c.state, JobState::Pending | JobState::Started))
            .map(|c| c.count)
            .sum();
        if live == 0 {
            break counts;
        }
        assert!(Instant::now() < deadline, "jobs left: {counts:?}");
        let _ = tokio::time::timeout(Duration::from_secs(1), activity.changed()).await;
    };
    pool.stop().await.unwrap();
    let total: u64 = ended.iter().map(|c| c.count).sum();
    assert_eq!(total, ids.len() as u64);
    for id in &ids {
        let job = hopper.job(*id).await.unwrap().unwrap();
        if job.state == JobState::Failed {
            assert!(
                ran_in_child.contains(id),
                "job {id} failed without ever running: {:?}",
                job.errors
            );
        } else {
            assert_eq!(job.state, JobState::Finished, "job {id}");
        }
    }
}

/// Runs of [`Outlast`], counted across the test.
static OUTLAST_RUNS: AtomicU32 = AtomicU32::new(0);

/// Sleeps for its payload in milliseconds, counting its runs.
struct Outlast;

impl Job for Outlast {
    const TYPE: &'static str = "outlast";
    type Payload = u64;
    async fn handle(&self, millis: u64, _: JobContext) -> JobResult {
        OUTLAST_RUNS.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_past_its_lease_keeps_it_while_its_worker_lives() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lease.db").display());
    let connect = || async {
        Hopper::builder()
            .register(Outlast)
            .unwrap()
            .connect(&url)
            .await
            .unwrap()
    };
    let runner = connect().await;
    // A second pool on its own handle that works another queue: whichever of
    // the two leads maintenance looks for expired leases every 100 ms.
    let watcher = connect().await;
    let watching = watcher
        .start(
            WorkerConfig::new(1)
                .only()
                .queue("elsewhere", 1)
                .rescue_interval(Duration::from_millis(100)),
        )
        .unwrap();
    let running = runner
        .start(
            WorkerConfig::new(1)
                .lease(Duration::from_secs(1))
                .rescue_interval(Duration::from_millis(100)),
        )
        .unwrap();
    // Four leases long: only the heartbeat keeps the job from being rescued.
    let id = runner.dispatch::<Outlast>(4_000).await.unwrap();
    common::wait_finished(&runner, &running, &[id]).await;
    running.stop().await.unwrap();
    watching.stop().await.unwrap();
    let job = runner.job(id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1, "{:?}", job.errors);
    assert!(job.errors.is_empty(), "{:?}", job.errors);
    assert_eq!(OUTLAST_RUNS.load(Ordering::SeqCst), 1, "the job ran once");
}
