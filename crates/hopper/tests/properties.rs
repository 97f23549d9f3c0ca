//! Property tests: random operation sequences against a real SQLite store,
//! checked step by step against a simple model of the job life cycle; the
//! retry backoff; and the cron schedule's next-tick computation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use hopper::clock::ManualClock;
use hopper::retry::Backoff;
use hopper::schedule::Schedule;
use hopper::store::{
    Claim, ClaimRequest, ClaimToken, CompleteRequest, Completion, Outcome, new_claim_token,
};
use hopper::{
    DispatchOptions, Hopper, Job, JobContext, JobFilter, JobId, JobResult, JobState, Retention,
};
use proptest::prelude::*;

/// The one job type of the state-machine test: attempts come from each dispatch.
struct Prop;

/// How many attempts a retried `Prop` job gets.
const PROP_ATTEMPTS: u32 = 2;

impl Job for Prop {
    const TYPE: &'static str = "prop";
    const MAX_ATTEMPTS: u32 = PROP_ATTEMPTS;
    type Payload = u32;
    async fn handle(&self, _: u32, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// How long a claim's lease lasts in the model.
const LEASE: Duration = Duration::from_secs(30);
/// How old an ended job must be before the model's prune deletes it.
const KEEP: Duration = Duration::from_secs(60);
const WORKERS: [&str; 2] = ["w0", "w1"];

/// One step a test sequence takes.
#[derive(Clone, Debug)]
enum Op {
    Dispatch {
        delay_secs: u64,
        max_attempts: u32,
        key: Option<u8>,
    },
    Claim {
        worker: usize,
        limit: u32,
    },
    /// Completes a started job; a stale completion names an earlier attempt.
    Finish {
        pick: usize,
        stale: bool,
    },
    /// Fails a started job's attempt: retried while attempts remain, unless permanent.
    Fail {
        pick: usize,
        permanent: bool,
        delay_secs: u64,
    },
    Cancel {
        pick: usize,
    },
    Retry {
        pick: usize,
    },
    Delete {
        pick: usize,
    },
    /// Records that a started job's handler began running.
    Start {
        pick: usize,
    },
    Rescue,
    Prune,
    Advance {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..90u64, 1..4u32, prop::option::of(0..3u8)).prop_map(|(delay_secs, max_attempts, key)| {
            Op::Dispatch { delay_secs: delay_secs.saturating_sub(45), max_attempts, key }
        }),
        3 => (0..2usize, 1..4u32).prop_map(|(worker, limit)| Op::Claim { worker, limit }),
        2 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, stale)| Op::Finish { pick, stale }),
        2 => (any::<usize>(), any::<bool>(), 0..40u64).prop_map(|(pick, permanent, delay_secs)| Op::Fail { pick, permanent, delay_secs }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Start { pick }),
        1 => Just(Op::Rescue),
        1 => Just(Op::Prune),
        2 => (1..50u64).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// What the model knows of one job.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    state: JobState,
    attempts: u32,
    max_attempts: u32,
    available_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    locked_by: Option<String>,
    locked_until: Option<DateTime<Utc>>,
    key: Option<String>,
    /// The token of the claim holding it while started.
    token: Option<ClaimToken>,
    /// Whether the started run's handler began.
    run_started: bool,
    /// Whether someone asked the started run to stop.
    cancel_requested: bool,
}

/// The edges a job may move along between two observations.
fn allowed(from: JobState, to: JobState) -> bool {
    use JobState::*;
    from == to
        || matches!(
            (from, to),
            (Pending, Started)
                | (Pending, Cancelled)
                | (Started, Finished)
                | (Started, Pending)
                | (Started, Failed)
                | (Started, Cancelled)
                | (Failed, Pending)
                | (Cancelled, Pending)
        )
}

struct Machine {
    hopper: Hopper,
    clock: ManualClock,
    jobs: BTreeMap<JobId, Model>,
    /// States as last read from the store.
    seen: BTreeMap<JobId, JobState>,
    /// Every id ever handed out, to check ids are never reused.
    issued: BTreeSet<JobId>,
    _dir: tempfile::TempDir,
}

