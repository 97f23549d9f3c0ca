//! What each flow-controlled queue's limits hold now
//! ([`Store::flow_usage`](super::Store::flow_usage)): its settings, the jobs
//! it runs, its busiest keys, the starts in its rate window and the due
//! jobs a limit holds back. Each store reads a few grouped counts; the
//! figures are put together here, once, by the rules the claim follows.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::{QueueFlow, Rate};

/// How many of a queue's keys [`FlowUsage::busiest_keys`] lists at most.
///
/// ```
/// assert_eq!(hopper::store::BUSIEST_KEYS, 5);
/// ```
pub const BUSIEST_KEYS: usize = 5;

/// One flow-controlled queue's settings and how much of them is in use
/// ([`Store::flow_usage`](super::Store::flow_usage)).
///
/// `waiting` counts the queue's due pending jobs that a limit holds back
/// now: every due pending job while the queue's own concurrency limit or
/// per-queue rate is reached (`full`), otherwise the due pending jobs of
/// each partition (a key, or the jobs without one) at its per-key limit or
/// per-key rate. A queue with only fair claims holds nothing back.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::QueueFlow;
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// hopper.set_queue_flow("payments", QueueFlow::default().concurrency(5)).await.unwrap();
/// let usage = &hopper.flow_usage().await.unwrap()[0];
/// assert_eq!((usage.queue.as_str(), usage.running, usage.waiting), ("payments", 0, 0));
/// assert!(!usage.full);
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowUsage {
    /// The queue.
    pub queue: String,
    /// Its flow settings (in JSON: `concurrency`, `key_concurrency`,
    /// `rate` as `{starts, period_ms, per_key, text}` or null, `fair`).
    #[serde(serialize_with = "flow_json")]
    pub flow: QueueFlow,
    /// Its jobs started now, in every process.
    pub running: u64,
    /// Its job starts in the current rate window (the last rate period),
    /// every key's together; `None` without a rate.
    pub starts_in_window: Option<u64>,
    /// Its due pending jobs.
    pub due: u64,
    /// Its due pending jobs a limit holds back now (see the type's notes).
    pub waiting: u64,
    /// Whether the queue's concurrency limit or per-queue rate is reached,
    /// so none of its jobs start until a run ends or the window moves on.
    pub full: bool,
    /// Up to [`BUSIEST_KEYS`] partitions with the most running jobs (then
    /// the most starts in the window), for queues whose claims look at keys
    /// ([`QueueFlow::is_keyed`]); empty otherwise.
    pub busiest_keys: Vec<KeyUsage>,
}

/// What one partition of a flow-controlled queue uses ([`FlowUsage::busiest_keys`]).
///
/// ```
/// let key = hopper::store::KeyUsage { key: Some("customer:7".into()), running: 2, starts_in_window: None, full: true };
/// assert_eq!(serde_json::to_value(&key).unwrap()["running"], 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    /// The partition key; `None` for the jobs without one.
    pub key: Option<String>,
    /// Its jobs started now.
    pub running: u64,
    /// Its starts in the current window, with a per-key rate; else `None`.
    pub starts_in_window: Option<u64>,
    /// Whether it is at its per-key limit or per-key rate.
    pub full: bool,
}

/// A rate as text, `STARTS/PERIOD`, that does not parse.
///
/// ```
/// let error = "ten/1m".parse::<hopper::store::Rate>().unwrap_err();
/// assert!(error.to_string().contains("ten/1m"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {input:?}: expected starts per period, like 100/1m, 10/1s, 5/500ms, 1000/1h or 20000/1d"
)]
pub struct RateError {
    /// What was given.
    pub input: String,
}

