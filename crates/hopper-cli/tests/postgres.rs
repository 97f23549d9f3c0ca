//! The console on PostgreSQL (127.0.0.1:5432, user postgres, database
//! `test` for administration): each test makes its own database and drops it.

#[path = "../../hopper/tests/common/postgres.rs"]
#[allow(dead_code)]
mod pg;

use hopper::{Hopper, Job, JobContext, JobResult};
use hopper_cli::Console;
use hopper_cli::output::Output;
use serde_json::Value;

struct Ping;

impl Job for Ping {
    const TYPE: &'static str = "ping";
    type Payload = u32;
    async fn handle(&self, n: u32, _: JobContext) -> JobResult {
        if n == 0 {
            return Err(hopper::JobError::permanent("zero is not a ping"));
        }
        Ok(())
    }
}

async fn run(console: &Console, args: &[&str]) -> String {
    let mut out = Output::buffer();
    if let Err(err) = console.execute(args.iter().copied(), &mut out).await {
        panic!("{args:?} failed: {err}");
    }
    out.text()
}

async fn json(console: &Console, args: &[&str]) -> Value {
    let text = run(console, args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

#[tokio::test]
async fn queue_commands_work_on_postgres() {
    // Dropped with `db`, after the assertions too.
    let db = pg::database().await;
    let url = db.url.clone();
    let console = Console::new("app console", || Ok(Hopper::builder().register(Ping)?))
        .database_url(url)
        .worker_config(hopper::WorkerConfig::new(2).prune_interval(None));

    let status = json(&console, &["db:status", "--json"]).await;
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied_at"].is_null())
    );
    assert!(
        run(&console, &["db:migrate"])
            .await
            .contains("migrations applied")
    );

    run(&console, &["queue:dispatch", "ping", "1"]).await;
    run(&console, &["queue:dispatch", "ping", "0"]).await;
    run(&console, &["queue:work", "--stop-when-empty"]).await;
    let status = json(&console, &["queue:status", "--json"]).await;
    assert_eq!(status["queues"][0]["finished"], 1, "{status}");
    assert_eq!(status["queues"][0]["failed"], 1, "{status}");
    assert_eq!(status["finished_last_minute"], 1, "{status}");

    let failed = json(&console, &["queue:failed", "--json"]).await;
    assert_eq!(failed["jobs"][0]["last_error"], "zero is not a ping");
    assert!(failed["next"].is_null(), "{failed}");
    let text = run(&console, &["queue:retry", "--all", "--type", "ping"]).await;
    assert!(text.contains("Retried 1 failed jobs"), "{text}");

    run(&console, &["queue:pause", "default"]).await;
    run(&console, &["queue:work", "--stop-when-empty"]).await;
    let status = json(&console, &["queue:status", "--json"]).await;
    assert_eq!(status["queues"][0]["pending"], 1, "{status}");
    assert_eq!(status["queues"][0]["paused"], true, "{status}");
    run(&console, &["queue:resume", "default"]).await;
}
