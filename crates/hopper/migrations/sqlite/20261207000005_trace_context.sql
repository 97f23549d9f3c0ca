-- The trace a job was dispatched in (W3C `traceparent`, then a newline and
-- `tracestate` when that is not empty), for its runs to continue: written
-- only by builds with the `otel` feature, NULL otherwise. No index reads it.
ALTER TABLE jobs ADD COLUMN trace_context TEXT;
