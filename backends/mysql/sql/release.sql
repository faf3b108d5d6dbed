-- Graceful stop of worker ? (each statement takes it once): its running
-- tasks go back to pending without using an attempt (the first statement's
-- rows affected are how many), its cancelled tasks are forgotten, and it is
-- deregistered. In a single-table UPDATE, MySQL assigns left to right:
-- `attempt` is assigned while the row is still what the WHERE matched.
UPDATE `__PREFIX__tasks` SET attempt = GREATEST(attempt - 1, 0), worker = NULL, claim = NULL, state = 'pending'
WHERE worker = ? AND state = 'running';
UPDATE `__PREFIX__tasks` SET worker = NULL, claim = NULL WHERE worker = ? AND state = 'cancelled';
DELETE FROM `__PREFIX__workers` WHERE id = ?;
