//! Workflows: steps run after their dependencies (fan-out and fan-in),
//! read their outputs, are cancelled when a dependency fails (unless they
//! run whatever the outcome), and are released once when their last two
//! dependencies end at the same moment in two processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper::store::{
    Claim, ClaimRequest, ClaimedJob, CompleteRequest, Completion, Outcome, Store, new_claim_token,
};
use hopper::{
    DispatchError, DispatchOptions, Hopper, Job, JobContext, JobError, JobResult, JobState,
    StoreError,
};

use crate::backends::TestDb;
use crate::common::{finish_all, wait_state};

/// How many times each step ran.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, u32>>>);

/// A step: fails for good when told to; otherwise checks every dependency
/// finished (or, for a step that runs whatever the outcome, ended), and
/// returns its number plus the sum of its dependencies' outputs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stage {
    name: String,
    n: u64,
    fail: bool,
}

struct StageJob;

impl Job for StageJob {
    const TYPE: &'static str = "stage";
    type Payload = Stage;
    async fn handle(&self, stage: Stage, ctx: JobContext) -> JobResult {
        *ctx.state::<Runs>()?
            .0
            .lock()
            .unwrap()
            .entry(stage.name.clone())
            .or_default() += 1;
        if stage.fail {
            return Err(JobError::permanent("told to fail"));
        }
        let mut sum = stage.n;
        for dependency in ctx.dependencies().await? {
            if !matches!(
                dependency.state,
                JobState::Finished | JobState::Failed | JobState::Cancelled
            ) {
                return Err(JobError::permanent(format!(
                    "ran before {} ended",
                    dependency.step
                )));
            }
            sum += dependency.output_as::<u64>()?.unwrap_or(0);
        }
        ctx.set_output(&sum)?;
        Ok(())
    }
}

fn stage(name: &str, n: u64, fail: bool) -> Stage {
    Stage {
        name: name.to_owned(),
        n,
        fail,
    }
}

async fn handle(db: &TestDb, runs: &Runs) -> Hopper {
    Hopper::builder()
        .register(StageJob)
        .unwrap()
        .state(runs.clone())
        .connect(db.url())
        .await
        .unwrap()
}

pub async fn a_workflow_runs_each_step_after_its_dependencies_and_fans_in_once(db: &TestDb) {
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let mut builder = hopper
        .workflow("fan")
        .add::<StageJob>("root", stage("root", 1, false))
        .unwrap();
    let children: Vec<String> = (0..20).map(|n| format!("child {n}")).collect();
    for (n, child) in children.iter().enumerate() {
        builder = builder
            .add_after::<StageJob>(&["root"], child, stage(child, n as u64, false))
            .unwrap();
    }
    let after: Vec<&str> = children.iter().map(String::as_str).collect();
    let workflow = builder
        .add_after::<StageJob>(&after, "sink", stage("sink", 0, false))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let sink = workflow.jobs["sink"];
    let waiting = hopper.job(sink).await.unwrap().unwrap();
    assert_eq!((waiting.state, waiting.waiting_on), (JobState::Pending, 20));

    let pool = hopper.start(hopper::WorkerConfig::new(8)).unwrap();
    wait_state(&hopper, sink, JobState::Finished).await;
    pool.stop().await.unwrap();
    // Each child adds the root's 1 to its own number; the sink sums them.
    let want: u64 = (0..20).map(|n| n + 1).sum();
    let done = hopper.job(sink).await.unwrap().unwrap();
    assert_eq!(done.output_as::<u64>().unwrap().unwrap(), want);
    let runs = runs.0.lock().unwrap().clone();
    assert_eq!(runs.len(), 22);
    assert!(
        runs.values().all(|n| *n == 1),
        "each step ran once: {runs:?}"
    );
    let status = hopper.batch_status(workflow.id).await.unwrap().unwrap();
    assert_eq!((status.counts.total, status.counts.finished), (22, 22));
    let members = hopper::JobFilter {
        batch_id: Some(workflow.id),
        limit: Some(100),
        ..hopper::JobFilter::default()
    };
    assert_eq!(hopper.jobs(&members).await.unwrap().jobs.len(), 22);
    assert_eq!(hopper.count_jobs(&members).await.unwrap(), 22);
}

