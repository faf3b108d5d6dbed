-- Records a tick of a schedule: the stored tick becomes the greater of the
-- stored one and this one, in one statement, so processes racing to record
-- never move it back. (`VALUES(col)` warns on MySQL 8.0.20+, and MariaDB
-- has nothing else: see the crate docs.)
-- Parameters: ? name, ? name (kept beside its hash), ? tick (ms).
INSERT INTO `__PREFIX__schedules` (name_hash, name, last_tick) VALUES (UNHEX(SHA2(?, 256)), ?, ?)
ON DUPLICATE KEY UPDATE last_tick = GREATEST(last_tick, VALUES(last_tick));
