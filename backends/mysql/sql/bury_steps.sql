-- The workflow steps among the waiting tasks of queue ? and job ? due at or
-- before ? (ms), locked: the ones a burial fails the runs of.
SELECT id, run_id, step FROM `__PREFIX__tasks`
WHERE queue = ? AND job = ? AND waiting = 1 AND run_at <= ? AND run_id IS NOT NULL
ORDER BY id
FOR UPDATE;
