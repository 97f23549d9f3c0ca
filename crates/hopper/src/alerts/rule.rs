//! What an alert rule watches, as data: each [`Condition`] reads the queue's
//! numbers at one moment ([`Readings`]) and names the subjects (job types or
//! queues) that are over their threshold, each with a one-line summary.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{QueueStats, TypeOutcomes};

/// The window of a [`Condition::JobFailed`] rule that sets none: ten minutes.
///
/// ```
/// assert_eq!(hopper::alerts::DEFAULT_FAILED_WINDOW.as_secs(), 600);
/// ```
pub const DEFAULT_FAILED_WINDOW: Duration = Duration::from_secs(600);

/// How late a tick may be taken before a [`Condition::ScheduleMissed`]
/// rule that sets no `after` fires: one minute.
///
/// ```
/// assert_eq!(hopper::alerts::DEFAULT_MISSED_AFTER.as_secs(), 60);
/// ```
pub const DEFAULT_MISSED_AFTER: Duration = Duration::from_secs(60);

/// What one alert rule watches. Rules are data: they read from JSON such as
/// `{"kind": "queue_depth", "queue": "default", "above": 1000}`, durations
/// written like `"30s"`, `"5m"`, `"1h30m"` or `"2d"`.
///
/// Every condition with an optional `job_type` or `queue` watches each job
/// type or queue separately when it is left out: one incident per subject.
///
/// ```
/// use hopper::alerts::Condition;
/// let c: Condition = serde_json::from_str(
///     r#"{"kind": "failure_rate", "job_type": "send_email", "above": 0.2, "window": "10m"}"#,
/// ).unwrap();
/// assert_eq!(c, Condition::FailureRate {
///     job_type: Some("send_email".into()), above: 0.2,
///     window: std::time::Duration::from_secs(600), min_jobs: 1,
/// });
/// assert!(serde_json::from_str::<Condition>(r#"{"kind": "queue_depth", "queue": "a", "abov": 3}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Of the jobs of a type that ended within `window`, the share that
    /// failed for good is above `above` (0 to 1), once at least `min_jobs`
    /// ended. Retried attempts do not count; only a job's final outcome does.
    FailureRate {
        /// The job type; every type on its own when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_type: Option<String>,
        /// The failed share that fires, from 0 to 1.
        above: f64,
        /// How far back jobs count.
        #[serde(with = "span")]
        window: Duration,
        /// Fewer ended jobs than this never fire (default 1).
        #[serde(default = "one")]
        min_jobs: u64,
    },
    /// More than `above` pending jobs are due in a queue.
    QueueDepth {
        /// The queue; every queue on its own when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
        /// The due jobs that are too many.
        above: u64,
    },
    /// The longest-waiting due job of a queue has waited longer than `above`.
    OldestPending {
        /// The queue; every queue on its own when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
        /// The wait that is too long.
        #[serde(with = "span")]
        above: Duration,
    },
    /// A job failed for good (its attempts used up, or a permanent error)
    /// within `window`. It resolves once `window` passes without another.
    JobFailed {
        /// The job type; every type on its own when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_type: Option<String>,
        /// How long one failure keeps the alert firing (default 10 minutes).
        #[serde(with = "span", default = "failed_window")]
        window: Duration,
    },
    /// A schedule's tick was not taken within `after` of its time: no
    /// process runs the scheduler, or the database refuses its ticks.
    /// Watches the schedules the alerts were given
    /// ([`Alerts::schedules`](super::Alerts::schedules); [`Services`](crate::services::Services)
    /// gives its own), each from its first taken tick. It resolves once the
    /// late tick (or a later one) is taken.
    ScheduleMissed {
        /// The schedule; every schedule on its own when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<String>,
        /// How late a tick may be taken (default 1 minute).
        #[serde(with = "span", default = "missed_after")]
        after: Duration,
    },
}

fn one() -> u64 {
    1
}

fn failed_window() -> Duration {
    DEFAULT_FAILED_WINDOW
}

fn missed_after() -> Duration {
    DEFAULT_MISSED_AFTER
}

