//! Every console command against a real SQLite file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hopper::clock::ManualClock;
use hopper::{Hopper, Job, JobContext, JobError, JobResult};
use hopper_cli::output::Output;
use hopper_cli::seeder::{SeedContext, SeedError, Seeder};
use hopper_cli::{Console, ConsoleError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize, Deserialize)]
struct Mail {
    to: String,
}

/// Finishes, unless the address is `fail@…`, which fails for good.
struct MailJob;

impl Job for MailJob {
    const TYPE: &'static str = "mail";
    type Payload = Mail;
    async fn handle(&self, mail: Mail, _: JobContext) -> JobResult {
        if mail.to.starts_with("fail@") {
            return Err(JobError::permanent(format!("mailbox {} is gone", mail.to)));
        }
        Ok(())
    }
}

/// Always finishes; runs on the `reports` queue.
struct ReportJob;

impl Job for ReportJob {
    const TYPE: &'static str = "report";
    const QUEUE: &'static str = "reports";
    type Payload = ();
    async fn handle(&self, (): (), ctx: JobContext) -> JobResult {
        ctx.progress(100, "all pages").await?;
        ctx.set_output(&serde_json::json!({"pages": 3}))?;
        Ok(())
    }
}

struct MailSeeder;

#[hopper_cli::async_trait]
impl Seeder for MailSeeder {
    fn name(&self) -> &'static str {
        "mails"
    }
    async fn run(&self, ctx: &SeedContext) -> Result<(), SeedError> {
        ctx.progress().set_length(3);
        for to in ["a@x.org", "b@x.org", "fail@x.org"] {
            ctx.hopper()
                .dispatch::<MailJob>(Mail { to: to.into() })
                .await?;
            ctx.progress().inc(1);
        }
        Ok(())
    }
}

struct BrokenSeeder;

#[hopper_cli::async_trait]
impl Seeder for BrokenSeeder {
    fn name(&self) -> &'static str {
        "broken"
    }
    async fn run(&self, _: &SeedContext) -> Result<(), SeedError> {
        Err("the fixtures file is missing".into())
    }
}

/// A console over a fresh database file, with a clock the test moves.
struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    console: Console,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let builder_clock = clock.clone();
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let console = Console::new("app console", move || {
            Ok(Hopper::builder()
                .register(MailJob)?
                .register(ReportJob)?
                .clock(builder_clock.clone())
                .max_payload_bytes(1024))
        })
        .database_url(url)
        .worker_config(hopper::WorkerConfig::new(2).prune_interval(None))
        .source_dir(dir.path().join("src"))
        .seeders([
            Box::new(MailSeeder) as Box<dyn Seeder>,
            Box::new(BrokenSeeder),
        ])
        .schedules(schedules());
        Self {
            dir,
            clock,
            console,
        }
    }

    async fn run(&self, args: &[&str]) -> Result<String, ConsoleError> {
        let mut out = Output::buffer();
        self.console.execute(args.iter().copied(), &mut out).await?;
        Ok(out.text())
    }

    async fn ok(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(text) => text,
            Err(err) => panic!("{args:?} failed: {err}"),
        }
    }

    async fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    async fn err(&self, args: &[&str]) -> ConsoleError {
        match self.run(args).await {
            Ok(text) => panic!("{args:?} succeeded: {text}"),
            Err(err) => err,
        }
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
}

fn state_count(status: &Value, queue: &str, state: &str) -> u64 {
    status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queue)
        .map_or(0, |q| q[state].as_u64().unwrap())
}

#[tokio::test]
async fn list_shows_every_command_grouped() {
    let fx = Fixture::new();
    let text = fx.ok(&["list"]).await;
    for group in ["make", "db", "queue", "batch", "schedule"] {
        assert!(text.contains(&format!("\n{group}\n")), "{text}");
    }
    let make_job = text.lines().find(|l| l.contains("make:job")).unwrap();
    assert!(make_job.contains("Create a background job"), "{make_job}");
    // No command: the list.
    assert_eq!(fx.ok(&[]).await, text);

    let json = fx.json(&["list", "queue", "--json"]).await;
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"queue:retry") && names.iter().all(|n| n.starts_with("queue:")));
    assert!(
        fx.err(&["list", "nothing"])
            .await
            .to_string()
            .contains("no command group")
    );
}

#[tokio::test]
async fn unknown_commands_and_wrong_arguments_are_usage_errors() {
    let fx = Fixture::new();
    let err = fx.err(&["queue:retyr", "4"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("queue:retry"), "{err}");

    let err = fx.err(&["queue:show"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("<ID>"), "{err}");

    let err = fx.err(&["queue:show", "four"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("four"), "{err}");

    let err = fx.err(&["queue:prune", "--older-than", "soon"]).await;
    assert!(err.to_string().contains("like 500ms, 30s"), "{err}");

    let err = fx.err(&["queue:retry"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--all"), "{err}");
    assert!(err.to_string().contains("app console queue:retry"), "{err}");

    // --help is output, not an error.
    let help = fx.ok(&["make:job", "--help"]).await;
    assert!(help.contains("--retry-delay"), "{help}");
}

#[tokio::test]
async fn db_status_migrate_and_status_again() {
    let fx = Fixture::new();
    let before = fx.json(&["db:status", "--json"]).await;
    let before = before.as_array().unwrap();
    assert!(!before.is_empty());
    assert!(before.iter().all(|m| m["applied_at"].is_null()));
    assert!(
        fx.ok(&["db:status"])
            .await
            .contains("pending: run db:migrate")
    );

    let migrated = fx.ok(&["db:migrate"]).await;
    assert!(
        migrated.contains(&format!("{} migrations applied", before.len())),
        "{migrated}"
    );
    let after = fx.json(&["db:status", "--json"]).await;
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied_at"].is_string())
    );
    assert!(fx.ok(&["db:migrate"]).await.contains("Nothing to migrate"));
}

#[tokio::test]
async fn seeders_run_by_name_and_failures_exit_non_zero() {
    let fx = Fixture::new();
    let text = fx.ok(&["db:seed", "mails"]).await;
    assert!(text.contains("Seeded mails"), "{text}");
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "pending"), 3);

    let err = fx.err(&["db:seed", "mail"]).await;
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("did you mean mails?"), "{err}");

    // All seeders, in order: mails runs again, then broken fails.
    let err = fx.err(&["db:seed"]).await;
    assert!(
        err.to_string()
            .contains("seeder broken failed: the fixtures file is missing"),
        "{err}"
    );
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "pending"), 6);
}

