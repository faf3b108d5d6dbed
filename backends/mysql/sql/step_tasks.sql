-- The tasks of the JSON array ? of ids still running for worker ?, locked
-- until the transaction ends: exactly the tasks the ack that follows
-- changes. Columns: id, run_id, step (NULL for tasks that are no steps).
SELECT t.id, t.run_id, t.step
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
WHERE t.state = 'running' AND t.worker = ?
ORDER BY t.id
FOR UPDATE;
