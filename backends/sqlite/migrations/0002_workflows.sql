-- errand-sqlite schema, version 2: durable workflows.
--
-- A workflow step is an ordinary task row with `run_id` and `step` set. When
-- its ack marks it done, the same write transaction stores its output in
-- `errand_run_steps` and inserts the tasks of the steps that became ready.

ALTER TABLE errand_tasks ADD COLUMN run_id INTEGER;
ALTER TABLE errand_tasks ADD COLUMN step INTEGER;

-- Cancelling the other steps of a failed run.
CREATE INDEX errand_tasks_run ON errand_tasks (run_id) WHERE run_id IS NOT NULL;

CREATE TABLE errand_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow    TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'running', -- running, done, failed
    steps       TEXT    NOT NULL,                   -- JSON: [{name, after, max_attempts, priority}]
    error       TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);

-- One row per step once its task exists; `output` once it is done.
CREATE TABLE errand_run_steps (
    run_id  INTEGER NOT NULL,
    step    INTEGER NOT NULL,
    task_id INTEGER,
    output  BLOB,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