pub async fn a_failed_step_cancels_its_dependents_and_an_any_outcome_step_still_runs(db: &TestDb) {
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let workflow = hopper
        .workflow("failing")
        .add::<StageJob>("a", stage("a", 1, true))
        .unwrap()
        .add_after::<StageJob>(&["a"], "b", stage("b", 1, false))
        .unwrap()
        .add_after::<StageJob>(&["b"], "c", stage("c", 1, false))
        .unwrap()
        .add_after_ended::<StageJob>(&["a"], "clean up", stage("clean up", 1, false))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let pool = hopper.start(hopper::WorkerConfig::new(4)).unwrap();
    wait_state(&hopper, workflow.jobs["clean up"], JobState::Finished).await;
    wait_state(&hopper, workflow.jobs["c"], JobState::Cancelled).await;
    pool.stop().await.unwrap();
    let state = |step: &str| {
        let hopper = hopper.clone();
        let id = workflow.jobs[step];
        async move { hopper.job(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state("a").await, JobState::Failed);
    assert_eq!(state("b").await, JobState::Cancelled);
    let runs = runs.0.lock().unwrap().clone();
    assert_eq!(runs.get("b"), None, "a cancelled step never runs");
    assert_eq!(runs.get("c"), None);
    let counts = hopper
        .batch_status(workflow.id)
        .await
        .unwrap()
        .unwrap()
        .counts;
    assert_eq!(
        (counts.finished, counts.failed, counts.cancelled),
        (1, 1, 2)
    );
}

pub async fn two_dependencies_ending_at_once_in_two_processes_release_their_dependent_once(
    db: &TestDb,
) {
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let other = hopper::store::open(db.url()).await.unwrap();
    let store = hopper.store().clone();
    for round in 0..10u32 {
        let queue = format!("fan-in{round}");
        let options = DispatchOptions::new().queue(&queue);
        let job = |name: &str| {
            hopper
                .prepare::<StageJob>(stage(name, 1, false), options.clone())
                .unwrap()
        };
        let workflow = hopper
            .workflow(format!("race {round}"))
            .step(&[], false, "a", job("a"))
            .unwrap()
            .step(&[], false, "b", job("b"))
            .unwrap()
            .step(&["a", "b"], false, "c", job("c"))
            .unwrap()
            .dispatch()
            .await
            .unwrap();
        let claimed = store
            .claim(ClaimRequest {
                queue: &queue,
                worker: "race",
                token: new_claim_token(),
                limit: 5,
                lease: Duration::from_secs(60),
                now: None,
                due_by: chrono::Utc::now(),
                start_now: 5,
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "only a and b are due");
        let ending = |claim: Claim| {
            [Completion {
                claim,
                attempt: 1,
                outcome: Outcome::Finished,
            }]
        };
        let end = |store: Arc<dyn Store>, completions: [Completion; 1]| async move {
            store
                .complete(CompleteRequest {
                    completions: &completions,
                    ended_at: chrono::Utc::now(),
                })
                .await
                .unwrap();
            store
                .release_dependents(chrono::Utc::now())
                .await
                .unwrap()
                .queues
        };
        let (one, two) = tokio::join!(
            end(store.clone(), ending(claimed[0].claim())),
            end(other.clone(), ending(claimed[1].claim()))
        );
        assert_eq!(
            one.len() + two.len(),
            1,
            "round {round}: c released once ({one:?}, {two:?})"
        );
        let c = store.get(workflow.jobs["c"]).await.unwrap().unwrap();
        assert_eq!((c.state, c.waiting_on), (JobState::Pending, 0));
        assert!(c.available_at <= chrono::Utc::now(), "c is due");
        assert!(
            store
                .release_dependents(chrono::Utc::now())
                .await
                .unwrap()
                .queues
                .is_empty()
        );
    }
}

/// A fan-out wider than one release step settles is released over several
/// steps, each its own transaction, that can be taken by different
/// processes: every dependent exactly once, the fan-in once all ended.
pub async fn a_wide_fan_out_is_released_in_bounded_steps_each_dependent_once(db: &TestDb) {
    const WIDTH: usize = 2_500;
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let other = hopper::store::open(db.url()).await.unwrap();
    let store = hopper.store().clone();
    let options = DispatchOptions::new().queue("wide");
    let job = |name: &str| {
        hopper
            .prepare::<StageJob>(stage(name, 1, false), options.clone())
            .unwrap()
    };
    let mut workflow = hopper
        .workflow("wide")
        .step(&[], false, "root", job("root"))
        .unwrap();
    let middle: Vec<String> = (0..WIDTH).map(|n| format!("m{n}")).collect();
    for name in &middle {
        workflow = workflow.step(&["root"], false, name, job(name)).unwrap();
    }
    let names: Vec<&str> = middle.iter().map(String::as_str).collect();
    let workflow = workflow
        .step(&names, false, "last", job("last"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let claim = |limit: u32| claim_started(&*store, "wide", limit);
    let finish = |claimed: Vec<ClaimedJob>| {
        let store = store.clone();
        async move { finish_all(&*store, &claimed, chrono::Utc::now()).await }
    };
    let root = claim(10).await;
    assert_eq!(root.len(), 1, "only the root is due");
    finish(root).await;

    // The first step settles one step's worth and says more is left; the
    // next, in another process, settles the rest.
    let first = store.release_dependents(chrono::Utc::now()).await.unwrap();
    assert!(first.more, "a step settles at most its bound");
    assert_eq!(first.queues, ["wide"]);
    let due = claim(u32::try_from(WIDTH).unwrap()).await;
    assert!(
        !due.is_empty() && due.len() < WIDTH,
        "the first dependents are due before the rest are released: {}",
        due.len()
    );
    let mut steps = 1;
    loop {
        let released = other.release_dependents(chrono::Utc::now()).await.unwrap();
        steps += 1;
        if !released.more {
            break;
        }
        assert!(steps < 10, "the release goes on");
    }
    let rest = claim(u32::try_from(WIDTH).unwrap()).await;
    let mut ids: Vec<_> = due.iter().chain(&rest).map(|job| job.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), WIDTH, "every middle step released once");
    assert!(claim(10).await.is_empty(), "the last step still waits");

    // Their endings release the fan-in once, over steps too.
    finish(due).await;
    finish(rest).await;
    while store
        .release_dependents(chrono::Utc::now())
        .await
        .unwrap()
        .more
    {}
    let last = store.get(workflow.jobs["last"]).await.unwrap().unwrap();
    assert_eq!((last.state, last.waiting_on), (JobState::Pending, 0));
    assert_eq!(claim(10).await.len(), 1, "the fan-in is due once");
    assert!(
        !other
            .release_dependents(chrono::Utc::now())
            .await
            .unwrap()
            .more
    );
}

pub async fn fan_outs_ending_in_one_step_are_each_released_whole_once(db: &TestDb) {
    // Two roots whose dependents together pass a step's bound: the step
    // reads both roots' edges at once, takes all of the first's and the
    // start of the second's, and the next step goes on from there.
    const WIDTH: usize = 2_100;
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let store = hopper.store().clone();
    let options = DispatchOptions::new().queue("two-fans");
    let job = |name: &str| {
        hopper
            .prepare::<StageJob>(stage(name, 1, false), options.clone())
            .unwrap()
    };
    let mut workflow = hopper
        .workflow("two fans")
        .step(&[], false, "a", job("a"))
        .unwrap()
        .step(&[], false, "b", job("b"))
        .unwrap();
    let dependents: Vec<(String, &str)> = ["a", "b"]
        .into_iter()
        .flat_map(|root| (0..WIDTH).map(move |n| (format!("{root}{n}"), root)))
        .collect();
    for (name, root) in &dependents {
        workflow = workflow.step(&[root], false, name, job(name)).unwrap();
    }
    let workflow = workflow.dispatch().await.unwrap();
    let roots = claim_started(&*store, "two-fans", 10).await;
    assert_eq!(roots.len(), 2, "only the roots are due");
    finish_all(&*store, &roots, chrono::Utc::now()).await;

    let mut steps = 0;
    while store
        .release_dependents(chrono::Utc::now())
        .await
        .unwrap()
        .more
    {
        steps += 1;
        assert!(steps < 10, "the release goes on");
    }
    assert!(
        steps >= 1,
        "{} dependents took more than one step",
        2 * WIDTH
    );
    let due = claim_started(&*store, "two-fans", u32::try_from(3 * WIDTH).unwrap()).await;
    let mut ids: Vec<_> = due.iter().map(|job| job.id).collect();
    ids.sort_unstable();
    let mut expected: Vec<_> = dependents
        .iter()
        .map(|(name, _)| workflow.jobs[name.as_str()])
        .collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every dependent of both roots released once");
}

pub async fn a_workflow_that_cannot_be_one_is_refused_and_stores_nothing(db: &TestDb) {
    let runs = Runs::default();
    let hopper = handle(db, &runs).await;
    let refused = |error: DispatchError| match error {
        DispatchError::Store(StoreError::InvalidWorkflow(reason)) => reason,
        other => panic!("not refused as invalid: {other}"),
    };
    let unknown = hopper
        .workflow("w")
        .add_after::<StageJob>(&["nope"], "a", stage("a", 1, false))
        .unwrap_err();
    assert!(refused(unknown).contains("\"nope\""));
    let twice = hopper
        .workflow("w")
        .add::<StageJob>("a", stage("a", 1, false))
        .unwrap()
        .add::<StageJob>("a", stage("a", 1, false))
        .unwrap_err();
    assert!(refused(twice).contains("two steps are named"));
    let keyed = hopper
        .prepare::<StageJob>(
            stage("b", 1, false),
            DispatchOptions::new().partition("customer 7"),
        )
        .unwrap();
    let partitioned = hopper
        .workflow("w")
        .add::<StageJob>("a", stage("a", 1, false))
        .unwrap()
        .step(&["a"], false, "b", keyed)
        .unwrap_err();
    assert!(refused(partitioned).contains("partition key"));
    assert_eq!(
        hopper
            .count_jobs(&hopper::JobFilter::default())
            .await
            .unwrap(),
        0,
        "nothing stored"
    );
}

/// Claims up to `limit` due jobs of `queue`, each started at once.
async fn claim_started(store: &dyn Store, queue: &str, limit: u32) -> Vec<ClaimedJob> {
    store
        .claim(ClaimRequest {
            queue,
            worker: queue,
            token: new_claim_token(),
            limit,
            lease: Duration::from_secs(60),
            now: None,
            due_by: chrono::Utc::now(),
            start_now: limit,
        })
        .await
        .unwrap()
}
