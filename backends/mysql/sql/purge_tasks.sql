-- Retention, one bounded step: among the oldest done tasks (by id) of a
-- queue, those finished before the cutoff. Parameters: ? queue, ? how many
-- to look at, ? cutoff (ms). Column: id.
SELECT s.id FROM (
    SELECT id, finished_at FROM `__PREFIX__tasks`
    WHERE state = 'done' AND worker IS NULL AND claim IS NULL AND queue = ?
    ORDER BY id
    LIMIT ?
) AS s
WHERE s.finished_at < ?;
