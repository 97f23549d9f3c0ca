//! The API's request and response bodies as typed structs. Each derives
//! its OpenAPI schema ([`utoipa::ToSchema`]) from the same fields it
//! serializes, so the document at `/api/openapi.json` describes what the
//! handlers send and read. Responses are built from the library's records
//! and serialize as those records do (the tests at the bottom check it).

use chrono::{DateTime, Utc};
use hopper::JobState;
use hopper::bulk::BulkAction;
use hopper::store::{
    AlertRecord, BatchRecord, FlowUsage, JobRecord, KeyUsage, MinuteCount, TypeCount,
    WorkerConcurrency,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// The schema of a job state: one of [`JobState::ALL`]'s names.
pub(crate) fn job_state_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(JobState::ALL.map(JobState::as_str)))
        .build()
}

/// The schema of a job state or null.
pub(crate) fn optional_job_state_schema() -> Object {
    let mut states: Vec<Value> = JobState::ALL.map(|s| Value::from(s.as_str())).to_vec();
    states.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(states))
        .build()
}

/// The schema of a bulk action's name: one of [`BulkAction::ALL`]'s.
fn bulk_action_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(BulkAction::ALL.map(BulkAction::as_str)))
        .build()
}

/// The schema of an age such as `older_than`.
pub(crate) fn older_than_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "only jobs created longer ago than this: a number and a unit (ms, s, m, h, d, w; \
             a bare number is seconds), as the console's --older-than reads it",
        ))
        .examples(["10m", "2h", "7d"])
        .build()
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: String,
}

/// A payload that does not fit its job type.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FieldError)]
pub(crate) struct FieldErrorBody {
    /// What went wrong.
    pub(crate) error: String,
    /// The decoder's message, naming the field at fault.
    pub(crate) field_error: String,
}

/// A dispatch request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewJob)]
pub(crate) struct NewJobRequest {
    /// The job type's registered name.
    #[serde(rename = "type")]
    pub(crate) job_type: String,
    /// The payload, as the job type reads it (null if left out).
    #[serde(default)]
    pub(crate) payload: Value,
    /// The queue (default: the job type's).
    pub(crate) queue: Option<String>,
    /// Higher runs first.
    pub(crate) priority: Option<i32>,
    /// Not run before this many seconds from now.
    pub(crate) delay_seconds: Option<u64>,
    /// Runs allowed in all.
    #[schema(minimum = 1)]
    pub(crate) max_attempts: Option<u32>,
    /// No second live job with this key is dispatched.
    pub(crate) unique_key: Option<String>,
}

/// A dispatched job: its id and the job as stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    /// The new job's id.
    pub(crate) id: i64,
    /// The job, read back (null if it is already gone).
    pub(crate) job: Option<JobView>,
}

/// A failed attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AttemptError)]
pub(crate) struct AttemptErrorView {
    /// The attempt that failed.
    pub(crate) attempt: u32,
    /// When.
    pub(crate) at: DateTime<Utc>,
    /// Why.
    pub(crate) error: String,
}

/// How far a run has got, as its handler last reported it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Progress)]
pub(crate) struct ProgressView {
    /// From 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub(crate) percent: u8,
    /// What the run is doing (may be empty).
    pub(crate) message: String,
}

/// A job as the API shows it: the stored record, with its payload and
/// output as JSON rather than JSON text.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobView {
    /// The job's id.
    pub(crate) id: i64,
    /// Its type name.
    #[serde(rename = "type")]
    pub(crate) job_type: String,
    /// Its queue.
    pub(crate) queue: String,
    /// Its payload (JSON; a string if the stored text is not JSON).
    pub(crate) payload: Value,
    /// Where it is in its life.
    #[schema(schema_with = job_state_schema)]
    pub(crate) state: JobState,
    /// Higher runs first.
    pub(crate) priority: i32,
    /// Runs started so far.
    pub(crate) attempts: u32,
    /// Runs allowed in all.
    pub(crate) max_attempts: u32,
    /// Not run before this time.
    pub(crate) available_at: DateTime<Utc>,
    /// When it was dispatched.
    pub(crate) created_at: DateTime<Utc>,
    /// When its latest run started.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it reached `finished`, `failed` or `cancelled`.
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// The worker holding its lease while `started`.
    pub(crate) locked_by: Option<String>,
    /// When that lease runs out.
    pub(crate) locked_until: Option<DateTime<Utc>>,
    /// The latest failure's message.
    pub(crate) last_error: Option<String>,
    /// Every failure, oldest first.
    pub(crate) errors: Vec<AttemptErrorView>,
    /// Its unique key, if it was dispatched with one.
    pub(crate) unique_key: Option<String>,
    /// What the handler returned (JSON); null unless the job finished with one.
    pub(crate) output: Option<Value>,
    /// The latest progress its runs reported; null before any.
    pub(crate) progress: Option<ProgressView>,
    /// The batch it belongs to (`GET /api/batches/{id}`); null if none.
    pub(crate) batch_id: Option<i64>,
    /// How many jobs it still waits on (earlier jobs of its sequence,
    /// workflow steps); while above 0 a pending job is not due.
    /// `POST /api/jobs/{id}/skip-wait` ends the wait.
    #[schema(minimum = 0)]
    pub(crate) waiting_on: u32,
}

