//! Group commit: single dispatches made at once share transactions, on
//! every database.

use hopper::store::StoreError;
use hopper::{DispatchError, DispatchOptions, Hopper, Job, JobContext, JobId, JobResult};
use tokio::task::JoinSet;

use crate::backends::TestDb;
use crate::transaction_cases::change_schema;

struct Echo;

impl Job for Echo {
    const TYPE: &'static str = "echo";
    type Payload = u32;
    async fn handle(&self, _: u32, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// Jobs of this priority are refused by the database once
/// [`refuse_priority`] ran.
const REFUSED: i32 = 999;

/// Makes the database refuse to store a job of priority [`REFUSED`], as a
/// constraint of the application's might.
async fn refuse_priority(hopper: &Hopper, url: &str) {
    let statement = if url.starts_with("sqlite:") {
        format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.priority = {REFUSED} \
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    } else if url.starts_with("postgres") {
        format!("ALTER TABLE jobs ADD CONSTRAINT refuse CHECK (priority <> {REFUSED}) NOT VALID")
    } else {
        format!("ALTER TABLE jobs ADD CONSTRAINT refuse CHECK (priority <> {REFUSED})")
    };
    change_schema(hopper, &statement).await;
}

/// Dispatches `count` jobs at once from as many tasks (job `i` has payload
/// `i`; the one at `refused`, if any, has the refused priority); each
/// caller's payload and answer, in payload order.
async fn dispatch_at_once(
    hopper: &Hopper,
    count: u32,
    refused: Option<u32>,
) -> Vec<(u32, Result<JobId, DispatchError>)> {
    // SQLite writes on the calling task as soon as it has the writing
    // connection, never waiting on a network: hold that connection until
    // every caller ran up to its wait, as a busy server's would.
    #[cfg(feature = "sqlite")]
    let held = match hopper.store_as::<hopper::store::sqlite::SqliteStore>() {
        Some(store) => Some(store.writer().await.unwrap()),
        None => None,
    };
    let mut running = JoinSet::new();
    for payload in 0..count {
        let hopper = hopper.clone();
        let priority = if Some(payload) == refused { REFUSED } else { 0 };
        running.spawn(async move {
            let options = DispatchOptions::new().priority(priority);
            (
                payload,
                hopper.dispatch_with::<Echo>(payload, options).await,
            )
        });
    }
    tokio::task::yield_now().await;
    #[cfg(feature = "sqlite")]
    drop(held);
    let mut answers = running.join_all().await;
    answers.sort_by_key(|(payload, _)| *payload);
    answers
}

/// Many tasks dispatching at once through one handle each get the id of
/// their own job, stored whole, once its commit is done.
pub async fn dispatches_made_at_once_each_get_their_own_stored_job(db: &TestDb) {
    let hopper = Hopper::builder()
        .register(Echo)
        .unwrap()
        .connect(db.url())
        .await
        .unwrap();
    let answers = dispatch_at_once(&hopper, 300, None).await;
    let mut ids = Vec::new();
    for (payload, answer) in answers {
        let id = answer.unwrap();
        let job = hopper
            .job(id)
            .await
            .unwrap()
            .expect("stored before its id came back");
        assert_eq!(job.payload, payload.to_string(), "job {id}");
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 300, "one job per caller");
    let pending: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
    assert_eq!(pending, 300);
}

/// When the transaction several dispatches share fails, every one of its
/// callers gets the error and none of their jobs is stored; a dispatch on
/// its own fails with the database's own error, and group commit off
/// stores each job in its own transaction, failing only the refused one.
pub async fn a_shared_commit_that_fails_fails_every_caller_in_it_and_stores_none(db: &TestDb) {
    let url = db.url().to_owned();
    let db_kind = db.url().split(':').next().unwrap_or_default().to_owned();
    // One thread: each caller runs until it waits, so those who find every
    // writer busy all queue up before a writer takes the queue.
    let checked = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let hopper = Hopper::builder()
                .register(Echo)
                .unwrap()
                .connect(&url)
                .await
                .unwrap();
            refuse_priority(&hopper, &url).await;

            // The first callers find writers free and write their own
            // jobs; the rest, the refused one last, wait and share one
            // transaction, which fails for all of them.
            let answers = dispatch_at_once(&hopper, 50, Some(49)).await;
            let shared = match &answers[49].1 {
                Err(DispatchError::Store(StoreError::SharedCommit { jobs, source })) => {
                    assert!(
                        matches!(**source, StoreError::Database(_)),
                        "the refusal on {db_kind}: {source}"
                    );
                    *jobs
                }
                other => panic!("the refused caller on {db_kind}: {other:?}"),
            };
            assert!(shared > 1, "the refused job was written alone on {db_kind}");
            let mut stored = 0;
            for (payload, answer) in &answers {
                match answer {
                    Ok(id) => {
                        let job = hopper.job(*id).await.unwrap().expect("stored");
                        assert_eq!(job.payload, payload.to_string());
                        stored += 1;
                    }
                    Err(DispatchError::Store(StoreError::SharedCommit { jobs, .. })) => {
                        assert_eq!(*jobs, shared, "caller {payload} on {db_kind}");
                    }
                    Err(other) => panic!("caller {payload} on {db_kind}: {other}"),
                }
            }
            assert_eq!(
                stored,
                50 - shared,
                "the callers of the failed commit on {db_kind}"
            );
            let pending: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
            assert_eq!(
                pending as usize, stored,
                "only the acknowledged jobs are stored"
            );

            let alone = DispatchOptions::new().priority(REFUSED);
            match hopper.dispatch_with::<Echo>(1, alone).await {
                Err(DispatchError::Store(StoreError::Database(_))) => {}
                other => panic!("a refused job alone on {db_kind}: {other:?}"),
            }
            assert!(hopper.dispatch::<Echo>(2).await.is_ok());

            let one_by_one = Hopper::builder()
                .register(Echo)
                .unwrap()
                .group_commit(false)
                .connect(&url)
                .await
                .unwrap();
            let answers = dispatch_at_once(&one_by_one, 50, Some(49)).await;
            for (payload, answer) in &answers[..49] {
                assert!(answer.is_ok(), "caller {payload}: {answer:?}");
            }
            assert!(answers[49].1.is_err());
            let pending: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
            assert_eq!(pending as usize, stored + 1 + 49);
        });
    })
    .await;
    if let Err(panicked) = checked {
        std::panic::resume_unwind(panicked.into_panic());
    }
}
