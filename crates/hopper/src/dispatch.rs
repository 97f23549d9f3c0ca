//! Dispatch options and errors: how a job is put on a queue.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::registry::{JobDefaults, RegistryError};
use crate::store::{NewJob, Sequence, StoreError};

/// The longest partition key, in characters (every database stores it
/// whole and indexes it).
///
/// ```
/// assert_eq!(hopper::dispatch::MAX_PARTITION_KEY, 255);
/// ```
pub const MAX_PARTITION_KEY: usize = 255;

/// What can go wrong dispatching a job. Nothing is stored when it does.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Unknown job type, or a payload that does not fit its type.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The payload could not be turned into JSON.
    #[error("cannot encode the payload of job type {job_type} as JSON: {source}")]
    Encode {
        /// The job type.
        job_type: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The payload is larger than the configured limit.
    #[error("payload of job type {job_type} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The job type.
        job_type: String,
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A type name, queue name or unique key contains a NUL character
    /// (`\0`), which PostgreSQL cannot store in text and which Hopper
    /// therefore refuses on every database alike. (A NUL inside the payload
    /// is fine: JSON writes it as `\u0000`.)
    #[error(
        "the {field} of a job of type {job_type:?} contains a NUL character (\\0), which cannot be stored"
    )]
    NulCharacter {
        /// The job type, as given.
        job_type: String,
        /// Which value holds the NUL: `type name`, `queue name`, `unique key` or `partition key`.
        field: &'static str,
    },
    /// The partition key is longer than [`MAX_PARTITION_KEY`] characters.
    #[error(
        "the partition key of a job of type {job_type:?} is {length} characters, over the {MAX_PARTITION_KEY}-character limit"
    )]
    PartitionKeyTooLong {
        /// The job type, as given.
        job_type: String,
        /// The key's length in characters.
        length: usize,
    },
    /// The database refused or could not be reached.
    #[error("could not store the job: {0}")]
    Store(#[from] StoreError),
    /// A transaction for one database was asked of a handle on another.
    #[error("this handle's database is not {expected}")]
    WrongDatabase {
        /// The database the transaction needs.
        expected: &'static str,
    },
}

/// An application's own statement failed inside
/// [`Hopper::sqlite_transaction`](crate::Hopper::sqlite_transaction).
#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for DispatchError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Where, when and how urgently a dispatched job runs; anything left unset
/// comes from the job type.
///
/// ```
/// use std::time::Duration;
/// use hopper::DispatchOptions;
/// let options = DispatchOptions::new().queue("mail").priority(10).delay(Duration::from_secs(60));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DispatchOptions {
    queue: Option<String>,
    priority: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    delay: Option<Duration>,
    max_attempts: Option<u32>,
    unique_key: Option<String>,
    partition_key: Option<String>,
    sequence: Option<String>,
    continue_sequence: bool,
}