/// Stored JSON text as JSON, or as a string if it is not JSON.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        Self {
            id: record.id,
            payload: json_or_text(&record.payload),
            job_type: record.job_type,
            queue: record.queue,
            state: record.state,
            priority: record.priority,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            available_at: record.available_at,
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            locked_by: record.locked_by,
            locked_until: record.locked_until,
            last_error: record.last_error,
            errors: record
                .errors
                .into_iter()
                .map(|e| AttemptErrorView {
                    attempt: e.attempt,
                    at: e.at,
                    error: e.error,
                })
                .collect(),
            unique_key: record.unique_key,
            output: record.output.as_deref().map(json_or_text),
            progress: record.progress.map(|p| ProgressView {
                percent: p.percent,
                message: p.message,
            }),
            batch_id: record.batch_id,
            waiting_on: record.waiting_on,
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobPage {
    /// The jobs.
    pub(crate) jobs: Vec<JobView>,
    /// The `before` of the next (older) page; null on the last page.
    pub(crate) next: Option<i64>,
    /// The same as `next`, under the name it had before.
    #[schema(deprecated)]
    pub(crate) next_before: Option<i64>,
}

/// How many jobs match.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Count {
    /// The number of jobs.
    #[schema(minimum = 0)]
    pub(crate) count: u64,
}

/// A bulk action request: the action and the jobs it takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkRequest)]
pub(crate) struct BulkRequest {
    /// What to do to each matching job.
    #[schema(schema_with = bulk_action_schema)]
    pub(crate) action: String,
    /// Only jobs in this state.
    #[schema(schema_with = optional_job_state_schema)]
    pub(crate) state: Option<String>,
    /// Only jobs of this queue.
    pub(crate) queue: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    pub(crate) job_type: Option<String>,
    /// Only jobs created longer ago than this.
    #[schema(schema_with = older_than_schema)]
    pub(crate) older_than: Option<String>,
}

/// What a bulk action did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BulkOutcome)]
pub(crate) struct BulkOutcomeView {
    /// Jobs the filter matched.
    #[schema(minimum = 0)]
    pub(crate) matched: u64,
    /// Jobs the action changed.
    #[schema(minimum = 0)]
    pub(crate) applied: u64,
    /// Jobs left as they were: in a state the action does not apply to, or changed meanwhile.
    #[schema(minimum = 0)]
    pub(crate) skipped: u64,
}

impl From<hopper::bulk::BulkOutcome> for BulkOutcomeView {
    fn from(done: hopper::bulk::BulkOutcome) -> Self {
        Self {
            matched: done.matched,
            applied: done.applied,
            skipped: done.skipped,
        }
    }
}

/// A batch's jobs and how many ended each way.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchCountsView {
    /// Jobs in the batch.
    #[schema(minimum = 0)]
    pub(crate) total: u64,
    /// Jobs not ended yet: pending or running.
    #[schema(minimum = 0)]
    pub(crate) pending: u64,
    /// Jobs finished.
    #[schema(minimum = 0)]
    pub(crate) finished: u64,
    /// Jobs failed for good.
    #[schema(minimum = 0)]
    pub(crate) failed: u64,
    /// Jobs cancelled.
    #[schema(minimum = 0)]
    pub(crate) cancelled: u64,
}

