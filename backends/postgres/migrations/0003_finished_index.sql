-- errand-postgres schema, version 3: no index over every row.
--
-- Every claim and ack is an update that cannot be HOT (`state` is in index
-- predicates), so each index that takes the new row version costs on each
-- state change. `tasks_queue_state` took all three versions of every task
-- (waiting, running, finished) and cost about a third of a bulk insert.
-- Waiting rows are found through `tasks_claim` and running ones through
-- `tasks_running`; finished rows get an index of their own, which serves
-- counts, listings and retention.
DROP INDEX __SCHEMA__.tasks_queue_state;

CREATE INDEX tasks_finished ON __SCHEMA__.tasks (queue, state, id)
    WHERE state IN ('done', 'dead', 'cancelled');
