-- The `run_steps` rows of steps that just got their task: ? a JSON array of
-- `[run_id, step, task_id]`. Every path that adds steps holds its runs'
-- locks and plans from the rows it read under them, so none of these rows
-- exists yet; if one did, the duplicate key fails the transaction rather
-- than give a step a second task.
INSERT INTO `__PREFIX__run_steps` (run_id, step, task_id)
SELECT a.r, a.s, a.t
FROM JSON_TABLE(?, '$[*]' COLUMNS (
    r BIGINT PATH '$[0]',
    s INT PATH '$[1]',
    t BIGINT PATH '$[2]'
)) AS a;
