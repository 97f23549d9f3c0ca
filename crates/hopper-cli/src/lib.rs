//! # hopper-cli
//!
//! The Hopper console: a kernel any application's `main` can mount to get
//! generators (`make:job`, `make:cron`, `make:seeder`), database commands
//! (`db:migrate`, `db:status`, `db:seed`), queue commands (`queue:work`,
//! `queue:status`, `queue:failed`, `queue:retry`, `queue:bulk`, …), `batch:status` and
//! `schedule:list`, plus the application's own commands.
//!
//! The application hands the kernel its job queue builder, seeders,
//! schedules and source folder; the kernel knows nothing else about it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let console = hopper_cli::Console::new("app console", || Ok(hopper::Hopper::builder()))
//!     .database_url(format!("sqlite://{}", dir.path().join("jobs.db").display()));
//! let mut out = hopper_cli::output::Output::buffer();
//! console.execute(["queue:status", "--json"], &mut out).await.unwrap();
//! let status: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
//! assert_eq!(status["queues"].as_array().unwrap().len(), 0);
//! # });
//! ```

#![warn(missing_docs)]

mod commands;
pub mod console;
pub mod duration;
pub mod generate;
pub mod output;
pub mod package;
pub mod seeder;

pub use async_trait::async_trait;
pub use console::{BoxError, Command, Console, ConsoleError, Context};

// The README's example compiles as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
