-- errand-postgres schema, version 6: progress, paused queues, schedules.
--
-- `progress_percent` (0 to 100) and `progress_message` hold the latest
-- progress the running attempt of a task reported (record_progress.sql);
-- each claim sets them back to NULL. No default: adding them rewrites
-- nothing, and they are in no index, so a report is a HOT update.
ALTER TABLE __SCHEMA__.tasks ADD COLUMN progress_percent smallint, ADD COLUMN progress_message text;

-- One row per paused queue, deleted when it is resumed. Every claim looks
-- its queue up here by primary key, inside the claim statement, so a pause
-- holds in every process from its commit on. Analyzed after a few changes,
-- so cached claim plans are made again for its size (a lookup by the
-- primary key, or a read of its only page).
CREATE TABLE __SCHEMA__.paused_queues (
    queue     text   PRIMARY KEY,
    paused_at bigint NOT NULL
) WITH (autovacuum_analyze_threshold = 10, autovacuum_vacuum_threshold = 10);

-- The latest tick enqueued of each cron schedule, by any process; it only
-- moves forward (record_tick.sql).
CREATE TABLE __SCHEMA__.schedules (
    name      text   PRIMARY KEY,
    last_tick bigint NOT NULL
);
