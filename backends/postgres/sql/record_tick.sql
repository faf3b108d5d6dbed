-- Records tick $2 (ms) of schedule $1: the stored tick becomes the later of
-- the two, atomically (an upsert on the primary key), so processes racing to
-- record never move it back. A tick that is not later writes nothing.
INSERT INTO __SCHEMA__.schedules AS s (name, last_tick) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick
WHERE s.last_tick < EXCLUDED.last_tick
