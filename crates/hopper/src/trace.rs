//! Trace context carried from a dispatch to its job's runs.
//!
//! With the `otel` feature, a dispatch stores the OpenTelemetry trace it
//! happens in with the job (the `trace_context` column), and each run's
//! [`job`](crate::events::SPAN) span takes that trace's span as its parent:
//! a request's trace goes on into the run, in whichever process runs it.
//!
//! The trace is the current `tracing` span's OpenTelemetry context (through
//! a `tracing-opentelemetry` layer), or else the current
//! [`opentelemetry::Context`]. It is stored as the W3C `traceparent` value,
//! followed by a newline and the `tracestate` value when that is not empty.
//! Stored text that does not parse is ignored (and logged at debug level):
//! the job runs as it would without it.
//!
//! Without the feature a dispatch stores NULL and a run ignores the column.

use tracing::Span;

/// The trace context current at a dispatch, as the `trace_context` column
/// stores it; `None` without the `otel` feature or outside any valid trace.
pub(crate) fn current() -> Option<String> {
    #[cfg(feature = "otel")]
    {
        otel::current()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// Makes the trace stored with a job (if any) the parent of `span`, a run's
/// span that has not been entered yet. A trace that cannot be followed is
/// logged at debug level and left out; without the `otel` feature this does
/// nothing.
pub(crate) fn follow(span: &Span, stored: Option<&str>) {
    #[cfg(feature = "otel")]
    if let Some(stored) = stored {
        otel::follow(span, stored);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, stored);
}

/// Why a stored trace context was not followed.
#[cfg(feature = "otel")]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TraceContextError {
    /// The stored text holds no valid W3C `traceparent`.
    #[error("no valid traceparent in the stored trace context {0:?}")]
    Malformed(String),
    /// The run's span had already started when its parent was to be set.
    #[error("the run's span has already started")]
    Started,
}

#[cfg(feature = "otel")]
mod otel {
    use std::collections::HashMap;

    use opentelemetry::Context;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing::Span;
    use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

    use super::TraceContextError;

    /// The W3C header holding the trace and parent span ids.
    const TRACEPARENT: &str = "traceparent";
    /// The W3C header holding vendors' trace state.
    const TRACESTATE: &str = "tracestate";

    pub(super) fn current() -> Option<String> {
        let span = Span::current();
        let cx = if span.is_disabled() {
            Context::current()
        } else {
            let cx = span.context();
            if cx.span().span_context().is_valid() {
                cx
            } else {
                Context::current()
            }
        };
        encode(&cx)
    }

    /// `cx`'s span as stored text, if it has a valid one.
    pub(super) fn encode(cx: &Context) -> Option<String> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut headers = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(cx, &mut headers);
        let parent = headers.remove(TRACEPARENT)?;
        match headers.remove(TRACESTATE) {
            Some(state) if !state.is_empty() => Some(format!("{parent}\n{state}")),
            _ => Some(parent),
        }
    }

    /// The remote context stored text names.
    pub(super) fn decode(stored: &str) -> Result<Context, TraceContextError> {
        let (parent, state) = stored.split_once('\n').unwrap_or((stored, ""));
        let mut headers = HashMap::with_capacity(2);
        headers.insert(TRACEPARENT.to_owned(), parent.trim().to_owned());
        if !state.trim().is_empty() {
            headers.insert(TRACESTATE.to_owned(), state.trim().to_owned());
        }
        let cx = TraceContextPropagator::new().extract(&headers);
        if cx.span().span_context().is_valid() {
            Ok(cx)
        } else {
            Err(TraceContextError::Malformed(stored.to_owned()))
        }
    }

    pub(super) fn follow(span: &Span, stored: &str) {
        // A span no subscriber records has no trace to join.
        if span.is_disabled() {
            return;
        }
        let followed = decode(stored).and_then(|cx| match span.set_parent(cx) {
            // No OpenTelemetry layer: nothing records the trace.
            Ok(()) | Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => Ok(()),
            Err(_) => Err(TraceContextError::Started),
        });
        if let Err(error) = followed {
            tracing::debug!(%error, "trace context not followed");
        }
    }

    #[cfg(test)]
    mod tests {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

        use super::*;

        fn remote(state: TraceState) -> Context {
            Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                SpanId::from(0x00f0_67aa_0ba9_02b7),
                TraceFlags::SAMPLED,
                true,
                state,
            ))
        }

        #[test]
        fn a_context_round_trips_with_and_without_trace_state() {
            let plain = encode(&remote(TraceState::default())).unwrap();
            assert_eq!(
                plain,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            );
            let cx = decode(&plain).unwrap();
            assert_eq!(
                cx.span().span_context().span_id(),
                SpanId::from(0x00f0_67aa_0ba9_02b7)
            );

            let state = TraceState::from_key_value([("vendor", "abc")]).unwrap();
            let stored = encode(&remote(state)).unwrap();
            assert_eq!(
                stored,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=abc"
            );
            let cx = decode(&stored).unwrap();
            assert_eq!(
                cx.span().span_context().trace_state().get("vendor"),
                Some("abc")
            );
        }

        #[test]
        fn no_trace_encodes_to_nothing_and_garbage_decodes_to_an_error() {
            assert_eq!(encode(&Context::new()), None);
            for garbage in [
                "",
                "nonsense",
                "00-zz-yy-01",
                "\n",
                "00-00000000000000000000000000000000-0000000000000000-01",
            ] {
                assert_eq!(
                    decode(garbage).unwrap_err(),
                    TraceContextError::Malformed(garbage.to_owned())
                );
            }
        }
    }
}
