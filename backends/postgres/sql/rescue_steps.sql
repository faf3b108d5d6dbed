-- The part of orphan rescue that ends workflow steps (see rescue.sql): step
-- tasks running on their last attempt for a worker not seen for $2 ms (by
-- the server's clock) go dead at $1 (ms), in the transaction that holds
-- their runs' locks (run_lock_orphans.sql), so that their runs fail with
-- them. Rows another rescuer is updating are skipped. Returns each task's
-- id, run_id, step and last_error.
WITH lost AS (
    SELECT t.id FROM __SCHEMA__.tasks AS t
    WHERE t.state = 'running' AND t.run_id IS NOT NULL AND t.attempt >= t.max_attempts
      AND NOT EXISTS (
          SELECT 1 FROM __SCHEMA__.workers AS w
          WHERE w.id = t.worker
            AND w.last_seen >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $2)
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE __SCHEMA__.tasks AS t
SET state = 'dead', finished_at = $1,
    last_error = 'worker `' || coalesce(t.worker, '?') || '` stopped heartbeating during the last attempt ('
        || t.attempt || ' of ' || t.max_attempts || ')',
    worker = NULL
FROM lost
WHERE t.id = lost.id
RETURNING t.id, t.run_id, t.step, t.last_error
