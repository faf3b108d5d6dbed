-- errand-sqlite schema, version 6: claim tokens of hand-offs.
--
-- A single enqueue made while a worker of the same backend value waits for
-- its job is written already claimed by that worker (`running`, attempt 1)
-- and handed to it in memory. `claim` is the hand-off's token, NULL for
-- every other task: when the enqueue cannot know whether its insert was
-- written (it was dropped mid-way), the worker's next claim puts back the
-- task by worker and token. In no index: that put-back walks the worker's
-- running tasks (errand_tasks_running).
ALTER TABLE errand_tasks ADD COLUMN claim INTEGER;
