-- One task with a unique key, in a transaction (the caller's, or one of its
-- own), three or four statements:
-- 1. Locks the key's row until the transaction ends, creating it if missing
--    (task 0): a second enqueue of the key, in any process, waits here until
--    the first commits. ? job, ? key.
INSERT INTO `__PREFIX__unique_keys` (key_hash, task_id, created_at)
VALUES (UNHEX(SHA2(CONCAT(?, CHAR(0), ?), 256)), 0, 0)
ON DUPLICATE KEY UPDATE task_id = task_id;
-- 2. The newest task with the key: its id, when it was created, and its
--    state if it still exists. The enqueue returns its id instead of
--    inserting when it is live, or was created within the unique window.
--    ? job, ? key. Columns: task_id, created_at, state.
SELECT k.task_id, k.created_at, t.state
FROM `__PREFIX__unique_keys` AS k LEFT JOIN `__PREFIX__tasks` AS t ON t.id = k.task_id
WHERE k.key_hash = UNHEX(SHA2(CONCAT(?, CHAR(0), ?), 256));
-- 3. Otherwise the task is inserted: ? queue, ? job, ? payload,
--    ? max_attempts, ? priority, ? run_at (ms), ? created_at (ms),
--    ? trace, ? unique_key. Its id is the statement's LAST_INSERT_ID().
INSERT INTO `__PREFIX__tasks` (queue, job, payload, max_attempts, priority, run_at, created_at, trace, unique_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);
-- 4. And recorded as the key's newest task: ? task id, ? created_at (ms),
--    ? job, ? key.
UPDATE `__PREFIX__unique_keys` SET task_id = ?, created_at = ?
WHERE key_hash = UNHEX(SHA2(CONCAT(?, CHAR(0), ?), 256));
