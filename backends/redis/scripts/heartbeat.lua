-- Records that a worker is alive, by the server's clock: the time a beat
-- stores is Redis's `TIME`, never a worker's, so that hosts whose clocks
-- disagree judge liveness alike.
-- KEYS[1] the worker's heartbeat key (expires after orphan_after), KEYS[2]
-- workers (by last beat), KEYS[3] worker details, KEYS[4] when each job was
-- last served on the queue (job -> ms), kept after the worker is gone.
-- ARGV: base, worker, orphan_after in ms, details ("job \t concurrency \t
-- started_at"), job.
-- Returns the server's time in ms.
local time = redis.call('TIME')
local now = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
redis.call('SET', KEYS[1], now, 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[5], now)
return tonumber(now)
