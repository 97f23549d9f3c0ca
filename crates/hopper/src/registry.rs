//! The registry: which job types this application knows, by type name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::job::{Job, JobContext, JobError, JobResult};

/// What can go wrong registering or looking up a job type.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Two job types claimed the same type name.
    #[error("job type {0:?} is registered twice; every job type needs a unique name")]
    Duplicate(String),
    /// A type name that no registered job has.
    #[error("no job registered for type {0}")]
    UnknownType(String),
    /// A payload that does not fit the job type's payload.
    #[error("payload does not fit job type {job_type}: {reason}")]
    InvalidPayload {
        /// The job type the payload was meant for.
        job_type: String,
        /// The decoder's message, naming the field at fault.
        reason: String,
    },
}

/// The job types an application runs, looked up by type name.
///
/// A duplicate type name is refused, never silently overwritten.
///
/// ```
/// use hopper::{Job, JobContext, JobResult, Registry};
/// struct Ping;
/// impl Job for Ping {
///     const TYPE: &'static str = "ping";
///     type Payload = ();
///     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
/// }
/// let mut registry = Registry::new();
/// registry.register(Ping).unwrap();
/// assert!(registry.register(Ping).is_err());
/// assert!(registry.contains("ping"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    jobs: BTreeMap<&'static str, Arc<dyn RegisteredJob>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.jobs.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    ///
    /// ```
    /// assert_eq!(hopper::Registry::new().types().count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job type; its value is shared by every run of that type.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, Registry};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let mut registry = Registry::new();
    /// registry.register(Ping).unwrap();
    /// let err = registry.register(Ping).unwrap_err();
    /// assert!(err.to_string().contains("registered twice"));
    /// ```
    pub fn register<J: Job>(&mut self, job: J) -> Result<&mut Self, RegistryError> {
        if self.jobs.contains_key(J::TYPE) {
            return Err(RegistryError::Duplicate(J::TYPE.to_owned()));
        }
        self.jobs.insert(J::TYPE, Arc::new(Registered(job)));
        Ok(self)
    }

    /// Whether a job type of this name is registered.
    ///
    /// ```
    /// assert!(!hopper::Registry::new().contains("ping"));
    /// ```
    pub fn contains(&self, job_type: &str) -> bool {
        self.jobs.contains_key(job_type)
    }

    /// The registered type names, in order.
    ///
    /// ```
    /// assert!(hopper::Registry::new().types().next().is_none());
    /// ```
    pub fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.jobs.keys().copied()
    }

    /// The queues the registered job types name, sorted, each once.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, Registry};
    /// # struct Mail;
    /// # impl Job for Mail {
    /// #     const TYPE: &'static str = "mail";
    /// #     const QUEUE: &'static str = "mail";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let mut registry = Registry::new();
    /// registry.register(Mail).unwrap();
    /// assert_eq!(registry.queues(), ["mail"]);
    /// ```
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<&'static str> =
            self.jobs.values().map(|job| job.defaults().queue).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// Checks that `payload` (JSON) fits the payload type registered as
    /// `job_type`, and returns the queue and max attempts that type asks for.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, Registry};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Mail { to: String }
    /// struct MailJob;
    /// impl Job for MailJob {
    ///     const TYPE: &'static str = "mail";
    ///     type Payload = Mail;
    ///     async fn handle(&self, _: Mail, _: JobContext) -> JobResult { Ok(()) }
    /// }
    /// let mut registry = Registry::new();
    /// registry.register(MailJob).unwrap();
    /// assert!(registry.validate("mail", r#"{"to":"a@b.c"}"#).is_ok());
    /// let err = registry.validate("mail", r#"{"too":"a@b.c"}"#).unwrap_err();
    /// assert!(err.to_string().contains("missing field `to`"));
    /// assert!(registry.validate("nope", "{}").is_err());
    /// ```
    pub fn validate(&self, job_type: &str, payload: &str) -> Result<JobDefaults, RegistryError> {
        self.inspect(job_type, payload)
            .map(|(defaults, _)| defaults)
    }

    /// [`Registry::validate`], also answering the payload's partition key
    /// ([`Job::partition`]).
    pub(crate) fn inspect(
        &self,
        job_type: &str,
        payload: &str,
    ) -> Result<(JobDefaults, Option<String>), RegistryError> {
        let job = self.get(job_type)?;
        let partition = job
            .validate(payload)
            .map_err(|reason| RegistryError::InvalidPayload {
                job_type: job_type.to_owned(),
                reason,
            })?;
        Ok((job.defaults(), partition))
    }

    pub(crate) fn get(&self, job_type: &str) -> Result<&Arc<dyn RegisteredJob>, RegistryError> {
        self.jobs
            .get(job_type)
            .ok_or_else(|| RegistryError::UnknownType(job_type.to_owned()))
    }
}

/// What a job type asks for when dispatched without options.
///
/// ```
/// let d = hopper::JobDefaults { queue: "default", max_attempts: 3 };
/// assert_eq!(d.max_attempts, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobDefaults {
    /// The job type's queue.
    pub queue: &'static str,
    /// The job type's attempts.
    pub max_attempts: u32,
}

/// A registered job with its payload type erased, as workers see it.
pub(crate) trait RegisteredJob: Send + Sync {
    fn defaults(&self) -> JobDefaults;
    fn retry_delay(&self, attempt: u32) -> Duration;
    fn timeout(&self) -> Duration;
    /// Decodes the payload, answering its partition key.
    fn validate(&self, payload: &str) -> Result<Option<String>, String>;
    /// Decodes the payload and runs the handler.
    fn run(self: Arc<Self>, payload: &str, ctx: JobContext) -> BoxFuture<'static, JobResult>;
}

struct Registered<J>(J);

impl<J: Job> RegisteredJob for Registered<J> {
    fn defaults(&self) -> JobDefaults {
        JobDefaults {
            queue: J::QUEUE,
            max_attempts: J::MAX_ATTEMPTS,
        }
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        self.0.retry_delay(attempt)
    }

    fn timeout(&self) -> Duration {
        self.0.timeout()
    }

    fn validate(&self, payload: &str) -> Result<Option<String>, String> {
        serde_json::from_str::<J::Payload>(payload)
            .map(|payload| J::partition(&payload))
            .map_err(|e| e.to_string())
    }

    fn run(self: Arc<Self>, payload: &str, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        match serde_json::from_str::<J::Payload>(payload) {
            Ok(payload) => Box::pin(async move { self.0.handle(payload, ctx).await }),
            Err(e) => {
                let error =
                    JobError::permanent(format!("payload does not fit job type {}: {e}", J::TYPE));
                Box::pin(async move { Err(error) })
            }
        }
    }
}
