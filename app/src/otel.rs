//! Trace export over OTLP: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, every
//! span the application records (the request spans, each job run's `job`
//! span, and the spans inside them) is sent to that collector over HTTP
//! (protobuf), as the `app` service. Unset, no exporter is built and spans
//! cost what they did before.
//!
//! Hopper stores the trace a job is dispatched in with the job, so a run's
//! span joins the trace of the request that dispatched it, whichever
//! process runs it.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The variable naming the collector, e.g. `http://127.0.0.1:4318`.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The service name spans are exported under.
pub const SERVICE_NAME: &str = "app";

/// Where trace spans go on a collector, below its base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Keeps the exporter running; dropping it sends what is still buffered
/// and stops it.
#[derive(Debug)]
pub struct TraceGuard {
    provider: SdkTracerProvider,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("trace export did not shut down cleanly: {error}");
        }
    }
}

/// The URL spans are posted to for a collector at `endpoint`: its base URL
/// with the OTLP traces path added, as the variable's specification says.
///
/// ```
/// assert_eq!(app::otel::traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
/// ```
pub fn traces_url(endpoint: &str) -> String {
    format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/'))
}

/// A `tracing` layer exporting spans to the collector at `endpoint`, and the
/// guard that flushes it; `None` (no exporter) without an endpoint.
///
/// ```
/// use tracing_subscriber::Registry;
/// assert!(app::otel::layer::<Registry>(None).unwrap().is_none());
/// let (_layer, guard) = app::otel::layer::<Registry>(Some("http://127.0.0.1:4318")).unwrap().unwrap();
/// drop(guard);
/// ```
pub fn layer<S>(
    endpoint: Option<&str>,
) -> anyhow::Result<Option<(OpenTelemetryLayer<S, SdkTracer>, TraceGuard)>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(endpoint) = endpoint.filter(|endpoint| !endpoint.trim().is_empty()) else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint.trim()))
        .build()
        .with_context(|| format!("cannot build the OTLP exporter for {ENDPOINT_VAR}={endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME));
    Ok(Some((layer, TraceGuard { provider })))
}
