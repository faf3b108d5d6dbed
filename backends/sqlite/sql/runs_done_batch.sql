-- Finishes the runs in ?4 (a JSON array of ids) whose sinks are all done; ?3:
-- now (ms) (the numbering of the script `RUN_ADVANCE`, see src/sql.rs).
UPDATE errand_runs SET state = 'done', finished_at = ?3
WHERE id IN (SELECT value FROM json_each(?4)) AND state = 'running'
