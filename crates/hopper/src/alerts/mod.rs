//! Alerts: named rules over the queue's own numbers — a job type's failure
//! rate, a queue's depth or oldest wait, jobs failing for good — checked on
//! a timer, each incident recorded in the database and delivered to a
//! webhook once when it fires and once when it resolves.
//!
//! Incidents live in the `alerts` table. Opening one is an insert that a
//! unique key lets only one caller win while it fires, and resolving is an
//! update only one caller wins, so however many instances check, each
//! change is delivered by exactly one of them. Checks themselves run only on
//! the instance holding the [`ALERTS_LEASE`], so instances do not race
//! each other with readings taken at different moments.
//!
//! Delivering to a webhook needs hopper's `webhook` feature (and
//! `webhook-tls` for `https://` endpoints); without it, [`Webhook::new`]
//! refuses with [`AlertError::WebhookUnavailable`], so a configured webhook
//! fails at start instead of never being called.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use hopper::alerts::{Alerts, Condition};
//! let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
//! let alerts = Alerts::from_json(r#"{
//!     "backlog": {"kind": "queue_depth", "queue": "default", "above": 1000},
//!     "stuck":   {"kind": "oldest_pending", "above": "5m"}
//! }"#).unwrap();
//! assert!(alerts.check(&hopper).await.unwrap().is_empty());
//! let monitor = alerts.start(&hopper);
//! monitor.stop().await;
//! # });
//! ```

mod rule;
#[cfg(feature = "webhook")]
mod webhook;
#[cfg(not(feature = "webhook"))]
#[path = "no_webhook.rs"]
mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::core::Hopper;
use crate::schedule::Schedules;
use crate::service::Periodic;
use crate::store::{AlertRecord, LeaseHolder, LeaseRequest, NewAlert, StoreError};

pub use rule::{
    Breach, Condition, DEFAULT_FAILED_WINDOW, DEFAULT_MISSED_AFTER, Readings, ScheduleReading,
    format_span,
};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use webhook::DeliveryError;
pub use webhook::Webhook;

use webhook::Delivery;

/// The lease naming the one instance, among all sharing the database, that
/// checks the alert rules.
///
/// ```
/// assert_eq!(hopper::alerts::ALERTS_LEASE, "alerts");
/// ```
pub const ALERTS_LEASE: &str = "alerts";

/// How often rules are checked unless told otherwise.
///
/// ```
/// assert_eq!(hopper::alerts::DEFAULT_INTERVAL.as_secs(), 30);
/// ```
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// How long a stopping monitor waits for queued webhook deliveries.
const DRAIN: Duration = Duration::from_secs(10);

/// The longest rule name or subject kept.
const MAX_NAME: usize = 200;

/// What can go wrong defining or checking alert rules.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A rule cannot work as written.
    #[error("alert rule {name:?}: {reason}")]
    Rule {
        /// The rule.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two rules share a name.
    #[error("alert rule {0:?} is defined twice; every rule needs a unique name")]
    Duplicate(String),
    /// The rules' JSON does not parse.
    #[error("cannot read alert rules{}: {source}", path.as_ref().map(|p| format!(" from {p}")).unwrap_or_default())]
    Parse {
        /// The file, when they came from one.
        path: Option<String>,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The rules file cannot be read.
    #[error("cannot read alert rules from {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The webhook URL is unusable.
    #[error("alert webhook {url:?}: {reason}")]
    WebhookUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A webhook was configured, but this build has no webhook client:
    /// hopper's `webhook` feature is off.
    #[error(
        "alert webhook {url:?}: this build of hopper has no webhook client; enable its `webhook` feature (and `webhook-tls` for https://)"
    )]
    WebhookUnavailable {
        /// The URL given.
        url: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a change starts or ends an incident.
///
/// ```
/// assert_eq!(serde_json::to_value(hopper::alerts::Status::Firing).unwrap(), "firing");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The incident began.
    Firing,
    /// The incident ended.
    Resolved,
}

