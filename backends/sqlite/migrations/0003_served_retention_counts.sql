-- errand-sqlite schema, version 3: served jobs, retention, and counts from
-- partial indexes.
--
-- When a worker of each job last beat on each queue, by any process: what
-- "unserved" means. One row per queue and job ever served, upserted by every
-- heartbeat and kept past the workers' own rows (a worker that stops or is
-- rescued is deleted from errand_workers, but that its job was served stays).
CREATE TABLE errand_served_jobs (
    queue     TEXT    NOT NULL,
    job       TEXT    NOT NULL,
    last_seen INTEGER NOT NULL, -- ms, by the heartbeating machine's clock
    PRIMARY KEY (queue, job)
) WITHOUT ROWID;

-- Each group of states has a partial index that holds its rows' queue and
-- state, so counts (and the statements that look for waiting tasks) read
-- indexes alone, never the table, and no index holds every row:
--   waiting (pending, retry)  errand_tasks_claim, now with `state` last (the
--                             claim's order is unchanged; a task's entry is
--                             written when it starts waiting, as before)
--   running                   errand_tasks_running, now (worker, queue)
--   finished                  errand_tasks_finished (queue, state, finished_at),
--                             which also serves retention: a queue's `done`
--                             tasks by when they finished
--   anything else             errand_tasks_unknown_state: empty unless a row
--                             holds a state this version does not know
-- Rebuilding the claim index reads the waiting tasks once.
DROP INDEX errand_tasks_claim;
CREATE INDEX errand_tasks_claim ON errand_tasks (queue, job, priority DESC, run_at, id, state)
    WHERE state IN ('pending', 'retry');

DROP INDEX errand_tasks_running;
CREATE INDEX errand_tasks_running ON errand_tasks (worker, queue)
    WHERE state = 'running';

CREATE INDEX errand_tasks_finished ON errand_tasks (queue, state, finished_at)
    WHERE state IN ('done', 'dead', 'cancelled');

CREATE INDEX errand_tasks_unknown_state ON errand_tasks (queue, state)
    WHERE state NOT IN ('pending', 'running', 'retry', 'done', 'dead', 'cancelled');

-- Retention of workflow runs: finished ones (done or failed) by when.
CREATE INDEX errand_runs_finished ON errand_runs (finished_at)
    WHERE finished_at IS NOT NULL;
