-- The workflow runs of the tasks of the JSON array ? of ids, read without
-- locking: the runs a cancellation or a rescue locks first.
SELECT DISTINCT t.run_id
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
WHERE t.run_id IS NOT NULL;
