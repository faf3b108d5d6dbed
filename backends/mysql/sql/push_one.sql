-- One task without a unique key: ? queue, ? job, ? payload, ? max_attempts,
-- ? priority, ? run_at (ms), ? created_at (ms), ? trace. Its id is the
-- statement's LAST_INSERT_ID().
INSERT INTO `__PREFIX__tasks` (queue, job, payload, max_attempts, priority, run_at, created_at, trace)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);
