-- The steps of the runs in ?1 (a JSON array of ids), just deleted by
-- sql/purge_runs.sql.
DELETE FROM errand_run_steps WHERE run_id IN (SELECT value FROM json_each(?1))
