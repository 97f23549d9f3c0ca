//! Recurring work: cron schedules whose every tick becomes one job, dispatched
//! exactly once however many instances run the scheduler.
//!
//! Each tick is taken in the database ([`Store::take_tick`](crate::store::Store::take_tick)):
//! the instance that moves the schedule's "latest tick" forward dispatches
//! the job in the same transaction, with `available_at` = the fire time and
//! a unique key of schedule name + fire time. Every other instance sees the
//! tick already taken and does nothing. The scheduler itself runs no user
//! code, so a failing or panicking scheduled job never stops it: the job is
//! retried, shown and pruned like any other.
//!
//! Times follow each schedule's time zone through daylight-saving changes:
//! a wall-clock time that does not exist on a spring-forward day (02:30 in
//! Europe/Berlin on the last Sunday of March) fires at the first instant
//! after the gap (03:00 CEST); a wall-clock time that happens twice on a
//! fall-back day fires once, at its first occurrence (02:30 CEST).
//! Interval schedules (`*/15 * * * *`, `@every 30s`) keep their rhythm in
//! absolute time.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::core::Hopper;
use crate::dispatch::{DispatchError, DispatchOptions};
use crate::job::{Job, JobId, JobState};
use crate::registry::JobDefaults;
use crate::retry::Backoff;
use crate::service::Periodic;
use crate::store::{ScheduleRun, StoreError, Tick, TickRequest};

/// A tick later than this after its fire time counts as missed.
pub const MISSED_AFTER: Duration = Duration::from_secs(60);

/// What can go wrong defining or running schedules.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule {name:?}: invalid expression {expression:?}: {message}")]
    Expression {
        /// The schedule.
        name: String,
        /// The expression given.
        expression: String,
        /// The parser's message.
        message: String,
    },
    /// The time zone is not an IANA zone name.
    #[error(
        "schedule {name:?}: unknown time zone {zone:?} (expected an IANA name such as Europe/Berlin)"
    )]
    TimeZone {
        /// The schedule.
        name: String,
        /// The zone given.
        zone: String,
    },
    /// The payload cannot be turned into JSON.
    #[error("schedule {name:?}: cannot encode its payload: {source}")]
    Payload {
        /// The schedule.
        name: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The name holds a NUL character, which no database stores as text.
    #[error("schedule {0:?}: a schedule name cannot contain a NUL character")]
    NulCharacter(String),
    /// Two schedules share a name.
    #[error("schedule {0:?} is defined twice; every schedule needs a unique name")]
    Duplicate(String),
    /// No schedule has this name.
    #[error("no schedule named {0:?}")]
    Unknown(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manual run could not be dispatched.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// An expression the scheduler cannot run, with the parser's message.
///
/// ```
/// let err = hopper::schedule::check_expression("61 * * * *").unwrap_err();
/// assert_eq!(err.expression, "61 * * * *");
/// assert!(err.to_string().starts_with("invalid expression \"61 * * * *\": "), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid expression {expression:?}: {message}")]
pub struct ExpressionError {
    /// The expression given.
    pub expression: String,
    /// The parser's message.
    pub message: String,
}

/// Checks `expression` with the parser [`Schedule::new`] uses, so it
/// accepts exactly what a schedule accepts: 5 cron fields, 6 with seconds
/// first, or one of `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`,
/// `@every 30s`; an expression that matches no date is refused.
///
/// ```
/// use hopper::schedule::check_expression;
/// assert!(check_expression("*/5 * * * *").is_ok());
/// assert!(check_expression("0 0 3 * * *").is_ok());
/// assert!(check_expression("@every 1h30m").is_ok());
/// assert!(check_expression("@every 0s").is_err());
/// let never = check_expression("0 0 30 2 *").unwrap_err();
/// assert!(never.message.contains("never fire"), "{never}");
/// ```
pub fn check_expression(expression: &str) -> Result<(), ExpressionError> {
    parse(expression)
        .map(drop)
        .map_err(|message| ExpressionError {
            expression: expression.to_owned(),
            message,
        })
}

/// What to do with ticks that passed while no scheduler ran.
///
/// ```
/// assert_eq!(hopper::schedule::Missed::default(), hopper::schedule::Missed::RunLatest);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run the latest missed tick once (the default).
    #[default]
    RunLatest,
    /// Run none of them; wait for the next tick.
    Skip,
}

#[derive(Clone, Debug)]
enum Timing {
    Cron(Box<Cron>),
    Every(Duration),
}

/// A named, recurring dispatch of one job type with one payload.
///
/// ```
/// use hopper::{Job, JobContext, JobResult, schedule::Schedule};
/// struct Ping;
/// impl Job for Ping {
///     const TYPE: &'static str = "ping_task";
///     type Payload = ();
///     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
/// }
/// let every_five = Schedule::new::<Ping>("ping", "*/5 * * * *", ()).unwrap();
/// let nightly = Schedule::new::<Ping>("nightly", "30 2 * * *", ()).unwrap().time_zone("Europe/Berlin").unwrap();
/// assert!(Schedule::new::<Ping>("bad", "61 * * * *", ()).is_err());
/// # let _ = (every_five, nightly);
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    name: String,
    expression: String,
    timing: Timing,
    zone: Tz,
    job_type: &'static str,
    defaults: JobDefaults,
    payload: String,
    missed: Missed,
    overlap: bool,
}

