-- errand-postgres schema, version 5: what "served" means, and retention of
-- workflow runs.
--
-- `served_jobs` keeps, per queue and job, when a worker of that job on that
-- queue last beat, by the server's clock (ms): every heartbeat writes it
-- (heartbeat.sql), and it outlives the workers' own rows, which release and
-- orphan rescue delete. A job is unserved on a queue when no worker of any
-- process has beaten for it lately; burying its waiting tasks checks this row
-- (locked) in the burying transaction. `last_seen` is NULL for a job that was
-- looked at by a burial but never served. One row per (queue, job) ever
-- served: as many as the application has jobs and queues.
CREATE TABLE __SCHEMA__.served_jobs (
    queue     text   NOT NULL,
    job       text   NOT NULL,
    last_seen bigint,
    PRIMARY KEY (queue, job)
);

-- Retention: finished runs by the time they finished, so old ones are found
-- without reading the others.
CREATE INDEX runs_finished ON __SCHEMA__.runs (finished_at)
    WHERE state IN ('done', 'failed');
