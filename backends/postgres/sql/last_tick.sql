-- The latest tick (ms) recorded for schedule $1, or no row.
SELECT last_tick FROM __SCHEMA__.schedules WHERE name = $1
