-- The task of a step that became ready: ? queue, ? job, ? payload,
-- ? max_attempts, ? priority, ? run_at (ms), ? created_at (ms), ? run_id,
-- ? step, ? trace (its run's). Its id is the statement's LAST_INSERT_ID().
INSERT INTO `__PREFIX__tasks` (queue, job, payload, max_attempts, priority, run_at, created_at, run_id, step, trace)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
