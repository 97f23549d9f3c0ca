//! Workflows as the store keeps them: a batch whose jobs wait on one
//! another. A job with dependencies is stored `pending` but not due
//! ([`WAITING_UNTIL`]) with `waiting_on` counting the dependencies not yet
//! satisfied, and `job_deps` holding the edges. When a job others depend on
//! ends, the database's trigger records it in `dep_events`; the release
//! step here (`release`) then, in one transaction, takes those events
//! (skipping ones another transaction holds), satisfies or cancels each
//! dependent under its row's lock, and deletes the events: each ending is
//! applied once, so a dependent is released once however many processes
//! finish its dependencies at the same moment.
//!
//! One step settles at most `DEPENDENTS_PER_STEP` (2,000) dependents. An ending
//! with more (a fan-out of 10,000) is applied over several steps, each its
//! own transaction: its event records the last dependent settled
//! (`dep_events.through`, dependents taken in id order) and is deleted with
//! the step that settles its last one, so the first dependents run while
//! the rest are being released.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{BatchId, BatchTx, NewBatch, NewJob, StoreError};
use crate::job::{JobId, JobState};

/// The `available_at` of a job waiting on dependencies: never due until a
/// release sets it to the release's time.
///
/// ```
/// assert_eq!(hopper::store::WAITING_UNTIL.to_rfc3339(), "9999-12-31T00:00:00+00:00");
/// ```
pub const WAITING_UNTIL: DateTime<Utc> = match DateTime::from_timestamp(253_402_214_400, 0) {
    Some(at) => at,
    None => DateTime::<Utc>::MIN_UTC,
};

/// Whether some ending waits for the release step: the same statement on
/// every database, read first so that most looks need no transaction.
pub(crate) const ANY_EVENT: &str = "SELECT EXISTS (SELECT 1 FROM dep_events)";

/// How many events one round of a release takes.
const EVENTS_PER_ROUND: u32 = 500;

/// How many rounds one release runs at most: each round can cancel
/// dependents whose own endings are the next round's events.
const ROUNDS: usize = 20;

/// The most dependents one release step settles, in one transaction.
pub(crate) const DEPENDENTS_PER_STEP: usize = 2_000;

/// What one release step did: the queues of the jobs it made due, and
/// whether endings were left for another step.
///
/// ```
/// let released = hopper::store::Released::default();
/// assert!(released.queues.is_empty() && !released.more);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// The queues of the jobs made due, each once.
    pub queues: Vec<String>,
    /// Whether recorded endings are left to apply: the step reached its
    /// bound; calling again goes on.
    pub more: bool,
}

/// One step of a workflow to create: its job, and the steps before it
/// (indexes into the workflow's steps) it waits on.
///
/// ```
/// # let job = hopper::store::NewJob { job_type: "t".into(), queue: "default".into(), payload: "null".into(), priority: 0, max_attempts: 1, available_at: chrono::Utc::now(), created_at: chrono::Utc::now(), unique_key: None, partition_key: None , sequence: None, trace_context: None };
/// let step = hopper::store::NewStep { name: "charge".into(), job, after: vec![] };
/// assert!(step.after.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewStep {
    /// The step's name, unique in its workflow.
    pub name: String,
    /// Its job.
    pub job: NewJob,
    /// The earlier steps it waits on: each an index into the workflow's
    /// steps, and whether any outcome of that step satisfies it (`false`:
    /// only a finish; a failure or cancellation cancels this step).
    pub after: Vec<(usize, bool)>,
}

/// A workflow to create ([`super::Store::create_workflow`]): a sealed batch
/// and its steps, each after only steps before it.
///
/// ```
/// let wf = hopper::store::NewWorkflow {
///     batch: hopper::store::NewBatch { name: "checkout".into(), created_at: chrono::Utc::now(), callbacks: vec![], sealed: true },
///     steps: vec![],
/// };
/// assert!(wf.steps.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewWorkflow {
    /// The batch holding the workflow's jobs (sealed).
    pub batch: NewBatch,
    /// Its steps, each after only earlier ones.
    pub steps: Vec<NewStep>,
}

/// What a job's dependency is, as [`super::Store::dependencies`] reads it.
///
/// ```
/// let dep = hopper::store::Dependency { dependent: 2, step: "charge".into(), job_id: 1, state: hopper::JobState::Finished, output: None };
/// assert_eq!(dep.step, "charge");
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Dependency {
    /// The job that waits on it.
    pub dependent: JobId,
    /// Its step name.
    pub step: String,
    /// Its job.
    pub job_id: JobId,
    /// Its job's state.
    pub state: JobState,
    /// Its job's output, once it finished with one.
    pub output: Option<String>,
}

