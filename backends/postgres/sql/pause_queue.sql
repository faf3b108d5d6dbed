-- Pauses queue $1 at $2 (ms): claims of the queue take nothing from now on
-- (claim.sql looks the queue up here). Pausing a paused queue changes nothing.
INSERT INTO __SCHEMA__.paused_queues (queue, paused_at) VALUES ($1, $2)
ON CONFLICT (queue) DO NOTHING