/// One incident starting or ending: what the webhook receives, as
/// `{"status": "firing", "alert": {"id", "rule", "subject", "summary",
/// "fired_at", "resolved_at"}}`.
///
/// ```
/// use hopper::alerts::{Change, Status};
/// let change = Change {
///     status: Status::Resolved,
///     alert: hopper::store::AlertRecord {
///         id: 3, rule: "backlog".into(), subject: "default".into(), summary: "queue default: 1200 jobs due (above 1000)".into(),
///         fired_at: chrono::Utc::now(), resolved_at: Some(chrono::Utc::now()),
///     },
/// };
/// let json = serde_json::to_value(&change).unwrap();
/// assert_eq!(json["status"], "resolved");
/// assert_eq!(json["alert"]["rule"], "backlog");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Firing or resolved.
    pub status: Status,
    /// The incident (with `resolved_at` set when resolved).
    pub alert: AlertRecord,
}

/// A set of named alert rules, and where their changes go.
///
/// ```
/// use std::time::Duration;
/// use hopper::alerts::{Alerts, Condition, Webhook};
/// let alerts = Alerts::new()
///     .rule("mail-failing", Condition::FailureRate {
///         job_type: Some("send_email".into()), above: 0.1, window: Duration::from_secs(900), min_jobs: 20,
///     }).unwrap()
///     .rule("any-failed", Condition::JobFailed { job_type: None, window: Duration::from_secs(600) }).unwrap()
///     .interval(Duration::from_secs(15));
/// assert_eq!(alerts.rules().count(), 2);
/// // A webhook needs hopper's `webhook` feature; without it, `new` says so.
/// match Webhook::new("http://127.0.0.1:9000/alerts") {
///     Ok(hook) => drop(alerts.webhook(hook)),
///     Err(error) => assert!(!cfg!(feature = "webhook"), "{error}"),
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Alerts {
    rules: BTreeMap<String, Condition>,
    webhook: Option<Webhook>,
    interval: Duration,
    schedules: Option<Schedules>,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            rules: BTreeMap::new(),
            webhook: None,
            interval: DEFAULT_INTERVAL,
            schedules: None,
        }
    }
}

impl Alerts {
    /// No rules, no webhook, checked every [`DEFAULT_INTERVAL`].
    ///
    /// ```
    /// assert_eq!(hopper::alerts::Alerts::new().rules().count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Rules from a JSON object of rule name → [`Condition`].
    ///
    /// ```
    /// let alerts = hopper::alerts::Alerts::from_json(
    ///     r#"{"mail": {"kind": "job_failed", "job_type": "send_email"}}"#,
    /// ).unwrap();
    /// assert_eq!(alerts.rules().next().unwrap().0, "mail");
    /// assert!(hopper::alerts::Alerts::from_json(r#"{"x": {"kind": "failure_rate", "above": 2, "window": "1m"}}"#).is_err());
    /// ```
    pub fn from_json(text: &str) -> Result<Self, AlertError> {
        Self::parse(text, None)
    }

