//! The scheduler: ticks become jobs, once per tick across instances.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use hopper::clock::ManualClock;
use hopper::schedule::{Missed, Schedule, ScheduleError, Schedules};
use hopper::store::Tick;
use hopper::testing::TestQueue;
use hopper::{Hopper, JobFilter, JobState, WorkerConfig};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn schedules(list: impl IntoIterator<Item = Schedule>) -> Schedules {
    let mut schedules = Schedules::new();
    for schedule in list {
        schedules.add(schedule).unwrap();
    }
    schedules
}

async fn all_jobs(hopper: &Hopper) -> Vec<hopper::JobRecord> {
    hopper::testing::all_jobs(hopper, &JobFilter::default())
        .await
        .unwrap()
}

#[test]
fn bad_expressions_and_zones_name_the_schedule_and_the_parser_message() {
    let err = Schedule::new::<Noop>("reports", "*/5 * * *", ()).unwrap_err();
    assert!(matches!(err, ScheduleError::Expression { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("schedule \"reports\": invalid expression \"*/5 * * *\": "),
        "{text}"
    );
    assert!(text.len() > 60, "the parser's message follows: {text}");
    let err = Schedule::new::<Noop>("tick", "@every 0s", ()).unwrap_err();
    assert!(err.to_string().contains("expected a duration"), "{err}");
    let err = Schedule::new::<Noop>("tick", "@hourly", ())
        .unwrap()
        .time_zone("Europe/Atlantis")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule \"tick\": unknown time zone \"Europe/Atlantis\" (expected an IANA name such as Europe/Berlin)"
    );
    let mut list = Schedules::new();
    list.add(Schedule::new::<Noop>("a", "@daily", ()).unwrap())
        .unwrap();
    assert!(matches!(
        list.add(Schedule::new::<Noop>("a", "@hourly", ()).unwrap()),
        Err(ScheduleError::Duplicate(_))
    ));
}

#[test]
fn expressions_with_seconds_and_descriptors() {
    let t = at("2026-05-05T10:15:07Z");
    let next = |expr: &str| {
        Schedule::new::<Noop>("s", expr, ())
            .unwrap()
            .next_after(t)
            .unwrap()
    };
    assert_eq!(next("*/10 * * * * *"), at("2026-05-05T10:15:10Z"));
    assert_eq!(next("*/5 * * * *"), at("2026-05-05T10:20:00Z"));
    assert_eq!(next("@hourly"), at("2026-05-05T11:00:00Z"));
    assert_eq!(next("@daily"), at("2026-05-06T00:00:00Z"));
    assert_eq!(next("@weekly"), at("2026-05-10T00:00:00Z"));
    assert_eq!(next("@monthly"), at("2026-06-01T00:00:00Z"));
    assert_eq!(next("@every 30s"), at("2026-05-05T10:15:30Z"));
    assert_eq!(next("@every 1h30m"), at("2026-05-05T10:30:00Z"));
}

#[test]
fn a_berlin_0230_schedule_across_daylight_saving_changes() {
    let nightly = Schedule::new::<Noop>("nightly", "30 2 * * *", ())
        .unwrap()
        .time_zone("Europe/Berlin")
        .unwrap();
    // Spring forward (2026-03-29): 02:30 does not exist; it fires at 03:00 CEST.
    let spring = nightly.upcoming(at("2026-03-27T12:00:00Z"), 3);
    assert_eq!(
        spring,
        [
            at("2026-03-28T01:30:00Z"),
            at("2026-03-29T01:00:00Z"),
            at("2026-03-30T00:30:00Z")
        ]
    );
    assert_eq!(
        hopper::schedule::local_time(spring[1], "Europe/Berlin").unwrap(),
        "2026-03-29 03:00:00 CEST"
    );
    // Fall back (2026-10-25): 02:30 happens twice; it fires once, at the first (CEST).
    let autumn = nightly.upcoming(at("2026-10-24T12:00:00Z"), 3);
    assert_eq!(
        autumn,
        [
            at("2026-10-25T00:30:00Z"),
            at("2026-10-26T01:30:00Z"),
            at("2026-10-27T01:30:00Z")
        ]
    );
}

#[tokio::test]
async fn each_berlin_tick_across_both_changes_dispatches_exactly_one_job() {
    let clock = ManualClock::starting_at(at("2026-03-27T12:00:00Z"));
    let hopper = builder()
        .clock(clock.clone())
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let list = schedules([Schedule::new::<Noop>("nightly", "30 2 * * *", ())
        .unwrap()
        .time_zone("Europe/Berlin")
        .unwrap()]);
    list.run_due(&hopper).await.unwrap();
    let mut dispatched = Vec::new();
    // Walk the clock a minute at a time over both changes, passing at every step.
    for (from, to) in [
        ("2026-03-28T00:00:00Z", "2026-03-30T03:00:00Z"),
        ("2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"),
    ] {
        clock.set(at(from));
        while hopper.now() < at(to) {
            clock.advance(Duration::from_secs(60));
            for fired in list.run_due(&hopper).await.unwrap() {
                assert!(matches!(fired.tick, Tick::Dispatched(_)), "{fired:?}");
                dispatched.push(fired.fire_at);
            }
        }
    }
    assert_eq!(
        dispatched,
        [
            at("2026-03-28T01:30:00Z"),
            at("2026-03-29T01:00:00Z"),
            at("2026-03-30T00:30:00Z"),
            // The jump from March to October missed ticks: the latest runs once.
            at("2026-10-24T00:30:00Z"),
            at("2026-10-25T00:30:00Z"),
        ]
    );
}

#[tokio::test]
async fn a_tick_becomes_a_job_due_at_the_fire_time_and_runs() {
    let queue = TestQueue::start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let list = schedules([Schedule::new::<Noop>("ping", "@every 1m", ()).unwrap()]);
    let now = hopper.now();
    let fired = list.run_due(hopper).await.unwrap();
    let fire_at = hopper::schedule::Schedule::new::<Noop>("x", "@every 1m", ())
        .unwrap()
        .latest_at_or_before(now)
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fire_at, fire_at);
    let Tick::Dispatched(id) = fired[0].tick else {
        panic!("{fired:?}")
    };
    assert!(
        list.run_due(hopper).await.unwrap().is_empty(),
        "the tick is taken"
    );
    queue.wait_idle().await.unwrap();
    let job = queue.hopper().job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.job_type.as_str(), job.state),
        ("noop", JobState::Finished)
    );
    assert_eq!(job.available_at, fire_at);
    assert_eq!(
        job.unique_key.as_deref(),
        Some(format!("schedule:ping:{}", fire_at.to_rfc3339()).as_str())
    );

    queue.advance(Duration::from_secs(60));
    let fired = list.run_due(hopper).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fire_at, fire_at + chrono::Duration::minutes(1));
    queue.wait_idle().await.unwrap();
    let listed = list.list(hopper).await.unwrap();
    assert_eq!(listed[0].next.len(), 3);
    assert_eq!(listed[0].last_fire_at, Some(fired[0].fire_at));
    assert_eq!(
        listed[0].last_job.map(|(_, state)| state),
        Some(JobState::Finished)
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn two_instances_passing_at_the_same_moment_dispatch_a_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let clock = ManualClock::new();
    let one = builder().clock(clock.clone()).connect(&url).await.unwrap();
    let two = builder().clock(clock.clone()).connect(&url).await.unwrap();
    let list = schedules([
        Schedule::new::<Noop>("a", "@every 1m", ()).unwrap(),
        Schedule::new::<Noop>("b", "* * * * * *", ()).unwrap(),
    ]);
    let mut total = 0;
    for _ in 0..50 {
        clock.advance(Duration::from_secs(60));
        let (x, y) = tokio::join!(list.run_due(&one), list.run_due(&two));
        total += x.unwrap().len() + y.unwrap().len();
    }
    assert_eq!(total, 100, "each tick of both schedules exactly once");
    let jobs = all_jobs(&one).await;
    assert_eq!(jobs.len(), 100);
}

