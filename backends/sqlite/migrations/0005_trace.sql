-- errand-sqlite schema, version 5: trace context.
--
-- The W3C trace context a task was enqueued with (`traceparent`, then, when
-- there is one, a newline and `tracestate`; at most 1024 bytes), NULL when
-- it has none. Stored as given, handed back by every claim, never read by
-- errand itself and in no index. A workflow run keeps the context it was
-- started with, and each of its step tasks gets a copy.
ALTER TABLE errand_tasks ADD COLUMN trace TEXT;
ALTER TABLE errand_runs ADD COLUMN trace TEXT;