#[tokio::test]
async fn dispatch_checks_the_payload_and_work_runs_every_queue() {
    let fx = Fixture::new();
    let out = fx
        .json(&["queue:dispatch", "mail", r#"{"to":"a@x.org"}"#, "--json"])
        .await;
    assert!(out["id"].as_i64().unwrap() > 0);
    fx.ok(&["queue:dispatch", "report"]).await;

    let err = fx.err(&["queue:dispatch", "mail", r#"{"to": 5}"#]).await;
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().contains("invalid type: integer `5`"),
        "{err}"
    );
    let err = fx.err(&["queue:dispatch", "mail", "{not json"]).await;
    assert!(err.to_string().contains("not JSON"), "{err}");
    let err = fx.err(&["queue:dispatch", "mial", "{}"]).await;
    assert!(err.to_string().contains("did you mean mail?"), "{err}");
    let big = format!(r#"{{"to":"{}"}}"#, "x".repeat(2000));
    assert!(
        fx.err(&["queue:dispatch", "mail", &big])
            .await
            .to_string()
            .contains("1024")
    );

    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "pending"), 1);
    assert_eq!(state_count(&status, "reports", "pending"), 1);
    assert_eq!(status["finished_last_minute"], 0);

    // Without --queue, the worker runs the default queue and every queue a job names.
    let text = fx
        .ok(&["queue:work", "--stop-when-empty", "--workers", "3"])
        .await;
    assert!(
        text.contains("default (3 workers), reports (3 workers)"),
        "{text}"
    );
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "finished"), 1);
    assert_eq!(state_count(&status, "reports", "finished"), 1);
    assert_eq!(status["finished_last_minute"], 2);
    let table = fx.ok(&["queue:status"]).await;
    assert!(
        table.contains("QUEUE") && table.contains("reports") && !table.contains("TYPE"),
        "{table}"
    );
    assert!(
        status.get("types").is_none(),
        "only with --by-type: {status}"
    );
    let by_type = fx.json(&["queue:status", "--by-type", "--json"]).await;
    assert_eq!(
        by_type["types"],
        serde_json::json!([
            {"type": "mail", "pending": 0, "started": 0, "finished": 1, "failed": 0, "cancelled": 0},
            {"type": "report", "pending": 0, "started": 0, "finished": 1, "failed": 0, "cancelled": 0},
        ]),
        "{by_type}"
    );
    assert_eq!(by_type["queues"], status["queues"]);
    let table = fx.ok(&["queue:status", "--by-type"]).await;
    let report_row = table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&"report"));
    assert_eq!(
        report_row,
        Some(vec!["report", "0", "0", "1", "0", "0"]),
        "{table}"
    );
    assert!(
        table.contains("Last minute: 2 finished, 0 failed."),
        "{table}"
    );
}

#[tokio::test]
async fn only_the_named_queue_is_worked() {
    let fx = Fixture::new();
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"a@x.org"}"#])
        .await;
    fx.ok(&["queue:dispatch", "report"]).await;
    fx.ok(&["queue:work", "--queue", "reports", "--stop-when-empty"])
        .await;
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "reports", "finished"), 1);
    assert_eq!(state_count(&status, "default", "pending"), 1);
}

#[tokio::test]
async fn a_finished_job_is_shown_with_its_output_and_progress() {
    let fx = Fixture::new();
    fx.ok(&["queue:dispatch", "report", "null"]).await;
    fx.ok(&["queue:work", "--queue", "reports", "--stop-when-empty"])
        .await;
    // The only job of a new database.
    let id = "1".to_owned();
    let shown = fx.json(&["queue:show", &id, "--json"]).await;
    assert_eq!(shown["state"], "finished", "{shown}");
    assert_eq!(shown["output"], serde_json::json!({"pages": 3}), "{shown}");
    assert_eq!(shown["progress"]["percent"], 100, "{shown}");
    let text = fx.ok(&["queue:show", &id]).await;
    assert!(text.contains("100% all pages"), "{text}");
    assert!(
        text.contains("output") && text.contains("\"pages\": 3"),
        "{text}"
    );
}

