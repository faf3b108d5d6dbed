-- Records tick ?2 (ms) of schedule ?1, keeping the later of the stored tick and
-- ?2: one statement, so processes racing to record never move it back.
INSERT INTO errand_schedules (name, last_tick) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET last_tick = max(last_tick, excluded.last_tick)
