-- errand-postgres schema, version 4: which claim took a running task.
--
-- A claim whose reply is lost with its connection may still commit: its
-- tasks are `running` for a worker that never got them and keeps beating, so
-- no rescue would ever put them back. Each claim now writes its own token
-- here, and the backend puts back the tasks of a claim that failed that way
-- (`release_claims.sql`). No default: adding the column rewrites nothing.
ALTER TABLE __SCHEMA__.tasks ADD COLUMN claim bigint;
