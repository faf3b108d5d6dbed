-- Sends running tasks dead with their errors: ? a JSON array of
-- [id, worker, error] (each still running for that worker), ? now (ms).
-- For claimed rows that could not be read, and workflow steps lost on their
-- last attempt (rescue_steps.sql locked them).
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (
    id BIGINT PATH '$[0]',
    worker VARCHAR(255) PATH '$[1]',
    error LONGTEXT PATH '$[2]'
)) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
SET t.state = 'dead', t.last_error = a.error, t.finished_at = ?, t.worker = NULL, t.claim = NULL
WHERE t.state = 'running' AND t.worker = a.worker;
