-- Runs of the JSON array ? of ids whose sinks are all done: done at ? (ms).
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__runs` AS r ON r.id = a.id
SET r.finished_at = ?, r.state = 'done'
WHERE r.state = 'running';
