//! `/metrics` in the Prometheus text format, names prefixed `hopper_`.
//!
//! The library counts jobs dispatched, finished, failed and retried, run
//! durations and busy workers (see [`hopper::metrics`]); this module installs
//! the Prometheus recorder that keeps them, and at each scrape adds, per
//! queue, `hopper_queue_depth` (pending jobs due now) and
//! `hopper_queue_oldest_pending_seconds`, and per queue with flow settings
//! ([`hopper::Hopper::flow_usage`]) its limits and their use:
//!
//! | name | what |
//! |---|---|
//! | `hopper_queue_concurrency_limit` | the most jobs started at once (0: no limit) |
//! | `hopper_queue_key_concurrency_limit` | the most jobs of one key started at once (0: no limit) |
//! | `hopper_queue_rate_limit` | the most starts per rate period (0: no rate) |
//! | `hopper_queue_rate_period_seconds` | the rate's period (0: no rate) |
//! | `hopper_queue_running` | jobs started now, in every process |
//! | `hopper_queue_rate_starts_in_window` | starts in the last rate period |
//! | `hopper_queue_waiting_on_limit` | due jobs a limit holds back |
//!
//! A queue whose settings are lifted reads 0 on each from then on.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Caller;
use crate::{METRICS_PATH, Web};

/// Pending jobs due now, per queue.
///
/// ```
/// assert_eq!(hopper_web::metrics::QUEUE_DEPTH, "hopper_queue_depth");
/// ```
pub const QUEUE_DEPTH: &str = "hopper_queue_depth";

/// How long the longest-waiting due job of each queue has waited, in seconds.
///
/// ```
/// assert!(hopper_web::metrics::OLDEST_PENDING.ends_with("_seconds"));
/// ```
pub const OLDEST_PENDING: &str = "hopper_queue_oldest_pending_seconds";

/// The most jobs of a queue started at once, across every process (0: no limit).
///
/// ```
/// assert_eq!(hopper_web::metrics::CONCURRENCY_LIMIT, "hopper_queue_concurrency_limit");
/// ```
pub const CONCURRENCY_LIMIT: &str = "hopper_queue_concurrency_limit";

/// The most jobs of one partition key started at once (0: no limit).
///
/// ```
/// assert!(hopper_web::metrics::KEY_CONCURRENCY_LIMIT.ends_with("_limit"));
/// ```
pub const KEY_CONCURRENCY_LIMIT: &str = "hopper_queue_key_concurrency_limit";

/// The most job starts per rate period, per queue or per key (0: no rate).
///
/// ```
/// assert_eq!(hopper_web::metrics::RATE_LIMIT, "hopper_queue_rate_limit");
/// ```
pub const RATE_LIMIT: &str = "hopper_queue_rate_limit";

/// The rate's period in seconds (0: no rate).
///
/// ```
/// assert!(hopper_web::metrics::RATE_PERIOD.ends_with("_seconds"));
/// ```
pub const RATE_PERIOD: &str = "hopper_queue_rate_period_seconds";

/// Jobs of a flow-controlled queue started now, in every process.
///
/// ```
/// assert_eq!(hopper_web::metrics::RUNNING, "hopper_queue_running");
/// ```
pub const RUNNING: &str = "hopper_queue_running";

/// Job starts of a rate-limited queue in the last rate period.
///
/// ```
/// assert_eq!(hopper_web::metrics::RATE_STARTS, "hopper_queue_rate_starts_in_window");
/// ```
pub const RATE_STARTS: &str = "hopper_queue_rate_starts_in_window";

/// Due jobs of a flow-controlled queue that a limit holds back now.
///
/// ```
/// assert_eq!(hopper_web::metrics::WAITING_ON_LIMIT, "hopper_queue_waiting_on_limit");
/// ```
pub const WAITING_ON_LIMIT: &str = "hopper_queue_waiting_on_limit";

