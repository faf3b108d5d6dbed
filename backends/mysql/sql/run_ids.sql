-- Workflow runs newest first, four statements, one per filter (the backend
-- runs the one for the filters given). Parameters: ? the id below which to
-- list (the page's `before`, or the largest BIGINT), then ? the workflow
-- and/or ? the state when filtered by them, then ? the limit. Column: id.
-- Each walks one index backwards from `before` and stops at the limit: the
-- primary key, or (migration 3) runs_workflow (workflow, id) / runs_state
-- (state, id), so a rare state or workflow costs no more than a common one.
-- The index is forced: given a `before` far from the newest run, MariaDB
-- would otherwise look the state up by `ref` and read every run of that
-- state newer than `before` first.
-- 1. Unfiltered: ? before, ? limit.
SELECT id FROM `__PREFIX__runs` WHERE id < ? ORDER BY id DESC LIMIT ?;
-- 2. By workflow: ? before, ? workflow, ? limit.
SELECT id FROM `__PREFIX__runs` FORCE INDEX (runs_workflow)
WHERE id < ? AND workflow = ? ORDER BY id DESC LIMIT ?;
-- 3. By state: ? before, ? state, ? limit.
SELECT id FROM `__PREFIX__runs` FORCE INDEX (runs_state)
WHERE id < ? AND state = ? ORDER BY id DESC LIMIT ?;
-- 4. By both: ? before, ? workflow, ? state, ? limit. The optimizer picks
--    the index of the rarer one (by its statistics), the other is filtered.
SELECT id FROM `__PREFIX__runs` FORCE INDEX (runs_state, runs_workflow)
WHERE id < ? AND workflow = ? AND state = ? ORDER BY id DESC LIMIT ?;
