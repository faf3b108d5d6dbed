-- Takes $1 ids from the tasks' sequence for a COPY (see src/copy.rs), in
-- ascending order.
SELECT nextval('__SCHEMA__.tasks_id_seq') AS id FROM generate_series(1, $1) ORDER BY 1