#[tokio::test]
async fn failed_jobs_are_listed_shown_and_retried() {
    let fx = Fixture::new();
    fx.ok(&["db:seed", "mails"]).await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;

    let page = fx.json(&["queue:failed", "--json"]).await;
    assert!(page["next"].is_null(), "{page}");
    let failed = page["jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["last_error"], "mailbox fail@x.org is gone");
    let id = failed[0]["id"].as_i64().unwrap().to_string();
    let table = fx.ok(&["queue:failed"]).await;
    assert!(
        table.contains("LAST ERROR") && table.contains("mailbox fail@x.org is gone"),
        "{table}"
    );

    let shown = fx.json(&["queue:show", &id, "--json"]).await;
    assert_eq!(shown["payload"]["to"], "fail@x.org");
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["errors"][0]["attempt"], 1);
    assert!(shown["created_at"].is_string() && shown["finished_at"].is_string());
    let text = fx.ok(&["queue:show", &id]).await;
    assert!(
        text.contains("\"to\": \"fail@x.org\"") && text.contains("ATTEMPT"),
        "{text}"
    );
    assert!(
        fx.err(&["queue:show", "999"])
            .await
            .to_string()
            .contains("no job 999")
    );

    fx.ok(&["queue:retry", &id]).await;
    let shown = fx.json(&["queue:show", &id, "--json"]).await;
    assert_eq!(shown["state"], "pending");
    let err = fx.err(&["queue:retry", &id]).await;
    assert!(
        err.to_string()
            .contains("is pending: only failed or cancelled"),
        "{err}"
    );

    // It fails again; bulk retry by type brings it back.
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    assert!(
        fx.ok(&["queue:retry", "--all", "--type", "report"])
            .await
            .contains("Retried 0")
    );
    let text = fx.ok(&["queue:retry", "--all", "--type", "mail"]).await;
    assert!(
        text.contains("Retried 1 failed jobs of type mail."),
        "{text}"
    );
    let err = fx.err(&["queue:retry", "--type", "mail"]).await;
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn bulk_retry_walks_every_page() {
    let fx = Fixture::new();
    let hopper = Hopper::builder()
        .register(MailJob)
        .unwrap()
        .clock(fx.clock.clone())
        .connect(&format!(
            "sqlite://{}",
            fx.dir.path().join("jobs.db").display()
        ))
        .await
        .unwrap();
    let mails = (0..1_200).map(|i| Mail {
        to: format!("fail@{i}.org"),
    });
    hopper
        .dispatch_many::<MailJob>(mails, Default::default())
        .await
        .unwrap();
    fx.ok(&["queue:work", "--stop-when-empty", "--workers", "10"])
        .await;
    let text = fx.ok(&["queue:retry", "--all"]).await;
    assert!(text.contains("Retried 1200 failed jobs."), "{text}");
}

#[tokio::test]
async fn cancel_only_pending_and_running_jobs() {
    let fx = Fixture::new();
    let id = fx.json(&["queue:dispatch", "report", "--json"]).await["id"].to_string();
    let text = fx.ok(&["queue:cancel", &id]).await;
    assert!(text.contains("cancelled"), "{text}");
    let err = fx.err(&["queue:cancel", &id]).await;
    assert!(
        err.to_string()
            .contains("is cancelled: only pending and running jobs"),
        "{err}"
    );
    assert!(
        fx.err(&["queue:cancel", "404"])
            .await
            .to_string()
            .contains("no job 404")
    );
    // A cancelled job can be retried.
    fx.ok(&["queue:retry", &id]).await;
}

#[tokio::test]
async fn skip_wait_releases_only_a_job_that_waits() {
    let fx = Fixture::new();
    // No worker runs: the second job of the sequence waits on the first.
    let hopper = Hopper::builder()
        .register(MailJob)
        .unwrap()
        .clock(fx.clock.clone())
        .connect(&format!(
            "sqlite://{}",
            fx.dir.path().join("jobs.db").display()
        ))
        .await
        .unwrap();
    let in_line = hopper::DispatchOptions::new().sequence("k");
    let first = hopper
        .dispatch_with::<MailJob>(
            Mail {
                to: "a@x.org".into(),
            },
            in_line.clone(),
        )
        .await
        .unwrap();
    let second = hopper
        .dispatch_with::<MailJob>(
            Mail {
                to: "b@x.org".into(),
            },
            in_line,
        )
        .await
        .unwrap();
    assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 1);

    let text = fx.ok(&["queue:skip-wait", &second.to_string()]).await;
    assert_eq!(
        text,
        format!("Job {second} (mail) released: it no longer waits and is due now.\n")
    );
    let job = hopper.job(second).await.unwrap().unwrap();
    assert_eq!((job.state, job.waiting_on), (hopper::JobState::Pending, 0));

    for id in [second, first] {
        let err = fx.err(&["queue:skip-wait", &id.to_string()]).await;
        assert!(
            err.to_string().contains(&format!(
                "job {id} is pending and waits on no other job: only pending jobs that wait on other jobs can be released"
            )),
            "{err}"
        );
    }
    assert!(
        fx.err(&["queue:skip-wait", "404"])
            .await
            .to_string()
            .contains("no job 404")
    );
    let err = fx.err(&["queue:skip-wait", "four"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("four"), "{err}");
    let err = fx.err(&["queue:skip-wait"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("<ID>"), "{err}");

    let listed = fx.json(&["list", "queue", "--json"]).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "queue:skip-wait"),
        "{listed}"
    );
}

#[tokio::test]
async fn prune_deletes_jobs_older_than_asked() {
    let fx = Fixture::new();
    fx.ok(&["queue:dispatch", "report"]).await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    assert!(
        fx.ok(&["queue:prune", "--older-than", "1h"])
            .await
            .contains("Deleted 0 jobs")
    );
    fx.clock.advance(Duration::from_secs(2 * 3600));
    let text = fx.ok(&["queue:prune", "--older-than", "1h"]).await;
    assert!(
        text.contains("Deleted 1 jobs ended more than 1h ago."),
        "{text}"
    );
    assert!(
        fx.ok(&["queue:prune"])
            .await
            .contains("Deleted 0 jobs past the default retention")
    );
}

