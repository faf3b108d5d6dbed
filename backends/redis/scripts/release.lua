-- Graceful stop of a worker: its running tasks go back to pending without
-- using an attempt, and the worker is deregistered.
-- KEYS[1] in-flight set, KEYS[2] workers, KEYS[3] worker details,
-- KEYS[4] counts, KEYS[5] heartbeat key, KEYS[6] last-claim record.
-- ARGV: base, now, worker, wake channel, queue name.
local worker = ARGV[3]
local released = 0
for _, seq in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local tk = tkey(seq)
  local state, w, job, priority, run_at = unpack(redis.call('HMGET', tk, 's', 'w', 'j', 'pr', 'r'))
  if state == 'running' and w == worker then
    redis.call('HSET', tk, 's', 'pending')
    redis.call('HINCRBY', tk, 'a', -1)
    make_ready(job, priority, run_at, seq)
    count('running', -1)
    count('pending', 1)
    released = released + 1
  end
end
redis.call('DEL', KEYS[1], KEYS[5], KEYS[6], base .. 'cx:' .. worker, base .. 'sp:' .. worker)
redis.call('ZREM', KEYS[2], worker)
redis.call('HDEL', KEYS[3], worker)
flush_counts()
if released > 0 then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return released