/// A dependency's columns as the stores read them: the job waiting, the
/// dependency's step name, its job, state and output.
pub(crate) type DependencyColumns = (JobId, String, JobId, String, Option<String>);

impl Dependency {
    /// The dependency a row of [`DependencyColumns`] holds.
    pub(crate) fn from_columns(columns: DependencyColumns) -> Result<Self, StoreError> {
        let (dependent, step, job_id, state, output) = columns;
        Ok(Self {
            dependent,
            step,
            job_id,
            state: crate::store::rows::state_of(job_id, &state)?,
            output,
        })
    }

    /// Its output decoded as `T`; `None` without one.
    ///
    /// ```
    /// let dep = hopper::store::Dependency { dependent: 2, step: "a".into(), job_id: 1, state: hopper::JobState::Finished, output: Some("7".into()) };
    /// assert_eq!(dep.output_as::<u32>().unwrap(), Some(7));
    /// ```
    pub fn output_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<Option<T>, serde_json::Error> {
        self.output.as_deref().map(serde_json::from_str).transpose()
    }
}

/// An ending of a job others depend on, as the release step takes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DepEvent {
    pub(crate) id: i64,
    pub(crate) job_id: JobId,
    pub(crate) state: JobState,
    /// The last dependent (by id) an earlier step settled for it; 0: none.
    pub(crate) through: JobId,
}

/// An edge as the release step reads it: the dependency, the dependent,
/// whether any outcome satisfies it, and whether a failure or
/// cancellation of the dependency holds the dependent (a sequence's edge)
/// instead of cancelling it.
pub(crate) type EdgeOut = (JobId, JobId, bool, bool);

/// A dependent's new count of dependencies to wait on, and when it is due
/// if none is left.
pub(crate) type Waiting = (JobId, i64, Option<DateTime<Utc>>);

/// A dependent as its release reads it, its row held.
#[derive(Clone, Debug)]
pub(crate) struct Dependent {
    pub(crate) id: JobId,
    pub(crate) queue: String,
    pub(crate) waiting_on: i64,
    pub(crate) state: JobState,
}

/// The reads and writes of creating a workflow and releasing dependents,
/// in one transaction.
pub(crate) trait WorkflowTx: BatchTx {
    /// Records the edges of the jobs `ids` (the steps' jobs, in order):
    /// each waiting job's count and edges, and which jobs have dependents.
    async fn link(&mut self, ids: &[JobId], steps: &[NewStep]) -> Result<(), StoreError>;

    /// Up to `limit` events, oldest first, skipping ones another
    /// transaction holds.
    async fn take_events(&mut self, limit: u32) -> Result<Vec<DepEvent>, StoreError>;

    /// The edges out of each job of `from` to dependents after the id
    /// given, up to `limit` per job, each job's in dependent id order:
    /// (dependency, dependent, any outcome, holds on a failure).
    async fn edges(
        &mut self,
        from: &[(JobId, JobId)],
        limit: u32,
    ) -> Result<Vec<EdgeOut>, StoreError>;

    /// Records `through` as the last dependent settled for the events `ids`.
    async fn set_through(&mut self, ids: &[i64], through: JobId) -> Result<(), StoreError>;

    /// Locks the jobs `ids` in id order and reads them.
    async fn lock_dependents(&mut self, ids: &[JobId]) -> Result<Vec<Dependent>, StoreError>;

    /// Sets each job's count of dependencies to wait on, and makes it due
    /// at the time given (once its count reached zero).
    async fn set_waiting(&mut self, jobs: &[Waiting]) -> Result<(), StoreError>;

