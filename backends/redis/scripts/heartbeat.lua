-- Records that a worker is alive.
-- KEYS[1] the worker's heartbeat key, KEYS[2] workers (by last beat),
-- KEYS[3] worker details. ARGV: base, now, worker, orphan_after in ms,
-- details ("job \t concurrency \t started_at").
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
return 1
