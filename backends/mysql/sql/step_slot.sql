-- A step of a run gets its row before its task (? run_id, ? step): only if
-- it has none yet, so no step is ever enqueued twice. Rows affected: 1 if
-- the step is new.
INSERT IGNORE INTO `__PREFIX__run_steps` (run_id, step) VALUES (?, ?);
