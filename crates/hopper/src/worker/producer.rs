//! The producer of one queue: how many jobs to claim, when to wake (the
//! database's wake-ups, the next job coming due, polling), and handing each
//! claimed job to its own task as slots free up.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::completer::Report;
use super::slots::Slots;
use super::{Shared, executor};
use crate::service::{DATABASE_ERRORS, pause};
use crate::store::{ClaimRequest, ClaimedJob, StoreError, Wakeup, new_claim_token};

/// The most claimed jobs a queue keeps waiting locally for a free slot.
const MAX_PREFETCH: usize = 1_000;
/// How much work, in time at the recent rate, the local buffer aims to hold.
const PREFETCH_HORIZON: Duration = Duration::from_millis(25);

/// Sizes the local buffer of claimed jobs from the recent rate of starts:
/// about [`PREFETCH_HORIZON`] of work, so fast jobs are claimed hundreds per
/// statement while slow jobs are claimed only as slots free up (and never
/// wait long in one process while another sits idle).
///
/// The rate is counted from the last claim's answer, not its call: the
/// time a claim takes is no time the pool could have run jobs in, and
/// counted in, it held the first claims of a busy queue to a few more jobs
/// each than the one before (and, with the database far away, held every
/// claim to a few jobs however fast they ran).
#[derive(Debug)]
struct Prefetch {
    /// When the rate was last read, or the last claim answered since.
    since: Instant,
    /// Jobs started since then.
    started: usize,
}

impl Prefetch {
    /// No starts yet, counted from now.
    fn new() -> Self {
        Self::at(Instant::now())
    }

    /// No starts yet, counted from `since`.
    fn at(since: Instant) -> Self {
        Self { since, started: 0 }
    }

    /// Counts the rate from `now`, when a claim answered, keeping the
    /// starts counted since it was asked for.
    fn answered_at(&mut self, now: Instant) {
        self.since = now;
    }

    /// How many jobs beyond the free slots the next claim should ask for.
    fn next_extra(&mut self) -> usize {
        self.next_extra_at(Instant::now())
    }

    /// [`Prefetch::next_extra`] as read at `now`; counting starts again from `now`.
    fn next_extra_at(&mut self, now: Instant) -> usize {
        let elapsed = now
            .saturating_duration_since(self.since)
            .as_secs_f64()
            .max(1e-6);
        let rate = self.started as f64 / elapsed;
        self.since = now;
        self.started = 0;
        ((rate * PREFETCH_HORIZON.as_secs_f64()) as usize).min(MAX_PREFETCH)
    }
}

/// The most jobs one claim asks for: one for the slot just taken, one per
/// other free slot, and the prefetch.
fn claim_limit(free: usize, extra: usize) -> usize {
    1usize.saturating_add(free).saturating_add(extra)
}

