-- errand-sqlite schema, version 1.
--
-- Times are INTEGER milliseconds since the Unix epoch. `state` is one of
-- pending, running, retry, done, dead, cancelled (no CHECK constraint: a row
-- written by a newer errand is reported as an error, not rejected here).

CREATE TABLE errand_tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so a stale id never names a new task
    job          TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending',
    payload      BLOB    NOT NULL,
    result       BLOB,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    unique_key   TEXT,
    last_error   TEXT,
    worker       TEXT
);

-- Claims: only waiting rows are in this index, so finished work never slows a claim.
CREATE INDEX errand_tasks_claim ON errand_tasks (queue, job, priority DESC, run_at, id)
    WHERE state IN ('pending', 'retry');

-- Orphan rescue and release: only running rows.
CREATE INDEX errand_tasks_running ON errand_tasks (worker)
    WHERE state = 'running';

-- Runs cancelled while running keep their worker until it finishes them, so
-- the worker can be told (its cancellation token fires).
CREATE INDEX errand_tasks_cancelled ON errand_tasks (worker)
    WHERE state = 'cancelled' AND worker IS NOT NULL;

-- Unique keys.
CREATE INDEX errand_tasks_unique ON errand_tasks (unique_key, created_at)
    WHERE unique_key IS NOT NULL;

-- Deliberately no index on (queue, state) or on run_at alone: every index that
-- contains `state` is rewritten on every claim and ack, which cost 15-30% of
-- drain throughput. Counts and listings scan the table on a reader connection.

CREATE TABLE errand_workers (
    id          TEXT    PRIMARY KEY NOT NULL,
    queue       TEXT    NOT NULL,
    job         TEXT    NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