/// When a batch callback fires.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BatchEventName {
    /// Once every job finished.
    Success,
    /// Once every job ended, whatever the outcome.
    Complete,
    /// At the first job failed for good.
    Failure,
}

impl From<hopper::store::BatchEvent> for BatchEventName {
    fn from(event: hopper::store::BatchEvent) -> Self {
        match event {
            hopper::store::BatchEvent::Success => Self::Success,
            hopper::store::BatchEvent::Complete => Self::Complete,
            hopper::store::BatchEvent::Failure => Self::Failure,
        }
    }
}

/// A batch callback and the job it became, once fired.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchCallback)]
pub(crate) struct BatchCallbackView {
    // When it fires (a plain comment: a description would wrap the
    // inlined schema in `oneOf`).
    #[schema(inline)]
    pub(crate) event: BatchEventName,
    /// Its job type.
    pub(crate) job_type: String,
    /// The job the callback became, once fired.
    pub(crate) job_id: Option<i64>,
}

/// A batch: its counts, whether it is sealed and complete, and its callbacks.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Batch)]
pub(crate) struct BatchView {
    /// Its id.
    pub(crate) id: i64,
    /// What it is.
    pub(crate) name: String,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
    /// No more jobs are expected but those its running jobs add.
    pub(crate) sealed: bool,
    /// Sealed, and every job ended.
    pub(crate) complete: bool,
    // Its jobs, and how many ended each way (a plain comment: a description would wrap the
    // inlined schema in `oneOf`).
    #[schema(inline)]
    pub(crate) counts: BatchCountsView,
    /// Its callbacks.
    pub(crate) callbacks: Vec<BatchCallbackView>,
}

impl From<BatchRecord> for BatchView {
    fn from(batch: BatchRecord) -> Self {
        let counts = batch.counts;
        Self {
            id: batch.id,
            complete: batch.is_complete(),
            name: batch.name,
            created_at: batch.created_at,
            sealed: batch.sealed,
            counts: BatchCountsView {
                total: counts.total,
                pending: counts.pending(),
                finished: counts.finished,
                failed: counts.failed,
                cancelled: counts.cancelled,
            },
            callbacks: batch
                .callbacks
                .into_iter()
                .map(|callback| BatchCallbackView {
                    event: callback.event.into(),
                    job_type: callback.job_type,
                    job_id: callback.job_id,
                })
                .collect(),
        }
    }
}

/// An alert incident: firing until `resolved_at` is set.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Alert)]
pub(crate) struct AlertView {
    /// Its id.
    pub(crate) id: i64,
    /// The rule that fired.
    pub(crate) rule: String,
    /// What it fired about: the job type or queue.
    pub(crate) subject: String,
    /// What was seen when it fired.
    pub(crate) summary: String,
    /// When it fired.
    pub(crate) fired_at: DateTime<Utc>,
    /// When it resolved; null while it fires.
    pub(crate) resolved_at: Option<DateTime<Utc>>,
}

impl From<AlertRecord> for AlertView {
    fn from(alert: AlertRecord) -> Self {
        Self {
            id: alert.id,
            rule: alert.rule,
            subject: alert.subject,
            summary: alert.summary,
            fired_at: alert.fired_at,
            resolved_at: alert.resolved_at,
        }
    }
}

/// Alert incidents firing now, oldest first, and the latest resolved.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Alerts {
    /// Incidents firing now.
    pub(crate) firing: Vec<AlertView>,
    /// Incidents resolved, latest first.
    pub(crate) resolved: Vec<AlertView>,
}

impl From<crate::alerts::AlertList> for Alerts {
    fn from(list: crate::alerts::AlertList) -> Self {
        Self {
            firing: list.firing.into_iter().map(AlertView::from).collect(),
            resolved: list.resolved.into_iter().map(AlertView::from).collect(),
        }
    }
}

/// A rate of starts, as a queue's flow settings hold it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Rate)]
pub(crate) struct RateView {
    /// The most starts in any window of the period.
    pub(crate) starts: u32,
    /// The window's length in milliseconds.
    pub(crate) period_ms: u128,
    /// Whether starts count per partition key.
    pub(crate) per_key: bool,
    /// The rate as text, like `100/1m`.
    pub(crate) text: String,
}

