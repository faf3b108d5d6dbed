-- Retention of unique keys: the rows of keys whose newest task was created
-- before ? (ms) and is no longer live (or is gone), oldest first, at most ?.
DELETE FROM `__PREFIX__unique_keys`
WHERE created_at < ?
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__tasks` AS t
                  WHERE t.id = `__PREFIX__unique_keys`.task_id AND t.state IN ('pending', 'running', 'retry'))
ORDER BY created_at
LIMIT ?;