impl Machine {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("prop.db").display());
        let clock = ManualClock::starting_at(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let hopper = Hopper::builder()
            .register(Prop)
            .unwrap()
            .clock(clock.clone())
            .connect(&url)
            .await
            .unwrap();
        Self {
            hopper,
            clock,
            jobs: BTreeMap::new(),
            seen: BTreeMap::new(),
            issued: BTreeSet::new(),
            _dir: dir,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.hopper.now()
    }

    /// The `pick`-th job (modulo) among those `which` accepts, by id.
    fn pick(&self, pick: usize, which: impl Fn(&Model) -> bool) -> Option<JobId> {
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, job)| which(job))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[pick % ids.len()])
    }

    async fn apply(&mut self, op: &Op) {
        let now = self.now();
        let store = self.hopper.store().clone();
        match *op {
            Op::Dispatch {
                delay_secs,
                max_attempts,
                key,
            } => {
                let mut options = DispatchOptions::new()
                    .max_attempts(max_attempts)
                    .delay(Duration::from_secs(delay_secs));
                let key = key.map(|k| format!("key-{k}"));
                if let Some(key) = &key {
                    options = options.unique_key(key.clone());
                }
                let id = self.hopper.dispatch_with::<Prop>(7, options).await.unwrap();
                let holder = self.jobs.iter().find(|(_, job)| {
                    key.is_some()
                        && job.key == key
                        && matches!(job.state, JobState::Pending | JobState::Started)
                });
                if let Some((&holder, _)) = holder {
                    assert_eq!(id, holder, "a live job holds the unique key");
                    return;
                }
                assert!(
                    self.issued.iter().all(|&old| old < id),
                    "new ids grow: {id}"
                );
                self.issued.insert(id);
                self.jobs.insert(
                    id,
                    Model {
                        state: JobState::Pending,
                        attempts: 0,
                        max_attempts,
                        available_at: now + chrono::Duration::seconds(delay_secs as i64),
                        finished_at: None,
                        locked_by: None,
                        locked_until: None,
                        key,
                        token: None,
                        run_started: false,
                        cancel_requested: false,
                    },
                );
            }
            Op::Claim { worker, limit } => {
                let worker = WORKERS[worker];
                let lease_until = now + chrono::Duration::from_std(LEASE).unwrap();
                let claimed = store
                    .claim(ClaimRequest {
                        queue: "default",
                        worker,
                        limit,
                        start_now: 0,
                        token: new_claim_token(),
                        due_by: now,
                        lease: LEASE,
                        now: Some(now),
                    })
                    .await
                    .unwrap();
                let mut due: Vec<(DateTime<Utc>, JobId)> = self
                    .jobs
                    .iter()
                    .filter(|(_, job)| job.state == JobState::Pending && job.available_at <= now)
                    .map(|(id, job)| (job.available_at, *id))
                    .collect();
                due.sort();
                let expected: BTreeSet<JobId> =
                    due.iter().take(limit as usize).map(|(_, id)| *id).collect();
                let got: BTreeSet<JobId> = claimed.iter().map(|job| job.id).collect();
                assert_eq!(got, expected, "claim takes the oldest due jobs");
                for job in &claimed {
                    let model = self.jobs.get_mut(&job.id).unwrap();
                    model.attempts += 1;
                    assert_eq!(job.attempt, model.attempts);
                    assert_eq!(job.max_attempts, model.max_attempts);
                    model.state = JobState::Started;
                    model.locked_by = Some(worker.to_owned());
                    model.locked_until = Some(lease_until);
                    model.token = Some(job.token);
                    model.run_started = false;
                    model.cancel_requested = false;
                }
            }
            Op::Finish { pick, stale } => {
                let Some(id) = self.pick(pick, |job| job.state == JobState::Started) else {
                    return;
                };
                let model = self.jobs[&id].clone();
                let token = model.token.unwrap();
                let completion = Completion {
                    claim: Claim {
                        id,
                        token: if stale { token.wrapping_add(1) } else { token },
                    },
                    attempt: model.attempts,
                    outcome: Outcome::Finished,
                };
                let request = CompleteRequest {
                    completions: &[completion],
                    ended_at: now,
                };
                let applied = store.complete(request).await.unwrap();
                assert_eq!(applied, u64::from(!stale), "only the live claim applies");
                if !stale {
                    let model = self.jobs.get_mut(&id).unwrap();
                    model.state = JobState::Finished;
                    model.finished_at = Some(now);
                    model.locked_by = None;
                    model.locked_until = None;
                    model.token = None;
                }
            }
            Op::Fail {
                pick,
                permanent,
                delay_secs,
            } => {
                let Some(id) = self.pick(pick, |job| job.state == JobState::Started) else {
                    return;
                };
                let model = self.jobs.get_mut(&id).unwrap();
                let retry = !permanent && model.attempts < model.max_attempts;
                let at = now + chrono::Duration::seconds(delay_secs as i64);
                let outcome = if retry {
                    Outcome::Retry {
                        at,
                        error: "try again".into(),
                    }
                } else {
                    Outcome::Failed {
                        error: "gave up".into(),
                    }
                };
                let completion = Completion {
                    claim: Claim {
                        id,
                        token: model.token.unwrap(),
                    },
                    attempt: model.attempts,
                    outcome,
                };
                let request = CompleteRequest {
                    completions: &[completion],
                    ended_at: now,
                };
                let applied = store.complete(request).await.unwrap();
                assert_eq!(applied, 1);
                model.locked_by = None;
                model.locked_until = None;
                model.token = None;
                if retry {
                    model.state = JobState::Pending;
                    model.available_at = at;
                } else {
                    model.state = JobState::Failed;
                    model.finished_at = Some(now);
                }
            }
            Op::Cancel { pick } => {
                let Some(id) = self.pick(pick, |_| true) else {
                    return;
                };
                let cancelled = self.hopper.cancel(id).await.unwrap();
                let model = self.jobs.get_mut(&id).unwrap();
                assert_eq!(
                    cancelled,
                    matches!(model.state, JobState::Pending | JobState::Started)
                );
                match model.state {
                    // A running job is asked to stop; it stays started.
                    JobState::Started => model.cancel_requested = true,
                    JobState::Pending => {
                        model.state = JobState::Cancelled;
                        model.finished_at = Some(now);
                    }
                    _ => {}
                }
            }
            Op::Retry { pick } => {
                let Some(id) = self.pick(pick, |_| true) else {
                    return;
                };
                let model = &self.jobs[&id];
                let expected = matches!(model.state, JobState::Failed | JobState::Cancelled);
                let key_held = model.key.is_some()
                    && self.jobs.iter().any(|(other, job)| {
                        *other != id
                            && job.key == model.key
                            && matches!(job.state, JobState::Pending | JobState::Started)
                    });
                let result = self.hopper.retry(id).await;
                if expected && key_held {
                    let err = result.unwrap_err();
                    assert!(
                        matches!(err, hopper::StoreError::UniqueKeyHeld { id: held, .. } if held == id),
                        "{err}"
                    );
                    return;
                }
                let retried = result.unwrap();
                let model = self.jobs.get_mut(&id).unwrap();
                assert_eq!(retried, expected);
                if retried {
                    model.state = JobState::Pending;
                    model.available_at = now;
                    model.finished_at = None;
                    model.max_attempts = model.attempts + PROP_ATTEMPTS;
                }
            }
            Op::Delete { pick } => {
                let Some(id) = self.pick(pick, |_| true) else {
                    return;
                };
                let deleted = self.hopper.delete(id).await.unwrap();
                assert_eq!(deleted, self.jobs[&id].state != JobState::Started);
                if deleted {
                    self.jobs.remove(&id);
                    self.seen.remove(&id);
                }
            }
            Op::Start { pick } => {
                let Some(id) = self.pick(pick, |job| job.state == JobState::Started) else {
                    return;
                };
                let model = self.jobs.get_mut(&id).unwrap();
                let claim = Claim {
                    id,
                    token: model.token.unwrap(),
                };
                assert_eq!(store.mark_started(&[claim]).await.unwrap(), 1);
                model.run_started = true;
            }
            Op::Rescue => {
                let rescued: BTreeSet<JobId> =
                    store.rescue(Some(now)).await.unwrap().into_iter().collect();
                let expected: BTreeSet<JobId> = self
                    .jobs
                    .iter()
                    .filter(|(_, job)| {
                        job.state == JobState::Started && job.locked_until.unwrap() < now
                    })
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(rescued, expected, "only expired leases are rescued");
                for id in rescued {
                    let model = self.jobs.get_mut(&id).unwrap();
                    model.locked_by = None;
                    model.locked_until = None;
                    model.token = None;
                    if model.cancel_requested {
                        // Its run was asked to stop: it ends cancelled.
                        model.state = JobState::Cancelled;
                        model.finished_at = Some(now);
                        continue;
                    }
                    model.available_at = now;
                    if !model.run_started {
                        // A claim whose handler never started gives its attempt back.
                        model.attempts -= 1;
                        model.state = JobState::Pending;
                    } else if model.attempts >= model.max_attempts {
                        model.state = JobState::Failed;
                        model.finished_at = Some(now);
                    } else {
                        model.state = JobState::Pending;
                    }
                }
            }
            Op::Prune => {
                let pruned = self.hopper.prune(Retention::all(KEEP)).await.unwrap();
                let cutoff = now - chrono::Duration::from_std(KEEP).unwrap();
                let old: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|(_, job)| {
                        matches!(
                            job.state,
                            JobState::Finished | JobState::Failed | JobState::Cancelled
                        ) && job.finished_at.unwrap() < cutoff
                    })
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(pruned, old.len() as u64, "prune deletes old ended jobs");
                for id in old {
                    self.jobs.remove(&id);
                    self.seen.remove(&id);
                }
            }
            Op::Advance { secs } => self.clock.advance(Duration::from_secs(secs)),
        }
    }

    /// Reads every job back and holds it against the model.
    async fn check(&mut self) {
        let stored: BTreeMap<JobId, hopper::JobRecord> =
            hopper::testing::all_jobs(&self.hopper, &JobFilter::default())
                .await
                .unwrap()
                .into_iter()
                .map(|job| (job.id, job))
                .collect();
        let stored_ids: Vec<_> = stored.keys().collect();
        let model_ids: Vec<_> = self.jobs.keys().collect();
        assert_eq!(stored_ids, model_ids, "no job appears or vanishes");
        for (id, job) in &stored {
            let model = &self.jobs[id];
            assert_eq!(job.state, model.state, "job {id}");
            assert_eq!(job.attempts, model.attempts, "job {id}");
            assert_eq!(job.max_attempts, model.max_attempts, "job {id}");
            assert!(job.attempts <= job.max_attempts, "job {id}");
            assert!(job.max_attempts >= 1, "job {id}");
            assert_eq!(job.locked_by, model.locked_by, "job {id}");
            assert_eq!(job.locked_until, model.locked_until, "job {id}");
            assert_eq!(
                job.locked_by.is_some(),
                job.state == JobState::Started,
                "a job is leased exactly while started: {id}"
            );
            assert_eq!(job.unique_key, model.key, "job {id}");
            if job.state == JobState::Pending {
                assert_eq!(job.available_at, model.available_at, "job {id}");
            }
            let ended = matches!(
                job.state,
                JobState::Finished | JobState::Failed | JobState::Cancelled
            );
            assert_eq!(job.finished_at.is_some(), ended, "job {id}");
            if ended {
                assert_eq!(job.finished_at, model.finished_at, "job {id}");
            }
            if let Some(&before) = self.seen.get(id) {
                assert!(
                    allowed(before, job.state),
                    "job {id} moved {before:?} -> {:?}",
                    job.state
                );
            }
            self.seen.insert(*id, job.state);
        }
        let mut counted: BTreeMap<JobState, u64> = BTreeMap::new();
        for count in self.hopper.counts().await.unwrap() {
            assert_eq!(count.queue, "default");
            *counted.entry(count.state).or_default() += count.count;
        }
        let mut expected: BTreeMap<JobState, u64> = BTreeMap::new();
        for job in self.jobs.values() {
            *expected.entry(job.state).or_default() += 1;
        }
        assert_eq!(counted, expected, "counts add up");
        let due: u64 = self
            .hopper
            .queue_stats()
            .await
            .unwrap()
            .iter()
            .map(|stats| stats.due)
            .sum();
        let now = self.now();
        let model_due = self
            .jobs
            .values()
            .filter(|job| job.state == JobState::Pending && job.available_at <= now)
            .count() as u64;
        assert_eq!(due, model_due, "queue depth counts due pending jobs");
    }
}

