//! The audit after a run: every job that was meant to be dispatched is
//! looked up, its recorded executions counted, and every execution beyond
//! the last explained (or not) by what the controller did.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, Utc};
use hopper::store::{AttemptError, JobRecord};
use hopper::testing::all_jobs;
use hopper::{Job, JobFilter, JobState};
use serde::Serialize;

use crate::db::{Backend, Run};
use crate::job::ChaosJob;
use crate::run::{Events, Limits, Outcome, Plan, retry};

/// The prefix of the error the rescuer records for an attempt whose lease ran out.
const LEASE_EXPIRED: &str = "lease expired: worker ";

/// Why a job ran more than once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An earlier attempt's process was SIGKILLed; its lease expired and the
    /// job was handed out again.
    Killed,
    /// An earlier attempt's handler returned an error and the job was retried.
    FailedAttempt,
    /// An earlier attempt's process lived, but its database connections were
    /// cut (server restart, connection kills) until its lease expired.
    CutOff,
    /// An earlier attempt's process lived and its lease expired with no cut
    /// connection to blame: it was stalled (starved of CPU, say) for longer
    /// than the lease. The rescuer recorded it like any expired lease.
    Stalled,
    /// The same attempt ran twice because the earlier run's start was never
    /// recorded: its process was SIGKILLed after the handler of a job it had
    /// claimed ahead started and before the start was written, or a server
    /// restart undid the claim. The rescue then handed the attempt back, as
    /// docs/guarantees.md ("When a handler runs twice", cases 2 and 4) says.
    StartUnrecorded,
    /// The same attempt ran twice with no kill or restart to explain why
    /// the earlier run's start went unrecorded: the job's attempts
    /// undercount its runs.
    AttemptRepeated,
    /// Nothing the controller did explains it.
    Unexplained,
}

/// One execution of a job that ran more than once.
#[derive(Debug, Serialize)]
pub struct Execution {
    /// The attempt it ran as.
    pub attempt: u32,
    /// The worker process that ran it.
    pub worker: String,
    /// Whether the controller SIGKILLed that process.
    pub killed: bool,
    /// Whether that process's clock ran ahead.
    pub skewed: bool,
    /// When its handler started (the host's real clock).
    pub at: Option<DateTime<Utc>>,
}

/// A job that ran more than once.
#[derive(Debug, Serialize)]
pub struct Duplicate {
    /// The job.
    pub job_id: i64,
    /// Whether a process that ran it was SIGKILLed.
    pub held_by_killed_process: bool,
    /// The least explained of its extra executions.
    pub cause: Cause,
    /// Its executions, in order.
    pub executions: Vec<Execution>,
    /// The attempts its record counts in the end.
    pub attempts: u32,
    /// The errors its record holds (failed attempts, expired leases), to
    /// read the executions against.
    pub errors: Vec<AttemptError>,
}

