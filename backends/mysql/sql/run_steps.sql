-- Every step of run ? that has a task, with the task's state. A done task
-- deleted by retention still has its output: it reads as done.
SELECT s.step, s.task_id, s.output,
       COALESCE(t.state, IF(s.output IS NOT NULL, 'done', NULL)) AS state,
       t.attempt, t.last_error
FROM `__PREFIX__run_steps` AS s LEFT JOIN `__PREFIX__tasks` AS t ON t.id = s.task_id
WHERE s.run_id = ?;