/// `cases` random cases; a failure prints its minimal input instead of
/// writing a regressions file next to the tests.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn no_sequence_of_operations_loses_a_job_or_breaks_its_life_cycle(
        ops in prop::collection::vec(op(), 1..50)
    ) {
        runtime().block_on(async {
            let mut machine = Machine::new().await;
            for op in &ops {
                machine.apply(op).await;
                machine.check().await;
            }
        });
    }
}

/// A backoff with any base, factor, cap and jitter, the cap up to the longest duration.
fn backoff() -> impl Strategy<Value = Backoff> {
    (
        prop_oneof![0..3_600_000u64, Just(u64::MAX / 1_000)],
        prop_oneof![0.0..10.0f64, Just(f64::NAN), Just(f64::INFINITY)],
        prop_oneof![0..86_400_000u64, Just(u64::MAX)],
        prop_oneof![0.0..2.0f64, Just(-1.0f64)],
    )
        .prop_map(|(base_ms, factor, max_ms, jitter)| Backoff {
            base: Duration::from_millis(base_ms),
            factor,
            max: if max_ms == u64::MAX {
                Duration::MAX
            } else {
                Duration::from_millis(max_ms)
            },
            jitter,
        })
}

/// The delay before jitter, as the documentation states it.
fn plain(backoff: &Backoff, attempt: u32) -> f64 {
    let factor = if backoff.factor.is_nan() {
        1.0
    } else {
        backoff.factor.max(1.0)
    };
    let grown =
        backoff.base.as_secs_f64() * factor.powi(attempt.saturating_sub(1).min(1024) as i32);
    if grown.is_nan() {
        0.0
    } else {
        grown.min(backoff.max.as_secs_f64())
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn backoff_never_exceeds_its_cap_and_never_undercuts_the_plain_delay(
        backoff in backoff(),
        attempt in prop_oneof![0..40u32, any::<u32>()],
    ) {
        let delay = backoff.delay(attempt);
        prop_assert!(delay <= backoff.max, "{delay:?} over {:?}", backoff.max);
        let plain = plain(&backoff, attempt);
        // Durations keep nanoseconds; allow their rounding.
        prop_assert!(delay.as_secs_f64() >= plain * (1.0 - 1e-9) - 1e-9, "{delay:?} under {plain}");
        if backoff.jitter >= 0.0 && backoff.jitter <= 1.0 {
            prop_assert!(delay.as_secs_f64() <= plain * (1.0 + backoff.jitter) * (1.0 + 1e-9) + 1e-9);
        }
    }

    #[test]
    fn an_exact_backoff_grows_with_every_attempt_until_its_cap(
        backoff in backoff(),
        attempt in 0..200u32,
    ) {
        let exact = Backoff { jitter: 0.0, ..backoff };
        let this = exact.delay(attempt);
        let next = exact.delay(attempt + 1);
        prop_assert!(next >= this, "attempt {attempt}: {this:?}, then {next:?}");
        prop_assert!(next <= exact.max);
        prop_assert_eq!(exact.delay(attempt), this, "no jitter, no randomness");
    }
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
];

/// One cron field: which values it allows, and how it is written.
#[derive(Clone, Debug)]
struct Field {
    text: String,
    values: BTreeSet<u32>,
}

fn field(min: u32, max: u32) -> impl Strategy<Value = Field> {
    let all = move || (min..=max).collect::<BTreeSet<u32>>();
    prop_oneof![
        Just(Field {
            text: "*".into(),
            values: all()
        }),
        (min..=max).prop_map(|v| Field {
            text: v.to_string(),
            values: [v].into()
        }),
        (1..=(max - min).div_ceil(2)).prop_map(move |step| Field {
            text: format!("*/{step}"),
            values: (min..=max).step_by(step as usize).collect(),
        }),
        (min..=max, min..=max).prop_map(|(a, b)| Field {
            text: format!("{a},{b}"),
            values: [a, b].into()
        }),
        (min..=max, min..=max).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            Field {
                text: format!("{a}-{b}"),
                values: (a..=b).collect(),
            }
        }),
    ]
}

