-- Puts a dead or cancelled task back to pending with fresh attempts. Its
-- queue is read first (to wake its workers).
-- 1. ? id. Column: queue.
SELECT queue FROM `__PREFIX__tasks` WHERE id = ? AND state IN ('dead', 'cancelled');
-- 2. ? run_at (ms), ? id; the rows affected say whether it did.
UPDATE `__PREFIX__tasks`
SET attempt = 0, run_at = ?, finished_at = NULL, worker = NULL, claim = NULL, result = NULL, state = 'pending'
WHERE id = ? AND state IN ('dead', 'cancelled');