/// Claims jobs of one queue and runs each in its own task as slots free up,
/// until the pool stops claiming.
pub(super) async fn run(shared: Arc<Shared>, slots: Arc<Slots>, reports: mpsc::Sender<Report>) {
    let queue = slots.queue.clone();
    let wake = shared.hopper.waker(&queue);
    let mut buffer: VecDeque<(ClaimedJob, CancellationToken)> = VecDeque::new();
    let mut prefetch = Prefetch::new();
    let mut failures = 0u32;
    loop {
        let permit = tokio::select! {
            biased;
            _ = shared.stops.claiming.cancelled() => break,
            permit = slots.acquire() => permit,
        };
        if buffer.is_empty() {
            let free = slots.free();
            let start_now = claim_limit(free, 0);
            let mut extra = prefetch.next_extra();
            if shared.hopper.store().halve_claims_ahead(&queue) {
                extra /= 2;
            }
            let limit = claim_limit(free, extra);
            let request = ClaimRequest {
                queue: &queue,
                worker: &shared.worker_id,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                start_now: u32::try_from(start_now).unwrap_or(u32::MAX),
                token: new_claim_token(),
                due_by: shared.hopper.now(),
                lease: shared.config.lease,
                now: shared.hopper.database_now(),
            };
            shared.claims.reserve(limit);
            let mut result = shared.hopper.store().claim(request).await;
            prefetch.answered_at(Instant::now());
            if let Ok(claimed) = &mut result {
                // The jobs whose attempt counted from the claim go first:
                // they are the ones to start at once.
                claimed.sort_by_key(|job| !job.run_started);
            }
            let taken = result.as_deref().unwrap_or_default();
            let runs = shared.claims.claimed(
                taken.iter().map(ClaimedJob::claim),
                limit,
                &shared.stops.hard,
            );
            shared.bump();
            match result {
                Ok(claimed) if claimed.is_empty() => {
                    failures = 0;
                    drop(permit);
                    let wait = idle_wait(&shared, &queue).await;
                    slots.idle.store(true, Ordering::SeqCst);
                    tokio::select! {
                        _ = shared.stops.claiming.cancelled() => break,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    slots.idle.store(false, Ordering::SeqCst);
                    continue;
                }
                Ok(claimed) => {
                    failures = 0;
                    buffer.extend(claimed.into_iter().zip(runs));
                    slots.buffered.store(buffer.len(), Ordering::SeqCst);
                }
                Err(error) => {
                    failures += 1;
                    let wait = DATABASE_ERRORS.delay(failures);
                    tracing::warn!(%queue, %error, retry_in = ?wait, "claiming jobs failed");
                    drop(permit);
                    if !pause(&shared.stops.claiming, wait).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some((job, run)) = buffer.pop_front() else {
            continue;
        };
        slots.buffered.store(buffer.len(), Ordering::SeqCst);
        prefetch.started += 1;
        let shared_for_job = shared.clone();
        let reports = reports.clone();
        let permit = permit.run();
        shared.jobs.spawn(async move {
            // Its ending may fire batch callbacks or release jobs waiting on it.
            let settles = job.batch.is_some() || job.has_dependents;
            match executor::execute(&shared_for_job, job, run, &reports).await {
                Some(completion) => {
                    // The completer outlives every job task, so this only fails if it panicked.
                    let _ = reports.send(Report::Ended(completion, settles)).await;
                }
                None => shared_for_job.claims.abandoned(1),
            }
            // The slot frees only once the outcome is queued: while outcomes are
            // written slower than jobs run, new jobs wait, instead of finished
            // ones piling up in memory.
            drop(permit);
        });
    }
    // Jobs claimed but never started stay leased to this worker; `stop` hands them back.
    shared.claims.abandoned(buffer.len());
    slots.buffered.store(0, Ordering::SeqCst);
}

/// How long a queue that found nothing due sleeps, unless woken first.
///
/// Where the database notifies every process of new and rescheduled jobs,
/// until the queue's next job is due, within the notified poll interval;
/// with a job due already but not claimable (a paused queue, or taken by
/// another worker meanwhile), the poll interval. Elsewhere the pool's due
/// watcher ([`super::due_watch`]) wakes the queue within a poll interval
/// of any of its jobs being due, delayed ones included, so it sleeps the
/// notified poll interval without reading when its next job is due. Under
/// a manual clock, the poll interval.
async fn idle_wait(shared: &Shared, queue: &str) -> Duration {
    let poll = shared.config.poll_interval;
    if !shared.hopper.clock_moves_by_itself() {
        return poll;
    }
    let longest = shared.config.notified_poll_interval;
    let wait = if shared.watched {
        longest
    } else {
        match shared.hopper.store().next_due(queue).await {
            Ok(None) => return longest,
            Ok(Some(at)) => match (at - shared.hopper.now()).to_std() {
                Ok(until) if !until.is_zero() => return until.min(longest),
                _ => poll,
            },
            Err(error) => {
                tracing::warn!(%queue, %error, "reading when the next job is due failed");
                return poll;
            }
        }
    };
    // A job is due but was not claimed: if a rate's window is full, look
    // again as it reopens rather than a poll interval later.
    match rate_reopens(shared, queue).await {
        Ok(Some(until)) => wait.min(until.max(RATE_RECHECK)),
        Ok(None) => wait,
        Err(error) => {
            tracing::warn!(%queue, %error, "reading the queue's rate window failed");
            wait
        }
    }
}

/// The least time between two looks at a full rate window, should this
/// host's clock run behind the database's.
const RATE_RECHECK: Duration = Duration::from_millis(5);

/// How long until the per-queue rate window of `queue` reopens, if it has
/// a per-queue rate and its window is full.
async fn rate_reopens(shared: &Shared, queue: &str) -> Result<Option<Duration>, StoreError> {
    let store = shared.hopper.store();
    let Some(rate) = store.flow(queue).await?.rate.filter(|rate| !rate.per_key) else {
        return Ok(None);
    };
    let Some(oldest) = store.nth_latest_start(queue, rate.starts).await? else {
        return Ok(None);
    };
    let reopens = crate::clock::add(oldest, rate.period);
    let now = shared.hopper.now();
    Ok(match (reopens - now).to_std() {
        Ok(until) => Some(until),
        // Reopened by this host's clock a moment ago, yet the claim found
        // it full: the database's clock is a little behind; look again soon.
        Err(_) if now - reopens < chrono::Duration::milliseconds(250) => Some(RATE_RECHECK),
        Err(_) => None,
    })
}

/// Wakes this pool's idle producers when the database says jobs became due,
/// whichever process dispatched them, and its heartbeat when a running job
/// may have been cancelled, until background tasks stop.
///
/// A [`Wakeup::Cancels`] (PostgreSQL's notification of a cancel) has the
/// heartbeat look for cancels at once, as a cancel made in this process
/// does. A [`Wakeup::All`] says only that something changed: on SQLite it
/// comes with every burst of writes to the file, so under load about every
/// 50 ms, and most are not cancels. It is passed on as a permit the
/// heartbeat takes when it can, looking at most once per
/// [`LOOK_GAP`](super::heartbeat::LOOK_GAP) and only while the pool holds
/// claims: a few reads a second on a busy pool, none on an idle one, and a
/// cancel from another process still found within a quarter second.
pub(super) async fn forward_wakeups(shared: Arc<Shared>, mut wakeups: mpsc::Receiver<Wakeup>) {
    loop {
        let wakeup = tokio::select! {
            _ = shared.stops.background.cancelled() => break,
            wakeup = wakeups.recv() => wakeup,
        };
        match wakeup {
            Some(Wakeup::Queue(queue)) => shared.hopper.wake(&queue),
            Some(Wakeup::All) => {
                wake_all(&shared);
                shared.changed.notify_one();
            }
            Some(Wakeup::Cancels) => shared.hopper.cancel_requested(),
            // What waiters listen for (`Hopper::wait_for`), not a pool.
            Some(Wakeup::Ended(_)) => {}
            None => break,
        }
    }
}

/// Wakes the producer of every queue this pool serves.
pub(super) fn wake_all(shared: &Shared) {
    for (queue, _) in &shared.config.queues {
        shared.hopper.wake(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_asks_for_the_taken_slot_the_free_ones_and_the_prefetch() {
        assert_eq!(claim_limit(0, 0), 1);
        assert_eq!(claim_limit(3, 0), 4);
        assert_eq!(claim_limit(3, 20), 24);
        assert_eq!(claim_limit(usize::MAX, 1), usize::MAX);
    }

    #[test]
    fn the_prefetch_holds_the_horizon_of_work_at_the_recent_rate() {
        let start = Instant::now();
        let mut prefetch = Prefetch::at(start);
        // Nothing started: nothing beyond the free slots.
        assert_eq!(prefetch.next_extra_at(start + Duration::from_secs(1)), 0);
        // 4,000 starts a second: 25 ms of work is 100 jobs.
        prefetch.started = 4_000;
        assert_eq!(prefetch.next_extra_at(start + Duration::from_secs(2)), 100);
        // Counting restarted: the same second without starts asks for none.
        assert_eq!(prefetch.next_extra_at(start + Duration::from_secs(3)), 0);
        // Slow jobs (10 a second) claim only as slots free up.
        prefetch.started = 10;
        assert_eq!(prefetch.next_extra_at(start + Duration::from_secs(4)), 0);
    }

    #[test]
    fn the_time_a_claim_takes_does_not_lower_the_rate() {
        let start = Instant::now();
        let mut prefetch = Prefetch::at(start);
        prefetch.next_extra_at(start);
        // The claim took 50 ms; its 11 jobs then ran in 1 ms: 11,000 a
        // second, so 275 jobs beyond the free slots, not the 5 that
        // counting the claim's 50 ms would give.
        prefetch.answered_at(start + Duration::from_millis(50));
        prefetch.started = 11;
        assert_eq!(
            prefetch.next_extra_at(start + Duration::from_millis(51)),
            275
        );
    }

    #[test]
    fn the_prefetch_is_capped() {
        let start = Instant::now();
        let mut prefetch = Prefetch::at(start);
        prefetch.started = 10_000_000;
        assert_eq!(
            prefetch.next_extra_at(start + Duration::from_secs(1)),
            MAX_PREFETCH
        );
    }
}