    /// Satisfies dependencies of the jobs `jobs` (sorted by id): each one
    /// still pending and waiting has the number given fewer to wait on, and
    /// is due at `now` once none is left. Answers the queue of each job made
    /// due. Its rows are held in id order, as [`WorkflowTx::lock_dependents`]
    /// holds them; a store that can write and read them back in one
    /// statement answers it in one.
    async fn satisfy(
        &mut self,
        jobs: &[(JobId, i64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>
    where
        Self: Sized,
    {
        let effects: BTreeMap<JobId, Effect> = jobs
            .iter()
            .map(|&(id, satisfied)| (id, (satisfied, None)))
            .collect();
        settle_locked(self, &effects, now).await
    }

    /// Cancels the pending job `id` at `now`, saying why.
    async fn cancel_dependent(
        &mut self,
        id: JobId,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// Deletes the events `ids`.
    async fn delete_events(&mut self, ids: &[i64]) -> Result<(), StoreError>;
}

/// Refuses a workflow its steps cannot form: a step after a later step or
/// itself (so no cycle can be written down), after a step that does not
/// exist, a duplicate step name, or a waiting step with a unique key or a
/// partition key.
pub(crate) fn check(workflow: &NewWorkflow) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidWorkflow(reason));
    let mut names = std::collections::HashSet::new();
    for (index, step) in workflow.steps.iter().enumerate() {
        if !names.insert(step.name.as_str()) {
            return invalid(format!("two steps are named {:?}", step.name));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((after, _)) = step.after.iter().find(|(after, _)| !seen.insert(*after)) {
            return invalid(format!("step {:?} waits on step {after} twice", step.name));
        }
        if let Some((after, _)) = step.after.iter().find(|(after, _)| *after >= index) {
            return invalid(format!(
                "step {:?} waits on step {after}, which is not before it",
                step.name
            ));
        }
        check_step(step)?;
    }
    Ok(())
}

/// Refuses a step whose job cannot be one: a unique key (a step's job is
/// always its own), a sequence, or a partition key on a step that waits (its key would
/// not be served when the step is released).
pub(crate) fn check_step(step: &NewStep) -> Result<(), StoreError> {
    if step.job.unique_key.is_some() {
        return Err(StoreError::InvalidWorkflow(format!(
            "step {:?} has a unique key",
            step.name
        )));
    }
    if step.job.sequence.is_some() {
        return Err(StoreError::InvalidWorkflow(format!(
            "step {:?} is in a sequence (a step waits on its workflow's steps only)",
            step.name
        )));
    }
    if !step.after.is_empty() && step.job.partition_key.is_some() {
        return Err(StoreError::InvalidWorkflow(format!(
            "step {:?} waits on other steps and has a partition key",
            step.name
        )));
    }
    Ok(())
}

/// Creates `workflow` on `tx`: its batch, its jobs (those with
/// dependencies waiting), and its edges; the batch's id and the jobs' ids.
pub(crate) async fn create(
    tx: &mut impl WorkflowTx,
    workflow: &NewWorkflow,
) -> Result<(BatchId, Vec<JobId>), StoreError> {
    check(workflow)?;
    let jobs: Vec<NewJob> = workflow
        .steps
        .iter()
        .map(|step| {
            let mut job = step.job.clone();
            if !step.after.is_empty() {
                job.available_at = WAITING_UNTIL;
            }
            job
        })
        .collect();
    let (id, ids) = super::batches::create(tx, &workflow.batch, &jobs).await?;
    tx.link(&ids, &workflow.steps).await?;
    Ok((id, ids))
}

/// Applies the recorded endings of jobs others depend on, at `now`: each
/// dependent a finish (or any ending, for an edge that allows it)
/// satisfies has one dependency fewer to wait on, and is due at `now` when
/// none is left; one whose dependency failed or was cancelled is
/// cancelled, or keeps waiting if its edge holds (a sequence held until
/// the failed job is retried and finishes, or the wait is skipped). Stops
/// after [`DEPENDENTS_PER_STEP`] dependents, saying whether more is left.
pub(crate) async fn release(
    tx: &mut impl WorkflowTx,
    now: DateTime<Utc>,
) -> Result<Released, StoreError> {
    let mut released = Released::default();
    let mut budget = DEPENDENTS_PER_STEP;
    for _ in 0..ROUNDS {
        let events = tx.take_events(EVENTS_PER_ROUND).await?;
        if events.is_empty() {
            return Ok(released);
        }
        let ended = Ended::of(&events);
        let from: Vec<(JobId, JobId)> = ended.iter().map(|(id, e)| (*id, e.through)).collect();
        let limit = u32::try_from(budget).unwrap_or(u32::MAX);
        let mut out: BTreeMap<JobId, Vec<EdgeOut>> = BTreeMap::new();
        for edge in tx.edges(&from, limit).await? {
            out.entry(edge.0).or_default().push(edge);
        }
        // Each ended job's edges, in order, while the budget lasts; the
        // job where it runs out keeps its events, marked how far it got.
        let (mut taken, mut settled, mut cut) = (Vec::new(), Vec::new(), None);
        for (job, ending) in &ended {
            let mut edges = out.remove(job).unwrap_or_default();
            edges.sort_by_key(|edge| edge.1);
            let all = edges.len() < limit as usize && edges.len() <= budget;
            edges.truncate(budget);
            budget -= edges.len();
            if all {
                settled.extend_from_slice(&ending.events);
            } else {
                let through = edges.last().map_or(ending.through, |edge| edge.1);
                cut = Some((ending.events.clone(), through));
            }
            taken.extend(edges.into_iter().map(|edge| (edge, ending.state)));
            if cut.is_some() || budget == 0 {
                break;
            }
        }
        let mut effects: BTreeMap<JobId, Effect> = BTreeMap::new();
        for ((dependency, dependent, any_outcome, holds), state) in taken {
            let finished = state == JobState::Finished;
            if !finished && !any_outcome && holds {
                continue;
            }
            let effect = effects.entry(dependent).or_default();
            if finished || any_outcome {
                effect.0 += 1;
            } else {
                effect.1.get_or_insert(dependency);
            }
        }
        // Without a cancellation, every effect is a count to lower, which
        // a store may write in one statement; a cancellation needs each
        // dependent read under its lock first.
        let made_due = if effects
            .values()
            .any(|(_, cancelled_by)| cancelled_by.is_some())
        {
            settle_locked(tx, &effects, now).await?
        } else if effects.is_empty() {
            Vec::new()
        } else {
            let satisfied: Vec<(JobId, i64)> =
                effects.iter().map(|(&id, &(n, _))| (id, n)).collect();
            tx.satisfy(&satisfied, now).await?
        };
        for queue in made_due {
            if !released.queues.contains(&queue) {
                released.queues.push(queue);
            }
        }
        if !settled.is_empty() {
            tx.delete_events(&settled).await?;
        }
        if let Some((events, through)) = &cut {
            tx.set_through(events, *through).await?;
        }
        if cut.is_some() || budget == 0 {
            released.more = true;
            return Ok(released);
        }
    }
    // The rounds ran out with events perhaps left.
    released.more = true;
    Ok(released)
}

/// What one round's endings do to a dependent: how many of its
/// dependencies they satisfy, and the dependency whose failure or
/// cancellation cancels it, if any.
type Effect = (i64, Option<JobId>);

/// Applies `effects` to the dependents they name, each read under its row's
/// lock (taken in id order): a dependent no longer pending and waiting is
/// left alone, one with a cancelling dependency is cancelled, the others
/// wait on fewer dependencies and are due at `now` once none is left.
/// Answers the queue of each dependent made due.
async fn settle_locked<T: WorkflowTx>(
    tx: &mut T,
    effects: &BTreeMap<JobId, Effect>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let dependents: Vec<JobId> = effects.keys().copied().collect();
    let (mut waiting, mut made_due) = (Vec::new(), Vec::new());
    for job in tx.lock_dependents(&dependents).await? {
        let Some((satisfied, cancelled_by)) = effects.get(&job.id) else {
            continue;
        };
        if job.state != JobState::Pending || job.waiting_on <= 0 {
            continue;
        }
        if let Some(dependency) = cancelled_by {
            let reason = format!("dependency {dependency} failed or was cancelled");
            tx.cancel_dependent(job.id, now, &reason).await?;
            continue;
        }
        let left = (job.waiting_on - satisfied).max(0);
        let due = left == 0;
        waiting.push((job.id, left, due.then_some(now)));
        if due {
            made_due.push(job.queue);
        }
    }
    if !waiting.is_empty() {
        tx.set_waiting(&waiting).await?;
    }
    Ok(made_due)
}

/// A job's recorded endings as one release round applies them: its last
/// state (a job retried and ended again before the release counts as it
/// ended last), the events recording them, and the last dependent an
/// earlier step settled.
#[derive(Debug)]
struct Ended {
    state: JobState,
    events: Vec<i64>,
    through: JobId,
}

impl Ended {
    /// The ended jobs of `events`, by job id.
    fn of(events: &[DepEvent]) -> BTreeMap<JobId, Self> {
        let mut ended: BTreeMap<JobId, Self> = BTreeMap::new();
        for event in events {
            let entry = ended.entry(event.job_id).or_insert(Self {
                state: event.state,
                events: Vec::new(),
                through: event.through,
            });
            entry.state = event.state;
            entry.events.push(event.id);
            entry.through = entry.through.max(event.through);
        }
        ended
    }
}

/// An edge of a workflow being created: the dependency's index, the
/// dependent's index, the dependency's step name, and whether any outcome
/// satisfies it.
pub(crate) type Edge<'a> = (usize, usize, &'a str, bool);

/// The `waiting_on` and `has_dependents` of each of the steps' jobs, in
/// order, and the edges.
pub(crate) fn shape(steps: &[NewStep]) -> (Vec<(i64, bool)>, Vec<Edge<'_>>) {
    let mut flags: Vec<(i64, bool)> = steps
        .iter()
        .map(|step| (i64::try_from(step.after.len()).unwrap_or(i64::MAX), false))
        .collect();
    let mut edges = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        for &(after, any_outcome) in &step.after {
            if let Some(flag) = flags.get_mut(after) {
                flag.1 = true;
            }
            let name = steps.get(after).map_or("", |s| s.name.as_str());
            edges.push((after, index, name, any_outcome));
        }
    }
    (flags, edges)
}
