-- errand-sqlite schema, version 4: progress, paused queues and schedules.
--
-- The latest progress a running task reported (TaskCx::progress): a percent
-- (0 to 100) and a message, NULL until the current attempt reports. A claim
-- clears both, so each attempt starts from none. Neither is in any index, so
-- writing them never touches one.
ALTER TABLE errand_tasks ADD COLUMN progress_percent INTEGER;
ALTER TABLE errand_tasks ADD COLUMN progress_message TEXT;

-- Paused queues: a row while the queue is paused. Every claim looks its
-- queue up here by primary key and claims nothing while the row exists.
CREATE TABLE errand_paused_queues (
    queue     TEXT    PRIMARY KEY NOT NULL,
    paused_at INTEGER NOT NULL -- ms, when it was paused
) WITHOUT ROWID;

-- The latest tick enqueued for each schedule (by any process), in ms since
-- the Unix epoch; an upsert keeps the greater of the stored and new values.
CREATE TABLE errand_schedules (
    name      TEXT    PRIMARY KEY NOT NULL,
    last_tick INTEGER NOT NULL
) WITHOUT ROWID;
