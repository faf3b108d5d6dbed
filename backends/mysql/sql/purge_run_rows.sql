-- Deletes the runs of the JSON array ? of ids and their steps' rows (their
-- done step tasks go with the done tasks' retention; the others are kept).
-- 1. The steps' rows.
DELETE s FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__run_steps` AS s ON s.run_id = a.id;
-- 2. The runs, the same JSON array ?.
DELETE r FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__runs` AS r ON r.id = a.id
WHERE r.finished_at IS NOT NULL;
