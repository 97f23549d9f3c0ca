//! A batched run's audit (`--batches`): every batch counted all its jobs
//! finished, and each of its callbacks was inserted once, finished, and ran
//! more than once only where a SIGKILLed process, a failed attempt or a
//! cut-off connection explains it (as for the run's other jobs). With a
//! fixed group size (`--group-size`), also that every batch is one of the
//! run's fixed-size groups.
//!
//! Each batch's group is read back from its name (`chaos <first> <end>`,
//! [`batch_name`]), whatever its size: its callbacks carry the same
//! `(first, end)`, and a workflow's steps are its jobs `first..end`.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::{DateTime, Utc};
use hopper::store::JobRecord;
use hopper::testing::all_jobs;
use hopper::{Job, JobFilter, JobState};
use serde::Serialize;

use crate::audit::{Cause, cause};
use crate::child::{BATCH_EVENTS, batch_name, group_end};
use crate::db::{BatchRow, Run};
use crate::job::ChaosCallback;
use crate::run::{Events, Outcome, retry};

/// What the audit found of a batched run's batches.
#[derive(Debug, Serialize)]
pub struct BatchAudit {
    /// Batches stored.
    pub batches: u64,
    /// Jobs their totals count.
    pub jobs_in_batches: u64,
    /// Batches whose total is not their group's size, or whose jobs did not
    /// all count as finished.
    pub miscounted: u64,
    /// The fixed number of jobs in each group (`None`: each group held what
    /// became due since the last one).
    pub group_size: Option<u64>,
    /// With a fixed group size: batches whose group is not one of the run's
    /// groups `k·n..(k+1)·n` (the last one cut at the run's end), must be 0
    /// (`None`: no fixed size).
    pub misaligned: Option<u64>,
    /// Callbacks the batches have (two each).
    pub callbacks: u64,
    /// Callbacks never fired (no job recorded for them).
    pub callbacks_not_fired: u64,
    /// Callbacks with more than one job stored for them.
    pub callbacks_inserted_twice: u64,
    /// Callback jobs that did not end `finished`.
    pub callbacks_not_finished: u64,
    /// Callback jobs run more than once, every extra run explained (a killed
    /// process, a failed attempt, a cut-off connection, an unrecorded start).
    pub callbacks_run_twice_explained: u64,
    /// Callback jobs run more than once with nothing to explain it.
    pub callbacks_run_twice_unexplained: u64,
    /// In a workflow run: steps whose first execution started before a
    /// step they wait on had its last execution end (`None`: not a
    /// workflow run).
    pub steps_out_of_order: Option<u64>,
    /// Whether all of the above is as it must be.
    pub passed: bool,
}

