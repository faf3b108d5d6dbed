-- Stores step outputs: ? a JSON array of [run_id, step, task_id, output in
-- base64]. A step's row exists once it has a task; its task id is kept.
INSERT INTO `__PREFIX__run_steps` (run_id, step, task_id, output)
SELECT a.r, a.s, a.t, FROM_BASE64(a.o)
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    r BIGINT PATH '$[0]',
    s INT PATH '$[1]',
    t BIGINT PATH '$[2]',
    o LONGTEXT PATH '$[3]'
)) AS a
ON DUPLICATE KEY UPDATE output = VALUES(output), task_id = COALESCE(task_id, VALUES(task_id));
