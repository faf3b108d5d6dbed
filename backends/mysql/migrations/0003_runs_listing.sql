-- The indexes that list workflow runs newest first by state or by workflow
-- (see run_ids.sql; the crate docs, "Schema"): `runs_state (state, id)` and
-- `runs_workflow (workflow, id)`, walked backwards from the page's `before`
-- and stopped at its limit, so a listing reads as many rows as it returns
-- whatever the state or workflow asked for. Every statement ends with `;`
-- at the end of a line; they run one at a time on the migrating connection.
-- MySQL has no `ADD INDEX IF NOT EXISTS`: each `ALTER` is prepared only
-- when its index is missing, so running this file again (after a failure
-- half-way) does nothing. InnoDB builds a secondary index in place, with
-- reads and writes going on meanwhile.
SET @errand_migrate = IF(
    (SELECT COUNT(*) FROM information_schema.statistics
     WHERE table_schema = DATABASE() AND table_name = '__PREFIX__runs' AND index_name = 'runs_state') = 0,
    'ALTER TABLE `__PREFIX__runs` ADD INDEX runs_state (state, id)',
    'DO 0');
PREPARE errand_migrate FROM @errand_migrate;
EXECUTE errand_migrate;
DEALLOCATE PREPARE errand_migrate;
SET @errand_migrate = IF(
    (SELECT COUNT(*) FROM information_schema.statistics
     WHERE table_schema = DATABASE() AND table_name = '__PREFIX__runs' AND index_name = 'runs_workflow') = 0,
    'ALTER TABLE `__PREFIX__runs` ADD INDEX runs_workflow (workflow, id)',
    'DO 0');
PREPARE errand_migrate FROM @errand_migrate;
EXECUTE errand_migrate;
DEALLOCATE PREPARE errand_migrate;
