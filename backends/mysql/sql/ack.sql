-- Records a batch of outcomes in one statement. ? is a JSON array with one
-- array per ack: [id, kind, result, run_at, error], kind 'd' done (result:
-- the encoded output in base64, or null), 'r' retry (run_at, error), 'x'
-- dead (error), 's' snooze (run_at). Then ? now (ms) and ? the worker.
-- Guarded by `state = 'running' AND worker = <the acking worker>`: the ack
-- of a task that was rescued, released or cancelled meanwhile changes
-- nothing. The JSON rows are read first (STRAIGHT_JOIN), each finding its
-- task by primary key. Its rows affected are the tasks changed.
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (
    id BIGINT PATH '$[0]',
    kind CHAR(1) PATH '$[1]',
    result LONGTEXT PATH '$[2]',
    run_at BIGINT PATH '$[3]',
    error LONGTEXT PATH '$[4]'
)) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
SET t.state = CASE a.kind WHEN 'd' THEN 'done' WHEN 'r' THEN 'retry' WHEN 'x' THEN 'dead' ELSE 'pending' END,
    t.result = IF(a.kind = 'd', FROM_BASE64(a.result), t.result),
    t.run_at = IF(a.kind IN ('r', 's'), a.run_at, t.run_at),
    t.last_error = IF(a.kind IN ('r', 'x'), a.error, t.last_error),
    t.attempt = IF(a.kind = 's', GREATEST(t.attempt - 1, 0), t.attempt),
    t.finished_at = IF(a.kind IN ('d', 'x'), ?, t.finished_at),
    t.worker = NULL,
    t.claim = NULL
WHERE t.state = 'running' AND t.worker = ?;
