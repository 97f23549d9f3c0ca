//! The application's scheduled tasks, one file per task.
//!
//! A task is a job type with a cron expression: [`schedules`] gives the
//! scheduler `serve` and `work` run (each tick dispatched once across every
//! instance), and [`register`] registers them like any other job, so they
//! can also be dispatched by hand. `app console make:cron <Name> --schedule
//! '<cron>'` adds one: it writes the file and adds a line to each block below
//! (delimited by `hopper:…:begin` / `hopper:…:end` comments), keeping them
//! sorted.

// hopper:cron-modules:begin
pub mod heartbeat_task;
// hopper:cron-modules:end

// hopper:cron-exports:begin
pub use heartbeat_task::HeartbeatTask;
// hopper:cron-exports:end

use hopper::schedule::{Schedule, ScheduleError, Schedules};
use hopper::{Registry, RegistryError};

/// Every scheduled task's schedule, named by its job type. An invalid
/// expression is an error naming the task and the parser's message.
///
/// ```
/// let schedules = app::cron::schedules().unwrap();
/// let heartbeat = schedules.get("heartbeat_task").unwrap();
/// assert_eq!(heartbeat.expression(), "0 * * * *");
/// ```
pub fn schedules() -> Result<Schedules, ScheduleError> {
    let list: Vec<Result<Schedule, ScheduleError>> = vec![
        // hopper:cron-schedules:begin
        heartbeat_task::schedule(),
        // hopper:cron-schedules:end
    ];
    let mut schedules = Schedules::new();
    for schedule in list {
        schedules.add(schedule?)?;
    }
    Ok(schedules)
}

/// Registers every scheduled task in `registry`.
///
/// Fails if a task's type name is taken.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    // hopper:cron-registrations:begin
    registry.register(HeartbeatTask)?;
    // hopper:cron-registrations:end
    Ok(())
}
