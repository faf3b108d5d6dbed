-- The paused queues, for counts (a few rows).
SELECT queue FROM `__PREFIX__paused_queues` ORDER BY queue;
