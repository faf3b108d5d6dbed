-- The workflow runs of the waiting tasks of queue ? and job ? due at or
-- before ? (ms), read without locking: the runs a burial locks first.
SELECT DISTINCT run_id FROM `__PREFIX__tasks`
WHERE queue = ? AND job = ? AND waiting = 1 AND run_at <= ? AND run_id IS NOT NULL;