/// The numbers conditions read, taken once per check.
///
/// ```
/// let r = hopper::alerts::Readings { now: chrono::Utc::now(), queues: vec![], outcomes: Default::default(), schedules: vec![] };
/// assert!(r.queues.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    /// The moment of the check.
    pub now: DateTime<Utc>,
    /// Due work per queue at `now`.
    pub queues: Vec<QueueStats>,
    /// Ended jobs per type, for each window a rule asks about.
    pub outcomes: BTreeMap<Duration, Vec<TypeOutcomes>>,
    /// The watched schedules that have taken a tick.
    pub schedules: Vec<ScheduleReading>,
}

/// Where a schedule stands: its latest taken tick and the tick after it.
///
/// ```
/// let now = chrono::Utc::now();
/// let r = hopper::alerts::ScheduleReading { name: "nightly".into(), last_fire_at: now, next_due: None };
/// assert_eq!(r.name, "nightly");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleReading {
    /// The schedule's name.
    pub name: String,
    /// The latest tick taken (fired or passed over), by any process.
    pub last_fire_at: DateTime<Utc>,
    /// The schedule's next tick after that one, if it has one.
    pub next_due: Option<DateTime<Utc>>,
}

/// A subject over its threshold, and what was seen.
///
/// ```
/// let b = hopper::alerts::Breach { subject: "default".into(), summary: "queue default: 5 jobs due (above 3)".into() };
/// assert_eq!(b.subject, "default");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The job type or queue.
    pub subject: String,
    /// What was seen, in a sentence.
    pub summary: String,
}

impl Condition {
    /// Why this condition cannot work, if it cannot: a share outside 0–1 or
    /// a zero duration.
    ///
    /// ```
    /// use hopper::alerts::Condition;
    /// assert!(Condition::QueueDepth { queue: None, above: 10 }.problem().is_none());
    /// let bad = Condition::FailureRate { job_type: None, above: 1.5, window: std::time::Duration::from_secs(60), min_jobs: 1 };
    /// assert!(bad.problem().is_some());
    /// ```
    pub fn problem(&self) -> Option<String> {
        match self {
            Condition::FailureRate { above, window, .. } => {
                if !(0.0..=1.0).contains(above) {
                    Some(format!("`above` is a share from 0 to 1, got {above}"))
                } else if window.is_zero() {
                    Some("`window` must be above zero".into())
                } else {
                    None
                }
            }
            Condition::OldestPending { above, .. } if above.is_zero() => {
                Some("`above` must be above zero".into())
            }
            Condition::JobFailed { window, .. } if window.is_zero() => {
                Some("`window` must be above zero".into())
            }
            Condition::ScheduleMissed { after, .. } if after.is_zero() => {
                Some("`after` must be above zero".into())
            }
            _ => None,
        }
    }

    /// The window of ended jobs this condition reads, if it reads any.
    ///
    /// ```
    /// use hopper::alerts::Condition;
    /// assert_eq!(Condition::JobFailed { job_type: None, window: std::time::Duration::from_secs(60) }.window(), Some(std::time::Duration::from_secs(60)));
    /// assert_eq!(Condition::QueueDepth { queue: None, above: 1 }.window(), None);
    /// ```
    pub fn window(&self) -> Option<Duration> {
        match self {
            Condition::FailureRate { window, .. } | Condition::JobFailed { window, .. } => {
                Some(*window)
            }
            Condition::QueueDepth { .. }
            | Condition::OldestPending { .. }
            | Condition::ScheduleMissed { .. } => None,
        }
    }

