//! # Hopper
//!
//! A database-backed background-job queue for Rust applications: typed jobs,
//! a worker pool with leases and crash recovery, retries with exponential
//! backoff, permanent errors and tracked job states, on an embedded SQLite
//! file by default.
//!
//! ```
//! use hopper::{Hopper, Job, JobContext, JobResult, WorkerConfig};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Welcome { to: String }
//!
//! struct WelcomeJob;
//!
//! impl Job for WelcomeJob {
//!     const TYPE: &'static str = "welcome";
//!     type Payload = Welcome;
//!     async fn handle(&self, payload: Welcome, _ctx: JobContext) -> JobResult {
//!         println!("welcome, {}", payload.to);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let hopper = Hopper::builder().register(WelcomeJob).unwrap().connect("sqlite::memory:").await.unwrap();
//! let workers = hopper.start(WorkerConfig::new(4)).unwrap();
//! let id = hopper.dispatch::<WelcomeJob>(Welcome { to: "ada@example.com".into() }).await.unwrap();
//! # let _ = id;
//! workers.stop().await.unwrap();
//! # });
//! ```
//!
//! ## Cargo features
//!
//! The default build is the lean one: the embedded SQLite store, with
//! neither sqlx nor an HTTP client compiled in. Turn on what you use:
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | the embedded SQLite store (`store::sqlite`, rusqlite with SQLite bundled) |
//! | `postgres` | no | the PostgreSQL store (`store::postgres`) and dispatching in an sqlx transaction, through sqlx |
//! | `mysql` | no | the MySQL and MariaDB store (`store::mysql`) and dispatching in an sqlx transaction, through sqlx |
//! | `webhook` | no | delivering [alert](alerts) changes to an `http://` webhook (hyper) |
//! | `webhook-tls` | no | `https://` webhooks too (rustls, trusting the Mozilla root certificates); turns on `webhook` |
//!
//! A database URL whose database the build leaves out is refused when
//! opened ([`StoreError::UnsupportedUrl`]), and so is a webhook without the
//! `webhook` feature ([`alerts::AlertError::WebhookUnavailable`]):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use hopper::StoreError;
//! use hopper::alerts::{AlertError, Webhook};
//! if !cfg!(feature = "mysql") {
//!     let refused = hopper::store::open("mysql://localhost/app").await;
//!     assert!(matches!(refused, Err(StoreError::UnsupportedUrl(_))));
//! }
//! if !cfg!(feature = "webhook") {
//!     let refused = Webhook::new("http://127.0.0.1:9000/alerts");
//!     assert!(matches!(refused, Err(AlertError::WebhookUnavailable { .. })));
//! }
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod alerts;
pub mod batch;
pub mod bulk;
pub mod client;
pub mod clock;
mod core;
pub mod dispatch;
pub mod events;
mod group_commit;
pub mod hooks;
pub mod job;
mod lease;
pub mod maintenance;
pub mod metrics;
mod panics;
pub mod registry;
mod results;
pub mod retry;
pub mod schedule;
mod service;
pub mod services;
pub mod signals;
pub mod state;
pub mod status;
pub mod store;
pub mod testing;
mod trace;
pub mod transaction;
pub mod worker;
pub mod workflow;

/// The attribute for implementing [`hooks::Hooks`] (re-exported `async_trait`).
pub use async_trait::async_trait;
pub use client::{Builder, DEFAULT_DATABASE_URL, Hopper, database_url};
pub use dispatch::{DispatchError, DispatchOptions};
pub use hooks::{HookResult, Hooks, JobEvent};
pub use job::{
    DEFAULT_QUEUE, Job, JobContext, JobError, JobId, JobResult, JobState,
    MAX_PROGRESS_MESSAGE_BYTES, OutputError, PROGRESS_INTERVAL, ProgressError,
};
pub use maintenance::Retention;
pub use registry::{JobDefaults, Registry, RegistryError};
pub use results::{JobOutcome, POLL_INTERVAL, RECHECK_INTERVAL, WaitError};
pub use state::State;
pub use store::{JobFilter, JobPage, JobRecord, QueueStats, StoreError, WorkerConcurrency};
pub use transaction::JobTransaction;
pub use worker::{Concurrency, MAINTENANCE_LEASE, WorkerConfig, WorkerError, WorkerPool};

// Every Rust block of the repository's README compiles (and runs, unless
// marked `no_run`) as a doctest of this crate, so the README cannot drift
// from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

// So is the crate's own README, the one crates.io shows.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