impl Schedule {
    /// A schedule named `name` dispatching a `J` job with `payload` at every
    /// tick of `expression`: 5 cron fields, 6 with seconds first, or one of
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `@every 30s`
    /// (`s`, `m`, `h`, `d`, combinable: `@every 1h30m`). UTC unless
    /// [`Schedule::time_zone`] says otherwise.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("heartbeat", "@every 30s", ()).unwrap();
    /// assert_eq!(s.expression(), "@every 30s");
    /// let err = Schedule::new::<Ping>("typo", "* * *", ()).unwrap_err();
    /// assert!(err.to_string().starts_with("schedule \"typo\": invalid expression"));
    /// assert!(Schedule::new::<Ping>("a\0b", "@hourly", ()).is_err());
    /// let never = Schedule::new::<Ping>("leap", "0 0 30 2 *", ()).unwrap_err();
    /// assert!(never.to_string().contains("never fire"));
    /// ```
    pub fn new<J: Job>(
        name: impl Into<String>,
        expression: &str,
        payload: J::Payload,
    ) -> Result<Self, ScheduleError> {
        let name = name.into();
        if name.contains('\0') {
            return Err(ScheduleError::NulCharacter(name));
        }
        let timing = parse(expression).map_err(|message| ScheduleError::Expression {
            name: name.clone(),
            expression: expression.to_owned(),
            message,
        })?;
        let payload = serde_json::to_string(&payload).map_err(|source| ScheduleError::Payload {
            name: name.clone(),
            source,
        })?;
        Ok(Self {
            name,
            expression: expression.trim().to_owned(),
            timing,
            zone: Tz::UTC,
            job_type: J::TYPE,
            defaults: JobDefaults {
                queue: J::QUEUE,
                max_attempts: J::MAX_ATTEMPTS,
            },
            payload,
            missed: Missed::default(),
            overlap: true,
        })
    }

