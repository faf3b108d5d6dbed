-- Every step of run $1 that has a task, with the task's state. A done task
-- deleted by retention still has its output: it reads as done.
SELECT s.step, s.task_id, s.output,
       coalesce(t.state, CASE WHEN s.output IS NOT NULL THEN 'done' END) AS state,
       t.attempt, t.last_error
FROM __SCHEMA__.run_steps AS s LEFT JOIN __SCHEMA__.tasks AS t ON t.id = s.task_id
WHERE s.run_id = $1