/// Every flow gauge, in the order [`flow_values`] gives their values.
const FLOW_GAUGES: [&str; 7] = [
    CONCURRENCY_LIMIT,
    KEY_CONCURRENCY_LIMIT,
    RATE_LIMIT,
    RATE_PERIOD,
    RUNNING,
    RATE_STARTS,
    WAITING_ON_LIMIT,
];

/// The flow gauges' values for one queue, in [`FLOW_GAUGES`] order.
fn flow_values(usage: &hopper::store::FlowUsage) -> [f64; 7] {
    let flow = &usage.flow;
    [
        f64::from(flow.concurrency.unwrap_or(0)),
        f64::from(flow.key_concurrency.unwrap_or(0)),
        f64::from(flow.rate.map_or(0, |rate| rate.starts)),
        flow.rate.map_or(0.0, |rate| rate.period.as_secs_f64()),
        usage.running as f64,
        usage.starts_in_window.unwrap_or(0) as f64,
        usage.waiting as f64,
    ]
}

/// Histogram buckets for run durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// What can go wrong installing the recorder.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder was installed first, or the exporter refused its settings.
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
}

static RECORDER: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's metrics recorder (once;
/// later calls return the same handle).
///
/// ```
/// let handle = hopper_web::metrics::install().unwrap();
/// metrics::counter!("hopper_doc_example_total").increment(1);
/// assert!(handle.render().contains("hopper_doc_example_total 1"));
/// ```
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(hopper::metrics::DURATION.to_owned()),
                    DURATION_BUCKETS,
                )
                .map_err(|error| MetricsError::Install(error.to_string()))?
                .install_recorder()
                .map_err(|error| MetricsError::Install(error.to_string()))
        })
        .clone()
}

pub(crate) fn router() -> Router<Web> {
    Router::new().route(METRICS_PATH, get(render))
}

async fn render(State(web): State<Web>, _caller: Caller) -> Response {
    let handle = match install() {
        Ok(handle) => handle,
        Err(error) => return (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    };
    let hopper = web.hopper();
    match hopper.queue_stats().await {
        Ok(stats) => {
            let now = hopper.now();
            // A queue drops out of the stats once nothing waits in it; it
            // reads zero from then on rather than keeping its last value.
            let mut known = web
                .inner
                .metric_queues
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            known.insert(hopper::DEFAULT_QUEUE.to_owned());
            for queue in known.iter() {
                if !stats.iter().any(|s| &s.queue == queue) {
                    ::metrics::gauge!(QUEUE_DEPTH, "queue" => queue.clone()).set(0.0);
                    ::metrics::gauge!(OLDEST_PENDING, "queue" => queue.clone()).set(0.0);
                }
            }
            known.extend(stats.iter().map(|s| s.queue.clone()));
            drop(known);
            for s in stats {
                let oldest = s
                    .oldest_due_at
                    .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1e3)
                    .unwrap_or(0.0);
                ::metrics::gauge!(QUEUE_DEPTH, "queue" => s.queue.clone()).set(s.due as f64);
                ::metrics::gauge!(OLDEST_PENDING, "queue" => s.queue).set(oldest);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read queue depth for /metrics"),
    }
    match hopper.flow_usage().await {
        Ok(usage) => {
            let mut known = web
                .inner
                .metric_flow_queues
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for queue in known.iter() {
                if !usage.iter().any(|u| &u.queue == queue) {
                    for name in FLOW_GAUGES {
                        ::metrics::gauge!(name, "queue" => queue.clone()).set(0.0);
                    }
                }
            }
            known.extend(usage.iter().map(|u| u.queue.clone()));
            drop(known);
            for u in &usage {
                for (name, value) in FLOW_GAUGES.into_iter().zip(flow_values(u)) {
                    ::metrics::gauge!(name, "queue" => u.queue.clone()).set(value);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read flow usage for /metrics"),
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