#[tokio::test]
async fn batch_status_shows_a_batchs_counts_and_callbacks() {
    let fx = Fixture::new();
    let hopper = Hopper::builder()
        .register(MailJob)
        .unwrap()
        .register(ReportJob)
        .unwrap()
        .clock(fx.clock.clone())
        .connect(&format!(
            "sqlite://{}",
            fx.dir.path().join("jobs.db").display()
        ))
        .await
        .unwrap();
    let mails = ["a@x.org", "b@x.org", "fail@x.org"].map(|to| Mail { to: to.into() });
    let batch = hopper
        .batch("import 42")
        .on_failure::<ReportJob>(())
        .unwrap()
        .on_success::<ReportJob>(())
        .unwrap()
        .dispatch_many::<MailJob>(mails, Default::default())
        .await
        .unwrap();
    let id = batch.id.to_string();

    let shown = fx.json(&["batch:status", &id, "--json"]).await;
    assert_eq!(
        (
            &shown["id"],
            &shown["name"],
            &shown["sealed"],
            &shown["complete"]
        ),
        (
            &serde_json::json!(batch.id),
            &serde_json::json!("import 42"),
            &serde_json::json!(true),
            &serde_json::json!(false)
        ),
        "{shown}"
    );
    assert_eq!(
        shown["counts"],
        serde_json::json!({"total": 3, "pending": 3, "finished": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(
        shown["callbacks"],
        serde_json::json!([
            {"event": "success", "job_type": "report", "job_id": null},
            {"event": "failure", "job_type": "report", "job_id": null},
        ]),
        "{shown}"
    );
    let text = fx.ok(&["batch:status", &id]).await;
    assert!(
        text.contains("import 42") && text.contains("0 of 3 ended (0%)"),
        "{text}"
    );

    // The pool fires the failure callback as it stops, at the latest.
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    let shown = fx.json(&["batch:status", &id, "--json"]).await;
    assert_eq!(
        shown["counts"],
        serde_json::json!({"total": 3, "pending": 0, "finished": 2, "failed": 1, "cancelled": 0})
    );
    assert_eq!(shown["complete"], true, "{shown}");
    let callbacks = shown["callbacks"].as_array().unwrap();
    let fired = |event: &str| {
        callbacks
            .iter()
            .find(|c| c["event"] == event)
            .map(|c| c["job_id"].clone())
            .unwrap()
    };
    assert!(fired("success").is_null(), "{shown}");
    let failure_job = fired("failure").as_i64().unwrap();
    let text = fx.ok(&["batch:status", &id]).await;
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let row = |first: &str| rows.iter().find(|cells| cells.first() == Some(&first));
    assert_eq!(
        row("TOTAL"),
        Some(&vec!["TOTAL", "PENDING", "FINISHED", "FAILED", "CANCELLED"]),
        "{text}"
    );
    assert!(rows.contains(&vec!["3", "0", "2", "1", "0"]), "{text}");
    assert_eq!(row("complete"), Some(&vec!["complete", "yes"]), "{text}");
    assert_eq!(
        row("failure"),
        Some(&vec!["failure", "report", failure_job.to_string().as_str()]),
        "{text}"
    );
    assert_eq!(
        row("success"),
        Some(&vec!["success", "report", "not", "fired"]),
        "{text}"
    );

    let err = fx.err(&["batch:status", "404"]).await;
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.to_string(), "no batch 404");
    let err = fx.err(&["batch:status", "four"]).await;
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("four"), "{err}");
}

#[tokio::test]
async fn a_paused_queue_is_left_alone_by_workers() {
    let fx = Fixture::new();
    fx.ok(&["queue:pause", "default"]).await;
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"a@x.org"}"#])
        .await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "pending"), 1);
    assert_eq!(status["queues"][0]["paused"], true);
    assert!(fx.ok(&["queue:status"]).await.contains("paused"));

    fx.ok(&["queue:resume", "default"]).await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "default", "finished"), 1);
}

#[tokio::test]
async fn a_queue_limit_is_set_lifted_and_checked() {
    let fx = Fixture::new();
    let set = fx.ok(&["queue:limit", "default", "2"]).await;
    assert!(set.contains("at most 2 jobs run at once"), "{set}");
    let lifted = fx.ok(&["queue:limit", "default", "none"]).await;
    assert!(lifted.contains("no limit"), "{lifted}");
    for bad in ["0", "many", "1.5"] {
        let err = fx.err(&["queue:limit", "default", bad]).await.to_string();
        assert!(
            err.contains("queue:pause") || err.contains("a number of jobs"),
            "{bad}: {err}"
        );
    }
    fx.ok(&["queue:limit", "default", "1"]).await;
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"a@x.org"}"#])
        .await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(
        state_count(&status, "default", "finished"),
        1,
        "a limit is not a pause"
    );
}

fn schedules() -> hopper::schedule::Schedules {
    let mut schedules = hopper::schedule::Schedules::new();
    let nightly = hopper::schedule::Schedule::new::<ReportJob>("nightly_report", "0 0 3 * * *", ())
        .unwrap()
        .time_zone("Europe/Berlin")
        .unwrap();
    schedules.add(nightly).unwrap();
    schedules
}

#[tokio::test]
async fn schedules_are_listed_with_their_next_runs_and_run_on_demand() {
    let fx = Fixture::new();
    let list = fx.json(&["schedule:list", "--json"]).await;
    assert_eq!(list[0]["name"], "nightly_report");
    assert_eq!(list[0]["zone"], "Europe/Berlin");
    assert_eq!(list[0]["next"].as_array().unwrap().len(), 3);
    assert!(list[0]["last_job"].is_null());
    let text = fx.ok(&["schedule:list"]).await;
    assert!(
        text.contains("nightly_report") && text.contains("never"),
        "{text}"
    );

    let ran = fx.ok(&["schedule:run", "nightly_report"]).await;
    assert!(ran.contains("Dispatched job"), "{ran}");
    let failed = fx.err(&["schedule:run", "weekly"]).await;
    assert!(
        failed.to_string().contains("no schedule named \"weekly\""),
        "{failed}"
    );
}

