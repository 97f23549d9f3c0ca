//! Workflows: jobs that wait on one another, created together in one
//! transaction. A step runs once every step it waits on finished; a step
//! whose dependency failed for good or was cancelled is cancelled (and so
//! are the steps waiting on it), unless it was added to run whatever its
//! dependencies' outcome. A step reads its dependencies' outputs with
//! [`JobContext::dependencies`](crate::JobContext::dependencies).
//!
//! A workflow is a batch ([`crate::batch`]): its progress is
//! [`Hopper::batch_status`] of its id, and it can have callbacks.
//!
//! Steps name only steps added before them, so a workflow cannot hold a
//! cycle, and an unknown name is refused when the step is added.

use std::collections::{BTreeMap, HashMap};

use crate::client::Hopper;
use crate::dispatch::{DispatchError, DispatchOptions};
use crate::job::{Job, JobId};
use crate::store::{BatchEvent, BatchId, NewBatch, NewJob, NewStep, NewWorkflow, StoreError};

/// A workflow being set up: its steps, then [`WorkflowBuilder::dispatch`]
/// ([`Hopper::workflow`]).
///
/// ```
/// # use hopper::{Hopper, Job, JobContext, JobResult};
/// # struct Step;
/// # impl Job for Step {
/// #     const TYPE: &'static str = "step";
/// #     type Payload = u32;
/// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
/// let checkout = hopper
///     .workflow("checkout")
///     .add::<Step>("charge", 1)?
///     .add_after::<Step>(&["charge"], "receipt", 2)?
///     .add_after::<Step>(&["charge"], "ledger", 3)?
///     .add_after::<Step>(&["receipt", "ledger"], "close", 4)?
///     .dispatch()
///     .await?;
/// assert_eq!(checkout.jobs.len(), 4);
/// // Only "charge" is due; the others wait on it.
/// let close = hopper.job(checkout.jobs["close"]).await?.unwrap();
/// assert_eq!(close.waiting_on, 2);
/// # Ok::<_, hopper::DispatchError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "a workflow is created only by `dispatch`"]
pub struct WorkflowBuilder<'h> {
    hopper: &'h Hopper,
    name: String,
    steps: Vec<NewStep>,
    /// Each step's index, by name.
    names: HashMap<String, usize>,
    callbacks: Vec<(BatchEvent, NewJob)>,
}

/// A workflow just created: its id (a batch's) and each step's job.
///
/// ```
/// let wf = hopper::workflow::Workflow { id: 1, jobs: Default::default() };
/// assert!(wf.jobs.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workflow {
    /// The workflow's id: its batch's ([`Hopper::batch_status`]).
    pub id: BatchId,
    /// Each step's job, by step name.
    pub jobs: BTreeMap<String, JobId>,
}

