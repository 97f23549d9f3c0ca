//! Flow control: the settings that bound how many of a queue's jobs start
//! (at once, per key, per period) and in which order keys are served, and
//! the claim every database runs for a queue that has any of them.
//!
//! A flow-controlled queue's claims run one at a time: each holds the
//! queue's row (the single writer, on SQLite) while it counts what is
//! running and what started in the rate window, so together they never
//! start more than a limit allows, however many processes claim. The
//! counting and choosing is here, once; each store answers the few reads
//! and writes of [`FlowTx`] with its own SQL.
//!
//! Keys are served round-robin: the `queue_keys` table lists each queue's
//! keys that may have pending jobs (triggers mark a key ready whenever one
//! of its jobs becomes pending), and claims go round them in key order
//! from the queue's cursor, the last key a claim passed. A claim moves the
//! cursor past every key it served, found at its limit or found with
//! nothing due, and stops it before the first key with due jobs it had no
//! room for, which is served first next time. Every key with due jobs and
//! room is served once per round, and a claim writes one cursor, not a
//! row per key it served. A key at its limit is passed over without
//! reading its jobs, so it blocks no other key.
//!
//! A queue with only a per-key limit (no fairness, no per-key rate) is
//! claimed oldest first: from a window of its first due jobs, each whose
//! key has room, with the round filling the room left, so a window full of
//! one key's jobs holds no other key back. A window that held a job of
//! every ready key leaves the round nothing to find, and skips it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClaimRequest, ClaimedJob, StoreError};
use crate::job::JobId;

/// How many keys past the room and the running keys a keyed claim looks
/// at, so keys found without a due job do not leave the claim short.
const SPARE_KEYS: usize = 8;

/// How many of the queue's first due jobs a keyed claim looks through for
/// jobs without a key (which share one partition).
const UNKEYED_WINDOW: u32 = 64;

/// The most keys one keyed claim looks at, window after window, while its
/// room is not filled: a queue with more keys gone dry than this has them
/// passed over several claims.
const MAX_KEYS_LOOKED: usize = 4_096;

/// The most due jobs an oldest-first claim looks through before going
/// round the keys for the room it has left.
const MAX_OLDEST_WINDOW: u32 = 2_000;

/// A queue's flow settings: how many of its jobs may start, at once and
/// per period, across every process sharing the database, and whether its
/// keys are served in turn.
///
/// ```
/// use std::time::Duration;
/// use hopper::store::{QueueFlow, Rate};
/// // At most 5 at once; per customer one at a time and 100 a minute.
/// let flow = QueueFlow::default()
///     .concurrency(5)
///     .per_key(1)
///     .rate(Rate::per_key(100, Duration::from_secs(60)));
/// assert!(flow.is_keyed());
/// assert!(!QueueFlow::default().is_controlled());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFlow {
    /// The most jobs of the queue started at once.
    pub concurrency: Option<u32>,
    /// The most jobs of one partition key started at once (jobs without a
    /// key share one partition).
    pub key_concurrency: Option<u32>,
    /// The most job starts per period.
    pub rate: Option<Rate>,
    /// Serve keys with due jobs in turn instead of oldest job first, so one
    /// key's backlog does not hold the others back. A queue with a per-key
    /// rate is always served in turn; one with only a per-key limit takes
    /// its oldest jobs whose keys have room, then goes round the keys for
    /// the room left.
    pub fair: bool,
}

impl QueueFlow {
    /// At most `limit` of the queue's jobs started at once.
    ///
    /// ```
    /// assert_eq!(hopper::store::QueueFlow::default().concurrency(5).concurrency, Some(5));
    /// ```
    pub fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// At most `limit` jobs of one partition key started at once.
    ///
    /// ```
    /// assert_eq!(hopper::store::QueueFlow::default().per_key(1).key_concurrency, Some(1));
    /// ```
    pub fn per_key(mut self, limit: u32) -> Self {
        self.key_concurrency = Some(limit);
        self
    }

