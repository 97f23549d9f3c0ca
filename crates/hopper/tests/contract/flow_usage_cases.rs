//! What each flow-controlled queue's limits hold now, as
//! `Hopper::flow_usage` reads it, on every database: jobs running per queue
//! and per busiest key, starts in the rate window, and due jobs a limit
//! holds back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hopper::store::{FlowUsage, QueueFlow, Rate};
use hopper::{DispatchOptions, Job, JobContext, JobResult, WorkerConfig};

use crate::backends::TestDb;
use crate::common::*;

/// Holds every run until the test opens it.
#[derive(Clone, Debug)]
struct Gate(Arc<tokio::sync::Semaphore>);

/// Runs until the gate opens.
struct Gated;

impl Job for Gated {
    const TYPE: &'static str = "gated";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let gate = ctx.state::<Gate>()?;
        // A closed gate lets every run through.
        let _ = gate.0.acquire().await;
        Ok(())
    }
}

/// The usage of `queue` among `all`.
fn of<'a>(all: &'a [FlowUsage], queue: &str) -> &'a FlowUsage {
    all.iter()
        .find(|usage| usage.queue == queue)
        .unwrap_or_else(|| panic!("no usage for queue {queue} in {all:?}"))
}

/// A test queue running `queues` (6 workers each) with [`Gated`] registered
/// and its gate.
async fn gated_queue(db: &TestDb, queues: &[&str]) -> (hopper::testing::TestQueue, Gate) {
    let gate = Gate(Arc::new(tokio::sync::Semaphore::new(0)));
    let builder = builder()
        .register(Gated)
        .expect("a distinct job name")
        .state(gate.clone());
    let config = queues.iter().fold(WorkerConfig::new(1), |config, queue| {
        config.queue(*queue, 6)
    });
    (db.start_with(builder, config).await.unwrap(), gate)
}

/// Dispatches a [`Gated`] job to `queue`, in partition `key` if any.
async fn dispatch_gated(hopper: &hopper::Hopper, queue: &str, key: Option<&str>) {
    let options = DispatchOptions::new().queue(queue);
    let options = match key {
        Some(key) => options.partition(key),
        None => options,
    };
    hopper.dispatch_with::<Gated>((), options).await.unwrap();
}

/// Each of `usage`'s busiest keys as (key, running, starts, full).
fn key_rows(usage: &FlowUsage) -> Vec<(Option<&str>, u64, Option<u64>, bool)> {
    usage
        .busiest_keys
        .iter()
        .map(|key| {
            (
                key.key.as_deref(),
                key.running,
                key.starts_in_window,
                key.full,
            )
        })
        .collect()
}

/// Reads the usage until `done` holds (at most 60 s).
async fn wait_usage(
    hopper: &hopper::Hopper,
    done: impl Fn(&[FlowUsage]) -> bool,
) -> Vec<FlowUsage> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let usage = hopper.flow_usage().await.unwrap();
        if done(&usage) {
            return usage;
        }
        assert!(
            Instant::now() < deadline,
            "the usage never settled: {usage:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn flow_usage_counts_running_jobs_starts_and_jobs_a_queue_limit_holds_back(db: &TestDb) {
    let (queue, gate) = gated_queue(db, &["capped", "rated"]).await;
    let hopper = queue.hopper();
    let minute = Duration::from_secs(60);
    let hour = Duration::from_secs(3600);
    // 3 at once, 100 starts a minute.
    let capped = QueueFlow::default()
        .concurrency(3)
        .rate(Rate::new(100, minute));
    hopper.set_queue_flow("capped", capped).await.unwrap();
    hopper
        .set_queue_flow("rated", QueueFlow::default().rate(Rate::new(2, hour)))
        .await
        .unwrap();
    let idle = hopper.flow_usage().await.unwrap();
    assert_eq!(
        idle.len(),
        2,
        "one row per queue with settings, idle ones too"
    );
    assert_eq!(
        (idle[0].running, idle[0].waiting, idle[0].full),
        (0, 0, false)
    );

    for _ in 0..5 {
        dispatch_gated(hopper, "capped", None).await;
    }
    for _ in 0..4 {
        hopper
            .dispatch_with::<Noop>((), DispatchOptions::new().queue("rated"))
            .await
            .unwrap();
    }
    // A queue without settings is not listed.
    hopper.dispatch::<Noop>(()).await.unwrap();

    let usage = wait_usage(hopper, |all| {
        of(all, "capped").running == 3
            && of(all, "rated").starts_in_window == Some(2)
            && of(all, "rated").running == 0
    })
    .await;
    let names: Vec<&str> = usage.iter().map(|u| u.queue.as_str()).collect();
    assert_eq!(names, ["capped", "rated"]);

    // The queue's own limit is reached: every due job waits on it.
    let c = of(&usage, "capped");
    assert_eq!(c.flow, capped);
    assert_eq!((c.due, c.waiting, c.full), (2, 2, true));
    assert_eq!(c.starts_in_window, Some(3));
    assert!(c.busiest_keys.is_empty(), "its claims do not look at keys");

    // The rate is used up: the rest wait for the window to move on.
    let r = of(&usage, "rated");
    assert_eq!((r.running, r.due, r.waiting, r.full), (0, 2, 2, true));

    // Open the gate: every run ends, and the starts stay in the window.
    gate.0.close();
    let usage = wait_usage(hopper, |all| {
        of(all, "capped").running == 0 && of(all, "capped").due == 0
    })
    .await;
    let c = of(&usage, "capped");
    assert_eq!((c.waiting, c.full, c.starts_in_window), (0, false, Some(5)));

    // Past the windows, the starts are no longer counted and the rated
    // queue's last jobs start.
    queue.advance(hour * 2);
    let usage = wait_usage(hopper, |all| of(all, "rated").due == 0).await;
    assert_eq!(of(&usage, "capped").starts_in_window, Some(0));
    let r = of(&usage, "rated");
    assert_eq!((r.starts_in_window, r.waiting, r.full), (Some(2), 0, true));

    // Keyed jobs claimed before a per-key limit was set count against it:
    // key a runs 2 of 1, so its next job waits; b's does not.
    for key in ["a", "a", "a", "b"] {
        dispatch_gated(hopper, "late", Some(key)).await;
    }
    let claim = hopper::store::ClaimRequest {
        start_now: 2,
        ..crate::cases::claim_at("late", "elsewhere", 2, hopper.now(), hour)
    };
    assert_eq!(hopper.store().claim(claim).await.unwrap().len(), 2);
    hopper
        .set_queue_flow("late", QueueFlow::default().per_key(1))
        .await
        .unwrap();
    let usage = hopper.flow_usage().await.unwrap();
    let l = of(&usage, "late");
    assert_eq!((l.running, l.due, l.waiting, l.full), (2, 2, 1, false));
    let keys: Vec<(Option<&str>, u64, bool)> = l
        .busiest_keys
        .iter()
        .map(|key| (key.key.as_deref(), key.running, key.full))
        .collect();
    assert_eq!(keys, [(Some("a"), 2, true)]);
    queue.stop().await.unwrap();
}