/// A queue's flow settings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FlowView {
    /// The most jobs of the queue started at once.
    pub(crate) concurrency: Option<u32>,
    /// The most jobs of one partition key started at once.
    pub(crate) key_concurrency: Option<u32>,
    /// The most job starts per period.
    pub(crate) rate: Option<RateView>,
    /// Whether keys with due jobs are served in turn.
    pub(crate) fair: bool,
}

/// What one partition of a flow-controlled queue uses.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyUsage)]
pub(crate) struct KeyUsageView {
    /// The partition key; null for the jobs without one.
    pub(crate) key: Option<String>,
    /// Its jobs started now.
    pub(crate) running: u64,
    /// Its starts in the current window, with a per-key rate; else null.
    pub(crate) starts_in_window: Option<u64>,
    /// Whether it is at its per-key limit or per-key rate.
    pub(crate) full: bool,
}

impl From<&KeyUsage> for KeyUsageView {
    fn from(key: &KeyUsage) -> Self {
        Self {
            key: key.key.clone(),
            running: key.running,
            starts_in_window: key.starts_in_window,
            full: key.full,
        }
    }
}

/// A queue with flow settings: its limits and their use.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FlowUsage)]
pub(crate) struct FlowUsageView {
    /// The queue.
    pub(crate) queue: String,
    // Its flow settings (a plain comment: a description would wrap the
    // inlined schema in `oneOf`).
    #[schema(inline)]
    pub(crate) flow: FlowView,
    /// Jobs started now, in every process.
    pub(crate) running: u64,
    /// Starts in the last rate period; null without a rate.
    pub(crate) starts_in_window: Option<u64>,
    /// Its due pending jobs.
    pub(crate) due: u64,
    /// Due jobs a limit holds back: all due jobs while the queue's limit or
    /// rate is reached, else those of keys at their per-key limit or rate.
    pub(crate) waiting: u64,
    /// The queue's concurrency limit or per-queue rate is reached.
    pub(crate) full: bool,
    /// The partitions with the most running jobs.
    pub(crate) busiest_keys: Vec<KeyUsageView>,
}

impl From<&FlowUsage> for FlowUsageView {
    fn from(usage: &FlowUsage) -> Self {
        let flow = &usage.flow;
        Self {
            queue: usage.queue.clone(),
            flow: FlowView {
                concurrency: flow.concurrency,
                key_concurrency: flow.key_concurrency,
                rate: flow.rate.map(|rate| RateView {
                    starts: rate.starts,
                    period_ms: rate.period.as_millis(),
                    per_key: rate.per_key,
                    text: rate.to_string(),
                }),
                fair: flow.fair,
            },
            running: usage.running,
            starts_in_window: usage.starts_in_window,
            due: usage.due,
            waiting: usage.waiting,
            full: usage.full,
            busiest_keys: usage.busiest_keys.iter().map(KeyUsageView::from).collect(),
        }
    }
}

/// One queue's flow settings and their use.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QueueFlow)]
pub(crate) struct QueueFlowView {
    /// The queue.
    pub(crate) queue: String,
    /// Null while the queue has no flow settings.
    pub(crate) usage: Option<FlowUsageView>,
}

/// A rate in a flow request: `"100/1m"`, or its parts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum RateRequest {
    /// Starts per period, like `100/1m`, `10/1s` or `5/500ms`.
    Text(String),
    /// The parts of a rate.
    Parts {
        /// The most starts in any window.
        #[schema(minimum = 1)]
        starts: u32,
        /// The window's length in milliseconds.
        #[schema(minimum = 1)]
        period_ms: u64,
        /// Count starts per partition key.
        #[serde(default)]
        per_key: bool,
    },
}

/// New flow settings for one queue; what is left out is unset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FlowSettings)]
pub(crate) struct FlowSettingsRequest {
    /// The most jobs of the queue started at once.
    #[schema(minimum = 1)]
    pub(crate) concurrency: Option<u32>,
    /// The most jobs of one partition key started at once.
    #[schema(minimum = 1)]
    pub(crate) key_concurrency: Option<u32>,
    /// The most job starts per period.
    pub(crate) rate: Option<RateRequest>,
    /// With a rate given as text: count it per partition key.
    #[serde(default)]
    pub(crate) per_key_rate: bool,
    /// Serve keys with due jobs in turn.
    #[serde(default)]
    pub(crate) fair: bool,
}