    /// At most `rate.starts` job starts in any `rate.period`.
    ///
    /// ```
    /// use hopper::store::{QueueFlow, Rate};
    /// let flow = QueueFlow::default().rate(Rate::new(10, std::time::Duration::from_secs(1)));
    /// assert_eq!(flow.rate.unwrap().starts, 10);
    /// ```
    pub fn rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Serves the queue's keys in turn.
    ///
    /// ```
    /// assert!(hopper::store::QueueFlow::default().fair().is_keyed());
    /// ```
    pub fn fair(mut self) -> Self {
        self.fair = true;
        self
    }

    /// Whether any setting bounds or orders the queue's claims.
    ///
    /// ```
    /// assert!(hopper::store::QueueFlow::default().concurrency(1).is_controlled());
    /// ```
    pub fn is_controlled(&self) -> bool {
        *self != Self::default()
    }

    /// Whether claims look at keys: per-key limits, per-key rates or fairness.
    ///
    /// ```
    /// assert!(!hopper::store::QueueFlow::default().concurrency(3).is_keyed());
    /// ```
    pub fn is_keyed(&self) -> bool {
        self.fair || self.key_concurrency.is_some() || self.rate.is_some_and(|rate| rate.per_key)
    }

    /// Refuses settings no claim could honour: a limit or rate of 0, or a
    /// rate period under a millisecond or over a year.
    ///
    /// ```
    /// use hopper::store::{QueueFlow, Rate};
    /// assert!(QueueFlow::default().concurrency(0).check().is_err());
    /// assert!(QueueFlow::default().rate(Rate::new(5, std::time::Duration::ZERO)).check().is_err());
    /// assert!(QueueFlow::default().per_key(2).check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), StoreError> {
        let invalid = |reason: &str| Err(StoreError::InvalidFlow(reason.to_owned()));
        if self.concurrency == Some(0) {
            return invalid("a concurrency limit must be at least 1");
        }
        if self.key_concurrency == Some(0) {
            return invalid("a per-key concurrency limit must be at least 1");
        }
        if let Some(rate) = self.rate {
            if rate.starts == 0 {
                return invalid("a rate must allow at least 1 start per period");
            }
            if rate.period < Duration::from_millis(1)
                || rate.period > Duration::from_secs(366 * 86_400)
            {
                return invalid("a rate's period must be between 1 ms and a year");
            }
        }
        Ok(())
    }
}

/// A rate limit: at most `starts` job starts in any window of `period`.
///
/// ```
/// use std::time::Duration;
/// let rate = hopper::store::Rate::new(100, Duration::from_secs(60));
/// assert!(!rate.per_key);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// The most starts in any window of `period`.
    pub starts: u32,
    /// The window's length.
    pub period: Duration,
    /// Count starts per partition key instead of per queue.
    pub per_key: bool,
}

impl Rate {
    /// At most `starts` starts of the queue's jobs in any `period`.
    ///
    /// ```
    /// let rate = hopper::store::Rate::new(10, std::time::Duration::from_secs(1));
    /// assert_eq!(rate.starts, 10);
    /// ```
    pub fn new(starts: u32, period: Duration) -> Self {
        Self {
            starts,
            period,
            per_key: false,
        }
    }

    /// At most `starts` starts of one key's jobs in any `period`.
    ///
    /// ```
    /// assert!(hopper::store::Rate::per_key(100, std::time::Duration::from_secs(60)).per_key);
    /// ```
    pub fn per_key(starts: u32, period: Duration) -> Self {
        Self {
            per_key: true,
            ..Self::new(starts, period)
        }
    }

    /// The period in whole milliseconds, as stored.
    pub(crate) fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }

    /// The rate stored as `starts` per `period_ms`, if both are set.
    pub(crate) fn stored(
        starts: Option<i64>,
        period_ms: Option<i64>,
        per_key: bool,
    ) -> Option<Self> {
        let starts = u32::try_from(starts?).ok()?;
        let period = Duration::from_millis(u64::try_from(period_ms?).ok()?);
        Some(Self {
            starts,
            period,
            per_key,
        })
    }
}

