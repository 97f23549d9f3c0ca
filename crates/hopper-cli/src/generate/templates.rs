//! The text of generated files.

use std::time::Duration;

use super::{JobSpec, TypeName};

/// `Duration::from_secs(30)`, or `from_millis` for a delay with a fraction of a second.
fn duration_expr(delay: Duration) -> String {
    if delay.subsec_millis() == 0 {
        format!("Duration::from_secs({})", delay.as_secs())
    } else {
        format!("Duration::from_millis({})", delay.as_millis())
    }
}

pub(super) fn job(spec: &JobSpec, console: &str) -> String {
    let name = spec.name.name();
    let job_type = spec.name.snake();
    let payload = spec.name.payload();
    let queue = &spec.queue;
    let attempts = spec.max_attempts;
    let delay = duration_expr(spec.retry_delay);
    let delay_text = crate::duration::human(spec.retry_delay);
    let times = if attempts == 1 { "attempt" } else { "attempts" };
    format!(
        r#"//! `{job_type}`: {name}, a background job.
//!
//! Dispatch it from code with `hopper.dispatch::<{name}>({payload} {{ id: 1 }})`,
//! or from the console: `{console} queue:dispatch {job_type} '{{"id": 1}}'`.

use std::time::Duration;

use hopper::{{Job, JobContext, JobResult}};
use serde::{{Deserialize, Serialize}};

/// Runs on the `{queue}` queue: up to {attempts} {times}, {delay_text} apart.
#[derive(Clone, Copy, Debug, Default)]
pub struct {name};

/// What one [`{name}`] works on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct {payload} {{
    /// The record to work on (an example field: put the data the job needs here).
    pub id: u64,
}}

impl Job for {name} {{
    const TYPE: &'static str = "{job_type}";
    const QUEUE: &'static str = "{queue}";
    const MAX_ATTEMPTS: u32 = {attempts};
    type Payload = {payload};

    async fn handle(&self, payload: {payload}, ctx: JobContext) -> JobResult {{
        // The job's work goes here. Return `Err(hopper::JobError::retryable(..))`
        // to run it again after `retry_delay`, `Err(hopper::JobError::permanent(..))`
        // to fail it at once.
        tracing::info!(job_id = ctx.id(), id = payload.id, "{job_type} ran");
        Ok(())
    }}

    fn retry_delay(&self, _attempt: u32) -> Duration {{
        {delay}
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[tokio::test]
    async fn handle_succeeds() {{
        let payload = {payload} {{ id: 1 }};
        hopper::testing::perform(&{name}, payload).await.unwrap();
    }}

    #[test]
    fn settings() {{
        assert_eq!({name}::TYPE, "{job_type}");
        assert_eq!({name}::QUEUE, "{queue}");
        assert_eq!({name}::MAX_ATTEMPTS, {attempts});
        assert_eq!({name}.retry_delay(1), {delay});
    }}
}}
"#
    )
}

pub(super) fn cron(name: &TypeName, schedule: &str) -> String {
    let job_type = name.snake();
    let name = name.name();
    format!(
        r#"//! `{job_type}`: {name}, a scheduled task run on [`SCHEDULE`].
//!
//! It is a job like any other (its type is `{job_type}`, its payload is `()`),
//! so it can also be dispatched by hand.

use hopper::schedule::{{Schedule, ScheduleError}};
use hopper::{{Job, JobContext, JobResult}};

/// When [`{name}`] runs: a cron expression (seconds optional) or one of
/// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `@every 30s`.
pub const SCHEDULE: &str = {schedule:?};

/// [`{name}`] on [`SCHEDULE`] (in UTC), named by its job type; the
/// scheduler runs it once listed in `cron::schedules`.
pub fn schedule() -> Result<Schedule, ScheduleError> {{
    Schedule::new::<{name}>({name}::TYPE, SCHEDULE, ())
}}

/// A scheduled task.
#[derive(Clone, Copy, Debug, Default)]
pub struct {name};

impl Job for {name} {{
    const TYPE: &'static str = "{job_type}";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = ();

    async fn handle(&self, (): (), ctx: JobContext) -> JobResult {{
        // The task's work goes here.
        tracing::info!(job_id = ctx.id(), "{job_type} ran");
        Ok(())
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[tokio::test]
    async fn handle_succeeds() {{
        hopper::testing::perform(&{name}, ()).await.unwrap();
    }}

    #[test]
    fn settings() {{
        assert_eq!({name}::TYPE, "{job_type}");
        assert_eq!(SCHEDULE, {schedule:?});
        assert_eq!(schedule().unwrap().name(), "{job_type}");
    }}
}}
"#
    )
}

pub(super) fn seeder(name: &TypeName) -> String {
    let snake = name.snake();
    let name = name.name();
    format!(
        r#"//! `{snake}`: {name}, run by `db:seed`.

use hopper_cli::seeder::{{SeedContext, SeedError, Seeder}};

/// Fills the database with data for development.
#[derive(Clone, Copy, Debug, Default)]
pub struct {name};

#[hopper_cli::async_trait]
impl Seeder for {name} {{
    fn name(&self) -> &'static str {{
        "{snake}"
    }}

    async fn run(&self, ctx: &SeedContext) -> Result<(), SeedError> {{
        // Dispatch jobs or insert rows here: `ctx.hopper()` is the job queue,
        // `ctx.progress()` a progress bar to count steps on.
        let _hopper = ctx.hopper();
        Ok(())
    }}
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[tokio::test]
    async fn runs_on_an_empty_database() {{
        let hopper = hopper::Hopper::builder()
            .registry(crate::jobs::registry().unwrap())
            .connect("sqlite::memory:")
            .await
            .unwrap();
        {name}.run(&SeedContext::new(hopper)).await.unwrap();
    }}
}}
"#
    )
}

pub(super) const EMPTY_JOBS_MODULE: &str =
    "//! The application's background jobs, one file per job.

// hopper:job-modules:begin
// hopper:job-modules:end

// hopper:job-exports:begin
// hopper:job-exports:end

use hopper::{Registry, RegistryError};

/// Registers every job of the application in `registry`.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    // hopper:job-registrations:begin
    // hopper:job-registrations:end
    Ok(())
}
";

pub(super) const EMPTY_CRON_MODULE: &str =
    "//! The application's scheduled tasks, one file per task.

// hopper:cron-modules:begin
// hopper:cron-modules:end

// hopper:cron-exports:begin
// hopper:cron-exports:end

use hopper::schedule::{Schedule, ScheduleError, Schedules};
use hopper::{Registry, RegistryError};

/// Every scheduled task's schedule, named by its job type.
pub fn schedules() -> Result<Schedules, ScheduleError> {
    let list: Vec<Result<Schedule, ScheduleError>> = vec![
        // hopper:cron-schedules:begin
        // hopper:cron-schedules:end
    ];
    let mut schedules = Schedules::new();
    for schedule in list {
        schedules.add(schedule?)?;
    }
    Ok(schedules)
}

/// Registers every scheduled task in `registry`.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    // hopper:cron-registrations:begin
    // hopper:cron-registrations:end
    Ok(())
}
";

pub(super) const EMPTY_SEEDERS_MODULE: &str = "//! The application's seeders, run by `db:seed`.

// hopper:seeder-modules:begin
// hopper:seeder-modules:end

// hopper:seeder-exports:begin
// hopper:seeder-exports:end

use hopper_cli::seeder::Seeder;

/// Every seeder, in the order `db:seed` runs them.
pub fn all() -> Vec<Box<dyn Seeder>> {
    vec![
        // hopper:seeder-list:begin
        // hopper:seeder-list:end
    ]
}
";
