-- Every step of the runs in ?1 (a JSON array of ids) that has a task, with its
-- output once done: what the planner needs to resume them.
SELECT run_id, step, output FROM errand_run_steps
WHERE run_id IN (SELECT value FROM json_each(?1))