    /// Reads the expression's wall-clock times in `zone` (an IANA name).
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "@daily", ()).unwrap();
    /// assert!(s.clone().time_zone("Asia/Tokyo").is_ok());
    /// assert!(s.time_zone("Mars/Olympus").is_err());
    /// ```
    pub fn time_zone(mut self, zone: &str) -> Result<Self, ScheduleError> {
        self.zone = Tz::from_str(zone).map_err(|_| ScheduleError::TimeZone {
            name: self.name.clone(),
            zone: zone.to_owned(),
        })?;
        Ok(self)
    }

    /// What to do with ticks missed while no scheduler ran (default: run
    /// the latest one once).
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::{Missed, Schedule}};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "@hourly", ()).unwrap().missed(Missed::Skip);
    /// # let _ = s;
    /// ```
    pub fn missed(mut self, policy: Missed) -> Self {
        self.missed = policy;
        self
    }

    /// Skips a tick while the previous tick's job is still pending or started.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "* * * * *", ()).unwrap().no_overlap();
    /// # let _ = s;
    /// ```
    pub fn no_overlap(mut self) -> Self {
        self.overlap = false;
        self
    }

    /// The schedule's name.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// assert_eq!(Schedule::new::<Ping>("p", "@daily", ()).unwrap().name(), "p");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expression as given.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// assert_eq!(Schedule::new::<Ping>("p", "@daily", ()).unwrap().expression(), "@daily");
    /// ```
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// assert_eq!(Schedule::new::<Ping>("p", "@daily", ()).unwrap().zone(), "UTC");
    /// ```
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// The job type each tick dispatches.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// assert_eq!(Schedule::new::<Ping>("p", "@daily", ()).unwrap().job_type(), "ping_task");
    /// ```
    pub fn job_type(&self) -> &'static str {
        self.job_type
    }

    /// The first tick strictly after `after`.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "0 * * * *", ()).unwrap();
    /// let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:15:00Z").unwrap().to_utc();
    /// assert_eq!(s.next_after(t).unwrap().to_rfc3339(), "2026-01-01T11:00:00+00:00");
    /// ```
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.timing {
            Timing::Cron(cron) => cron
                .find_next_occurrence(&after.with_timezone(&self.zone), false)
                .ok()
                .map(|t| t.to_utc()),
            Timing::Every(every) => {
                let step = every.as_micros() as i64;
                let next = (after.timestamp_micros().div_euclid(step) + 1).checked_mul(step)?;
                DateTime::from_timestamp_micros(next)
            }
        }
    }

    /// The latest tick at or before `at`.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "@every 10m", ()).unwrap();
    /// let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:15:00Z").unwrap().to_utc();
    /// assert_eq!(s.latest_at_or_before(t).unwrap().to_rfc3339(), "2026-01-01T10:10:00+00:00");
    /// ```
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.timing {
            Timing::Cron(cron) => cron
                .find_previous_occurrence(&at.with_timezone(&self.zone), true)
                .ok()
                .map(|t| t.to_utc()),
            Timing::Every(every) => {
                let step = every.as_micros() as i64;
                let latest = at.timestamp_micros().div_euclid(step).checked_mul(step)?;
                DateTime::from_timestamp_micros(latest)
            }
        }
    }

    /// The next `count` ticks after `after`.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::Schedule};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let s = Schedule::new::<Ping>("p", "@hourly", ()).unwrap();
    /// assert_eq!(s.upcoming(chrono::Utc::now(), 3).len(), 3);
    /// ```
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::with_capacity(count);
        let mut from = after;
        while ticks.len() < count {
            let Some(next) = self.next_after(from) else {
                break;
            };
            ticks.push(next);
            from = next;
        }
        ticks
    }

    /// The unique key of the job for the tick at `fire_at`.
    fn unique_key(&self, fire_at: DateTime<Utc>) -> String {
        if self.overlap {
            format!("schedule:{}:{}", self.name, fire_at.to_rfc3339())
        } else {
            format!("schedule:{}", self.name)
        }
    }
}

/// Parses a cron expression or descriptor, returning the parser's message on error.
fn parse(expression: &str) -> Result<Timing, String> {
    let expression = expression.trim();
    if let Some(every) = expression.strip_prefix("@every") {
        return parse_interval(every.trim()).map(Timing::Every);
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
        .and_then(|cron| {
            // A day that never comes (30 February) parses, but the schedule
            // would never fire, and each search for its next tick is slow.
            match cron.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false) {
                Ok(_) => Ok(Timing::Cron(Box::new(cron))),
                Err(_) => Err("it matches no date, so it would never fire".to_owned()),
            }
        })
}

/// Parses `30s`, `5m`, `1h30m`, `2d` into a duration above zero.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("expected a duration such as 30s, 5m, 1h30m or 2d after @every, got {text:?}");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// What a scheduler pass did with one schedule.
///
/// ```
/// let f = hopper::schedule::Fired { schedule: "ping".into(), fire_at: chrono::Utc::now(), tick: hopper::store::Tick::Passed };
/// assert_eq!(f.schedule, "ping");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The tick's fire time.
    pub fire_at: DateTime<Utc>,
    /// What became of it.
    pub tick: Tick,
}

/// A schedule as `schedule:list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduleInfo {
    /// Its name.
    pub name: String,
    /// Its expression.
    pub expression: String,
    /// Its time zone.
    pub zone: String,
    /// The job type it dispatches.
    pub job_type: String,
    /// Its next three ticks.
    pub next: Vec<DateTime<Utc>>,
    /// The latest tick taken, if any.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The job of the latest dispatched tick and its state, if it still exists.
    pub last_job: Option<(JobId, JobState)>,
    /// Its latest [`RECENT_RUNS`] runs, newest first, with their outcomes.
    pub recent: Vec<ScheduleRun>,
}

/// How many of a schedule's latest runs [`Schedules::list`] reads.
///
/// ```
/// assert_eq!(hopper::schedule::RECENT_RUNS, 5);
/// ```
pub const RECENT_RUNS: u32 = 5;

/// Every schedule of an application, by name; duplicates are refused.
///
/// ```
/// # use hopper::{Job, JobContext, JobResult, schedule::{Schedule, Schedules}};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const TYPE: &'static str = "ping_task";
/// #     type Payload = ();
/// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
/// # }
/// let mut schedules = Schedules::new();
/// schedules.add(Schedule::new::<Ping>("ping", "@hourly", ()).unwrap()).unwrap();
/// assert!(schedules.add(Schedule::new::<Ping>("ping", "@daily", ()).unwrap()).is_err());
/// assert_eq!(schedules.iter().count(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Schedules {
    schedules: BTreeMap<String, Schedule>,
}