/// The audit's figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The database kind.
    pub backend: Backend,
    /// Jobs the run meant to dispatch.
    pub jobs: u64,
    /// Worker processes alive at a time.
    pub workers: usize,
    /// Seconds of damage.
    pub duration_secs: f64,
    /// How far ahead of the real time the skewed worker's clock ran, in
    /// seconds (0: no skewed worker).
    pub clock_skew_secs: f64,
    /// Jobs stored.
    pub dispatched: u64,
    /// Jobs that ended `finished`.
    pub finished: u64,
    /// Jobs that ended `failed`.
    pub failed: u64,
    /// Jobs meant to be dispatched that never finished (never stored, or
    /// stored and not finished).
    pub lost: u64,
    /// Jobs `started` whose lease had run out longer ago than the rescuer
    /// needs, while live workers were running.
    pub stuck: u64,
    /// Sequence numbers stored more than once.
    pub dispatched_twice: u64,
    /// Handler executions recorded.
    pub executions: u64,
    /// Jobs executed more than once.
    pub executed_more_than_once: u64,
    /// Of those, jobs whose extra executions are all explained by a
    /// SIGKILLed process.
    pub duplicates_killed: u64,
    /// Of those, jobs with an extra execution after a failed attempt.
    pub duplicates_failed_attempt: u64,
    /// Of those, jobs with an extra execution by a live process cut off from
    /// the database until its lease ran out.
    pub duplicates_cut_off: u64,
    /// Of those, jobs with an extra execution by a live process that let its
    /// lease lapse with no cut connection to blame (stalled).
    pub duplicates_stalled: u64,
    /// Of those, jobs one of whose attempts ran twice because its earlier
    /// run's process was SIGKILLed (or the server restarted) before that
    /// run's start was recorded.
    pub duplicates_start_unrecorded: u64,
    /// Of those, jobs one of whose attempts ran twice with no kill or
    /// restart to explain it (a run that started was not counted).
    pub duplicates_attempt_repeated: u64,
    /// Of those, jobs nothing explains: a second execution with no expired
    /// lease or failure recorded for the first.
    pub duplicates_unexplained: u64,
    /// For attempts run twice whose first run's process was SIGKILLed: the
    /// longest time from that run's handler starting to the kill, in
    /// seconds (how long a start can go unrecorded).
    pub max_repeated_attempt_start_to_kill_secs: Option<f64>,
    /// Finished jobs with no recorded execution of their finishing attempt.
    pub finished_without_execution: u64,
    /// Jobs a SIGKILLed process held (claimed or running) when it died.
    pub held_by_killed: u64,
    /// Jobs whose lease ran out while the process holding them lived (cut
    /// off from the database, or a claim whose answer was lost), and were
    /// handed out again.
    pub rescued_from_live_workers: u64,
    /// The longest time from a SIGKILL to the completion elsewhere of a job
    /// the killed process held, in seconds (a skewed worker writes its
    /// finish times on its own clock; the skew is taken off them).
    pub max_kill_to_completion_secs: Option<f64>,
    /// The most attempts any job used.
    pub max_attempts_used: u32,
    /// Worker processes SIGKILLed.
    pub worker_kills: u64,
    /// Worker processes started with their clock running ahead (one alive
    /// at a time: the first, then each one killed is replaced by another).
    pub skewed_workers_started: u64,
    /// Of the worker processes SIGKILLed, those whose clock ran ahead.
    pub skewed_worker_kills: u64,
    /// Handler executions recorded by worker processes whose clock ran ahead.
    pub skewed_executions: u64,
    /// Dispatcher kills with a transaction open.
    pub writer_kills: u64,
    /// Of those, batches that were not stored (rolled back as a whole).
    pub writer_kills_rolled_back: u64,
    /// Times the stored jobs were not a whole prefix of the sequence (a
    /// batch stored in part): must be 0.
    pub torn_batches: u64,
    /// Server restarts.
    pub server_restarts: u64,
    /// Longest server restart, in seconds (down to answering again).
    pub max_restart_secs: Option<f64>,
    /// Bursts of connection kills.
    pub connection_kill_bursts: u64,
    /// Connections killed in them.
    pub connections_killed: u64,
    /// Worker processes that exited without being told to.
    pub unexpected_exits: u64,
    /// Dispatcher processes that stopped on a database error (and were restarted).
    pub dispatcher_errors: u64,
    /// Worker processes that did not stop when asked.
    pub stop_failures: u64,
    /// Seconds from the end of the damage to the last job ending (`None`:
    /// the drain deadline passed first).
    pub drain_secs: Option<f64>,
    /// SQLite's integrity check of the file after the run.
    pub integrity: Option<String>,
    /// A limited run's check of its limits (`None`: not a limited run).
    pub limits: Option<LimitAudit>,
    /// A batched run's check of its batches (`None`: not a batched run).
    pub batches: Option<crate::batch_audit::BatchAudit>,
    /// Whether the run passed: nothing lost, nothing stuck, every duplicate
    /// explained by a kill, a failed attempt or a cut connection (a stalled
    /// worker fails the run too: the lease is meant to outlast any stall,
    /// and so does an attempt run twice that no kill or restart explains),
    /// no batch torn, no worker dying on its own.
    pub passed: bool,
    /// Every job executed more than once.
    pub duplicates: Vec<Duplicate>,
}

