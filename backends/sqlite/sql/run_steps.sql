-- Every step of run ?1 that has a task, with the task's state.
SELECT s.step, s.task_id, s.output, t.state, t.attempt, t.last_error
FROM errand_run_steps AS s LEFT JOIN errand_tasks AS t ON t.id = s.task_id
WHERE s.run_id = ?1
