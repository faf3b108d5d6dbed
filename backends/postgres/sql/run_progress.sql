-- The steps of runs $1 that have (or had) a task, each with its output once
-- done: with the graph, what the workflow planner needs. Run after
-- run_lock.sql, as a statement of its own: its snapshot then holds what
-- every ack that had the lock before committed, so the last of two sibling
-- steps to finish sees the other's output.
SELECT run_id, step, output FROM __SCHEMA__.run_steps WHERE run_id = ANY($1::bigint[])
