-- Records a step's task: ? task_id, ? run_id, ? step.
UPDATE `__PREFIX__run_steps` SET task_id = ? WHERE run_id = ? AND step = ?;