/// Audits the batches of a batched run of `jobs` jobs (in groups of
/// `group_size`, if fixed), with the recorded `runs` and the processes
/// `killed`; in a workflow run, with the run's chaos jobs as `steps`, also
/// the order the steps ran in.
pub async fn audit(
    outcome: &Outcome,
    jobs: u64,
    group_size: Option<u64>,
    runs: &[Run],
    killed: &HashMap<&str, DateTime<Utc>>,
    events: &Events,
    steps: Option<&[JobRecord]>,
) -> Result<BatchAudit> {
    let batches = retry(|| outcome.db.batches()).await?;
    let callbacks = retry(|| outcome.db.batch_callbacks()).await?;
    let filter = JobFilter {
        job_type: Some(<ChaosCallback as Job>::TYPE.to_owned()),
        ..JobFilter::default()
    };
    let callback_jobs = retry(|| all_jobs(&outcome.hopper, &filter)).await?;

    let miscounted = batches.iter().filter(|b| !counted(b)).count() as u64;
    let mut by_callback: HashMap<(u64, u64, String), Vec<&JobRecord>> = HashMap::new();
    for job in &callback_jobs {
        if let Ok(key) = serde_json::from_str::<(u64, u64, String)>(&job.payload) {
            by_callback.entry(key).or_default().push(job);
        }
    }
    let expected: Vec<(u64, u64, String)> = batches
        .iter()
        .filter_map(group_of)
        .flat_map(|(first, end)| BATCH_EVENTS.map(|e| (first, end, e.to_owned())))
        .collect();
    let fired = callbacks.iter().filter(|(_, _, job)| job.is_some()).count();
    let not_fired = expected
        .iter()
        .filter(|key| !by_callback.contains_key(*key))
        .count()
        .max(callbacks.len() - fired);
    let inserted_twice = by_callback.values().filter(|jobs| jobs.len() > 1).count();

    let mut runs_by_job: BTreeMap<i64, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        runs_by_job.entry(run.job_id).or_default().push(run);
    }
    let (mut explained, mut unexplained) = (0, 0);
    for job in &callback_jobs {
        let job_runs = runs_by_job.get(&job.id).map_or(&[][..], Vec::as_slice);
        if job_runs.len() < 2 {
            continue;
        }
        let worst = job_runs
            .windows(2)
            .map(|pair| cause(job, pair[0], pair[1], killed, events))
            .max()
            .unwrap_or(Cause::Killed);
        match worst {
            Cause::Stalled | Cause::AttemptRepeated | Cause::Unexplained => unexplained += 1,
            _ => explained += 1,
        }
    }
    let mut report = BatchAudit {
        batches: batches.len() as u64,
        jobs_in_batches: batches.iter().map(|b| b.total.max(0) as u64).sum(),
        miscounted,
        group_size,
        misaligned: group_size.map(|size| {
            batches
                .iter()
                .filter(|b| !group_of(b).is_some_and(|group| aligned(group, size, jobs)))
                .count() as u64
        }),
        callbacks: callbacks.len() as u64,
        callbacks_not_fired: not_fired as u64,
        callbacks_inserted_twice: inserted_twice as u64,
        callbacks_not_finished: callback_jobs
            .iter()
            .filter(|j| j.state != JobState::Finished)
            .count() as u64,
        callbacks_run_twice_explained: explained,
        callbacks_run_twice_unexplained: unexplained,
        steps_out_of_order: steps.map(|steps| {
            let groups: Vec<(u64, u64)> = batches.iter().filter_map(group_of).collect();
            out_of_order(&groups, steps, &runs_by_job)
        }),
        passed: false,
    };
    report.passed = report.jobs_in_batches == jobs
        && report.miscounted == 0
        && report.misaligned.is_none_or(|n| n == 0)
        && report.callbacks == 2 * report.batches
        && report.callbacks_not_fired == 0
        && report.callbacks_inserted_twice == 0
        && report.callbacks_not_finished == 0
        && report.callbacks_run_twice_unexplained == 0
        && report.steps_out_of_order.is_none_or(|n| n == 0);
    Ok(report)
}

/// How many steps of the workflows of `groups` started before a step they
/// wait on had its last execution end: in each group `first..end`, every
/// job after the first waits on the first, and the last (in a group of
/// three or more) on every job between.
fn out_of_order(
    groups: &[(u64, u64)],
    steps: &[JobRecord],
    runs_by_job: &BTreeMap<i64, Vec<&Run>>,
) -> u64 {
    let job_of: HashMap<u64, i64> = steps
        .iter()
        .filter_map(|job| Some((job.payload.parse().ok()?, job.id)))
        .collect();
    let runs = |seq: u64| {
        job_of
            .get(&seq)
            .and_then(|id| runs_by_job.get(id))
            .map_or(&[][..], Vec::as_slice)
    };
    let first_start = |seq: u64| runs(seq).iter().map(|r| r.at_us).min();
    let last_end = |seq: u64| {
        runs(seq)
            .iter()
            .max_by_key(|r| r.at_us)
            .and_then(|r| r.end_us)
    };
    let before = |step: u64, dependency: u64| match (first_start(step), last_end(dependency)) {
        (Some(start), Some(end)) => start < end,
        _ => false,
    };
    let mut wrong = 0;
    for &(first, end) in groups {
        let last = end.saturating_sub(1);
        for step in first + 1..end {
            let waits_on_middle = step == last && last > first + 1;
            if waits_on_middle {
                wrong += u64::from((first + 1..last).any(|middle| before(step, middle)));
            } else {
                wrong += u64::from(before(step, first));
            }
        }
    }
    wrong
}

