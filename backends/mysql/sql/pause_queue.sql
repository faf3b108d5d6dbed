-- Pauses queue ? (? now, ms): its claims take nothing from now on (see
-- claim.sql). Pausing a paused queue keeps its row as it was.
INSERT INTO `__PREFIX__paused_queues` (queue, paused_at) VALUES (?, ?)
ON DUPLICATE KEY UPDATE paused_at = paused_at;