impl<'h> WorkflowBuilder<'h> {
    /// Adds step `name`: a job of type `J` with `payload`, waiting on nothing.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Step;
    /// # impl Job for Step {
    /// #     const TYPE: &'static str = "step";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let twice = hopper.workflow("w").add::<Step>("a", ()).unwrap().add::<Step>("a", ());
    /// assert_eq!(twice.unwrap_err().to_string(), "could not store the job: invalid workflow: two steps are named \"a\"");
    /// # });
    /// ```
    pub fn add<J: Job>(self, name: &str, payload: J::Payload) -> Result<Self, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, DispatchOptions::new())?;
        self.step(&[], false, name, job)
    }

    /// Adds step `name`, a job of type `J` with `payload`, run once every
    /// step of `after` finished; cancelled if one fails for good or is
    /// cancelled.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Step;
    /// # impl Job for Step {
    /// #     const TYPE: &'static str = "step";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let unknown = hopper.workflow("w").add_after::<Step>(&["ghost"], "b", ());
    /// assert_eq!(
    ///     unknown.unwrap_err().to_string(),
    ///     "could not store the job: invalid workflow: step \"b\" waits on \"ghost\", which is not a step added before it"
    /// );
    /// # });
    /// ```
    pub fn add_after<J: Job>(
        self,
        after: &[&str],
        name: &str,
        payload: J::Payload,
    ) -> Result<Self, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, DispatchOptions::new())?;
        self.step(after, false, name, job)
    }

    /// Adds step `name`, a job of type `J` with `payload`, run once every
    /// step of `after` ended, whatever the outcome (a clean-up, say).
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Step;
    /// # impl Job for Step {
    /// #     const TYPE: &'static str = "step";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let wf = hopper.workflow("w").add::<Step>("work", ()).unwrap()
    ///     .add_after_ended::<Step>(&["work"], "clean up", ()).unwrap()
    ///     .dispatch().await.unwrap();
    /// assert_eq!(wf.jobs.len(), 2);
    /// # });
    /// ```
    pub fn add_after_ended<J: Job>(
        self,
        after: &[&str],
        name: &str,
        payload: J::Payload,
    ) -> Result<Self, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, DispatchOptions::new())?;
        self.step(after, true, name, job)
    }

    /// Adds step `name` with `job` (of any type, built with
    /// [`Hopper::prepare`] for its options), after the steps of `after`;
    /// with `any_outcome`, whatever their outcome. A step that waits on
    /// others takes no partition key, and no step a unique key.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Step;
    /// # impl Job for Step {
    /// #     const TYPE: &'static str = "step";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let urgent = hopper.prepare::<Step>((), DispatchOptions::new().priority(9)).unwrap();
    /// let wf = hopper.workflow("w").step(&[], false, "urgent", urgent).unwrap().dispatch().await.unwrap();
    /// assert_eq!(hopper.job(wf.jobs["urgent"]).await.unwrap().unwrap().priority, 9);
    /// # });
    /// ```
    pub fn step(
        mut self,
        after: &[&str],
        any_outcome: bool,
        name: &str,
        job: NewJob,
    ) -> Result<Self, DispatchError> {
        let invalid = |reason: String| DispatchError::from(StoreError::InvalidWorkflow(reason));
        if self.names.contains_key(name) {
            return Err(invalid(format!("two steps are named {name:?}")));
        }
        let mut edges = Vec::with_capacity(after.len());
        for dependency in after {
            let index = *self.names.get(*dependency).ok_or_else(|| {
                invalid(format!(
                    "step {name:?} waits on {dependency:?}, which is not a step added before it"
                ))
            })?;
            if edges.iter().any(|(earlier, _)| *earlier == index) {
                return Err(invalid(format!(
                    "step {name:?} waits on {dependency:?} twice"
                )));
            }
            edges.push((index, any_outcome));
        }
        let step = NewStep {
            name: name.to_owned(),
            job,
            after: edges,
        };
        crate::store::workflows::check_step(&step)?;
        self.names.insert(step.name.clone(), self.steps.len());
        self.steps.push(step);
        Ok(self)
    }

    /// Runs a job of type `J` with `payload` once every step of the
    /// workflow finished (a batch's `on_success`; see
    /// [`BatchBuilder::on`](crate::batch::BatchBuilder::on) for the other events).
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Step;
    /// # impl Job for Step {
    /// #     const TYPE: &'static str = "step";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Step).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let wf = hopper.workflow("w").add::<Step>("a", ()).unwrap()
    ///     .on::<Step>(hopper::store::BatchEvent::Success, ()).unwrap()
    ///     .dispatch().await.unwrap();
    /// assert_eq!(hopper.batch_status(wf.id).await.unwrap().unwrap().callbacks.len(), 1);
    /// # });
    /// ```
    pub fn on<J: Job>(
        mut self,
        event: BatchEvent,
        payload: J::Payload,
    ) -> Result<Self, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, DispatchOptions::new())?;
        crate::batch::set_callback(&mut self.callbacks, event, job);
        Ok(self)
    }

    /// Creates the workflow, its steps and their edges in one transaction:
    /// the steps waiting on nothing are due at once.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let empty = hopper.workflow("nothing").dispatch().await.unwrap();
    /// assert!(empty.jobs.is_empty());
    /// # });
    /// ```
    pub async fn dispatch(self) -> Result<Workflow, DispatchError> {
        let hopper = self.hopper;
        let workflow = NewWorkflow {
            batch: self.batch(),
            steps: self.steps,
        };
        let (id, ids) = hopper.store().create_workflow(&workflow).await?;
        let jobs: Vec<NewJob> = workflow.steps.iter().map(|s| s.job.clone()).collect();
        hopper.dispatched(&ids, &jobs);
        if workflow.steps.is_empty() && !workflow.batch.callbacks.is_empty() {
            // An empty workflow completed as it was created.
            crate::batch::settle(hopper).await;
        }
        let named = workflow
            .steps
            .into_iter()
            .zip(ids)
            .map(|(step, id)| (step.name, id))
            .collect();
        Ok(Workflow { id, jobs: named })
    }

    /// The batch holding the workflow's steps.
    fn batch(&self) -> NewBatch {
        NewBatch {
            name: self.name.clone(),
            created_at: self.hopper.now(),
            callbacks: self.callbacks.clone(),
            sealed: true,
        }
    }
}

impl Hopper {
    /// Starts setting up a workflow called `name`: add its steps, then
    /// [`WorkflowBuilder::dispatch`] it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let wf = hopper.workflow("empty").dispatch().await.unwrap();
    /// assert_eq!(hopper.batch_status(wf.id).await.unwrap().unwrap().name, "empty");
    /// # });
    /// ```
    pub fn workflow(&self, name: impl Into<String>) -> WorkflowBuilder<'_> {
        WorkflowBuilder {
            hopper: self,
            name: name.into(),
            steps: Vec::new(),
            names: HashMap::new(),
            callbacks: Vec::new(),
        }
    }
}
