-- Tasks per queue and state: an index-only scan of tasks_held. It reads
-- one index entry per task kept: bounded by the retention of done tasks.
SELECT queue, state, COUNT(*) AS n FROM `__PREFIX__tasks` GROUP BY state, queue;
