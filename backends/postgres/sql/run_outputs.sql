-- The outputs stored so far of runs $1.
SELECT run_id, step, output FROM __SCHEMA__.run_steps WHERE run_id = ANY($1::bigint[]) AND output IS NOT NULL
