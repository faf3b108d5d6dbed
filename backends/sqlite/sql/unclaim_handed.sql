-- Puts back the task written claimed for worker ?1 under hand-off token ?2
-- (`push_handed.sql`) that the worker will not get: the enqueue was dropped
-- mid-way, or the worker was released meanwhile. It waits again as any new
-- task, without using an attempt. Nothing when the insert was never written.
UPDATE errand_tasks
SET state = 'pending', attempt = MAX(attempt - 1, 0), worker = NULL, claim = NULL
WHERE state = 'running' AND worker = ?1 AND claim = ?2
