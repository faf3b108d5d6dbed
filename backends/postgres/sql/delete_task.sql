-- Deletes finished task $1 (done, dead or cancelled) with everything it
-- holds: its result, last error and progress are columns of its row, and its
-- unique key goes with the row, so the key is free again. A live task
-- (pending, running, retry) is kept, and so is the task of a workflow step
-- while its run exists (it goes with its run); the step task of a run that
-- retention deleted is an ordinary finished task. Returns the deleted id.
DELETE FROM __SCHEMA__.tasks AS t
WHERE t.id = $1
  AND t.state IN ('done', 'dead', 'cancelled')
  AND (t.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM __SCHEMA__.runs AS r WHERE r.id = t.run_id))
RETURNING t.id
