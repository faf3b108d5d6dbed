-- Waiting tasks of job ? on queue ? due at or before ? (ms) go dead: ? reason,
-- ? now (ms), ? queue, ? job, ? due_before (ms). The rows affected are how many.
UPDATE `__PREFIX__tasks` SET state = 'dead', last_error = ?, finished_at = ?
WHERE queue = ? AND job = ? AND waiting = 1 AND run_at <= ?;