pub async fn flow_usage_shows_the_busiest_keys_and_the_jobs_their_limits_hold_back(db: &TestDb) {
    let (queue, gate) = gated_queue(db, &["capped", "keyed"]).await;
    let hopper = queue.hopper();
    let hour = Duration::from_secs(3600);
    // 3 at once, 2 per key.
    let capped = QueueFlow::default().concurrency(3).per_key(2);
    // 1 per key at once, 10 starts an hour per key.
    let keyed = QueueFlow::default()
        .per_key(1)
        .rate(Rate::per_key(10, hour));
    hopper.set_queue_flow("capped", capped).await.unwrap();
    hopper.set_queue_flow("keyed", keyed).await.unwrap();
    for (queue, key) in [
        ("capped", Some("a")),
        ("capped", Some("a")),
        ("capped", Some("a")),
        ("capped", Some("b")),
        ("capped", Some("b")),
        ("capped", None),
        ("keyed", Some("x")),
        ("keyed", Some("x")),
        ("keyed", Some("x")),
        ("keyed", Some("y")),
        ("keyed", Some("z")),
        ("keyed", Some("z")),
    ] {
        dispatch_gated(hopper, queue, key).await;
    }

    let usage = wait_usage(hopper, |all| {
        of(all, "capped").running == 3 && of(all, "keyed").running == 3
    })
    .await;
    // The queue's own limit is reached first: every due job waits on it,
    // and no key runs more than its limit.
    let c = of(&usage, "capped");
    assert_eq!((c.due, c.waiting, c.full), (3, 3, true));
    assert_eq!(c.busiest_keys.iter().map(|k| k.running).sum::<u64>(), 3);
    assert!(c.busiest_keys.iter().all(|k| k.running <= 2));
    assert!(c.busiest_keys.iter().all(|k| k.starts_in_window.is_none()));
    assert_eq!(c.starts_in_window, None, "no rate");

    // Every key at its per-key limit: the jobs of x and z wait, y has none left.
    let k = of(&usage, "keyed");
    assert_eq!((k.due, k.waiting, k.full), (3, 3, false));
    assert_eq!(k.starts_in_window, Some(3));
    let keys = key_rows(k);
    assert_eq!(
        keys,
        [
            (Some("x"), 1, Some(1), true),
            (Some("y"), 1, Some(1), true),
            (Some("z"), 1, Some(1), true),
        ]
    );

    // Open the gate: everything runs, key by key; the starts stay counted.
    gate.0.close();
    let usage = wait_usage(hopper, |all| {
        ["capped", "keyed"]
            .iter()
            .all(|q| of(all, q).running == 0 && of(all, q).due == 0)
    })
    .await;
    let k = of(&usage, "keyed");
    assert_eq!((k.waiting, k.starts_in_window), (0, Some(6)));
    let keys = key_rows(k);
    assert_eq!(
        keys,
        [
            (Some("x"), 0, Some(3), false),
            (Some("z"), 0, Some(2), false),
            (Some("y"), 0, Some(1), false),
        ]
    );
    queue.stop().await.unwrap();
}
