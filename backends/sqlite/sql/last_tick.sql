-- The last tick recorded for schedule ?1 (no row: none yet).
SELECT last_tick FROM errand_schedules WHERE name = ?1
