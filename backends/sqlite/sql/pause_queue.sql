-- Pauses queue ?1 at ?2 (ms); pausing a paused queue keeps it as it was.
INSERT INTO errand_paused_queues (queue, paused_at) VALUES (?1, ?2)
ON CONFLICT (queue) DO NOTHING