/// Jobs of one queue in one state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueStateCount {
    /// The queue.
    pub(crate) queue: String,
    /// The state.
    #[schema(schema_with = job_state_schema)]
    pub(crate) state: JobState,
    /// How many jobs.
    pub(crate) count: u64,
}

/// Jobs of one type in one state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TypeStateCount {
    /// The job type.
    #[serde(rename = "type")]
    pub(crate) job_type: String,
    /// The state.
    #[schema(schema_with = job_state_schema)]
    pub(crate) state: JobState,
    /// How many jobs.
    pub(crate) count: u64,
}

impl From<TypeCount> for TypeStateCount {
    fn from(count: TypeCount) -> Self {
        Self {
            job_type: count.job_type,
            state: count.state,
            count: count.count,
        }
    }
}

/// A worker pool's concurrency on one queue.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Worker)]
pub(crate) struct WorkerView {
    /// The pool's worker id.
    pub(crate) worker: String,
    /// The queue.
    pub(crate) queue: String,
    /// How many of the queue's jobs the pool runs at once now.
    pub(crate) concurrency: u32,
    /// The least it scales down to.
    pub(crate) min: u32,
    /// The most it scales up to.
    pub(crate) max: u32,
    /// How many it was running when it published.
    pub(crate) running: u32,
    /// When the row goes stale unless the pool publishes again.
    pub(crate) expires_at: DateTime<Utc>,
}

impl From<&WorkerConcurrency> for WorkerView {
    fn from(row: &WorkerConcurrency) -> Self {
        Self {
            worker: row.worker.clone(),
            queue: row.queue.clone(),
            concurrency: row.concurrency,
            min: row.min,
            max: row.max,
            running: row.running,
            expires_at: row.expires_at,
        }
    }
}

/// One queue's status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QueueStatus)]
pub(crate) struct QueueStatusView {
    /// The queue.
    pub(crate) queue: String,
    /// Pending jobs.
    pub(crate) pending: u64,
    /// Running jobs.
    pub(crate) started: u64,
    /// Finished jobs.
    pub(crate) finished: u64,
    /// Jobs failed for good.
    pub(crate) failed: u64,
    /// Cancelled jobs.
    pub(crate) cancelled: u64,
    /// Pending jobs that are due now.
    pub(crate) due: u64,
    /// When the longest-waiting due job came due.
    pub(crate) oldest_due_at: Option<DateTime<Utc>>,
    /// Whether workers are told to claim nothing from it.
    pub(crate) paused: bool,
    /// The live worker pools running it.
    pub(crate) workers: Vec<WorkerView>,
}

impl From<&hopper::status::QueueStatus> for QueueStatusView {
    fn from(queue: &hopper::status::QueueStatus) -> Self {
        let counts = &queue.counts;
        Self {
            queue: queue.queue.clone(),
            pending: counts.pending,
            started: counts.started,
            finished: counts.finished,
            failed: counts.failed,
            cancelled: counts.cancelled,
            due: queue.due,
            oldest_due_at: queue.oldest_due_at,
            paused: queue.paused,
            workers: queue.workers.iter().map(WorkerView::from).collect(),
        }
    }
}

/// Jobs that ended in one minute.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Minute)]
pub(crate) struct MinuteView {
    /// The minute's start.
    pub(crate) minute: DateTime<Utc>,
    /// Jobs that finished in it.
    pub(crate) finished: u64,
    /// Jobs that failed for good in it.
    pub(crate) failed: u64,
}

impl From<&MinuteCount> for MinuteView {
    fn from(m: &MinuteCount) -> Self {
        Self {
            minute: m.minute,
            finished: m.finished,
            failed: m.failed,
        }
    }
}