#[tokio::test]
async fn schedule_list_shows_the_latest_runs_and_their_outcomes() {
    let fx = Fixture::new();
    let list = fx.json(&["schedule:list", "--json"]).await;
    assert_eq!(list[0]["recent"], serde_json::json!([]));
    let text = fx.ok(&["schedule:list"]).await;
    let row = text.lines().find(|l| l.contains("nightly_report")).unwrap();
    assert!(row.trim_end().ends_with(" -"), "no runs yet: {text}");

    let hopper = Hopper::builder()
        .register(ReportJob)
        .unwrap()
        .clock(fx.clock.clone())
        .connect(&format!(
            "sqlite://{}",
            fx.dir.path().join("jobs.db").display()
        ))
        .await
        .unwrap();
    let schedules = schedules();
    // The first look only takes the latest tick (it is late); each later
    // look a day on runs the new one. 25 hours: a tick even across a
    // daylight saving change in Berlin.
    schedules.run_due(&hopper).await.unwrap();
    let tick = || async {
        fx.clock.advance(Duration::from_secs(25 * 3600));
        let fired = schedules.run_due(&hopper).await.unwrap();
        match fired[0].tick {
            hopper::store::Tick::Dispatched(id) => (fired[0].fire_at, id),
            other => panic!("the tick was not dispatched: {other:?}"),
        }
    };
    let (finished_at, finished) = tick().await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    let (_, deleted) = tick().await;
    assert!(hopper.delete(deleted).await.unwrap());
    let (_, pending) = tick().await;

    let list = fx.json(&["schedule:list", "--json"]).await;
    let recent = list[0]["recent"].as_array().unwrap();
    assert_eq!(recent[0]["job_id"], pending, "newest first: {recent:?}");
    assert_eq!(recent[0]["state"], "pending");
    assert_eq!(recent[1]["job_id"], deleted);
    assert!(recent[1]["state"].is_null(), "a deleted job's run is gone");
    assert_eq!(recent[2]["job_id"], finished);
    assert_eq!(recent[2]["state"], "finished");
    assert_eq!(
        recent[2]["fire_at"],
        serde_json::to_value(finished_at).unwrap()
    );

    let text = fx.ok(&["schedule:list"]).await;
    let row = text.lines().find(|l| l.contains("nightly_report")).unwrap();
    assert!(
        row.contains(&format!("pending (job {pending})")),
        "the last job: {text}"
    );
    assert!(row.contains("pending gone ok"), "the recent runs: {text}");
    let header = text.lines().next().unwrap();
    assert!(header.contains("RECENT (NEWEST FIRST)"), "{text}");
    let help = fx.ok(&["schedule:list", "--help"]).await;
    assert!(
        help.contains("gone: the job was pruned or deleted"),
        "{help}"
    );
}

fn write_modules(src: &Path) {
    for (folder, text) in [
        ("jobs", hopper_cli::generate::EMPTY_JOBS_MODULE),
        ("cron", hopper_cli::generate::EMPTY_CRON_MODULE),
        ("seeders", hopper_cli::generate::EMPTY_SEEDERS_MODULE),
    ] {
        std::fs::create_dir_all(src.join(folder)).unwrap();
        std::fs::write(src.join(folder).join("mod.rs"), text).unwrap();
    }
}

#[tokio::test]
async fn make_job_writes_and_registers_in_order() {
    let fx = Fixture::new();
    write_modules(&fx.src());
    let text = fx
        .ok(&[
            "make:job",
            "ProcessPaymentJob",
            "--attempts",
            "5",
            "--retry-delay",
            "2m",
            "--queue",
            "payments",
        ])
        .await;
    assert!(
        text.contains("process_payment_job.rs (job type process_payment_job)"),
        "{text}"
    );
    fx.ok(&["make:job", "EmailJob"]).await;
    let job = std::fs::read_to_string(fx.src().join("jobs/process_payment_job.rs")).unwrap();
    for part in [
        "pub struct ProcessPaymentJob;",
        "pub struct ProcessPaymentPayload {",
        "const TYPE: &'static str = \"process_payment_job\";",
        "const QUEUE: &'static str = \"payments\";",
        "const MAX_ATTEMPTS: u32 = 5;",
        "Duration::from_secs(120)",
        "async fn handle_succeeds()",
    ] {
        assert!(job.contains(part), "missing {part} in\n{job}");
    }
    let module = std::fs::read_to_string(fx.src().join("jobs/mod.rs")).unwrap();
    let order = |needle: &str| module.find(needle).unwrap();
    assert!(order("pub mod email_job;") < order("pub mod process_payment_job;"));
    assert!(
        order("pub use email_job::EmailJob;")
            < order("pub use process_payment_job::ProcessPaymentJob;")
    );
    assert!(
        order("registry.register(EmailJob)?;") < order("registry.register(ProcessPaymentJob)?;")
    );

    // An existing file is refused and left alone, unless --force.
    std::fs::write(fx.src().join("jobs/email_job.rs"), "// edited\n").unwrap();
    let err = fx.err(&["make:job", "EmailJob"]).await;
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().contains("already exists; pass --force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(fx.src().join("jobs/email_job.rs")).unwrap(),
        "// edited\n"
    );
    fx.ok(&["make:job", "EmailJob", "--force"]).await;
    let module_again = std::fs::read_to_string(fx.src().join("jobs/mod.rs")).unwrap();
    assert_eq!(module_again, module, "registered once only");
}

#[tokio::test]
async fn make_job_refuses_bad_input_and_writes_nothing() {
    let fx = Fixture::new();
    write_modules(&fx.src());
    for (args, message) in [
        (vec!["make:job", "Process-Payment"], "'-' is not allowed"),
        (vec!["make:job", "process_payment"], "uppercase letter"),
        (vec!["make:job", "processPayment"], "uppercase letter"),
        (vec!["make:job", "Type"], "reserved in Rust"),
        (
            vec!["make:job", "PingJob", "--queue", "a b"],
            "invalid queue name",
        ),
    ] {
        let err = fx.err(&args).await;
        assert_eq!(err.exit_code(), 1, "{args:?}");
        assert!(err.to_string().contains(message), "{args:?}: {err}");
    }
    let err = fx.err(&["make:job", "PingJob", "--attempts", "0"]).await;
    assert_eq!(err.exit_code(), 2);
    let err = fx.err(&["make:job"]).await;
    assert!(err.to_string().contains("needs the job's NAME"), "{err}");

    // A job type another job already has.
    std::fs::write(
        fx.src().join("jobs/other.rs"),
        "const TYPE: &'static str = \"ping_job\";",
    )
    .unwrap();
    let err = fx.err(&["make:job", "PingJob"]).await;
    assert!(
        err.to_string()
            .contains("job type \"ping_job\" is already used"),
        "{err}"
    );

    // A module without its blocks: nothing is written.
    std::fs::write(fx.src().join("jobs/mod.rs"), "// no blocks here\n").unwrap();
    let err = fx.err(&["make:job", "LonelyJob"]).await;
    assert!(
        err.to_string().contains("hopper:job-modules:begin"),
        "{err}"
    );
    assert!(!fx.src().join("jobs/lonely_job.rs").exists());

    // No module at all: the message says where it looked.
    let err = fx
        .err(&["make:job", "LonelyJob", "--source", "/nonexistent/src"])
        .await;
    assert!(
        err.to_string()
            .contains("/nonexistent/src/jobs/mod.rs not found"),
        "{err}"
    );

    let files: Vec<_> = std::fs::read_dir(fx.src().join("jobs")).unwrap().collect();
    assert_eq!(files.len(), 2, "only mod.rs and other.rs: {files:?}");
}

