//! Trace propagation (the `otel` feature): a job dispatched inside a span
//! runs, on the workers of another handle with its own connections (as in
//! another process), as a child of that span in the same trace. On SQLite,
//! and on PostgreSQL and MariaDB when the build has them.
//!
//! Spans are exported to one in-memory exporter behind the process's global
//! subscriber; each test picks out its own by trace id or queue.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Noop, builder, new_job, wait_finished};
use hopper::store::{ClaimRequest, ClaimedJob, NewJob, new_claim_token};
use hopper::{DispatchOptions, Hopper, WorkerConfig};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The exporter every span of this process ends up in, installed (through a
/// `tracing-opentelemetry` layer) on first use.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORT: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    let (exporter, _) = EXPORT.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("hopper-tests"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber in this test binary");
        (exporter, provider)
    });
    exporter
}

/// The value of attribute `key` of `span`, as text.
fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Waits (at most 10 s) for the exported span of a job's first run that
/// `pick` accepts.
async fn run_span(pick: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter().get_finished_spans().unwrap();
        let found = spans.into_iter().find(|span| {
            span.name == hopper::events::SPAN
                && attribute(span, "attempt").as_deref() == Some("1")
                && pick(span)
        });
        if let Some(span) = found {
            return span;
        }
        assert!(Instant::now() < deadline, "no run span was exported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The current span's OpenTelemetry span context.
fn current_span_context() -> SpanContext {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone()
}

/// Claims every due job of `queue` straight from the store.
async fn claim_all(hopper: &Hopper, queue: &str) -> Vec<ClaimedJob> {
    let mut claimed = hopper
        .store()
        .claim(ClaimRequest {
            queue,
            worker: "test",
            limit: 100,
            start_now: 0,
            token: new_claim_token(),
            due_by: chrono::Utc::now(),
            lease: Duration::from_secs(60),
            now: None,
        })
        .await
        .unwrap();
    claimed.sort_by_key(|job| job.id);
    claimed
}

async fn a_run_continues_the_trace_its_job_was_dispatched_in(url: &str) {
    exporter();
    let dispatcher = builder().connect(url).await.unwrap();
    let (id, dispatched_in) = async {
        let id = dispatcher.dispatch::<Noop>(()).await.unwrap();
        (id, current_span_context())
    }
    .instrument(tracing::info_span!("request"))
    .await;
    assert!(dispatched_in.is_valid());

    // Another handle, with its own connections, runs it.
    let worker = builder().connect(url).await.unwrap();
    let pool = worker.start(WorkerConfig::new(1)).unwrap();
    wait_finished(&worker, &pool, &[id]).await;
    pool.stop().await.unwrap();

    let run = run_span(|span| span.span_context.trace_id() == dispatched_in.trace_id()).await;
    assert_eq!(attribute(&run, "id"), Some(id.to_string()));
    assert_eq!(run.parent_span_id, dispatched_in.span_id());
    assert!(run.parent_span_is_remote);
}

async fn a_dispatch_stores_its_trace_and_none_outside_any(url: &str) {
    exporter();
    let hopper = builder().connect(url).await.unwrap();
    let traced = DispatchOptions::new().queue("traced");
    let dispatched_in = async {
        hopper
            .dispatch_with::<Noop>((), traced.clone())
            .await
            .unwrap();
        hopper
            .dispatch_many::<Noop>([(), (), ()], traced.clone())
            .await
            .unwrap();
        hopper
            .batch("traced")
            .dispatch_many::<Noop>([(), ()], traced.clone())
            .await
            .unwrap();
        hopper
            .dispatch_with::<Noop>((), traced.clone().sequence("traced"))
            .await
            .unwrap();
        current_span_context()
    }
    .instrument(tracing::info_span!("request"))
    .await;
    hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().queue("untraced"))
        .await
        .unwrap();

    let expected = format!(
        "00-{}-{}-01",
        dispatched_in.trace_id(),
        dispatched_in.span_id()
    );
    // One job, three at once, a batch of two and one in a sequence.
    let traced = claim_all(&hopper, "traced").await;
    assert_eq!(traced.len(), 7);
    for job in &traced {
        assert_eq!(job.trace_context.as_deref(), Some(expected.as_str()));
    }
    let untraced = claim_all(&hopper, "untraced").await;
    assert_eq!(untraced.len(), 1);
    assert_eq!(untraced[0].trace_context, None);
}

async fn a_garbled_trace_context_is_ignored_and_the_job_runs(url: &str) {
    exporter();
    let hopper = builder().connect(url).await.unwrap();
    let ids = hopper
        .store()
        .insert(&[NewJob {
            trace_context: Some("00-not-a-traceparent".into()),
            ..new_job("noop", "garbled", chrono::Utc::now())
        }])
        .await
        .unwrap();
    let pool = hopper
        .start(WorkerConfig::new(1).queue("garbled", 1))
        .unwrap();
    wait_finished(&hopper, &pool, &ids).await;
    pool.stop().await.unwrap();

    let run = run_span(|span| {
        attribute(span, "queue").as_deref() == Some("garbled")
            && attribute(span, "id") == Some(ids[0].to_string())
    })
    .await;
    assert_eq!(run.parent_span_id, SpanId::INVALID, "a run of its own");
}

/// Declares the tests for one database, each on a database of its own.
macro_rules! on {
    ($database:ident, $url:expr) => {
        mod $database {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_run_continues_the_trace_its_job_was_dispatched_in() {
                let (url, _db) = $url;
                super::a_run_continues_the_trace_its_job_was_dispatched_in(&url).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dispatch_stores_its_trace_and_none_outside_any() {
                let (url, _db) = $url;
                super::a_dispatch_stores_its_trace_and_none_outside_any(&url).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_garbled_trace_context_is_ignored_and_the_job_runs() {
                let (url, _db) = $url;
                super::a_garbled_trace_context_is_ignored_and_the_job_runs(&url).await;
            }
        }
    };
}

on!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otel.db").display());
    (url, dir)
});

#[cfg(feature = "postgres")]
on!(postgres, {
    let database = crate::common::postgres::database().await;
    (database.url.clone(), database)
});

#[cfg(feature = "mysql")]
on!(mysql, {
    let database = crate::common::mysql::database().await;
    (database.url.clone(), database)
});

/// A dispatch in the application's SQLite transaction stores the trace too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_in_a_sqlite_transaction_stores_its_trace() {
    exporter();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otel.db").display());
    let hopper = builder().connect(&url).await.unwrap();
    let dispatched_in = async {
        hopper
            .sqlite_transaction(|tx| tx.dispatch::<Noop>(()))
            .await
            .unwrap();
        current_span_context()
    }
    .instrument(tracing::info_span!("request"))
    .await;
    let claimed = claim_all(&hopper, "default").await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].trace_context,
        Some(format!(
            "00-{}-{}-01",
            dispatched_in.trace_id(),
            dispatched_in.span_id()
        ))
    );
}
