-- errand-postgres schema, version 7: listing workflow runs.
--
-- Dashboards list runs newest first, by state and by workflow
-- (`WorkflowStore::run_ids`: `ORDER BY id DESC LIMIT n`). Without a filter
-- that is a backward walk of the primary key; with one, these indexes walk
-- only the runs that match, so the few failed runs among a million done
-- ones, or the runs of a rare workflow, are found without reading the
-- others: `runs_state` for a state, `runs_workflow` for a workflow and a
-- state, and for a workflow alone once per state of its runs (found by a
-- loose index scan of it), merged. Runs are written once when they start
-- and once when they finish, so the two indexes cost little next to the
-- tasks' writes. Building them locks writes to `runs` while it lasts: as
-- many runs as the retention keeps.
CREATE INDEX runs_state ON __SCHEMA__.runs (state, id);

CREATE INDEX runs_workflow ON __SCHEMA__.runs (workflow, state, id);