impl DispatchOptions {
    /// No options: run as soon as possible, on the job type's queue.
    ///
    /// ```
    /// assert_eq!(hopper::DispatchOptions::new(), hopper::DispatchOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the job on `queue` instead of its type's queue.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().queue("reports");
    /// # let _ = o;
    /// ```
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Higher priorities run first among due jobs of a queue (default 0).
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().priority(-5);
    /// # let _ = o;
    /// ```
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Runs the job no earlier than `delay` from now.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().delay(std::time::Duration::from_secs(3600));
    /// # let _ = o;
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.run_at = None;
        self
    }

    /// Runs the job no earlier than `at`.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().run_at(chrono::Utc::now());
    /// # let _ = o;
    /// ```
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self.delay = None;
        self
    }

    /// Overrides the job type's number of attempts (at least 1).
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().max_attempts(10);
    /// # let _ = o;
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Makes the job unique by `key`: while a job with this key is pending
    /// or started, dispatching it again stores nothing and returns the
    /// existing job's id.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().unique_key("invoice:42");
    /// # let _ = o;
    /// ```
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Puts the job in partition `key` of its queue (instead of the key
    /// [`Job::partition`](crate::Job::partition) gives): a queue's per-key
    /// limits and fair claims count and serve the jobs of one key together.
    /// At most 255 characters.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().partition("customer:42");
    /// # let _ = o;
    /// ```
    pub fn partition(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Puts the job in sequence `key`: it runs after every job dispatched
    /// before it with the same key has ended, one at a time in dispatch
    /// order (jobs of other keys run in parallel). If a job of the sequence
    /// fails for good or is cancelled, the sequence holds until it is
    /// retried and finishes or the next job's wait is skipped
    /// ([`Hopper::skip_wait`](crate::Hopper::skip_wait)), unless it was
    /// dispatched with [`continue_sequence_on_failure`](Self::continue_sequence_on_failure).
    /// At most 255 characters; not with a unique key or a partition key.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().sequence("account:42");
    /// # let _ = o;
    /// ```
    pub fn sequence(mut self, key: impl Into<String>) -> Self {
        self.sequence = Some(key.into());
        self
    }

    /// Lets the job's sequence go on to the next job if this one fails for
    /// good or is cancelled, instead of holding it.
    ///
    /// ```
    /// let o = hopper::DispatchOptions::new().sequence("account:42").continue_sequence_on_failure();
    /// # let _ = o;
    /// ```
    pub fn continue_sequence_on_failure(mut self) -> Self {
        self.continue_sequence = true;
        self
    }

    /// The row to insert for a job of `job_type` with `payload` (JSON), dispatched at `now`.
    pub(crate) fn new_job(
        &self,
        job_type: &str,
        defaults: JobDefaults,
        payload: String,
        now: DateTime<Utc>,
    ) -> NewJob {
        let available_at = match (self.run_at, self.delay) {
            (Some(at), _) => at,
            (None, Some(delay)) => crate::clock::add(now, delay),
            (None, None) => now,
        };
        NewJob {
            job_type: job_type.to_owned(),
            queue: self
                .queue
                .clone()
                .unwrap_or_else(|| defaults.queue.to_owned()),
            payload,
            priority: self.priority.unwrap_or(0),
            max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            available_at,
            created_at: now,
            unique_key: self.unique_key.clone(),
            partition_key: self.partition_key.clone(),
            sequence: self.sequence.as_ref().map(|key| Sequence {
                key: key.clone(),
                continue_on_failure: self.continue_sequence,
            }),
            trace_context: crate::trace::current(),
        }
    }
}

/// Refuses a job whose type name, queue name, unique key or partition key
/// holds a NUL character, whose partition key is longer than
/// [`MAX_PARTITION_KEY`] characters, or whose sequence cannot be kept
/// ([`crate::store::sequences::check`]), before it reaches any database.
///
/// ```
/// let now = chrono::Utc::now();
/// let mut job = hopper::store::NewJob {
///     job_type: "mail".into(), queue: "default".into(), payload: r#""\u0000""#.into(),
///     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
///     sequence: None,
///     trace_context: None,
/// };
/// assert!(hopper::dispatch::check_text(&job).is_ok());
/// job.queue = "de\0fault".into();
/// let err = hopper::dispatch::check_text(&job).unwrap_err();
/// assert!(err.to_string().contains("queue name"));
/// ```
pub fn check_text(job: &NewJob) -> Result<(), DispatchError> {
    let fields = [
        ("type name", Some(job.job_type.as_str())),
        ("queue name", Some(job.queue.as_str())),
        ("unique key", job.unique_key.as_deref()),
        ("partition key", job.partition_key.as_deref()),
    ];
    if let Some(key) = &job.partition_key {
        let length = key.chars().count();
        if length > MAX_PARTITION_KEY {
            return Err(DispatchError::PartitionKeyTooLong {
                job_type: job.job_type.clone(),
                length,
            });
        }
    }
    crate::store::sequences::check(job)?;
    match fields
        .into_iter()
        .find(|(_, value)| value.is_some_and(|value| value.contains('\0')))
    {
        Some((field, _)) => Err(DispatchError::NulCharacter {
            job_type: job.job_type.clone(),
            field,
        }),
        None => Ok(()),
    }
}
