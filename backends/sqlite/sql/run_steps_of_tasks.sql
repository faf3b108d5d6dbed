-- Every step that has a task, with its output once done, of the runs of the
-- step tasks in ?1 and ?2 (JSON arrays of [id, ...]): what the planner needs
-- to resume them.
SELECT 'step' AS part, run_id, step, output FROM errand_run_steps
WHERE run_id IN (
    SELECT run_id FROM errand_tasks
    WHERE id IN (SELECT value ->> 0 FROM json_each(?1) UNION ALL SELECT value ->> 0 FROM json_each(?2))
)
