-- The tasks of steps that became ready, one multi-row INSERT: the backend
-- appends one `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)` per step (queue, job, payload,
-- max_attempts, priority, run_at, created_at, run_id, step, trace: its
-- run's), comma-separated, to this head, and ` RETURNING id` on MariaDB; on
-- MySQL the ids are read as for `push.sql`.
INSERT INTO `__PREFIX__tasks` (queue, job, payload, max_attempts, priority, run_at, created_at, run_id, step, trace) VALUES
