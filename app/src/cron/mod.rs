//! The application's scheduled tasks, one file per task.
//!
//! A task is a job type with a cron expression, [`schedules`] lists them for
//! a scheduler, and [`register`] registers them like any other job, so they
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

use hopper::{Job, Registry, RegistryError};

/// Every scheduled task: its job type and cron expression.
///
/// ```
/// assert!(app::cron::schedules().contains(&("heartbeat_task", "0 * * * *")));
/// ```
pub fn schedules() -> Vec<(&'static str, &'static str)> {
    vec![
        // hopper:cron-schedules:begin
        (HeartbeatTask::TYPE, heartbeat_task::SCHEDULE),
        // hopper:cron-schedules:end
    ]
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
