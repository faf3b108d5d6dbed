-- Resumes queue ?: rows affected 1 if it was paused, 0 if not.
DELETE FROM `__PREFIX__paused_queues` WHERE queue = ?;
