-- errand-postgres schema, version 8: trace context.
--
-- `tasks.trace` holds the W3C trace context the task was enqueued with
-- (`traceparent`, then a newline and `tracestate` when there is one; at
-- most 1 KiB), handed back by every claim so the task's span joins the
-- enqueuer's trace. `runs.trace` holds the starting span's context; every
-- step task of the run gets a copy (run_apply.sql), so a run is one trace.
-- NULL when there is none. Nullable, no default, in no index: adding them
-- rewrites nothing, and the backend only stores and returns them.
ALTER TABLE __SCHEMA__.tasks ADD COLUMN trace text;

ALTER TABLE __SCHEMA__.runs ADD COLUMN trace text;