#[tokio::test]
async fn make_cron_and_make_seeder() {
    let fx = Fixture::new();
    write_modules(&fx.src());
    fx.ok(&["make:cron", "PingTask", "--schedule", "*/5 * * * *"])
        .await;
    let task = std::fs::read_to_string(fx.src().join("cron/ping_task.rs")).unwrap();
    assert!(
        task.contains("pub const SCHEDULE: &str = \"*/5 * * * *\";"),
        "{task}"
    );
    assert!(
        task.contains("const TYPE: &'static str = \"ping_task\";"),
        "{task}"
    );
    let module = std::fs::read_to_string(fx.src().join("cron/mod.rs")).unwrap();
    assert!(
        module.contains("        ping_task::schedule(),\n"),
        "{module}"
    );
    assert!(module.contains("registry.register(PingTask)?;"), "{module}");

    let err = fx
        .err(&["make:cron", "BadTask", "--schedule", "61 * * * *"])
        .await;
    assert!(
        err.to_string().contains("invalid schedule \"61 * * * *\""),
        "{err}"
    );
    assert!(!fx.src().join("cron/bad_task.rs").exists());

    fx.ok(&["make:seeder", "UserSeeder"]).await;
    let seeder = std::fs::read_to_string(fx.src().join("seeders/user_seeder.rs")).unwrap();
    assert!(seeder.contains("\"user_seeder\""), "{seeder}");
    let module = std::fs::read_to_string(fx.src().join("seeders/mod.rs")).unwrap();
    assert!(module.contains("Box::new(UserSeeder),"), "{module}");
}

/// `make:cron` takes exactly the expressions the scheduler takes: one the
/// scheduler accepts is written as given, one it refuses is refused with
/// the scheduler's own message and writes nothing.
#[tokio::test]
async fn make_cron_accepts_exactly_what_the_scheduler_accepts() {
    let fx = Fixture::new();
    write_modules(&fx.src());
    let expressions = [
        "@every 30s",
        "@every 1h30m",
        "@daily",
        "@hourly",
        "0 0 3 * * *",
        "*/15 * * * *",
        "30 2 * * MON-FRI",
        // Refused by the scheduler.
        "0 0 30 2 *",
        "@every 0s",
        "@every",
        "@every 5x",
        "61 * * * *",
        "* * *",
        "0 0 0 * * * 2030",
        "@fortnightly",
        "",
    ];
    for (i, expression) in expressions.into_iter().enumerate() {
        let name = format!("Task{i}");
        let file = fx.src().join(format!("cron/task{i}.rs"));
        let scheduler = hopper::schedule::Schedule::new::<ReportJob>("check", expression, ());
        let generator = fx
            .run(&["make:cron", &name, "--schedule", expression])
            .await;
        match (scheduler, generator) {
            (Ok(_), Ok(_)) => {
                let task = std::fs::read_to_string(&file).unwrap();
                let line = format!("pub const SCHEDULE: &str = {expression:?};");
                assert!(task.contains(&line), "{expression:?}: {task}");
            }
            (Err(hopper::schedule::ScheduleError::Expression { message, .. }), Err(err)) => {
                let text = err.to_string();
                assert!(
                    text.starts_with(&format!("invalid schedule {expression:?}: ")),
                    "{text}"
                );
                assert!(
                    text.contains(&message),
                    "{expression:?}: {text} lacks {message}"
                );
                assert!(!file.exists(), "{expression:?} was written");
            }
            (scheduler, generator) => panic!(
                "{expression:?}: the scheduler says {:?}, make:cron says {:?}",
                scheduler.map(drop).map_err(|e| e.to_string()),
                generator.map(drop).map_err(|e| e.to_string()),
            ),
        }
    }
}