/// Milliseconds per period unit, largest first, as rates are written.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for Rate {
    type Err = RateError;

    /// Reads `STARTS/PERIOD`: a number of starts, a slash and a period of
    /// an optional number and a unit (`ms`, `s`, `m`, `h`, `d`). The rate
    /// is per queue; the bounds are [`QueueFlow::check`]'s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::store::Rate;
    /// assert_eq!("100/1m".parse::<Rate>().unwrap(), Rate::new(100, Duration::from_secs(60)));
    /// assert_eq!("5/s".parse::<Rate>().unwrap(), Rate::new(5, Duration::from_secs(1)));
    /// assert!("100".parse::<Rate>().is_err());
    /// ```
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || RateError {
            input: input.to_owned(),
        };
        let (starts, period) = input.trim().split_once('/').ok_or_else(error)?;
        let starts: u32 = starts.trim().parse().map_err(|_| error())?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (number, unit) = period.split_at(split);
        let number: u64 = if number.is_empty() {
            1
        } else {
            number.parse().map_err(|_| error())?
        };
        let per_unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit.trim())
            .map(|(_, ms)| *ms)
            .ok_or_else(error)?;
        let ms = number.checked_mul(per_unit).ok_or_else(error)?;
        Ok(Rate::new(starts, Duration::from_millis(ms)))
    }
}

impl fmt::Display for Rate {
    /// `STARTS/PERIOD` in the largest whole unit, as [`Rate::from_str`]
    /// reads it, with ` per key` after a per-key rate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::store::Rate;
    /// assert_eq!(Rate::new(100, Duration::from_secs(60)).to_string(), "100/1m");
    /// assert_eq!(Rate::per_key(5, Duration::from_millis(1500)).to_string(), "5/1500ms per key");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.period.as_millis();
        let (unit, per_unit) = UNITS
            .iter()
            .find(|(_, per)| ms >= u128::from(*per) && ms % u128::from(*per) == 0)
            .map_or(("ms", 1), |(unit, per)| (*unit, u128::from(*per)));
        write!(f, "{}/{}{unit}", self.starts, ms / per_unit)?;
        if self.per_key {
            f.write_str(" per key")?;
        }
        Ok(())
    }
}

impl fmt::Display for QueueFlow {
    /// The settings in words, `, ` between them: `5 at once, 1 per key,
    /// 100/1m per key, fair`; `none` when there are none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::store::{QueueFlow, Rate};
    /// let flow = QueueFlow::default().concurrency(5).per_key(1).rate(Rate::new(100, Duration::from_secs(60)));
    /// assert_eq!(flow.to_string(), "5 at once, 1 per key, 100/1m");
    /// assert_eq!(QueueFlow::default().to_string(), "none");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limits = Vec::new();
        if let Some(n) = self.concurrency {
            limits.push(format!("{n} at once"));
        }
        if let Some(n) = self.key_concurrency {
            limits.push(format!("{n} per key"));
        }
        if let Some(rate) = self.rate {
            limits.push(rate.to_string());
        }
        if self.fair {
            limits.push("fair".to_owned());
        }
        if limits.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&limits.join(", "))
        }
    }
}

/// A queue's flow settings in JSON, the rate's period in milliseconds.
fn flow_json<S: serde::Serializer>(flow: &QueueFlow, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct RateJson {
        starts: u32,
        period_ms: u128,
        per_key: bool,
        text: String,
    }
    #[derive(Serialize)]
    struct FlowJson {
        concurrency: Option<u32>,
        key_concurrency: Option<u32>,
        rate: Option<RateJson>,
        fair: bool,
    }
    FlowJson {
        concurrency: flow.concurrency,
        key_concurrency: flow.key_concurrency,
        rate: flow.rate.map(|rate| RateJson {
            starts: rate.starts,
            period_ms: rate.period.as_millis(),
            per_key: rate.per_key,
            text: rate.to_string(),
        }),
        fair: flow.fair,
    }
    .serialize(serializer)
}

