//! The built-in commands.

mod batch;
mod bulk;
mod db;
mod list;
mod make;
mod queue;
mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::FromArgMatches;

use crate::console::{Command, ConsoleError};
use crate::output::{Cell, Style};

/// Every built-in command, in the order `list` shows groups.
pub(crate) fn built_in() -> Vec<Arc<dyn Command>> {
    vec![
        Arc::new(list::List),
        Arc::new(make::MakeJob),
        Arc::new(make::MakeCron),
        Arc::new(make::MakeSeeder),
        Arc::new(db::Migrate),
        Arc::new(db::Status),
        Arc::new(db::Seed),
        Arc::new(queue::Work),
        Arc::new(queue::Status),
        Arc::new(queue::Failed),
        Arc::new(queue::Show),
        Arc::new(queue::Retry),
        Arc::new(queue::Cancel),
        Arc::new(queue::SkipWait),
        Arc::new(bulk::Bulk),
        Arc::new(queue::Prune),
        Arc::new(queue::Dispatch),
        Arc::new(queue::Pause),
        Arc::new(queue::Resume),
        Arc::new(queue::Limit),
        Arc::new(queue::Flow),
        Arc::new(batch::Status),
        Arc::new(schedule::List),
        Arc::new(schedule::Run),
    ]
}

/// Reads a command's derived arguments out of its matches.
fn args<A: FromArgMatches>(matches: &clap::ArgMatches) -> Result<A, ConsoleError> {
    Ok(A::from_arg_matches(matches)?)
}

/// A usage error for `command` of `console`, in clap's words and layout.
fn usage(
    console: &crate::Console,
    command: clap::Command,
    message: impl std::fmt::Display,
) -> ConsoleError {
    let name = format!("{} {}", console.name(), command.get_name());
    let mut command = command.bin_name(name);
    ConsoleError::Usage(command.error(clap::error::ErrorKind::MissingRequiredArgument, message))
}

/// A time as `2026-11-29 13:50:01`, UTC.
fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// How long ago `at` was, before `now`.
fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let elapsed = (now - at).to_std().unwrap_or_default();
    crate::duration::human(elapsed)
}

/// The colour a job state is shown in.
fn state_style(state: hopper::JobState) -> Style {
    match state {
        hopper::JobState::Pending => Style::Yellow,
        hopper::JobState::Started => Style::Cyan,
        hopper::JobState::Finished => Style::Green,
        hopper::JobState::Failed => Style::Red,
        hopper::JobState::Cancelled => Style::Dim,
    }
}

/// A count cell: a plain 0, or `n` in `style`.
fn count_cell(n: u64, style: Style) -> Cell {
    if n == 0 {
        Cell::from("0")
    } else {
        Cell::styled(n.to_string(), style)
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut, on one line.
fn clip(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Shows a path relative to the working directory when it is under it.
fn shown(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}