/// New flow settings for one queue ([`Store::set_flow`](super::Store::set_flow)).
///
/// ```
/// use hopper::store::{FlowRequest, QueueFlow};
/// let flow = QueueFlow::default().concurrency(5);
/// let request = FlowRequest { queue: "payments", flow: &flow, now: chrono::Utc::now() };
/// assert_eq!(request.flow.concurrency, Some(5));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FlowRequest<'a> {
    /// The queue.
    pub queue: &'a str,
    /// Its settings, replacing the ones it had.
    pub flow: &'a QueueFlow,
    /// When they were set.
    pub now: DateTime<Utc>,
}

/// A job a flow-controlled claim may take: a due pending job at the head
/// of its key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) id: JobId,
    pub(crate) key: Option<String>,
    pub(crate) priority: i32,
}

/// A queue's row as a flow-controlled claim finds it, holding it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LockedFlow {
    pub(crate) flow: QueueFlow,
    /// The last key a claim passed in the round of the queue's keys (empty
    /// before the first).
    pub(crate) key_cursor: String,
    /// The claim's now: the request's, or the database server's.
    pub(crate) now: DateTime<Utc>,
}

impl LockedFlow {
    /// Where the rate's window starts, at the claim's now, under a rate.
    fn window_start(&self) -> Option<DateTime<Utc>> {
        self.flow
            .rate
            .map(|rate| crate::clock::sub(self.now, rate.period))
    }
}

