//! A worker process on its own: it runs the jobs that other processes (web
//! servers, the console, cron) dispatch into the same database, until
//! Ctrl-C or SIGTERM, then lets its running jobs finish and exits.
//!
//! ```text
//! DATABASE_URL=sqlite://storage/hopper.db cargo run -p hopper --example worker
//! ```
//!
//! Started next to the `axum_dispatch` example (same folder, so the same
//! SQLite file), it shares that example's `welcome` jobs with its workers.
//! On PostgreSQL or MySQL (`--features postgres`, a server URL in
//! `DATABASE_URL`), any number of these can run on any number of hosts.

use hopper::{Hopper, Job, JobContext, JobError, JobResult, WorkerConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Welcome {
    email: String,
}

/// The job the `axum_dispatch` example dispatches: same type name, same payload.
struct WelcomeJob;

impl Job for WelcomeJob {
    const TYPE: &'static str = "welcome";
    type Payload = Welcome;

    async fn handle(&self, welcome: Welcome, ctx: JobContext) -> JobResult {
        if !welcome.email.contains('@') {
            // Retrying would not help: fail for good.
            return Err(JobError::permanent(format!(
                "not an address: {}",
                welcome.email
            )));
        }
        println!("job {}: welcome email sent to {}", ctx.id(), welcome.email);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = hopper::database_url();
    let hopper = Hopper::builder()
        .register(WelcomeJob)?
        .connect(&url)
        .await?;

    // Four jobs at a time from the `default` queue.
    let workers = hopper.start(WorkerConfig::new(4))?;
    println!("working on {url} (Ctrl-C to stop)");

    let handed_back = workers.run_until_signal().await?;
    println!("stopped; {handed_back} unfinished jobs handed back");
    Ok(())
}