/// The grouped counts a store reads for [`Store::flow_usage`](super::Store::flow_usage).
#[derive(Debug, Default)]
pub(crate) struct UsageRows {
    /// Every queue with flow settings.
    pub(crate) settings: Vec<(String, QueueFlow)>,
    /// Started jobs per queue and partition key.
    pub(crate) running: Vec<(String, Option<String>, i64)>,
    /// Starts per queue and partition key in each rate-limited queue's window.
    pub(crate) starts: Vec<(String, Option<String>, i64)>,
    /// Due pending jobs per queue: all, and those without a key.
    pub(crate) due: Vec<(String, i64, i64)>,
}

/// One queue's figures before the due jobs of its full keys are counted.
#[derive(Debug)]
pub(crate) struct UsageDraft {
    usage: FlowUsage,
    full_keys: Vec<String>,
}

impl UsageDraft {
    /// The queue.
    pub(crate) fn queue(&self) -> &str {
        &self.usage.queue
    }

    /// The keys at their per-key limit or rate whose due jobs count as
    /// waiting (none when the whole queue is full), sorted.
    pub(crate) fn full_keys(&self) -> &[String] {
        &self.full_keys
    }

    /// The figures, given the due pending jobs of [`UsageDraft::full_keys`].
    pub(crate) fn finish(mut self, full_keys_due: i64) -> FlowUsage {
        if !self.full_keys.is_empty() {
            self.usage.waiting += super::rows::from_count(full_keys_due);
        }
        self.usage
    }
}

/// Each queue's figures from `rows`, by queue name.
pub(crate) fn draft(rows: UsageRows) -> Vec<UsageDraft> {
    type PerKey = HashMap<Option<String>, u64>;
    let group = |list: Vec<(String, Option<String>, i64)>| {
        let mut by_queue: HashMap<String, PerKey> = HashMap::new();
        for (queue, key, n) in list {
            *by_queue.entry(queue).or_default().entry(key).or_default() +=
                super::rows::from_count(n);
        }
        by_queue
    };
    let mut running = group(rows.running);
    let mut starts = group(rows.starts);
    let due: HashMap<String, (u64, u64)> = rows
        .due
        .into_iter()
        .map(|(queue, all, unkeyed)| {
            let counts = (
                super::rows::from_count(all),
                super::rows::from_count(unkeyed),
            );
            (queue, counts)
        })
        .collect();
    let mut drafts: Vec<UsageDraft> = rows
        .settings
        .into_iter()
        .map(|(queue, flow)| {
            let running = running.remove(&queue).unwrap_or_default();
            let starts = starts.remove(&queue).unwrap_or_default();
            let (due, due_unkeyed) = due.get(&queue).copied().unwrap_or_default();
            one_queue(queue, flow, &running, &starts, due, due_unkeyed)
        })
        .collect();
    drafts.sort_by(|a, b| a.usage.queue.cmp(&b.usage.queue));
    drafts
}

