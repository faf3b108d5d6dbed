-- Resumes queue $1 and, if it was paused, wakes the listeners of channel $2
-- for it (delivered when this statement commits), so idle workers of every
-- process claim at once. Returns one row when it was paused, none otherwise.
WITH resumed AS (
    DELETE FROM __SCHEMA__.paused_queues WHERE queue = $1
    RETURNING queue
)
SELECT queue, pg_notify($2, queue)::text FROM resumed
