-- A run fails, with its other live steps (three statements).
-- 1. ? error, ? now (ms), ? run id.
UPDATE `__PREFIX__runs` SET error = ?, finished_at = ?, state = 'failed' WHERE id = ? AND state = 'running';
-- 2. Its running step tasks (found through run_steps) are cancelled and
--    keep their worker, so it is told (their cancellation token fires) and
--    their ack is ignored: ? now (ms), ? run id.
UPDATE `__PREFIX__run_steps` AS s STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = s.task_id
SET t.finished_at = ?, t.state = 'cancelled'
WHERE s.run_id = ? AND t.state = 'running';
-- 3. Its waiting step tasks are cancelled: ? now (ms), ? run id.
UPDATE `__PREFIX__run_steps` AS s STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = s.task_id
SET t.finished_at = ?, t.state = 'cancelled'
WHERE s.run_id = ? AND t.state IN ('pending', 'retry');
