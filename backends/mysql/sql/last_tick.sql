-- The last tick recorded for schedule ?: one row (`last_tick`), or none.
SELECT last_tick FROM `__PREFIX__schedules` WHERE name_hash = UNHEX(SHA2(?, 256));