/// What the generators add to module files is what rustfmt writes, for long
/// names too, so `cargo fmt --check` passes right after generating.
#[tokio::test]
async fn module_entries_are_as_rustfmt_writes_them_for_long_names() {
    let fx = Fixture::new();
    write_modules(&fx.src());
    fx.ok(&["make:job", "ReconcileOutstandingSupplierInvoicesJob"])
        .await;
    fx.ok(&["make:cron", "NightlyReportTask", "--schedule", "@daily"])
        .await;
    fx.ok(&[
        "make:cron",
        "SendOverdueInvoiceRemindersTask",
        "--schedule",
        "0 9 * * MON-FRI",
    ])
    .await;
    fx.ok(&["make:seeder", "ReconcileOutstandingSupplierInvoicesSeeder"])
        .await;
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    for module in ["jobs/mod.rs", "cron/mod.rs", "seeders/mod.rs"] {
        let checked = std::process::Command::new(&rustfmt)
            .args(["--edition", "2021", "--check"])
            .arg(fx.src().join(module))
            .output()
            .expect("rustfmt runs");
        assert!(
            checked.status.success(),
            "{module} is not as rustfmt writes it:\n{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[tokio::test]
async fn app_commands_are_listed_and_run() {
    struct Hello;

    #[hopper_cli::async_trait]
    impl hopper_cli::Command for Hello {
        fn definition(&self) -> clap::Command {
            clap::Command::new("app:hello").about("Greets")
        }
        async fn run(
            &self,
            ctx: &mut hopper_cli::Context<'_>,
            _: &clap::ArgMatches,
        ) -> Result<(), ConsoleError> {
            let jobs = ctx.hopper().await?.jobs(&Default::default()).await?.jobs;
            ctx.out().line(format!("hello, {} jobs", jobs.len()))?;
            Ok(())
        }
    }

    let fx = Fixture::new();
    let console = fx.console.clone().command(Hello);
    let mut out = Output::buffer();
    console.execute(["app:hello"], &mut out).await.unwrap();
    assert_eq!(out.text(), "hello, 0 jobs\n");
    let mut out = Output::buffer();
    console.execute(["list", "app"], &mut out).await.unwrap();
    assert!(out.text().contains("app:hello") && out.text().contains("Greets"));
}

#[tokio::test]
async fn bulk_retry_skips_jobs_whose_unique_key_a_live_job_holds() {
    let fx = Fixture::new();
    fx.ok(&[
        "queue:dispatch",
        "mail",
        r#"{"to":"fail@x.org"}"#,
        "--unique-key",
        "welcome:7",
    ])
    .await;
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"fail@y.org"}"#])
        .await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;
    // A live job takes the key while the first one is failed.
    fx.ok(&[
        "queue:dispatch",
        "mail",
        r#"{"to":"a@x.org"}"#,
        "--unique-key",
        "welcome:7",
    ])
    .await;

    let text = fx.ok(&["queue:retry", "--all", "--type", "mail"]).await;
    assert!(
        text.contains("Retried 1 failed jobs of type mail.")
            && text.contains("Skipped 1 whose unique key another live job holds."),
        "{text}"
    );
    let failed = fx.json(&["queue:failed", "--json"]).await;
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(failed["jobs"][0]["unique_key"], "welcome:7");
}

#[tokio::test]
async fn failed_jobs_are_listed_a_page_at_a_time() {
    let fx = Fixture::new();
    for i in 0..5 {
        let mail = format!(r#"{{"to":"fail@{i}.org"}}"#);
        fx.ok(&["queue:dispatch", "mail", &mail]).await;
    }
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"a@x.org"}"#])
        .await;
    fx.ok(&["queue:work", "--stop-when-empty"]).await;

    let ids = |page: &Value| -> Vec<i64> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_i64().unwrap())
            .collect()
    };
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["queue:failed", "--limit", "2", "--json"];
        if let Some(cursor) = &before {
            args.extend(["--before", cursor]);
        }
        let page = fx.json(&args).await;
        pages.push(ids(&page));
        let Some(next) = page["next"].as_i64() else {
            break;
        };
        assert_eq!(Some(&next), pages.last().unwrap().last());
        before = Some(next.to_string());
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let seen = pages.concat();
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    // The table says how to read the next page, and the last page does not.
    let first = fx.ok(&["queue:failed", "--limit", "4"]).await;
    let hint = format!(
        "Older failed jobs: add `--before {}` for the next page.",
        seen[3]
    );
    assert!(first.contains(&hint), "{first}");
    let rest = seen[3].to_string();
    let last = fx.ok(&["queue:failed", "--before", &rest]).await;
    assert!(
        last.contains("1 failed jobs shown.") && !last.contains("Older failed jobs"),
        "{last}"
    );
    // A page size out of range is a usage error.
    for limit in ["0", "501"] {
        let err = fx.err(&["queue:failed", "--limit", limit]).await;
        assert_eq!(err.exit_code(), 2, "{err}");
    }
}

/// What `queue:work` was seen doing while it ran.
#[derive(Debug, Default)]
struct Seen {
    scheduled_jobs: usize,
    alerts: usize,
    reports_bounds: Option<(u32, u32)>,
}