    /// Rules from a JSON file (see [`Alerts::from_json`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("alerts.json");
    /// std::fs::write(&path, r#"{"backlog": {"kind": "queue_depth", "above": 500}}"#).unwrap();
    /// assert_eq!(hopper::alerts::Alerts::load(&path).unwrap().rules().count(), 1);
    /// assert!(hopper::alerts::Alerts::load(dir.path().join("missing.json")).is_err());
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AlertError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| AlertError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, Some(path.display().to_string()))
    }

    fn parse(text: &str, path: Option<String>) -> Result<Self, AlertError> {
        // Read as pairs, not a map, so a name given twice is an error.
        let pairs: Pairs = serde_json::from_str(text).map_err(|source| AlertError::Parse {
            path: path.clone(),
            source,
        })?;
        pairs
            .0
            .into_iter()
            .try_fold(Self::new(), |alerts, (name, condition)| {
                alerts.rule(name, condition)
            })
    }

    /// Adds the rule `name`; a second rule of the same name, an empty or
    /// overlong name, or a condition that cannot work is an error.
    ///
    /// ```
    /// use hopper::alerts::{Alerts, Condition};
    /// let depth = Condition::QueueDepth { queue: None, above: 100 };
    /// let alerts = Alerts::new().rule("deep", depth.clone()).unwrap();
    /// assert!(alerts.rule("deep", depth).is_err());
    /// ```
    pub fn rule(
        mut self,
        name: impl Into<String>,
        condition: Condition,
    ) -> Result<Self, AlertError> {
        let name = name.into();
        let reason = if name.trim().is_empty() || name.len() > MAX_NAME {
            Some(format!("a rule name has 1 to {MAX_NAME} characters"))
        } else {
            condition.problem()
        };
        if let Some(reason) = reason {
            return Err(AlertError::Rule { name, reason });
        }
        if self.rules.contains_key(&name) {
            return Err(AlertError::Duplicate(name));
        }
        self.rules.insert(name, condition);
        Ok(self)
    }

    /// Watches `schedules` for ticks not taken in time
    /// ([`Condition::ScheduleMissed`]). [`Services`](crate::services::Services)
    /// gives the alerts its own schedules unless these were set.
    ///
    /// ```
    /// let alerts = hopper::alerts::Alerts::new().schedules(hopper::schedule::Schedules::new());
    /// # let _ = alerts;
    /// ```
    pub fn schedules(mut self, schedules: Schedules) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// Whether schedules to watch were given.
    pub(crate) fn has_schedules(&self) -> bool {
        self.schedules.is_some()
    }

    /// Delivers every change to `webhook` (from the running monitor).
    ///
    /// ```
    /// # #[cfg(feature = "webhook")] {
    /// let hook = hopper::alerts::Webhook::new("http://127.0.0.1:9000/").unwrap();
    /// let alerts = hopper::alerts::Alerts::new().webhook(hook);
    /// # let _ = alerts;
    /// # }
    /// ```
    pub fn webhook(mut self, webhook: Webhook) -> Self {
        self.webhook = Some(webhook);
        self
    }

    /// Checks every `interval` (default [`DEFAULT_INTERVAL`]; at least 1 s).
    ///
    /// ```
    /// let alerts = hopper::alerts::Alerts::new().interval(std::time::Duration::from_secs(10));
    /// # let _ = alerts;
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_secs(1));
        self
    }

    /// The rules, by name.
    ///
    /// ```
    /// assert!(hopper::alerts::Alerts::new().rules().next().is_none());
    /// ```
    pub fn rules(&self) -> impl Iterator<Item = (&str, &Condition)> {
        self.rules.iter().map(|(name, c)| (name.as_str(), c))
    }

    /// One check at the handle's "now": opens an incident for every subject
    /// newly over a rule's threshold, resolves every firing incident whose
    /// subject no longer is (or whose rule is gone), and returns the changes
    /// this call made. Changes another caller made first are not returned.
    /// Delivers nothing itself.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::alerts::{Alerts, Condition, Status};
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let now = hopper.now();
    /// hopper.store().insert(&[hopper::store::NewJob {
    ///     job_type: "x".into(), queue: "default".into(), payload: "null".into(),
    ///     priority: 0, max_attempts: 1, available_at: now, created_at: now, unique_key: None, partition_key: None,
    ///     sequence: None,
    ///     trace_context: None,
    /// }]).await.unwrap();
    /// let alerts = Alerts::new().rule("waiting", Condition::QueueDepth { queue: None, above: 0 }).unwrap();
    /// let changes = alerts.check(&hopper).await.unwrap();
    /// assert_eq!(changes[0].status, Status::Firing);
    /// assert!(alerts.check(&hopper).await.unwrap().is_empty(), "fires once");
    /// # });
    /// ```
    pub async fn check(&self, hopper: &Hopper) -> Result<Vec<Change>, AlertError> {
        let store = hopper.store();
        let now = hopper.now();
        let readings = self.read(hopper).await?;
        let firing: Vec<AlertRecord> = store
            .alerts(0)
            .await?
            .into_iter()
            .filter(|alert| alert.resolved_at.is_none())
            .collect();
        let mut breaching = BTreeSet::new();
        let mut changes = Vec::new();
        for (name, condition) in &self.rules {
            for breach in condition.breaches(&readings) {
                let subject: String = breach.subject.chars().take(MAX_NAME).collect();
                breaching.insert((name.clone(), subject.clone()));
                if firing
                    .iter()
                    .any(|alert| &alert.rule == name && alert.subject == subject)
                {
                    continue;
                }
                let opened = store
                    .open_alert(&NewAlert {
                        rule: name.clone(),
                        subject,
                        summary: breach.summary,
                        fired_at: now,
                    })
                    .await?;
                if let Some(alert) = opened {
                    tracing::warn!(rule = %alert.rule, subject = %alert.subject, summary = %alert.summary, "alert firing");
                    changes.push(Change {
                        status: Status::Firing,
                        alert,
                    });
                }
            }
        }
        for mut alert in firing {
            if breaching.contains(&(alert.rule.clone(), alert.subject.clone())) {
                continue;
            }
            if store.resolve_alert(alert.id, now).await? {
                tracing::info!(rule = %alert.rule, subject = %alert.subject, "alert resolved");
                alert.resolved_at = Some(now);
                changes.push(Change {
                    status: Status::Resolved,
                    alert,
                });
            }
        }
        Ok(changes)
    }

    /// The numbers the rules need, read once.
    async fn read(&self, hopper: &Hopper) -> Result<Readings, StoreError> {
        let now = hopper.now();
        let store = hopper.store();
        let needs_queues = self.rules.values().any(|c| c.window().is_none());
        let queues = if needs_queues {
            store.queue_stats(now).await?
        } else {
            Vec::new()
        };
        let mut outcomes = BTreeMap::new();
        let windows: BTreeSet<Duration> =
            self.rules.values().filter_map(Condition::window).collect();
        for window in windows {
            let since = crate::clock::sub(now, window);
            outcomes.insert(window, store.outcomes(since).await?);
        }
        let watches_schedules = self
            .rules
            .values()
            .any(|c| matches!(c, Condition::ScheduleMissed { .. }));
        let schedules = match &self.schedules {
            Some(schedules) if watches_schedules => store
                .schedule_states()
                .await?
                .into_iter()
                .filter_map(|state| {
                    let schedule = schedules.get(&state.name)?;
                    Some(ScheduleReading {
                        next_due: schedule.next_after(state.last_fire_at),
                        name: state.name,
                        last_fire_at: state.last_fire_at,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Readings {
            now,
            queues,
            outcomes,
            schedules,
        })
    }

    /// Checks the rules in the background, on whichever instance holds the
    /// [`ALERTS_LEASE`], every interval (the first one interval after start), delivering changes to the webhook
    /// (if one is set) until [`AlertMonitor::stop`]. A failed check is
    /// logged and the next one tries again.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let monitor = hopper::alerts::Alerts::new().start(&hopper);
    /// assert!(monitor.check_now().await.unwrap().is_empty());
    /// monitor.stop().await;
    /// # });
    /// ```
    pub fn start(self, hopper: &Hopper) -> AlertMonitor {
        let stop = CancellationToken::new();
        let delivery = self.webhook.clone().map(Webhook::start);
        let shared = Arc::new(Shared {
            hopper: hopper.clone(),
            holder: format!("alerts:{}:{:08x}", std::process::id(), fastrand::u32(..)),
            alerts: self,
            delivery,
        });
        let task = tokio::spawn(run(shared.clone(), stop.clone()));
        AlertMonitor { stop, task, shared }
    }
}

/// Rule name → condition pairs in file order, duplicates kept.
struct Pairs(Vec<(String, Condition)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of rule name to rule")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        from.deserialize_map(Visit)
    }
}

#[derive(Debug)]
struct Shared {
    hopper: Hopper,
    holder: String,
    alerts: Alerts,
    delivery: Option<Delivery>,
}

impl Shared {
    /// The alerts lease as this instance holds it.
    fn lease(&self) -> LeaseHolder<'_> {
        LeaseHolder {
            name: ALERTS_LEASE,
            holder: &self.holder,
        }
    }

    /// One check if this instance holds the lease; changes go to the webhook.
    async fn pass(&self) -> Result<Vec<Change>, AlertError> {
        let store = self.hopper.store();
        let lease = LeaseRequest {
            lease: self.lease(),
            ttl: self.alerts.interval * 3,
            now: self.hopper.database_now(),
        };
        if !store.try_lease(lease).await? {
            return Ok(Vec::new());
        }
        let changes = self.alerts.check(&self.hopper).await?;
        if let Some(delivery) = &self.delivery {
            for change in &changes {
                delivery.send(change.clone());
            }
        }
        Ok(changes)
    }
}

/// Alert rules being checked in the background.
#[derive(Debug)]
pub struct AlertMonitor {
    stop: CancellationToken,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl AlertMonitor {
    /// Checks now, outside the timer (if this instance holds the lease),
    /// delivering any changes as a timed check would; returns them.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let monitor = hopper::alerts::Alerts::new().start(&hopper);
    /// assert!(monitor.check_now().await.unwrap().is_empty());
    /// # monitor.stop().await;
    /// # });
    /// ```
    pub async fn check_now(&self) -> Result<Vec<Change>, AlertError> {
        self.shared.pass().await
    }

    /// Stops checking, gives up the lease, and waits (up to 10 s) for queued
    /// webhook deliveries.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper::alerts::Alerts::new().start(&hopper).stop().await;
    /// # });
    /// ```
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the alert monitor task failed");
        }
        let store = self.shared.hopper.store();
        if let Err(error) = store.drop_lease(self.shared.lease()).await {
            tracing::warn!(%error, "giving up the alerts lease failed");
        }
        // The task has ended, so this is the last handle on the shared state.
        if let Ok(shared) = Arc::try_unwrap(self.shared) {
            if let Some(delivery) = shared.delivery {
                delivery.close(DRAIN).await;
            }
        }
    }
}