impl Schedules {
    /// No schedules.
    ///
    /// ```
    /// assert_eq!(hopper::schedule::Schedules::new().iter().count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a schedule; a second schedule of the same name is an error.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::{Schedule, Schedules}};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let mut schedules = Schedules::new();
    /// schedules.add(Schedule::new::<Ping>("a", "@hourly", ()).unwrap()).unwrap();
    /// ```
    pub fn add(&mut self, schedule: Schedule) -> Result<&mut Self, ScheduleError> {
        if self.schedules.contains_key(&schedule.name) {
            return Err(ScheduleError::Duplicate(schedule.name));
        }
        self.schedules.insert(schedule.name.clone(), schedule);
        Ok(self)
    }

    /// The schedules, by name.
    ///
    /// ```
    /// assert!(hopper::schedule::Schedules::new().iter().next().is_none());
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    /// The schedule called `name`.
    ///
    /// ```
    /// assert!(hopper::schedule::Schedules::new().get("x").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// One scheduler pass at the handle's "now": offers each schedule's
    /// latest due tick to the database. Returns what happened to each tick
    /// that had not been taken yet by this or another instance.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::{Schedule, Schedules}};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let mut schedules = Schedules::new();
    /// schedules.add(Schedule::new::<Ping>("ping", "@every 1s", ()).unwrap()).unwrap();
    /// let fired = schedules.run_due(&hopper).await.unwrap();
    /// assert_eq!(fired.len(), 1);
    /// assert!(schedules.run_due(&hopper).await.unwrap().len() <= 1);
    /// # });
    /// ```
    pub async fn run_due(&self, hopper: &Hopper) -> Result<Vec<Fired>, ScheduleError> {
        let now = hopper.now();
        let taken: BTreeMap<String, (DateTime<Utc>, Option<JobId>)> = hopper
            .store()
            .schedule_states()
            .await?
            .into_iter()
            .map(|state| (state.name, (state.last_fire_at, state.last_job_id)))
            .collect();
        let mut fired = Vec::new();
        for schedule in self.iter() {
            let Some(fire_at) = schedule.latest_at_or_before(now) else {
                continue;
            };
            let (last, last_job) = match taken.get(&schedule.name) {
                Some(&(at, job)) => (Some(at), job),
                None => (None, None),
            };
            if last.is_some_and(|last| fire_at <= last) {
                continue;
            }
            let late = (now - fire_at).to_std().unwrap_or_default() > MISSED_AFTER;
            let run = !late || (last.is_some() && schedule.missed == Missed::RunLatest);
            let job = run.then(|| {
                DispatchOptions::new()
                    .run_at(fire_at)
                    .unique_key(schedule.unique_key(fire_at))
                    .new_job(
                        schedule.job_type,
                        schedule.defaults,
                        schedule.payload.clone(),
                        now,
                    )
            });
            let mut tick = hopper
                .store()
                .take_tick(TickRequest {
                    schedule: &schedule.name,
                    fire_at,
                    job: job.as_ref(),
                })
                .await?;
            if tick == Tick::Dispatched(last_job.unwrap_or(0)) {
                // The no-overlap key is still held by the previous tick's job.
                tracing::info!(schedule = %schedule.name, %fire_at, "tick skipped: the previous run is still going");
                tick = Tick::Passed;
            }
            match tick {
                Tick::Dispatched(id) => {
                    tracing::info!(schedule = %schedule.name, %fire_at, job = id, "scheduled job dispatched");
                    hopper.wake(schedule.defaults.queue);
                }
                Tick::Passed => {
                    tracing::info!(schedule = %schedule.name, %fire_at, "missed tick skipped");
                }
                Tick::Lost => continue,
            }
            fired.push(Fired {
                schedule: schedule.name.clone(),
                fire_at,
                tick,
            });
        }
        Ok(fired)
    }

