-- The workflow runs of the tasks of the JSON array ? of ids that are still
-- running for worker ?, read without locking: the runs an ack of workflow
-- steps locks first.
SELECT DISTINCT t.run_id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
WHERE t.state = 'running' AND t.worker = ? AND t.run_id IS NOT NULL;