/// Checks every interval (the first time one interval after starting) until
/// `stop` fires. The lease is taken inside each pass rather than by the
/// service, since [`AlertMonitor::check_now`] takes it the same way; the
/// monitor gives it up at stop.
async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared.alerts.interval;
    let service = Periodic::new("alert check", interval).wait_first();
    service
        .run(stop, move || {
            let shared = shared.clone();
            async move { shared.pass().await.map(|_| None) }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_rules_load() {
        let readme = include_str!("../../../../README.md");
        let section = &readme[readme.find("## Alerts").expect("an Alerts section")..];
        let start = section.find("```json\n").expect("an example") + "```json\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let alerts = Alerts::from_json(example).unwrap();
        let kinds: Vec<_> = alerts
            .rules()
            .map(|(_, c)| serde_json::to_value(c).unwrap()["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                "queue_depth",
                "schedule_missed",
                "job_failed",
                "failure_rate",
                "oldest_pending"
            ]
        );
    }

    #[test]
    fn a_rule_named_twice_in_a_file_is_an_error() {
        let twice = r#"{"a": {"kind": "queue_depth", "above": 1}, "a": {"kind": "job_failed"}}"#;
        assert!(matches!(
            Alerts::from_json(twice),
            Err(AlertError::Duplicate(name)) if name == "a"
        ));
    }
}