/// The reads and writes a flow-controlled claim asks of a database, all in
/// one transaction that holds the queue's row from [`FlowTx::lock_flow`] on.
pub(crate) trait FlowTx {
    /// Locks `queue`'s row and reads its flow settings, if it has any and
    /// is not paused; `now` is the request's clock (`None`: the server's).
    async fn lock_flow(
        &mut self,
        queue: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<Option<LockedFlow>, StoreError>;

    /// How many of `queue`'s jobs are started, per key (`None`: no key).
    async fn running(&mut self, queue: &str) -> Result<Vec<(Option<String>, i64)>, StoreError>;

    /// Forgets `queue`'s starts at or before `since`, then counts the rest
    /// per key: of every key with `keys` `None` (a per-queue rate, counted
    /// under `None`), or of those keys.
    async fn starts_since(
        &mut self,
        queue: &str,
        since: DateTime<Utc>,
        keys: Option<&[String]>,
    ) -> Result<Vec<(Option<String>, i64)>, StoreError>;

    /// Up to `limit` of `queue`'s ready keys in the order of the round from
    /// `after`: the keys after it in key order, then from the first key
    /// round to it; with their versions.
    async fn ready_keys(
        &mut self,
        queue: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// How many of `queue`'s keys are ready (may have pending jobs),
    /// counting no further than `at_most`.
    async fn ready_key_count(&mut self, queue: &str, at_most: u64) -> Result<u64, StoreError>;

    /// The first due pending jobs of each key in `heads` (up to its count), best first.
    async fn key_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        heads: &[(String, u32)],
    ) -> Result<Vec<Candidate>, StoreError>;

    /// The first `limit` due pending jobs of `queue`, best first; with
    /// `unkeyed`, only those without a key among the first `limit`.
    async fn queue_heads(
        &mut self,
        queue: &str,
        due_by: DateTime<Utc>,
        limit: u32,
        unkeyed: bool,
    ) -> Result<Vec<Candidate>, StoreError>;

    /// Which of `keys` have a pending job, due or not.
    async fn keys_pending(
        &mut self,
        queue: &str,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError>;

    /// Claims the jobs `ids` (each still pending) for `request`, leased
    /// from `now`; the first `start_now` of them start at once (their runs
    /// recorded started), the rest are claimed ahead.
    async fn start(
        &mut self,
        request: &ClaimRequest<'_>,
        ids: &[JobId],
        start_now: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Claims up to `limit` of the queue's due jobs, best first, as the
    /// usual claim does (the first `request.start_now` start at once),
    /// leased from `now`.
    async fn claim_in_order(
        &mut self,
        request: &ClaimRequest<'_>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let heads = self
            .queue_heads(request.queue, request.due_by, limit, false)
            .await?;
        let ids: Vec<JobId> = heads.iter().map(|c| c.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.start(request, &ids, request.start_now as usize, now)
            .await
    }

    /// Makes each key of `idle` not ready if its version is still the one
    /// given, and records `cursor`, if any, as the last key passed.
    async fn settle_keys(
        &mut self,
        queue: &str,
        idle: &[(String, i64)],
        cursor: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Records one start at `at` per entry of `keys` (`None`: per queue).
    async fn record_starts(
        &mut self,
        queue: &str,
        keys: &[Option<String>],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Claims from a flow-controlled queue inside `tx`: no more than its
/// limits allow, keys in turn. Answers `None` when the queue has no flow
/// settings (or is paused), for the caller's usual claim to answer.
///
/// Under a rate, only jobs that start at once are taken (at least one if
/// asked for any): a job claimed ahead would count against the rate
/// before it started. Without one, jobs are claimed ahead as on any queue;
/// they count against the limits from their claim, as running jobs.
pub(crate) async fn claim<T: FlowTx>(
    tx: &mut T,
    request: &ClaimRequest<'_>,
) -> Result<Option<Vec<ClaimedJob>>, StoreError> {
    let Some(locked) = tx.lock_flow(request.queue, request.now).await? else {
        return Ok(None);
    };
    let flow = locked.flow;
    let mut counts = Counts::default();
    if flow.concurrency.is_some() || flow.key_concurrency.is_some() {
        counts.running = tx.running(request.queue).await?.into_iter().collect();
    }
    let window_start = locked.window_start();
    if let (Some(rate), Some(since)) = (flow.rate, window_start) {
        if !rate.per_key {
            counts.starts = tx
                .starts_since(request.queue, since, None)
                .await?
                .into_iter()
                .collect();
        }
    }
    let asked = match flow.rate {
        Some(_) => request.start_now.max(1).min(request.limit),
        None => request.limit,
    };
    let room = counts.room(&flow, asked);
    if room == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut settle = Settle::default();
    let chosen = if flow.is_keyed() {
        // Oldest first where that is the order asked for; the round of
        // keys fills what room that leaves (jobs of keys at their limit
        // filling the window hold no other key back) and marks the keys
        // found empty.
        let (mut chosen, window_keys) = if takes_oldest_first(&flow) {
            claim_oldest(tx, request, &flow, &mut counts, room).await?
        } else {
            (Vec::new(), 0)
        };
        let rest = room.saturating_sub(u32::try_from(chosen.len()).unwrap_or(u32::MAX));
        if rest > 0 && !holds_every_ready_key(tx, request.queue, window_keys).await? {
            let taken: HashSet<JobId> = chosen.iter().map(|c| c.id).collect();
            let round = claim_keyed(tx, request, &locked, &mut counts, rest, &mut settle).await?;
            chosen.extend(round.into_iter().filter(|c| !taken.contains(&c.id)));
        }
        chosen
    } else if flow.rate.is_none() {
        // Oldest first, no start to record: the database's usual claim,
        // under the room the limit leaves.
        let jobs = tx.claim_in_order(request, room, locked.now).await?;
        return Ok(Some(jobs));
    } else {
        tx.queue_heads(request.queue, request.due_by, room, false)
            .await?
    };
    let ids: Vec<JobId> = chosen.iter().map(|c| c.id).collect();
    let jobs = if ids.is_empty() {
        Vec::new()
    } else {
        let start_now = match flow.rate {
            Some(_) => ids.len(),
            None => request.start_now as usize,
        };
        tx.start(request, &ids, start_now, locked.now).await?
    };
    if flow.is_keyed() && (settle.cursor.is_some() || !settle.idle.is_empty()) {
        settle.idle.sort();
        tx.settle_keys(request.queue, &settle.idle, settle.cursor.as_deref())
            .await?;
    }
    if let Some(rate) = flow.rate {
        if !jobs.is_empty() {
            let key_of: HashMap<JobId, &Option<String>> =
                chosen.iter().map(|c| (c.id, &c.key)).collect();
            let keys: Vec<Option<String>> = jobs
                .iter()
                .map(|job| {
                    let key = key_of.get(&job.id).and_then(|key| (*key).clone());
                    key.filter(|_| rate.per_key)
                })
                .collect();
            tx.record_starts(request.queue, &keys, locked.now).await?;
        }
    }
    Ok(Some(jobs))
}

/// Whether a keyed queue's claims take its due jobs oldest first, passing
/// over those whose key is at its limit: a per-key limit on a queue that
/// is not fair and has no per-key rate.
fn takes_oldest_first(flow: &QueueFlow) -> bool {
    flow.key_concurrency.is_some() && !flow.fair && !flow.rate.is_some_and(|rate| rate.per_key)
}

/// Whether an oldest-first window that held `window_keys` distinct keys
/// held every ready key of `queue`: then the round has nothing to find
/// (each of them got its room, or has none left) and no key gone idle to
/// settle. A per-key limit over many keys, each with due jobs, then costs
/// a count instead of a read of every key; the count stops one past the
/// window's keys, so a queue with far more keys pays no more for it.
async fn holds_every_ready_key<T: FlowTx>(
    tx: &mut T,
    queue: &str,
    window_keys: usize,
) -> Result<bool, StoreError> {
    if window_keys == 0 {
        return Ok(false);
    }
    // Counting one past the keys held answers the question however many
    // keys the queue has.
    let held = u64::try_from(window_keys).unwrap_or(u64::MAX);
    Ok(held >= tx.ready_key_count(queue, held.saturating_add(1)).await?)
}

/// Chooses up to `room` of the queue's first due jobs, best first, passing
/// over each whose key has no room left (counted in `counts` as it goes),
/// from a window of twice the room. Answers them, and how many distinct
/// keys the window held.
async fn claim_oldest<T: FlowTx>(
    tx: &mut T,
    request: &ClaimRequest<'_>,
    flow: &QueueFlow,
    counts: &mut Counts,
    room: u32,
) -> Result<(Vec<Candidate>, usize), StoreError> {
    let window = room
        .saturating_mul(2)
        .clamp(UNKEYED_WINDOW, MAX_OLDEST_WINDOW);
    let heads = tx
        .queue_heads(request.queue, request.due_by, window, false)
        .await?;
    let keys: HashSet<&str> = heads.iter().filter_map(|c| c.key.as_deref()).collect();
    let window_keys = keys.len();
    let mut chosen = Vec::new();
    for candidate in heads {
        if chosen.len() >= room as usize {
            break;
        }
        if counts.key_room(flow, candidate.key.as_deref()) > 0 {
            *counts.running.entry(candidate.key.clone()).or_default() += 1;
            chosen.push(candidate);
        }
    }
    Ok((chosen, window_keys))
}

/// Chooses up to `room` jobs of a keyed queue, going round its ready keys
/// from the queue's cursor a window at a time: each window holds as many keys as the
/// room left and the running keys could need, and the next is read only
/// while the room is not filled and the round is not done. Keys found with
/// nothing pending fill no window twice: after a burst of keys runs dry,
/// one claim passes them all and reaches a key with a due job, instead of
/// one window per claim (and a poll interval between claims that found
/// nothing), up to [`MAX_KEYS_LOOKED`] keys. Records in `settle` the keys
/// gone idle and the last key passed.
async fn claim_keyed<T: FlowTx>(
    tx: &mut T,
    request: &ClaimRequest<'_>,
    locked: &LockedFlow,
    counts: &mut Counts,
    room: u32,
    settle: &mut Settle,
) -> Result<Vec<Candidate>, StoreError> {
    let flow = &locked.flow;
    let window_start = locked.window_start();
    let mut chosen: Vec<Candidate> = Vec::new();
    // The keys of the windows before this one, kept only once a claim
    // reads a second window, and how many there were.
    let mut looked: HashSet<String> = HashSet::new();
    let mut seen = 0;
    let mut after = locked.key_cursor.clone();
    loop {
        let want = room.saturating_sub(u32::try_from(chosen.len()).unwrap_or(u32::MAX));
        let limit = want as usize + counts.running.len() + SPARE_KEYS;
        let read = tx.ready_keys(request.queue, &after, limit).await?;
        let complete = read.len() < limit;
        // Keys met again have come round: the round is done.
        let keys: Vec<(String, i64)> = read
            .into_iter()
            .take_while(|(key, _)| !looked.contains(key))
            .collect();
        let wrapped = keys.len() < limit && !complete;
        if let (Some(rate), Some(since)) = (flow.rate, window_start) {
            if rate.per_key && !keys.is_empty() {
                let mut names: Vec<String> = keys.iter().map(|(key, _)| key.clone()).collect();
                names.sort();
                counts
                    .starts
                    .extend(tx.starts_since(request.queue, since, Some(&names)).await?);
            }
        }
        // Keys at a limit are passed over without reading their jobs.
        let heads: Vec<(String, u32)> = keys
            .iter()
            .filter_map(|(key, _)| {
                let open = counts.key_room(flow, Some(key));
                (open > 0).then(|| (key.clone(), open.min(want)))
            })
            .collect();
        let mut candidates = tx.key_heads(request.queue, request.due_by, &heads).await?;
        // An oldest-first claim read the queue's first due jobs, keyless
        // ones among them, in its window (at least as long as this look).
        let unkeyed_room = counts.key_room(flow, None).min(want);
        if seen == 0 && unkeyed_room > 0 && !takes_oldest_first(flow) {
            let unkeyed = tx
                .queue_heads(request.queue, request.due_by, UNKEYED_WINDOW, true)
                .await?;
            candidates.extend(unkeyed.into_iter().take(unkeyed_room as usize));
        }
        let turn_of: HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(n, (key, _))| (key.as_str(), n))
            .collect();
        let with_due: HashSet<String> = candidates.iter().filter_map(|c| c.key.clone()).collect();
        // Jobs without a key take the first turn: they are few, or the
        // queue has no keys at all.
        let picked = pick(candidates, want, |c| {
            c.key
                .as_deref()
                .and_then(|key| turn_of.get(key))
                .copied()
                .unwrap_or(0)
        });
        let served: HashSet<&str> = picked.iter().filter_map(|c| c.key.as_deref()).collect();
        // The round moves on past the keys served, at their limit or with
        // nothing due, up to the first with due jobs the room left out.
        let passed = keys
            .iter()
            .map(|(key, _)| key.as_str())
            .take_while(|key| served.contains(key) || !with_due.contains(*key))
            .last()
            .map(str::to_owned);
        // A key with nothing pending, due or not, stops being ready.
        let nothing_due: Vec<String> = heads
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !with_due.contains(*key))
            .cloned()
            .collect();
        if !nothing_due.is_empty() {
            let waiting: HashSet<String> = tx
                .keys_pending(request.queue, &nothing_due)
                .await?
                .into_iter()
                .collect();
            let idle: HashSet<&String> = nothing_due
                .iter()
                .filter(|key| !waiting.contains(*key))
                .collect();
            settle
                .idle
                .extend(keys.iter().filter(|(key, _)| idle.contains(key)).cloned());
        }
        chosen.extend(picked);
        let passed_all = passed.as_deref() == keys.last().map(|(key, _)| key.as_str());
        if passed.is_some() {
            settle.cursor.clone_from(&passed);
        }
        seen += keys.len();
        let enough = chosen.len() >= room as usize || seen >= MAX_KEYS_LOOKED;
        if enough || complete || wrapped || !passed_all {
            return Ok(chosen);
        }
        looked.extend(keys.into_iter().map(|(key, _)| key));
        if let Some(key) = passed {
            after = key;
        }
    }
}

/// What a claim writes back about keys.
#[derive(Debug, Default)]
struct Settle {
    /// Keys found with nothing pending, and the versions they were read at.
    idle: Vec<(String, i64)>,
    /// The last key the round passed, if it moved.
    cursor: Option<String>,
}

/// What a flow-controlled claim counted: started jobs and starts in the
/// rate window, per key (`None`: no key, or the whole queue for a
/// per-queue rate).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) running: HashMap<Option<String>, i64>,
    pub(crate) starts: HashMap<Option<String>, i64>,
}

impl Counts {
    /// How many jobs the claim may start in all, asked for `asked`.
    pub(crate) fn room(&self, flow: &QueueFlow, asked: u32) -> u32 {
        let mut room = i64::from(asked);
        if let Some(limit) = flow.concurrency {
            room = room.min(i64::from(limit) - self.running.values().sum::<i64>());
        }
        if let Some(rate) = flow.rate.filter(|rate| !rate.per_key) {
            room = room.min(i64::from(rate.starts) - self.starts.values().sum::<i64>());
        }
        u32::try_from(room.max(0)).unwrap_or(0)
    }

    /// How many jobs of `key` the claim may start.
    pub(crate) fn key_room(&self, flow: &QueueFlow, key: Option<&str>) -> u32 {
        let mut room = i64::from(u32::MAX);
        let key = key.map(str::to_owned);
        if let Some(limit) = flow.key_concurrency {
            room = room.min(i64::from(limit) - self.running.get(&key).copied().unwrap_or(0));
        }
        if let Some(rate) = flow.rate.filter(|rate| rate.per_key) {
            room = room.min(i64::from(rate.starts) - self.starts.get(&key).copied().unwrap_or(0));
        }
        u32::try_from(room.max(0)).unwrap_or(0)
    }
}

/// Puts `jobs` (as a statement's `RETURNING` gave them, in no set order)
/// in the order of `ids`, the order the claim chose them.
pub(crate) fn in_chosen_order(jobs: &mut [ClaimedJob], ids: &[JobId]) {
    let place: HashMap<JobId, usize> = ids.iter().enumerate().map(|(n, id)| (*id, n)).collect();
    jobs.sort_by_key(|job| place.get(&job.id).copied().unwrap_or(usize::MAX));
}

/// The best `room` of `candidates`, taken in rounds: highest priority
/// first; within a priority each key's first job, in the order of its turn
/// (`turn_of`), then each key's second, and so on; each key's jobs in the
/// order the database listed them. A claim with room for ten over ten keys
/// takes one job of each.
pub(crate) fn pick(
    candidates: Vec<Candidate>,
    room: u32,
    turn_of: impl Fn(&Candidate) -> usize,
) -> Vec<Candidate> {
    let mut seen: HashMap<Option<String>, usize> = HashMap::new();
    let mut ranked: Vec<(std::cmp::Reverse<i32>, usize, usize, Candidate)> = candidates
        .into_iter()
        .map(|c| {
            let round = seen.entry(c.key.clone()).or_default();
            *round += 1;
            (std::cmp::Reverse(c.priority), *round, turn_of(&c), c)
        })
        .collect();
    // A stable sort keeps each key's jobs in the order the database gave.
    ranked.sort_by_key(|(priority, round, turn, _)| (*priority, *round, *turn));
    ranked
        .into_iter()
        .take(room as usize)
        .map(|(.., c)| c)
        .collect()
}

/// The queues a store last found with flow settings, or set them on: their
/// claims go straight to the flow-controlled claim, without first trying
/// the usual one (which skips such queues) and asking whether the queue
/// has any. A claim that finds the settings gone forgets the queue.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct FlowQueues(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl FlowQueues {
    fn names(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `queue` was last found with flow settings.
    pub(crate) fn contains(&self, queue: &str) -> bool {
        self.names().contains(queue)
    }

    /// Records whether `queue` has flow settings.
    pub(crate) fn set(&self, queue: &str, controlled: bool) {
        let mut names = self.names();
        if controlled {
            names.insert(queue.to_owned());
        } else {
            names.remove(queue);
        }
    }
}

/// The distinct `(queue, key)` pairs of `jobs` that have a partition key,
/// sorted: a bulk dispatch marks them ready in this order before inserting,
/// so two dispatches sharing keys take the key rows' locks in one order
/// (the job triggers would take them in row order) and cannot deadlock.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn keys_to_mark(jobs: &[super::NewJob]) -> Vec<(&str, &str)> {
    if jobs.len() < 2 {
        return Vec::new();
    }
    let mut keys: Vec<(&str, &str)> = jobs
        .iter()
        .filter_map(|job| Some((job.queue.as_str(), job.partition_key.as_deref()?)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: JobId, key: Option<&str>, priority: i32) -> Candidate {
        Candidate {
            id,
            key: key.map(str::to_owned),
            priority,
        }
    }

    #[test]
    fn the_room_is_the_smallest_of_the_ask_the_limit_and_the_rate() {
        let flow = QueueFlow::default()
            .concurrency(5)
            .rate(Rate::new(10, Duration::from_secs(1)));
        let mut counts = Counts::default();
        assert_eq!(counts.room(&flow, 3), 3);
        counts.running.insert(Some("a".into()), 2);
        counts.running.insert(None, 1);
        assert_eq!(counts.room(&flow, 8), 2);
        counts.starts.insert(None, 9);
        assert_eq!(counts.room(&flow, 8), 1);
        counts.starts.insert(None, 12);
        assert_eq!(counts.room(&flow, 8), 0);
    }

    #[test]
    fn a_key_has_room_under_its_own_limit_and_rate() {
        let flow = QueueFlow::default()
            .per_key(2)
            .rate(Rate::per_key(3, Duration::from_secs(60)));
        let mut counts = Counts::default();
        counts.running.insert(Some("a".into()), 2);
        counts.running.insert(Some("b".into()), 1);
        counts.starts.insert(Some("b".into()), 3);
        counts.starts.insert(Some("c".into()), 2);
        assert_eq!(counts.key_room(&flow, Some("a")), 0);
        assert_eq!(counts.key_room(&flow, Some("b")), 0);
        assert_eq!(counts.key_room(&flow, Some("c")), 1);
        assert_eq!(counts.key_room(&flow, Some("d")), 2);
        // A per-key rate leaves the queue's room unbounded by it.
        assert_eq!(counts.room(&flow, 7), 7);
    }

    #[test]
    fn picks_in_rounds_over_the_keys_by_priority_then_turn() {
        let turns = |c: &Candidate| match c.key.as_deref() {
            Some("b") => 0,
            Some("a") => 1,
            _ => 2,
        };
        let picked = pick(
            vec![
                candidate(1, Some("a"), 0),
                candidate(2, Some("a"), 0),
                candidate(3, Some("b"), 0),
                candidate(4, None, 5),
                candidate(5, Some("b"), 0),
            ],
            4,
            turns,
        );
        let ids: Vec<JobId> = picked.iter().map(|c| c.id).collect();
        // The urgent one; then b's first and a's first (b's turn comes
        // first); then b's second.
        assert_eq!(ids, [4, 3, 1, 5]);
    }

    #[test]
    fn settings_that_allow_nothing_are_refused() {
        assert!(QueueFlow::default().per_key(0).check().is_err());
        assert!(
            QueueFlow::default()
                .rate(Rate::new(0, Duration::from_secs(1)))
                .check()
                .is_err()
        );
        assert!(QueueFlow::default().fair().check().is_ok());
    }

    #[test]
    fn a_rate_round_trips_through_its_stored_form() {
        let rate = Rate::per_key(7, Duration::from_millis(1500));
        assert_eq!(
            Rate::stored(Some(7), Some(rate.period_ms()), true),
            Some(rate)
        );
        assert_eq!(Rate::stored(None, Some(10), false), None);
    }
}