/// A moment when more runs overlapped than a limit allows.
#[derive(Debug, Serialize)]
pub struct OverLimit {
    /// The key (`None`: the whole queue).
    pub key: Option<String>,
    /// How many ran at once.
    pub running: u64,
    /// When the most started (the host's real clock).
    pub at: Option<DateTime<Utc>>,
}

/// A limited run's limits checked against the recorded executions: each
/// one's start and end, and the key of its job.
#[derive(Debug, Serialize)]
pub struct LimitAudit {
    /// The settings.
    #[serde(flatten)]
    pub limits: Limits,
    /// Jobs stored without a partition key (must be 0).
    pub unkeyed_jobs: u64,
    /// Executions checked.
    pub runs_checked: u64,
    /// The most executions of one key that overlapped.
    pub max_running_per_key: u64,
    /// The most executions of the queue that overlapped.
    pub max_running: u64,
    /// Executions left out: their process was SIGKILLed before they ended
    /// (no end recorded). Their lease had not run out when the process
    /// died, so the next owner may rightly start while they look alive.
    pub excluded_killed_runs: u64,
    /// The most executions of one key that overlapped with those counted
    /// too, each until its process was killed (for information).
    pub max_running_per_key_with_killed: u64,
    /// Likewise for the whole queue.
    pub max_running_with_killed: u64,
    /// Executions with no end recorded whose process was not killed (the
    /// end could not be written for a minute): must be 0.
    pub runs_without_end: u64,
    /// Where a limit was exceeded (first 20; killed runs left out).
    pub over_limit: Vec<OverLimit>,
    /// Every job keyed, no limit exceeded, every live run's end known.
    pub passed: bool,
}

/// The most `[start, end)` intervals overlapping at once, and when the
/// most started. An interval ending when another starts does not overlap it.
fn max_overlap(intervals: &[(i64, i64)]) -> (u64, Option<i64>) {
    let mut events: Vec<(i64, i64)> = intervals
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end.max(start), -1)])
        .collect();
    // At equal times ends (-1) come first.
    events.sort_unstable();
    let (mut running, mut most, mut at) = (0i64, 0i64, None);
    for (time, step) in events {
        running += step;
        if running > most {
            (most, at) = (running, Some(time));
        }
    }
    (u64::try_from(most).unwrap_or(0), at)
}

/// The most overlapping `(key, start, end)` runs of each key, and when.
fn per_key<'a>(runs: &[(&'a str, i64, i64)]) -> Vec<(&'a str, (u64, Option<i64>))> {
    let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for &(key, start, end) in runs {
        by_key.entry(key).or_default().push((start, end));
    }
    by_key
        .into_iter()
        .map(|(key, intervals)| (key, max_overlap(&intervals)))
        .collect()
}