    /// Dispatches one run of schedule `name` now, outside its ticks.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult, schedule::{Schedule, Schedules}};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping_task";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let mut schedules = Schedules::new();
    /// schedules.add(Schedule::new::<Ping>("ping", "@daily", ()).unwrap()).unwrap();
    /// let id = schedules.run_now(&hopper, "ping").await.unwrap();
    /// assert!(hopper.job(id).await.unwrap().is_some());
    /// assert!(schedules.run_now(&hopper, "pong").await.is_err());
    /// # });
    /// ```
    pub async fn run_now(&self, hopper: &Hopper, name: &str) -> Result<JobId, ScheduleError> {
        let schedule = self
            .get(name)
            .ok_or_else(|| ScheduleError::Unknown(name.to_owned()))?;
        let payload: serde_json::Value =
            serde_json::from_str(&schedule.payload).map_err(|source| ScheduleError::Payload {
                name: name.to_owned(),
                source,
            })?;
        Ok(hopper
            .dispatch_json(schedule.job_type, &payload, DispatchOptions::new())
            .await?)
    }

    /// Each schedule with its next three ticks, its latest run and its
    /// [`RECENT_RUNS`] latest runs with their outcomes.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper::schedule::Schedules::new().list(&hopper).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn list(&self, hopper: &Hopper) -> Result<Vec<ScheduleInfo>, ScheduleError> {
        let states: BTreeMap<String, _> = hopper
            .store()
            .schedule_states()
            .await?
            .into_iter()
            .map(|state| (state.name.clone(), state))
            .collect();
        let now = hopper.now();
        let mut infos = Vec::new();
        for schedule in self.iter() {
            let state = states.get(&schedule.name);
            let recent = hopper
                .store()
                .schedule_runs(&schedule.name, RECENT_RUNS)
                .await?;
            // The latest run is usually the latest tick's job, read already;
            // a tick from before runs were recorded is read on its own.
            let last_job = match state.and_then(|s| s.last_job_id) {
                Some(id) => match recent.first().filter(|run| run.job_id == id) {
                    Some(run) => run.state.map(|state| (id, state)),
                    None => hopper.job(id).await?.map(|job| (id, job.state)),
                },
                None => None,
            };
            infos.push(ScheduleInfo {
                recent,
                name: schedule.name.clone(),
                expression: schedule.expression.clone(),
                zone: schedule.zone().to_owned(),
                job_type: schedule.job_type.to_owned(),
                next: schedule.upcoming(now, 3),
                last_fire_at: state.map(|s| s.last_fire_at),
                last_job,
            });
        }
        Ok(infos)
    }

    /// Runs the scheduler in the background until [`Scheduler::stop`]: a
    /// pass at every tick (and at least every minute). A database error is
    /// logged and the next pass tries again.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let scheduler = hopper::schedule::Schedules::new().start(&hopper);
    /// scheduler.stop().await;
    /// # });
    /// ```
    pub fn start(self, hopper: &Hopper) -> Scheduler {
        let stop = CancellationToken::new();
        let schedules = Arc::new(self);
        let task = tokio::spawn(run(hopper.clone(), schedules, stop.clone()));
        Scheduler { stop, task }
    }
}

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Stops the scheduler after its current pass.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper::schedule::Schedules::new().start(&hopper).stop().await;
    /// # });
    /// ```
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the scheduler task failed");
        }
    }
}

/// The longest the scheduler sleeps between passes.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Runs a pass now and then at every tick (at least every minute) until
/// `stop` fires; after failed passes, waits 1 s doubling to 32 s.
async fn run(hopper: Hopper, schedules: Arc<Schedules>, stop: CancellationToken) {
    let service = Periodic::new("scheduler pass", MAX_WAIT).backoff(Backoff::exact(
        Duration::from_secs(1),
        2.0,
        Duration::from_secs(32),
    ));
    service
        .run(stop, move || {
            let hopper = hopper.clone();
            let schedules = schedules.clone();
            async move {
                schedules.run_due(&hopper).await?;
                let now = hopper.now();
                let wait = schedules
                    .iter()
                    .filter_map(|s| s.next_after(now))
                    .min()
                    .and_then(|next| (next - now).to_std().ok())
                    .unwrap_or(MAX_WAIT)
                    .min(MAX_WAIT);
                Ok::<_, ScheduleError>(Some(wait))
            }
        })
        .await;
}

/// The wall-clock reading of `at` in `zone`, for display.
///
/// ```
/// let t = chrono::DateTime::parse_from_rfc3339("2026-03-29T01:00:00Z").unwrap().to_utc();
/// assert_eq!(hopper::schedule::local_time(t, "Europe/Berlin").unwrap(), "2026-03-29 03:00:00 CEST");
/// ```
pub fn local_time(at: DateTime<Utc>, zone: &str) -> Option<String> {
    let zone = Tz::from_str(zone).ok()?;
    Some(
        zone.from_utc_datetime(&at.naive_utc())
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
    )
}
