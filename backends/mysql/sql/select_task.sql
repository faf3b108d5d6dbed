-- Every column of a task, completed with a WHERE clause by the backend
-- (listings, one task by id).
SELECT id, job, queue, state, attempt, max_attempts, priority, run_at, created_at, finished_at,
       unique_key, last_error, worker, payload, result, progress_percent, progress_message
FROM `__PREFIX__tasks`
