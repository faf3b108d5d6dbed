-- Many tasks without unique keys, one multi-row INSERT: the backend appends
-- one `(?, ?, ?, ?, ?, ?, ?, ?)` per task (queue, job, payload, max_attempts,
-- priority, run_at, created_at, trace), comma-separated, to this head, and
-- ` RETURNING id` on MariaDB. On MySQL the ids are LAST_INSERT_ID() plus
-- multiples of @@auto_increment_increment: InnoDB gives the rows of one
-- multi-row INSERT … VALUES consecutive ids.
INSERT INTO `__PREFIX__tasks` (queue, job, payload, max_attempts, priority, run_at, created_at, trace) VALUES