/// A cron expression: optional seconds, minute, hour, and either a day of
/// the month or a day of the week (never both, whose meaning varies).
#[derive(Clone, Debug)]
struct Cron {
    seconds: Option<Field>,
    minute: Field,
    hour: Field,
    day: Option<u32>,
    weekday: Option<u32>,
}

impl Cron {
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(seconds) = &self.seconds {
            parts.push(seconds.text.clone());
        }
        parts.push(self.minute.text.clone());
        parts.push(self.hour.text.clone());
        parts.push(self.day.map_or("*".into(), |d| d.to_string()));
        parts.push("*".into());
        parts.push(self.weekday.map_or("*".into(), |d| d.to_string()));
        parts.join(" ")
    }

    /// Whether a wall-clock time matches every field.
    fn matches(&self, local: &DateTime<Tz>) -> bool {
        let second_ok = match &self.seconds {
            Some(field) => field.values.contains(&local.second()),
            None => local.second() == 0,
        };
        second_ok
            && local.nanosecond() == 0
            && self.minute.values.contains(&local.minute())
            && self.hour.values.contains(&local.hour())
            && self.day.is_none_or(|d| local.day() == d)
            && self
                .weekday
                .is_none_or(|d| local.weekday().num_days_from_sunday() == d)
    }

    /// A fixed time of day: at most one tick per calendar day.
    fn once_a_day(&self) -> bool {
        self.seconds.as_ref().is_none_or(|s| s.values.len() == 1)
            && self.minute.values.len() == 1
            && self.hour.values.len() == 1
    }
}