/// Checks a limited run's executions against `limits`. `key_of_job` maps
/// a job id to its key; `killed` each SIGKILLed worker to when.
fn check_limits(
    limits: Limits,
    runs: &[Run],
    key_of_job: &HashMap<i64, String>,
    killed: &HashMap<&str, DateTime<Utc>>,
    unkeyed_jobs: u64,
) -> LimitAudit {
    // (key, start, end) of the runs checked, and of every run with killed
    // runs ending at their kill.
    let mut checked: Vec<(&str, i64, i64)> = Vec::new();
    let mut with_killed: Vec<(&str, i64, i64)> = Vec::new();
    let (mut excluded, mut without_end) = (0, 0);
    for run in runs {
        let key = key_of_job.get(&run.job_id).map_or("?", String::as_str);
        match (run.end_us, killed.get(run.worker.as_str())) {
            (Some(end), _) => {
                checked.push((key, run.at_us, end));
                with_killed.push((key, run.at_us, end));
            }
            (None, Some(kill)) => {
                excluded += 1;
                with_killed.push((key, run.at_us, kill.timestamp_micros()));
            }
            (None, None) => without_end += 1,
        }
    }
    let all = |runs: &[(&str, i64, i64)]| {
        let intervals: Vec<(i64, i64)> = runs.iter().map(|&(_, s, e)| (s, e)).collect();
        max_overlap(&intervals)
    };
    let keys = per_key(&checked);
    let (max_running, max_at) = all(&checked);
    let max_running_per_key = keys.iter().map(|(_, (n, _))| *n).max().unwrap_or(0);
    let mut over_limit: Vec<OverLimit> = Vec::new();
    if max_running > u64::from(limits.queue_limit) {
        over_limit.push(OverLimit {
            key: None,
            running: max_running,
            at: max_at.and_then(DateTime::from_timestamp_micros),
        });
    }
    over_limit.extend(
        keys.iter()
            .filter(|(_, (n, _))| *n > u64::from(limits.key_limit))
            .take(20)
            .map(|(key, (n, at))| OverLimit {
                key: Some((*key).to_owned()),
                running: *n,
                at: at.and_then(DateTime::from_timestamp_micros),
            }),
    );
    over_limit.truncate(20);
    let passed = over_limit.is_empty() && without_end == 0 && unkeyed_jobs == 0;
    LimitAudit {
        limits,
        unkeyed_jobs,
        runs_checked: checked.len() as u64,
        max_running_per_key,
        max_running,
        excluded_killed_runs: excluded,
        max_running_per_key_with_killed: per_key(&with_killed)
            .iter()
            .map(|(_, (n, _))| *n)
            .max()
            .unwrap_or(0),
        max_running_with_killed: all(&with_killed).0,
        runs_without_end: without_end,
        over_limit,
        passed,
    }
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6
}

/// The worker named by a rescue's error message.
fn rescued_from(error: &str) -> Option<&str> {
    let rest = error.strip_prefix(LEASE_EXPIRED)?;
    Some(rest.split(" stopped").next().unwrap_or(rest))
}

/// Why `run` (not the job's last execution) was followed by another.
pub(crate) fn cause(
    job: &JobRecord,
    run: &Run,
    next: &Run,
    killed: &HashMap<&str, DateTime<Utc>>,
    events: &Events,
) -> Cause {
    if next.attempt == run.attempt {
        let started = DateTime::<Utc>::from_timestamp_micros(run.at_us);
        let next_started = DateTime::<Utc>::from_timestamp_micros(next.at_us);
        let (Some(started), Some(next_started)) = (started, next_started) else {
            return Cause::AttemptRepeated;
        };
        let killed_after_start = killed
            .get(run.worker.as_str())
            .is_some_and(|kill| *kill >= started);
        let restarted_meanwhile = events
            .outages
            .iter()
            .any(|o| o.kind == "restart" && o.start <= next_started && o.end >= started);
        return if killed_after_start || restarted_meanwhile {
            Cause::StartUnrecorded
        } else {
            Cause::AttemptRepeated
        };
    }
    let Some(entry) = job.errors.iter().find(|e| e.attempt == run.attempt) else {
        return Cause::Unexplained;
    };
    let Some(holder) = rescued_from(&entry.error) else {
        return Cause::FailedAttempt;
    };
    if killed.contains_key(holder) {
        return Cause::Killed;
    }
    let started = DateTime::<Utc>::from_timestamp_micros(run.at_us).unwrap_or(entry.at);
    let cut = events
        .outages
        .iter()
        .any(|o| o.start <= entry.at && o.end >= started);
    if cut { Cause::CutOff } else { Cause::Stalled }
}

