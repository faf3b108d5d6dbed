-- Puts back the tasks of a claim that could not be completed (burying its
-- unreadable rows failed): ?1 a JSON array of ids, ?2 the claiming worker.
-- They wait again as before the claim, without using an attempt.
UPDATE errand_tasks AS t NOT INDEXED
SET state = 'pending', attempt = MAX(t.attempt - 1, 0), worker = NULL
FROM json_each(?1) AS a
WHERE t.id = a.value AND t.state = 'running' AND t.worker = ?2