/// One queue's figures from its counts per partition.
fn one_queue(
    queue: String,
    flow: QueueFlow,
    running: &HashMap<Option<String>, u64>,
    starts: &HashMap<Option<String>, u64>,
    due: u64,
    due_unkeyed: u64,
) -> UsageDraft {
    let total_running: u64 = running.values().sum();
    let total_starts: u64 = starts.values().sum();
    let key_rate = flow.rate.filter(|rate| rate.per_key);
    let full = flow
        .concurrency
        .is_some_and(|limit| total_running >= u64::from(limit))
        || flow
            .rate
            .filter(|rate| !rate.per_key)
            .is_some_and(|rate| total_starts >= u64::from(rate.starts));
    let key_full = |key: &Option<String>| {
        let run = running.get(key).copied().unwrap_or(0);
        let started = starts.get(key).copied().unwrap_or(0);
        flow.key_concurrency
            .is_some_and(|limit| run >= u64::from(limit))
            || key_rate.is_some_and(|rate| started >= u64::from(rate.starts))
    };
    let mut keys: Vec<&Option<String>> = running.keys().chain(starts.keys()).collect();
    keys.sort();
    keys.dedup();
    let (mut waiting, mut full_keys) = (0, Vec::new());
    if full {
        waiting = due;
    } else {
        for key in &keys {
            if key_full(key) {
                match key {
                    Some(key) => full_keys.push(key.clone()),
                    None => waiting += due_unkeyed,
                }
            }
        }
    }
    let mut busiest: Vec<KeyUsage> = if flow.is_keyed() {
        keys.iter()
            .map(|key| KeyUsage {
                key: (*key).clone(),
                running: running.get(*key).copied().unwrap_or(0),
                starts_in_window: key_rate.map(|_| starts.get(*key).copied().unwrap_or(0)),
                full: key_full(key),
            })
            .collect()
    } else {
        Vec::new()
    };
    busiest.sort_by(|a, b| {
        (b.running, b.starts_in_window)
            .cmp(&(a.running, a.starts_in_window))
            .then_with(|| a.key.cmp(&b.key))
    });
    busiest.truncate(BUSIEST_KEYS);
    UsageDraft {
        usage: FlowUsage {
            queue,
            flow,
            running: total_running,
            starts_in_window: flow.rate.map(|_| total_starts),
            due,
            waiting,
            full,
            busiest_keys: busiest,
        },
        full_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(flow: QueueFlow) -> UsageRows {
        UsageRows {
            settings: vec![("q".into(), flow)],
            ..UsageRows::default()
        }
    }

    #[test]
    fn a_full_queue_holds_back_every_due_job() {
        let mut rows = rows(QueueFlow::default().concurrency(2).per_key(5));
        rows.running = vec![("q".into(), Some("a".into()), 1), ("q".into(), None, 1)];
        rows.due = vec![("q".into(), 7, 3)];
        let drafts = draft(rows);
        assert!(drafts[0].full_keys().is_empty());
        let usage = drafts.into_iter().next().unwrap().finish(0);
        assert_eq!((usage.running, usage.waiting, usage.full), (2, 7, true));
        assert_eq!(usage.busiest_keys.len(), 2);
    }

    #[test]
    fn full_keys_hold_back_only_their_own_jobs() {
        let mut rows = rows(QueueFlow::default().per_key(1));
        rows.running = vec![
            ("q".into(), Some("a".into()), 1),
            ("q".into(), Some("b".into()), 1),
            ("q".into(), None, 1),
        ];
        rows.due = vec![("q".into(), 9, 2)];
        let drafts = draft(rows);
        assert_eq!(drafts[0].full_keys(), ["a", "b"]);
        let usage = drafts.into_iter().next().unwrap().finish(4);
        assert_eq!((usage.waiting, usage.full), (6, false));
    }

    #[test]
    fn a_per_key_rate_ranks_keys_by_running_then_starts() {
        let mut rows = rows(QueueFlow::default().rate(Rate::per_key(2, Duration::from_secs(60))));
        rows.running = vec![("q".into(), Some("b".into()), 1)];
        rows.starts = vec![
            ("q".into(), Some("a".into()), 2),
            ("q".into(), Some("b".into()), 1),
            ("q".into(), Some("c".into()), 1),
        ];
        let usage = draft(rows).into_iter().next().unwrap().finish(0);
        let keys: Vec<_> = usage.busiest_keys.iter().map(|k| k.key.clone()).collect();
        assert_eq!(keys, [Some("b".into()), Some("a".into()), Some("c".into())]);
        assert!(usage.busiest_keys[1].full);
        assert_eq!(usage.starts_in_window, Some(4));
    }

    #[test]
    fn rates_read_and_write_as_starts_per_period() {
        for text in ["100/1m", "10/1s", "5/500ms", "1000/1h", "20000/1d", "3/90s"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        for bad in ["", "100", "/1m", "x/1m", "1/1y", "1/", "-1/1s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