    /// The subjects over this condition's threshold in `readings`.
    ///
    /// ```
    /// use hopper::alerts::{Condition, Readings};
    /// use hopper::store::QueueStats;
    /// let readings = Readings {
    ///     now: chrono::Utc::now(),
    ///     queues: vec![QueueStats { queue: "mail".into(), due: 12, oldest_due_at: None, paused: false }],
    ///     outcomes: Default::default(),
    ///     schedules: vec![],
    /// };
    /// let breaches = Condition::QueueDepth { queue: None, above: 10 }.breaches(&readings);
    /// assert_eq!(breaches[0].subject, "mail");
    /// assert!(Condition::QueueDepth { queue: None, above: 12 }.breaches(&readings).is_empty());
    /// ```
    pub fn breaches(&self, readings: &Readings) -> Vec<Breach> {
        let matches =
            |wanted: &Option<String>, name: &str| wanted.as_deref().is_none_or(|w| w == name);
        let outcomes = |window: &Duration| {
            readings
                .outcomes
                .get(window)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        match self {
            Condition::FailureRate {
                job_type,
                above,
                window,
                min_jobs,
            } => outcomes(window)
                .iter()
                .filter(|o| matches(job_type, &o.job_type))
                .filter_map(|o| {
                    let ended = o.finished + o.failed;
                    let share = o.failed as f64 / ended.max(1) as f64;
                    (ended >= *min_jobs && ended > 0 && share > *above).then(|| Breach {
                        subject: o.job_type.clone(),
                        summary: format!(
                            "{}: {} of {ended} jobs failed in the last {} ({:.0}%, above {:.0}%)",
                            o.job_type,
                            o.failed,
                            format_span(*window),
                            share * 100.0,
                            above * 100.0
                        ),
                    })
                })
                .collect(),
            Condition::JobFailed { job_type, window } => outcomes(window)
                .iter()
                .filter(|o| matches(job_type, &o.job_type) && o.failed > 0)
                .map(|o| Breach {
                    subject: o.job_type.clone(),
                    summary: format!(
                        "{}: {} failed for good in the last {}",
                        o.job_type,
                        jobs(o.failed),
                        format_span(*window)
                    ),
                })
                .collect(),
            Condition::QueueDepth { queue, above } => readings
                .queues
                .iter()
                .filter(|q| matches(queue, &q.queue) && q.due > *above)
                .map(|q| Breach {
                    subject: q.queue.clone(),
                    summary: format!("queue {}: {} due (above {above})", q.queue, jobs(q.due)),
                })
                .collect(),
            Condition::OldestPending { queue, above } => readings
                .queues
                .iter()
                .filter(|q| matches(queue, &q.queue))
                .filter_map(|q| {
                    let waited = (readings.now - q.oldest_due_at?).to_std().ok()?;
                    (waited > *above).then(|| Breach {
                        subject: q.queue.clone(),
                        summary: format!(
                            "queue {}: the oldest due job has waited {} (above {})",
                            q.queue,
                            format_span(Duration::from_secs(waited.as_secs())),
                            format_span(*above)
                        ),
                    })
                })
                .collect(),
            Condition::ScheduleMissed { schedule, after } => readings
                .schedules
                .iter()
                .filter(|s| matches(schedule, &s.name))
                .filter_map(|s| {
                    let due = s.next_due?;
                    let late = (readings.now - due).to_std().ok()?;
                    (late > *after).then(|| Breach {
                        subject: s.name.clone(),
                        summary: format!(
                            "schedule {}: the tick due at {} was not taken ({} late, above {})",
                            s.name,
                            due.format("%Y-%m-%d %H:%M:%S UTC"),
                            format_span(Duration::from_secs(late.as_secs())),
                            format_span(*after)
                        ),
                    })
                })
                .collect(),
        }
    }
}

/// `1 job`, `2 jobs`.
fn jobs(n: u64) -> String {
    if n == 1 {
        "1 job".into()
    } else {
        format!("{n} jobs")
    }
}

/// Writes a duration the way rules read it: `1h30m`, `45s`, `2d`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(hopper::alerts::format_span(Duration::from_secs(5400)), "1h30m");
/// assert_eq!(hopper::alerts::format_span(Duration::from_secs(0)), "0s");
/// ```
pub fn format_span(span: Duration) -> String {
    let mut secs = span.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            text.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    text
}

/// Durations in rules: `"30s"`, `"5m"`, `"1h30m"`, `"2d"`.
mod span {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(span: &Duration, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(&super::format_span(*span))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(from)?;
        crate::schedule::parse_interval(text.trim()).map_err(|_| {
            serde::de::Error::custom(format!(
                "expected a duration such as 30s, 5m, 1h30m or 2d, got {text:?}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn outcomes(
        window: Duration,
        rows: &[(&str, u64, u64)],
    ) -> BTreeMap<Duration, Vec<TypeOutcomes>> {
        let rows = rows
            .iter()
            .map(|&(t, finished, failed)| TypeOutcomes {
                job_type: t.into(),
                finished,
                failed,
            })
            .collect();
        BTreeMap::from([(window, rows)])
    }

    #[test]
    fn failure_rate_needs_its_share_and_its_minimum() {
        let window = Duration::from_secs(600);
        let readings = Readings {
            now: at(0),
            queues: vec![],
            outcomes: outcomes(window, &[("mail", 7, 3), ("sms", 1, 1), ("push", 10, 0)]),
            schedules: vec![],
        };
        let rule = Condition::FailureRate {
            job_type: None,
            above: 0.25,
            window,
            min_jobs: 5,
        };
        let breaches = rule.breaches(&readings);
        assert_eq!(breaches.len(), 1, "{breaches:?}");
        assert_eq!(breaches[0].subject, "mail");
        assert_eq!(
            breaches[0].summary,
            "mail: 3 of 10 jobs failed in the last 10m (30%, above 25%)"
        );
        let only_push = Condition::FailureRate {
            job_type: Some("push".into()),
            above: 0.0,
            window,
            min_jobs: 1,
        };
        assert!(only_push.breaches(&readings).is_empty());
    }

    #[test]
    fn oldest_pending_compares_the_wait_with_its_limit() {
        let stats = |queue: &str, oldest| QueueStats {
            queue: queue.into(),
            due: 1,
            oldest_due_at: Some(oldest),
            paused: false,
        };
        let readings = Readings {
            now: at(600),
            queues: vec![stats("a", at(0)), stats("b", at(400))],
            outcomes: BTreeMap::new(),
            schedules: vec![],
        };
        let rule = Condition::OldestPending {
            queue: None,
            above: Duration::from_secs(300),
        };
        let breaches = rule.breaches(&readings);
        assert_eq!(breaches.len(), 1);
        assert_eq!(
            breaches[0].summary,
            "queue a: the oldest due job has waited 10m (above 5m)"
        );
    }

    #[test]
    fn job_failed_fires_per_type_with_a_failure_in_its_window() {
        let window = Duration::from_secs(60);
        let readings = Readings {
            now: at(0),
            queues: vec![],
            outcomes: outcomes(window, &[("a", 5, 0), ("b", 0, 2)]),
            schedules: vec![],
        };
        let rule = Condition::JobFailed {
            job_type: None,
            window,
        };
        let subjects: Vec<_> = rule
            .breaches(&readings)
            .into_iter()
            .map(|b| b.subject)
            .collect();
        assert_eq!(subjects, ["b"]);
    }

    #[test]
    fn schedule_missed_fires_for_a_tick_left_untaken_past_its_grace() {
        let reading = |name: &str, next_due| ScheduleReading {
            name: name.into(),
            last_fire_at: at(0),
            next_due,
        };
        let readings = Readings {
            now: at(600),
            schedules: vec![
                reading("late", Some(at(300))),
                reading("in grace", Some(at(550))),
                reading("ahead", Some(at(900))),
                reading("ended", None),
            ],
            ..Readings::default()
        };
        let rule = Condition::ScheduleMissed {
            schedule: None,
            after: DEFAULT_MISSED_AFTER,
        };
        let breaches = rule.breaches(&readings);
        assert_eq!(breaches.len(), 1, "{breaches:?}");
        assert_eq!(breaches[0].subject, "late");
        assert!(
            breaches[0]
                .summary
                .contains("was not taken (5m late, above 1m)"),
            "{}",
            breaches[0].summary
        );
        let parsed: Condition =
            serde_json::from_str(r#"{"kind": "schedule_missed", "schedule": "nightly"}"#).unwrap();
        assert_eq!(
            parsed,
            Condition::ScheduleMissed {
                schedule: Some("nightly".into()),
                after: DEFAULT_MISSED_AFTER
            }
        );
    }

    #[test]
    fn conditions_read_and_write_the_same_json() {
        let text = r#"{"kind":"oldest_pending","queue":"default","above":"1h30m"}"#;
        let condition: Condition = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&condition).unwrap(), text);
        let failed: Condition = serde_json::from_str(r#"{"kind":"job_failed"}"#).unwrap();
        assert_eq!(failed.window(), Some(DEFAULT_FAILED_WINDOW));
        assert!(
            serde_json::from_str::<Condition>(r#"{"kind":"job_failed","window":"soon"}"#).is_err()
        );
        assert!(serde_json::from_str::<Condition>(r#"{"kind":"load"}"#).is_err());
    }
}