/// The group of sequence numbers `first..end` batch `batch` was made for.
fn group_of(batch: &BatchRow) -> Option<(u64, u64)> {
    let mut words = batch.name.strip_prefix("chaos ")?.split(' ');
    let first = words.next()?.parse().ok()?;
    let end = words.next()?.parse().ok()?;
    (batch_name(first, end) == batch.name).then_some((first, end))
}

/// Whether `first..end` is one of the groups of `size` jobs a run of
/// `jobs` jobs is cut into.
fn aligned((first, end): (u64, u64), size: u64, jobs: u64) -> bool {
    first < jobs && first % size.max(1) == 0 && end == group_end(first, size, jobs)
}

/// Whether `batch` holds its whole group, every job counted finished.
fn counted(batch: &BatchRow) -> bool {
    group_of(batch).is_some_and(|(first, end)| {
        let size = i64::try_from(end.saturating_sub(first)).unwrap_or(i64::MAX);
        batch.total == size && batch.finished == size && batch.not_finished == 0
    })
}

impl BatchAudit {
    /// The figures as lines of the run's table.
    pub fn lines(&self) -> Vec<String> {
        vec![
            String::new(),
            format!("batches                         {}", self.batches),
            format!("  jobs in batches               {}", self.jobs_in_batches),
            format!("  miscounted                    {}", self.miscounted),
            format!(
                "  group size                    {}",
                match (self.group_size, self.misaligned) {
                    (Some(size), Some(misaligned)) =>
                        format!("{size} ({misaligned} batches not one of its groups)"),
                    _ => "as paced".to_owned(),
                }
            ),
            format!("  callbacks                     {}", self.callbacks),
            format!(
                "  not fired                     {}",
                self.callbacks_not_fired
            ),
            format!(
                "  inserted twice                {}",
                self.callbacks_inserted_twice
            ),
            format!(
                "  not finished                  {}",
                self.callbacks_not_finished
            ),
            format!(
                "  ran twice, explained          {}",
                self.callbacks_run_twice_explained
            ),
            format!(
                "  ran twice, unexplained        {}",
                self.callbacks_run_twice_unexplained
            ),
            format!(
                "  steps out of order            {}",
                self.steps_out_of_order
                    .map_or_else(|| "-".to_owned(), |n| n.to_string())
            ),
            format!(
                "  batches check                 {}",
                if self.passed { "passed" } else { "FAILED" }
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fixed_size_groups_are_aligned() {
        // 2,500 jobs in groups of 1,000: 0..1000, 1000..2000, 2000..2500.
        for group in [(0, 1_000), (1_000, 2_000), (2_000, 2_500)] {
            assert!(aligned(group, 1_000, 2_500), "{group:?}");
        }
        for group in [
            (0, 999),
            (1, 1_000),
            (500, 1_500),
            (2_000, 3_000),
            (2_500, 2_500),
        ] {
            assert!(!aligned(group, 1_000, 2_500), "{group:?}");
        }
    }

    #[test]
    fn a_group_is_read_back_from_its_batch_name() {
        let batch = |name: &str| BatchRow {
            name: name.to_owned(),
            total: 1_000,
            finished: 1_000,
            not_finished: 0,
        };
        assert_eq!(
            group_of(&batch(&batch_name(1_000, 2_000))),
            Some((1_000, 2_000))
        );
        assert!(counted(&batch(&batch_name(1_000, 2_000))));
        assert!(!counted(&batch(&batch_name(1_000, 1_999))));
        assert_eq!(group_of(&batch("chaos 1000 2000 x")), None);
        assert_eq!(group_of(&batch("chaos 01000 2000")), None);
    }
}
