//! A web application that dispatches a job from a request handler, with the
//! workers that run it in the same process. It needs no database server and
//! no configuration: the jobs live in a SQLite file, `storage/hopper.db`
//! (or wherever `DATABASE_URL` points).
//!
//! ```text
//! cargo run -p hopper --example axum_dispatch
//! curl -i localhost:3000/signups -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use hopper::{Hopper, Job, JobContext, JobResult, WorkerConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Welcome {
    email: String,
}

/// Sends the welcome email (here, prints it).
struct WelcomeJob;

impl Job for WelcomeJob {
    const TYPE: &'static str = "welcome";
    type Payload = Welcome;

    async fn handle(&self, welcome: Welcome, _ctx: JobContext) -> JobResult {
        println!("welcome email sent to {}", welcome.email);
        Ok(())
    }
}

/// `POST /signups`: answers at once with the job's id; the email is sent
/// in the background.
async fn signup(
    State(hopper): State<Hopper>,
    Json(welcome): Json<Welcome>,
) -> Result<(StatusCode, String), (StatusCode, String)> {
    match hopper.dispatch::<WelcomeJob>(welcome).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, format!("job {id} dispatched\n"))),
        Err(err) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"))),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // First, so that a Ctrl-C while the app starts is not lost.
    let signals = hopper::signals::Signals::install()?;

    let hopper = Hopper::builder()
        .register(WelcomeJob)?
        .connect(&hopper::database_url())
        .await?;
    let workers = hopper.start(WorkerConfig::new(4))?;

    let app = Router::new()
        .route("/signups", post(signup))
        .with_state(hopper);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 (Ctrl-C to stop)");
    axum::serve(listener, app)
        .with_graceful_shutdown(signals.shutdown())
        .await?;

    // Let the jobs that are running finish; pending ones wait in the file
    // for the next start.
    workers.stop().await?;
    Ok(())
}
