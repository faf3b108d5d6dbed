-- The trace context of tasks and workflow runs (see the crate docs,
-- "Schema"): `trace`, the W3C trace context a task was enqueued with
-- (`traceparent`, then, when there is one, a newline and `tracestate`; the
-- runtime stores at most 1024 bytes), NULL when it has none. Stored as
-- given, handed back by every claim, never read by errand itself and in no
-- index. A run keeps the context it was started with; each of its step
-- tasks gets a copy. Every statement ends with `;` at the end of a line;
-- they run one at a time on the migrating connection, and each is
-- idempotent: a nullable column added at the end of the row, which InnoDB
-- does in place, without copying the table (MySQL 8.0.12+, MariaDB 10.3+),
-- and each `ALTER` is prepared only when its column is missing, so running
-- this file again (after a failure half-way) does nothing.
SET @errand_migrate = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = '__PREFIX__tasks' AND column_name = 'trace') = 0,
    'ALTER TABLE `__PREFIX__tasks` ADD COLUMN trace TEXT NULL',
    'DO 0');
PREPARE errand_migrate FROM @errand_migrate;
EXECUTE errand_migrate;
DEALLOCATE PREPARE errand_migrate;
SET @errand_migrate = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = '__PREFIX__runs' AND column_name = 'trace') = 0,
    'ALTER TABLE `__PREFIX__runs` ADD COLUMN trace TEXT NULL',
    'DO 0');
PREPARE errand_migrate FROM @errand_migrate;
EXECUTE errand_migrate;
DEALLOCATE PREPARE errand_migrate;
