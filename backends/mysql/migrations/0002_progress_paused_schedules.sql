-- Progress of running tasks, paused queues and schedules' last ticks (see
-- the crate docs, "Schema"). Every statement ends with `;` at the end of a
-- line; they run one at a time on the migrating connection, and each is
-- idempotent (MySQL commits each DDL statement on its own).
--
-- paused_queues: one row per paused queue. A claim looks its queue up by
-- primary key, in the claim's own statement, so a pause is seen by every
-- process at its next claim; resuming deletes the row.
CREATE TABLE IF NOT EXISTS `__PREFIX__paused_queues` (
    queue VARCHAR(255) NOT NULL,
    paused_at BIGINT NOT NULL,
    PRIMARY KEY (queue)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- schedules: the last tick enqueued of each schedule (ms since the Unix
-- epoch), by `name_hash`, the SHA-256 of its name (names have no length
-- limit), with the name itself for people reading the table. The upsert of
-- record_tick.sql keeps the greater tick, so it never moves back.
CREATE TABLE IF NOT EXISTS `__PREFIX__schedules` (
    name_hash BINARY(32) NOT NULL,
    name TEXT NOT NULL,
    last_tick BIGINT NOT NULL,
    PRIMARY KEY (name_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- tasks: the latest progress of the current attempt (NULL until it reports
-- one; a claim clears both). Nullable columns added at the end of the row,
-- which InnoDB does in place, without copying the table (MySQL 8.0.12+,
-- MariaDB 10.3+). MySQL has no `ADD COLUMN IF NOT EXISTS`: the ALTER is
-- prepared only when the columns are missing, so running this file again
-- (after a failure half-way) does nothing.
SET @errand_migrate = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = '__PREFIX__tasks' AND column_name = 'progress_percent') = 0,
    'ALTER TABLE `__PREFIX__tasks` ADD COLUMN progress_percent SMALLINT NULL, ADD COLUMN progress_message TEXT NULL',
    'DO 0');
PREPARE errand_migrate FROM @errand_migrate;
EXECUTE errand_migrate;
DEALLOCATE PREPARE errand_migrate;