/// Statistics: counts, each queue's status, flow use and throughput.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// Jobs per queue and state; zero counts left out.
    pub(crate) counts: Vec<QueueStateCount>,
    /// Jobs per type and state, by type then state; zero counts left out.
    pub(crate) counts_by_type: Vec<TypeStateCount>,
    /// Each queue with jobs, a pause or a worker pool.
    pub(crate) queues: Vec<QueueStatusView>,
    /// Each queue with flow settings.
    pub(crate) flow: Vec<FlowUsageView>,
    /// Jobs ended per minute over the last hour.
    pub(crate) throughput: Vec<MinuteView>,
    /// When the figures were read.
    pub(crate) now: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    //! Each view serializes as the library's record it is built from did.

    use std::time::Duration;

    use chrono::Utc;
    use hopper::store::{
        AttemptError, BatchCallback, BatchCounts, BatchEvent, Progress, QueueFlow, Rate,
    };
    use serde_json::json;

    use super::*;

    fn same<A: Serialize, B: Serialize>(view: A, record: B) {
        let (view, record) = (
            serde_json::to_value(view).unwrap(),
            serde_json::to_value(record).unwrap(),
        );
        assert_eq!(view, record);
    }

    #[test]
    fn a_job_serializes_as_its_record_with_json_payload_and_output() {
        let now = Utc::now();
        let record = JobRecord {
            id: 7,
            job_type: "mail".into(),
            queue: "default".into(),
            payload: r#"{"to":"a@b.c"}"#.into(),
            state: JobState::Finished,
            priority: 2,
            attempts: 2,
            max_attempts: 3,
            available_at: now,
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            locked_by: Some("w".into()),
            locked_until: None,
            last_error: Some("boom".into()),
            errors: vec![AttemptError {
                attempt: 1,
                at: now,
                error: "boom".into(),
            }],
            unique_key: Some("k".into()),
            output: Some("not json".into()),
            progress: Some(Progress {
                percent: 50,
                message: "half".into(),
            }),
            batch_id: Some(3),
            waiting_on: 0,
        };
        let mut expected = serde_json::to_value(&record).unwrap();
        expected["payload"] = json!({"to": "a@b.c"});
        expected["output"] = json!("not json");
        same(JobView::from(record.clone()), expected);
        let bare = JobRecord {
            output: None,
            progress: None,
            ..record
        };
        let mut expected = serde_json::to_value(&bare).unwrap();
        expected["payload"] = json!({"to": "a@b.c"});
        same(JobView::from(bare), expected);
    }

    #[test]
    fn batches_flows_alerts_and_stats_serialize_as_their_records() {
        let now = Utc::now();
        let batch = BatchRecord {
            id: 1,
            name: "import".into(),
            created_at: now,
            counts: BatchCounts {
                total: 4,
                finished: 1,
                failed: 1,
                cancelled: 0,
            },
            sealed: true,
            callbacks: vec![BatchCallback {
                event: BatchEvent::Failure,
                job_type: "report".into(),
                job_id: Some(9),
            }],
        };
        same(BatchView::from(batch.clone()), &batch);

        let usage = FlowUsage {
            queue: "payments".into(),
            flow: QueueFlow::default()
                .concurrency(5)
                .per_key(1)
                .rate(Rate::per_key(100, Duration::from_secs(60))),
            running: 2,
            starts_in_window: Some(3),
            due: 4,
            waiting: 1,
            full: false,
            busiest_keys: vec![KeyUsage {
                key: Some("acme".into()),
                running: 1,
                starts_in_window: None,
                full: true,
            }],
        };
        same(FlowUsageView::from(&usage), &usage);

        let alert = AlertRecord {
            id: 2,
            rule: "backlog".into(),
            subject: "default".into(),
            summary: "many".into(),
            fired_at: now,
            resolved_at: Some(now),
        };
        same(AlertView::from(alert.clone()), &alert);

        let mut queue = hopper::status::QueueStatus::new("mail");
        queue.counts.add(JobState::Failed, 2);
        queue.due = 1;
        queue.workers.push(WorkerConcurrency {
            worker: "web-1".into(),
            queue: "mail".into(),
            concurrency: 2,
            min: 1,
            max: 4,
            running: 1,
            expires_at: now,
        });
        same(QueueStatusView::from(&queue), &queue);
        let minute = MinuteCount {
            minute: now,
            finished: 3,
            failed: 1,
        };
        same(MinuteView::from(&minute), &minute);
        let by_type = TypeCount {
            job_type: "mail".into(),
            state: JobState::Pending,
            count: 2,
        };
        same(TypeStateCount::from(by_type.clone()), &by_type);
        same(
            BulkOutcomeView::from(hopper::bulk::BulkOutcome {
                matched: 3,
                applied: 2,
                skipped: 1,
            }),
            json!({"matched": 3, "applied": 2, "skipped": 1}),
        );
    }
}
