-- Runs $1 are done (every sink step has its output) at $2 (ms).
UPDATE __SCHEMA__.runs SET state = 'done', finished_at = $2
WHERE id = ANY($1::bigint[]) AND state = 'running'
