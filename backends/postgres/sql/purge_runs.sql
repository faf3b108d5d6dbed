-- Retention of workflow runs: deletes up to $2 runs that finished (done or
-- failed) before $1 (ms), oldest first through runs_finished, with their
-- run_steps rows. Runs another transaction holds locked are skipped (they
-- are taken next time). The ids are gathered into one array first, so both
-- deletes go through primary keys. Their step tasks are not touched: `done`
-- ones go with the tasks' own retention (cleanup.sql), `dead` and
-- `cancelled` ones are kept. Returns how many runs were deleted.
WITH old AS (
    SELECT ARRAY(
        SELECT id FROM __SCHEMA__.runs
        WHERE state IN ('done', 'failed') AND finished_at < $1
        ORDER BY finished_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) AS ids
), steps AS (
    DELETE FROM __SCHEMA__.run_steps AS s USING old WHERE s.run_id = ANY(old.ids)
), gone AS (
    DELETE FROM __SCHEMA__.runs AS r USING old WHERE r.id = ANY(old.ids)
    RETURNING r.id
)
SELECT count(*) FROM gone