#[tokio::test]
async fn queue_work_runs_schedules_and_alerts_and_sizes_queues_like_work() {
    let fx = Fixture::new();
    let url = format!("sqlite://{}", fx.dir.path().join("jobs.db").display());
    fx.ok(&["queue:dispatch", "mail", r#"{"to":"fail@x.org"}"#])
        .await;
    let mut every_second = hopper::schedule::Schedules::new();
    every_second
        .add(
            hopper::schedule::Schedule::new::<ReportJob>("report_every_second", "@every 1s", ())
                .unwrap(),
        )
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let (watch_url, clock, watched) = (url.clone(), fx.clock.clone(), seen.clone());
    let console = fx
        .console
        .clone()
        .worker_config(
            hopper::WorkerConfig::new(4)
                .queue_scaled("default", 1, 4)
                .prune_interval(None),
        )
        .schedules(every_second)
        .alerts(|| {
            let rules = r#"{"failed": {"kind": "job_failed"}}"#;
            let alerts = hopper::alerts::Alerts::from_json(rules)?;
            Ok(Some(alerts.interval(Duration::from_secs(1))))
        })
        .shutdown(move || {
            let (url, clock, seen) = (watch_url.clone(), clock.clone(), watched.clone());
            async move {
                let hopper = Hopper::builder()
                    .register(MailJob)
                    .and_then(|b| b.register(ReportJob))
                    .unwrap()
                    .clock(clock.clone())
                    .connect(&url)
                    .await
                    .unwrap();
                for _ in 0..300 {
                    let scheduled = hopper
                        .jobs(&hopper::JobFilter {
                            job_type: Some("report".into()),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .jobs;
                    let alerts = hopper.store().alerts(0).await.unwrap();
                    let status = hopper.status(Duration::ZERO).await.unwrap();
                    let bounds = status
                        .queues
                        .iter()
                        .find(|queue| queue.queue == "reports")
                        .and_then(|queue| queue.workers.first())
                        .map(|row| (row.min, row.max));
                    let done = !scheduled.is_empty() && !alerts.is_empty() && bounds.is_some();
                    *seen.lock().unwrap() = Seen {
                        scheduled_jobs: scheduled.len(),
                        alerts: alerts.len(),
                        reports_bounds: bounds,
                    };
                    if done {
                        return;
                    }
                    clock.advance(Duration::from_millis(500));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    let mut out = Output::buffer();
    console.execute(["queue:work"], &mut out).await.unwrap();
    let text = out.text();
    assert!(
        text.contains("default (4 workers), reports (4 workers)"),
        "{text}"
    );
    let seen = seen.lock().unwrap();
    assert!(seen.scheduled_jobs > 0, "the schedule ran: {seen:?}");
    assert!(seen.alerts > 0, "the alert rule was checked: {seen:?}");
    assert_eq!(
        seen.reports_bounds,
        Some((1, 4)),
        "a queue a job names scales like the first queue"
    );
}

#[tokio::test]
async fn queue_flow_sets_shows_and_clears_a_queues_flow_settings() {
    let fx = Fixture::new();
    let none = fx.ok(&["queue:flow", "mail"]).await;
    assert!(none.contains("has no flow settings"), "{none}");

    let set = fx
        .ok(&[
            "queue:flow",
            "mail",
            "--concurrency",
            "5",
            "--per-key",
            "1",
            "--rate",
            "100/1m",
            "--per-key-rate",
        ])
        .await;
    assert!(
        set.contains("5 at once, 1 per key, 100/1m per key"),
        "{set}"
    );
    fx.ok(&[
        "queue:dispatch",
        "mail",
        r#"{"to":"a@x.org"}"#,
        "--queue",
        "mail",
    ])
    .await;
    let status = fx.json(&["queue:status", "--json"]).await;
    let flow = &status["flow"][0];
    assert_eq!(flow["queue"], "mail");
    assert_eq!(flow["flow"]["concurrency"], 5);
    assert_eq!(flow["flow"]["rate"]["text"], "100/1m per key");
    assert_eq!(
        (&flow["due"], &flow["running"], &flow["waiting"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(0)
        )
    );
    let text = fx.ok(&["queue:status"]).await;
    assert!(text.contains("WAITING ON LIMIT"), "{text}");
    assert!(text.contains("0/5"), "{text}");

    for bad in [
        vec!["--concurrency", "0"],
        vec!["--per-key", "0"],
        vec!["--rate", "fast"],
        vec!["--rate", "0/1s"],
        vec!["--per-key-rate"],
        vec!["--clear", "--fair"],
        vec!["--concurrency", "-3"],
    ] {
        let mut argv = vec!["queue:flow", "mail"];
        argv.extend(&bad);
        let err = fx.err(&argv).await;
        assert!(
            matches!(err, hopper_cli::ConsoleError::Usage(_)),
            "{bad:?}: {err}"
        );
    }
    let shown = fx.ok(&["queue:flow", "mail"]).await;
    assert!(
        shown.contains("5 at once"),
        "refused input changes nothing: {shown}"
    );

    let cleared = fx.ok(&["queue:flow", "mail", "--clear"]).await;
    assert!(cleared.contains("no flow settings"), "{cleared}");
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(status["flow"], serde_json::json!([]));
}

#[tokio::test]
async fn bulk_cancels_only_the_jobs_asked_for_and_only_with_yes_off_a_terminal() {
    let fx = Fixture::new();
    let mail = r#"{"to": "a@x.org"}"#;
    for queue in ["q", "q", "other"] {
        fx.ok(&["queue:dispatch", "mail", mail, "--queue", queue])
            .await;
    }
    fx.ok(&["queue:dispatch", "report"]).await;
    let pending = |status: &Value, queue: &str| state_count(status, queue, "pending");

    // Not at a terminal and without --yes: the count, a refusal, no change.
    let err = fx.err(&["queue:bulk", "cancel", "--queue", "q"]).await;
    assert_eq!(err.exit_code(), 2);
    let message = err.to_string();
    assert!(message.contains("2 jobs match (queue q)"), "{message}");
    assert!(message.contains("add --yes to cancel them"), "{message}");
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!((pending(&status, "q"), pending(&status, "other")), (2, 1));

    let text = fx
        .ok(&["queue:bulk", "cancel", "--queue", "q", "--yes"])
        .await;
    assert_eq!(text, "Matched 2 jobs: 2 cancelled, 0 skipped.\n");
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "q", "cancelled"), 2);
    assert_eq!(pending(&status, "other"), 1);
    assert_eq!(pending(&status, "reports"), 1);

    // A retry of every mail job skips the pending one, and says why.
    let text = fx
        .ok(&["queue:bulk", "retry", "--type", "mail", "--yes"])
        .await;
    assert!(
        text.starts_with(
            "Matched 3 jobs: 2 retried, 1 skipped.\nSkipped jobs were neither failed nor cancelled"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn bulk_takes_an_age_and_prints_json() {
    let fx = Fixture::new();
    fx.ok(&["queue:dispatch", "report"]).await;
    fx.ok(&["queue:dispatch", "report"]).await;
    fx.clock.advance(Duration::from_secs(2 * 3600));
    fx.ok(&["queue:dispatch", "report"]).await;

    let delete = |age| {
        [
            "queue:bulk",
            "delete",
            "--state",
            "pending",
            "--older-than",
            age,
            "--yes",
            "--json",
        ]
    };
    let none = fx.json(&delete("3h")).await;
    assert_eq!(
        none,
        serde_json::json!({"matched": 0, "applied": 0, "skipped": 0})
    );
    let done = fx.json(&delete("1h")).await;
    assert_eq!(
        done,
        serde_json::json!({"matched": 2, "applied": 2, "skipped": 0})
    );
    let status = fx.json(&["queue:status", "--json"]).await;
    assert_eq!(state_count(&status, "reports", "pending"), 1);

    for (args, needle) in [
        (
            &["queue:bulk", "nuke", "--yes"][..],
            "possible values: retry, cancel, delete",
        ),
        (
            &["queue:bulk", "cancel", "--state", "lost", "--yes"],
            "possible values: pending",
        ),
        (
            &["queue:bulk", "cancel", "--older-than", "soon", "--yes"],
            "like 500ms, 30s",
        ),
        (&["queue:bulk", "--yes"], "<ACTION>"),
    ] {
        let err = fx.err(args).await;
        assert_eq!(err.exit_code(), 2, "{args:?}");
        assert!(err.to_string().contains(needle), "{args:?}: {err}");
    }
    let help = fx.ok(&["queue:bulk", "--help"]).await;
    assert!(
        help.contains("--older-than <AGE>") && help.contains("--yes"),
        "{help}"
    );
    let list = fx.ok(&["list", "queue"]).await;
    assert!(list.contains("queue:bulk"), "{list}");
}