/// Audits a finished run.
pub async fn audit(outcome: &Outcome, plan: &Plan) -> Result<Report> {
    let events = &outcome.events;
    let filter = JobFilter {
        job_type: Some(<ChaosJob as Job>::TYPE.to_owned()),
        ..JobFilter::default()
    };
    let jobs = retry(|| all_jobs(&outcome.hopper, &filter)).await?;
    let runs = retry(|| outcome.db.runs()).await?;
    let integrity = retry(|| outcome.db.integrity()).await?;

    let killed: HashMap<&str, DateTime<Utc>> = events
        .kills
        .iter()
        .map(|k| (k.worker.as_str(), k.at))
        .collect();
    let skewed: HashSet<&str> = events.skewed_workers.iter().map(String::as_str).collect();
    let skew = chrono::TimeDelta::from_std(plan.clock_skew).unwrap_or_default();
    let mut by_seq: HashMap<u64, Vec<&JobRecord>> = HashMap::new();
    for job in &jobs {
        if let Ok(seq) = job.payload.parse::<u64>() {
            by_seq.entry(seq).or_default().push(job);
        }
    }
    let mut runs_by_job: BTreeMap<i64, Vec<&Run>> = BTreeMap::new();
    for run in &runs {
        runs_by_job.entry(run.job_id).or_default().push(run);
    }

    let count = |state: JobState| jobs.iter().filter(|j| j.state == state).count() as u64;
    let finished_seqs = (0..plan.jobs)
        .filter(|seq| {
            by_seq
                .get(seq)
                .is_some_and(|js| js.iter().any(|j| j.state == JobState::Finished))
        })
        .count() as u64;

    let mut duplicates = Vec::new();
    let mut finished_without_execution = 0;
    let mut held_by_killed = 0;
    let mut rescued_from_live = 0;
    let mut max_recovery: Option<f64> = None;
    let mut max_repeat_gap: Option<f64> = None;
    for job in &jobs {
        let job_runs = runs_by_job.get(&job.id).map_or(&[][..], Vec::as_slice);
        if job.state == JobState::Finished && !job_runs.iter().any(|r| r.attempt == job.attempts) {
            finished_without_execution += 1;
        }
        let mut was_held = false;
        let mut was_rescued_from_live = false;
        for entry in &job.errors {
            let Some(holder) = rescued_from(&entry.error) else {
                continue;
            };
            let Some(kill) = killed.get(holder) else {
                was_rescued_from_live = true;
                continue;
            };
            was_held = true;
            if let (JobState::Finished, Some(done)) = (job.state, job.finished_at) {
                // The finish time is on the finishing worker's clock.
                let finisher = job_runs.iter().rev().find(|r| r.attempt == job.attempts);
                let done = match finisher {
                    Some(run) if skewed.contains(run.worker.as_str()) => done - skew,
                    _ => done,
                };
                let recovery = secs(*kill, done);
                max_recovery = Some(max_recovery.map_or(recovery, |m: f64| m.max(recovery)));
            }
        }
        if was_held {
            held_by_killed += 1;
        }
        if was_rescued_from_live {
            rescued_from_live += 1;
        }
        if job_runs.len() > 1 {
            let mut worst = Cause::Killed;
            for pair in job_runs.windows(2) {
                let cause = cause(job, pair[0], pair[1], &killed, events);
                if let (Cause::StartUnrecorded | Cause::AttemptRepeated, Some(kill)) =
                    (cause, killed.get(pair[0].worker.as_str()))
                {
                    let started = DateTime::<Utc>::from_timestamp_micros(pair[0].at_us);
                    if let Some(started) = started {
                        let gap = secs(started, *kill);
                        max_repeat_gap = Some(max_repeat_gap.map_or(gap, |m: f64| m.max(gap)));
                    }
                }
                worst = worst.max(cause);
            }
            let executions: Vec<Execution> = job_runs
                .iter()
                .map(|r| Execution {
                    attempt: r.attempt,
                    worker: r.worker.clone(),
                    killed: killed.contains_key(r.worker.as_str()),
                    skewed: skewed.contains(r.worker.as_str()),
                    at: DateTime::from_timestamp_micros(r.at_us),
                })
                .collect();
            duplicates.push(Duplicate {
                job_id: job.id,
                held_by_killed_process: executions.iter().any(|e| e.killed),
                cause: worst,
                executions,
                attempts: job.attempts,
                errors: job.errors.clone(),
            });
        }
    }
    duplicates.sort_by_key(|d| d.job_id);
    let with_cause = |cause: Cause| duplicates.iter().filter(|d| d.cause == cause).count() as u64;

    let restarts: Vec<f64> = events
        .outages
        .iter()
        .filter(|o| o.kind == "restart")
        .map(|o| secs(o.start, o.end))
        .collect();
    let bursts = events.outages.iter().filter(|o| o.kind == "connections");
    let distinct_seqs = by_seq.len() as u64;
    let limits = match plan.limits {
        Some(limits) => {
            let unkeyed = retry(|| outcome.db.unkeyed_jobs(<ChaosJob as Job>::TYPE)).await?;
            let key_of_job: HashMap<i64, String> = jobs
                .iter()
                .filter_map(|job| Some((job.id, limits.key_of(job.payload.parse().ok()?))))
                .collect();
            Some(check_limits(
                limits,
                &runs,
                &key_of_job,
                &killed,
                u64::try_from(unkeyed).unwrap_or(0),
            ))
        }
        None => None,
    };
    let batches = if plan.batches || plan.workflows {
        let order = plan.workflows.then_some(&jobs[..]);
        let audit = crate::batch_audit::audit(
            outcome,
            plan.jobs,
            plan.group_size,
            &runs,
            &killed,
            events,
            order,
        );
        Some(audit.await?)
    } else {
        None
    };
    let mut report = Report {
        backend: outcome.backend,
        jobs: plan.jobs,
        workers: plan.workers,
        duration_secs: plan.duration.as_secs_f64(),
        clock_skew_secs: plan.clock_skew.as_secs_f64(),
        dispatched: jobs.len() as u64,
        finished: count(JobState::Finished),
        failed: count(JobState::Failed),
        lost: plan.jobs - finished_seqs.min(plan.jobs),
        stuck: events.stuck.len() as u64,
        dispatched_twice: jobs.len() as u64 - distinct_seqs,
        executions: runs.len() as u64,
        executed_more_than_once: duplicates.len() as u64,
        duplicates_killed: with_cause(Cause::Killed),
        duplicates_failed_attempt: with_cause(Cause::FailedAttempt),
        duplicates_cut_off: with_cause(Cause::CutOff),
        duplicates_stalled: with_cause(Cause::Stalled),
        duplicates_start_unrecorded: with_cause(Cause::StartUnrecorded),
        duplicates_attempt_repeated: with_cause(Cause::AttemptRepeated),
        duplicates_unexplained: with_cause(Cause::Unexplained),
        max_repeated_attempt_start_to_kill_secs: max_repeat_gap,
        finished_without_execution,
        held_by_killed,
        rescued_from_live_workers: rescued_from_live,
        max_kill_to_completion_secs: max_recovery,
        max_attempts_used: jobs.iter().map(|j| j.attempts).max().unwrap_or(0),
        worker_kills: events.kills.len() as u64,
        skewed_workers_started: events.skewed_workers.len() as u64,
        skewed_worker_kills: events.kills.iter().filter(|k| k.skewed).count() as u64,
        skewed_executions: runs
            .iter()
            .filter(|r| skewed.contains(r.worker.as_str()))
            .count() as u64,
        writer_kills: events.writer_kills.len() as u64,
        writer_kills_rolled_back: events.writer_kills.iter().filter(|k| !k.stored).count() as u64,
        torn_batches: events.torn_batches,
        server_restarts: restarts.len() as u64,
        max_restart_secs: restarts.iter().copied().reduce(f64::max),
        connection_kill_bursts: bursts.clone().count() as u64,
        connections_killed: bursts.map(|o| o.killed).sum(),
        unexpected_exits: events.unexpected_exits.len() as u64,
        dispatcher_errors: events.dispatcher_errors,
        stop_failures: events.stop_failures,
        drain_secs: events.drain_secs,
        integrity,
        limits,
        batches,
        passed: false,
        duplicates,
    };
    report.passed = report.lost == 0
        && report.stuck == 0
        && report.duplicates_unexplained == 0
        && report.duplicates_stalled == 0
        && report.duplicates_attempt_repeated == 0
        && report.finished_without_execution == 0
        && report.dispatched_twice == 0
        && report.torn_batches == 0
        && report.unexpected_exits == 0
        && report.integrity.as_deref().is_none_or(|i| i == "ok")
        && report.limits.as_ref().is_none_or(|l| l.passed)
        && report.batches.as_ref().is_none_or(|b| b.passed);
    Ok(report)
}

