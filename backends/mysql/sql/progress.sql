-- Stores the latest progress of running tasks in one statement. ? is a
-- JSON array with one array per task: [id, percent, message], by ascending
-- id (concurrent statements lock rows in one order), then ? the worker.
-- Guarded by `state = 'running' AND worker = <the reporting worker>`: a
-- report of a task that ended, or was rescued, released or cancelled
-- meanwhile changes nothing. Each row is found by primary key.
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (
    id BIGINT PATH '$[0]',
    percent SMALLINT PATH '$[1]',
    message LONGTEXT PATH '$[2]'
)) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
SET t.progress_percent = a.percent, t.progress_message = a.message
WHERE t.state = 'running' AND t.worker = ?;
