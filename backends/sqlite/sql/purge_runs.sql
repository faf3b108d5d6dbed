-- Retention: deletes up to ?2 workflow runs that finished (done or failed)
-- before ?1 (ms), oldest first, and returns their ids: their steps go next
-- (sql/purge_run_steps.sql, in the same transaction). Running runs are never
-- in the index read.
DELETE FROM errand_runs
WHERE id IN (
    SELECT id FROM errand_runs INDEXED BY errand_runs_finished
    WHERE finished_at < ?1
    ORDER BY finished_at
    LIMIT ?2
)
RETURNING id
