-- Buries claimed tasks $2 (whose rows could not be read) of worker $1 with errors $3.
UPDATE __SCHEMA__.tasks AS t
SET state = 'dead', last_error = a.error, finished_at = $4, worker = NULL
FROM UNNEST($2::bigint[], $3::text[]) AS a(id, error)
WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