#[tokio::test]
async fn missed_ticks_run_the_latest_once_or_are_skipped() {
    let clock = ManualClock::starting_at(at("2026-06-01T08:00:00Z"));
    let hopper = builder()
        .clock(clock.clone())
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let list = schedules([
        Schedule::new::<Noop>("latest", "@hourly", ()).unwrap(),
        Schedule::new::<Noop>("skip", "@hourly", ())
            .unwrap()
            .missed(Missed::Skip),
    ]);
    assert_eq!(list.run_due(&hopper).await.unwrap().len(), 2);
    // Everything is down for five and a half hours.
    clock.advance(Duration::from_secs(5 * 3600 + 1800));
    let fired = list.run_due(&hopper).await.unwrap();
    assert_eq!(fired.len(), 2);
    assert_eq!(fired[0].schedule, "latest");
    assert_eq!(fired[0].fire_at, at("2026-06-01T13:00:00Z"));
    assert!(matches!(fired[0].tick, Tick::Dispatched(_)));
    assert_eq!(
        (fired[1].schedule.as_str(), fired[1].tick),
        ("skip", Tick::Passed)
    );
    assert_eq!(all_jobs(&hopper).await.len(), 3);
    // The next tick on time runs for both.
    clock.set(at("2026-06-01T14:00:05Z"));
    let fired = list.run_due(&hopper).await.unwrap();
    assert!(fired.iter().all(|f| matches!(f.tick, Tick::Dispatched(_))));
    assert_eq!(fired.len(), 2);
}