impl Report {
    /// The figures as a readable table.
    pub fn text(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} s"));
        let mut lines = vec![
            format!("backend                         {:?}", self.backend),
            format!(
                "jobs / worker processes        {} / {}",
                self.jobs, self.workers
            ),
            format!(
                "damage for                      {:.0} s",
                self.duration_secs
            ),
            format!("worker processes SIGKILLed      {}", self.worker_kills),
            format!(
                "clock running ahead             {:.0} s ({} skewed workers started, {} killed, {} executions)",
                self.clock_skew_secs,
                self.skewed_workers_started,
                self.skewed_worker_kills,
                self.skewed_executions
            ),
            format!(
                "dispatcher killed mid-write     {} ({} batches rolled back, {} torn)",
                self.writer_kills, self.writer_kills_rolled_back, self.torn_batches
            ),
            format!(
                "server restarts                 {} (longest {})",
                self.server_restarts,
                opt(self.max_restart_secs)
            ),
            format!(
                "connection-kill bursts          {} ({} connections)",
                self.connection_kill_bursts, self.connections_killed
            ),
            String::new(),
            format!("dispatched                      {}", self.dispatched),
            format!("finished                        {}", self.finished),
            format!("failed                          {}", self.failed),
            format!("lost (never finished)           {}", self.lost),
            format!("stuck (started, lease expired)  {}", self.stuck),
            format!("executions recorded             {}", self.executions),
            format!(
                "executed more than once         {}",
                self.executed_more_than_once
            ),
            format!("  held by a killed process      {}", self.duplicates_killed),
            format!(
                "  after a failed attempt        {}",
                self.duplicates_failed_attempt
            ),
            format!(
                "  cut off from the database     {}",
                self.duplicates_cut_off
            ),
            format!(
                "  stalled past the lease        {}",
                self.duplicates_stalled
            ),
            format!(
                "  killed before start recorded  {} (longest start to kill {})",
                self.duplicates_start_unrecorded,
                opt(self.max_repeated_attempt_start_to_kill_secs)
            ),
            format!(
                "  same attempt run twice        {}",
                self.duplicates_attempt_repeated
            ),
            format!(
                "  unexplained                   {}",
                self.duplicates_unexplained
            ),
            format!("jobs held by killed processes   {}", self.held_by_killed),
            format!(
                "rescued from live processes     {}",
                self.rescued_from_live_workers
            ),
            format!(
                "longest kill to completion      {}",
                opt(self.max_kill_to_completion_secs)
            ),
            format!("most attempts used by a job     {}", self.max_attempts_used),
            format!(
                "finished without an execution   {}",
                self.finished_without_execution
            ),
            format!("workers that died on their own  {}", self.unexpected_exits),
            format!("drained in                      {}", opt(self.drain_secs)),
        ];
        if let Some(integrity) = &self.integrity {
            lines.push(format!("SQLite integrity check          {integrity}"));
        }
        if let Some(batches) = &self.batches {
            lines.extend(batches.lines());
        }
        if let Some(l) = &self.limits {
            let limits = l.limits;
            lines.push(String::new());
            lines.push(format!(
                "limited: {} keys, at most {} per key and {} in all",
                limits.keys, limits.key_limit, limits.queue_limit
            ));
            lines.push(format!(
                "  jobs without a key            {}",
                l.unkeyed_jobs
            ));
            lines.push(format!(
                "  executions checked            {}",
                l.runs_checked
            ));
            lines.push(format!(
                "  most running, one key         {} (limit {})",
                l.max_running_per_key, limits.key_limit
            ));
            lines.push(format!(
                "  most running, in all          {} (limit {})",
                l.max_running, limits.queue_limit
            ));
            lines.push(format!(
                "  left out: killed before end   {} (counted until their kill: {} per key, {} in all)",
                l.excluded_killed_runs,
                l.max_running_per_key_with_killed,
                l.max_running_with_killed
            ));
            lines.push(format!(
                "  live runs with no end         {}",
                l.runs_without_end
            ));
            for over in &l.over_limit {
                lines.push(format!(
                    "  over the limit: {} ran {} at once at {}",
                    over.key.as_deref().unwrap_or("the queue"),
                    over.running,
                    over.at.map_or_else(|| "?".to_owned(), |at| at.to_rfc3339())
                ));
            }
        }
        let odd: Vec<&Duplicate> = self
            .duplicates
            .iter()
            .filter(|d| d.cause != Cause::Killed)
            .take(20)
            .collect();
        if !odd.is_empty() {
            lines.push(String::new());
            lines.push("duplicates not explained by a SIGKILL (first 20):".to_owned());
            for d in odd {
                let runs: Vec<String> = d
                    .executions
                    .iter()
                    .map(|e| {
                        format!(
                            "#{} by {}{}{}",
                            e.attempt,
                            e.worker,
                            if e.skewed { " (skewed)" } else { "" },
                            if e.killed { " (killed)" } else { "" }
                        )
                    })
                    .collect();
                lines.push(format!(
                    "  job {} {:?}: {}",
                    d.job_id,
                    d.cause,
                    runs.join(", ")
                ));
            }
        }
        lines.push(String::new());
        lines.push(format!(
            "result                          {}",
            if self.passed { "PASS" } else { "FAIL" }
        ));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(job_id: i64, worker: &str, at_us: i64, end_us: Option<i64>) -> Run {
        Run {
            job_id,
            attempt: 1,
            worker: worker.to_owned(),
            at_us,
            end_us,
        }
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert_eq!(max_overlap(&[(0, 10), (10, 20)]), (1, Some(0)));
        assert_eq!(max_overlap(&[(0, 10), (5, 20), (6, 7)]), (3, Some(6)));
        assert_eq!(max_overlap(&[]), (0, None));
    }

