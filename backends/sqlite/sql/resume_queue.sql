-- Resumes queue ?1 (nothing if it is not paused).
DELETE FROM errand_paused_queues WHERE queue = ?1
