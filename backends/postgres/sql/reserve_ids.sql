-- Takes $1 ids from the tasks' sequence for a COPY (see src/copy.rs), in
-- one array: nextval runs row by row in generate_series order, so they come
-- out ascending (the caller checks).
SELECT array_agg(nextval('__SCHEMA__.tasks_id_seq')) FROM generate_series(1, $1)