    #[test]
    fn a_killed_run_without_an_end_is_left_out_and_a_live_one_fails() {
        let limits = Limits {
            keys: 2,
            key_limit: 1,
            queue_limit: 2,
        };
        let keys: HashMap<i64, String> = [(1, "key:1".to_owned()), (2, "key:1".to_owned())]
            .into_iter()
            .collect();
        let kill = DateTime::from_timestamp_micros(50).unwrap();
        let killed: HashMap<&str, DateTime<Utc>> = [("w0", kill)].into_iter().collect();
        // w0's run of job 1 never ended; w1 runs job 2 of the same key meanwhile.
        let runs = [run(1, "w0", 0, None), run(2, "w1", 10, Some(20))];
        let audit = check_limits(limits, &runs, &keys, &killed, 0);
        assert!(audit.passed, "{audit:?}");
        assert_eq!(audit.excluded_killed_runs, 1);
        assert_eq!(audit.max_running_per_key, 1);
        assert_eq!(audit.max_running_per_key_with_killed, 2);

        // The same runs by a process that was not killed: the end is unknown.
        let audit = check_limits(limits, &runs, &keys, &HashMap::new(), 0);
        assert!(!audit.passed);
        assert_eq!(audit.runs_without_end, 1);

        // Two recorded runs of one key overlapping exceed the per-key limit.
        let runs = [run(1, "w0", 0, Some(15)), run(2, "w1", 10, Some(20))];
        let audit = check_limits(limits, &runs, &keys, &HashMap::new(), 0);
        assert!(!audit.passed);
        assert_eq!(audit.over_limit.len(), 1);
        assert_eq!(audit.over_limit[0].key.as_deref(), Some("key:1"));
    }
}