#[tokio::test]
async fn a_new_schedule_does_not_fire_an_old_tick() {
    let clock = ManualClock::starting_at(at("2026-06-10T12:00:00Z"));
    let hopper = builder()
        .clock(clock.clone())
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let list = schedules([Schedule::new::<Noop>("monthly", "@monthly", ()).unwrap()]);
    let fired = list.run_due(&hopper).await.unwrap();
    assert_eq!(fired[0].tick, Tick::Passed);
    assert!(all_jobs(&hopper).await.is_empty());
}

#[tokio::test]
async fn a_no_overlap_schedule_skips_ticks_while_its_job_is_unfinished() {
    let clock = ManualClock::starting_at(at("2026-06-01T08:00:00Z"));
    let hopper = builder()
        .clock(clock.clone())
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let list = schedules([Schedule::new::<Noop>("sync", "@every 1m", ())
        .unwrap()
        .no_overlap()]);
    let fired = list.run_due(&hopper).await.unwrap();
    let Tick::Dispatched(first) = fired[0].tick else {
        panic!("{fired:?}")
    };
    clock.advance(Duration::from_secs(60));
    let fired = list.run_due(&hopper).await.unwrap();
    assert_eq!(fired[0].tick, Tick::Passed, "the first run has not run yet");
    assert_eq!(all_jobs(&hopper).await.len(), 1);
    assert!(hopper.cancel(first).await.unwrap());
    clock.advance(Duration::from_secs(60));
    let fired = list.run_due(&hopper).await.unwrap();
    assert!(matches!(fired[0].tick, Tick::Dispatched(id) if id != first));
}

#[tokio::test]
async fn a_panicking_scheduled_job_never_stops_the_schedule() {
    let queue = TestQueue::start(builder()).await.unwrap();
    let list = schedules([Schedule::new::<Panicker>("boom", "@every 1m", "tick".into()).unwrap()]);
    for _ in 0..3 {
        assert_eq!(list.run_due(queue.hopper()).await.unwrap().len(), 1);
        queue.wait_idle().await.unwrap();
        queue.advance(Duration::from_secs(60));
    }
    let jobs = all_jobs(queue.hopper()).await;
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.state == JobState::Failed));
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn schedule_run_dispatches_one_run_now() {
    let queue = TestQueue::start(builder()).await.unwrap();
    let list = schedules([Schedule::new::<Noop>("ping", "@yearly", ()).unwrap()]);
    let id = list.run_now(queue.hopper(), "ping").await.unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(
        queue.hopper().job(id).await.unwrap().unwrap().state,
        JobState::Finished
    );
    assert!(matches!(
        list.run_now(queue.hopper(), "pong").await,
        Err(ScheduleError::Unknown(_))
    ));
    queue.stop().await.unwrap();
}

const CHILD_DB: &str = "HOPPER_SCHEDULE_TEST_CHILD_DB";

/// One of the scheduler processes of the multi-process tests below.
#[tokio::test]
#[ignore = "started as a child process by the multi-process tests"]
async fn schedule_child_process() {
    let url = std::env::var(CHILD_DB).expect("run by the multi-process test");
    let hopper = builder().connect(&url).await.unwrap();
    let pool = hopper
        .start(WorkerConfig::new(2).poll_interval(Duration::from_millis(100)))
        .unwrap();
    let scheduler = schedules([Schedule::new::<Noop>("every-second", "* * * * * *", ()).unwrap()])
        .start(&hopper);
    tokio::time::sleep(Duration::from_secs(4)).await;
    scheduler.stop().await;
    pool.stop().await.unwrap();
}

/// Runs `processes` scheduler processes (with workers) on the database at
/// `url` for four seconds, then checks every tick became exactly one job.
async fn each_tick_runs_once_across(url: &str, processes: usize) {
    let hopper = builder().connect(url).await.unwrap();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "schedule_child_process", "--ignored"])
                .env(CHILD_DB, url)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // A tick dispatched as the last pool stopped waits for a worker: run
    // what is left here, so the check below is of the ticks alone.
    let left = all_jobs(&hopper).await;
    let ids: Vec<_> = left.iter().map(|job| job.id).collect();
    let pool = hopper.start(WorkerConfig::new(2)).unwrap();
    wait_finished(&hopper, &pool, &ids).await;
    pool.stop().await.unwrap();
    let jobs = all_jobs(&hopper).await;
    assert!(
        jobs.len() >= 3,
        "about four ticks in four seconds: {}",
        jobs.len()
    );
    let mut ticks: Vec<_> = jobs.iter().map(|j| j.available_at).collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), jobs.len(), "no tick dispatched twice");
    assert!(jobs.iter().all(|j| j.state == JobState::Finished));
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_run_each_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("procs.db").display());
    each_tick_runs_once_across(&url, 2).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn three_processes_on_postgres_run_each_tick_once() {
    let db = common::postgres::database().await;
    each_tick_runs_once_across(&db.url, 3).await;
}