fn cron() -> impl Strategy<Value = Cron> {
    (
        prop::option::of(field(0, 59)),
        field(0, 59),
        field(0, 23),
        prop_oneof![
            3 => Just((None, None)),
            1 => (1..=28u32).prop_map(|d| (Some(d), None)),
            1 => (0..=6u32).prop_map(|d| (None, Some(d))),
        ],
    )
        .prop_map(|(seconds, minute, hour, (day, weekday))| Cron {
            seconds,
            minute,
            hour,
            day,
            weekday,
        })
}

/// Whether the zone's offset changes between `at - 1s` and `at`: a tick
/// there may stand for a wall-clock time the change skipped.
fn right_after_a_gap(zone: Tz, at: DateTime<Utc>) -> bool {
    let offset = |t: DateTime<Utc>| zone.offset_from_utc_datetime(&t.naive_utc()).fix();
    offset(at - chrono::Duration::seconds(1)) != offset(at)
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn the_next_tick_is_strictly_later_matches_the_expression_and_skips_none(
        cron in cron(),
        zone in prop::sample::select(ZONES.to_vec()),
        // 2020 to 2040, whole seconds.
        start in 1_577_836_800i64..2_208_988_800,
    ) {
        let schedule = Schedule::new::<Prop>("p", &cron.text(), 0)
            .unwrap()
            .time_zone(zone)
            .unwrap();
        let tz: Tz = zone.parse().unwrap();
        let after = DateTime::from_timestamp(start, 0).unwrap();
        let next = schedule.next_after(after).expect("a tick within the years searched");
        prop_assert!(next > after, "{} after {after}: {next}", cron.text());
        let local = next.with_timezone(&tz);
        prop_assert!(
            cron.matches(&local) || right_after_a_gap(tz, next),
            "{} in {zone} after {after}: {local} does not match",
            cron.text()
        );
        prop_assert_eq!(schedule.latest_at_or_before(next), Some(next));
        let before = schedule.latest_at_or_before(next - chrono::Duration::seconds(1));
        prop_assert!(
            before.is_none_or(|t| t <= after),
            "{} in {zone}: tick {before:?} between {after} and {next} was skipped",
            cron.text()
        );
        let ticks = schedule.upcoming(after, 4);
        prop_assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
        if cron.once_a_day() {
            let days: BTreeSet<_> = ticks.iter().map(|t| t.with_timezone(&tz).date_naive()).collect();
            prop_assert_eq!(days.len(), ticks.len(), "{} in {}: one tick a day, {:?}", cron.text(), zone, ticks);
        }
    }

    #[test]
    fn an_interval_keeps_its_rhythm_in_absolute_time(
        seconds in 1..200_000u64,
        start in 1_577_836_800i64..2_208_988_800,
        micros in 0..1_000_000i64,
    ) {
        let schedule = Schedule::new::<Prop>("p", &format!("@every {seconds}s"), 0).unwrap();
        let after = DateTime::from_timestamp_micros(start * 1_000_000 + micros).unwrap();
        let next = schedule.next_after(after).unwrap();
        let step = seconds as i64 * 1_000_000;
        prop_assert!(next > after);
        prop_assert!((next - after).num_microseconds().unwrap() <= step);
        prop_assert_eq!(next.timestamp_micros() % step, 0);
        prop_assert_eq!(schedule.latest_at_or_before(next), Some(next));
        prop_assert!(schedule.latest_at_or_before(after).unwrap() <= after);
    }
}

#[test]
fn the_models_edges_are_the_documented_ones() {
    use JobState::*;
    assert!(allowed(Pending, Started) && allowed(Started, Pending));
    assert!(!allowed(Finished, Pending) && !allowed(Pending, Finished));
    assert!(!allowed(Cancelled, Started) && !allowed(Failed, Finished));
}
