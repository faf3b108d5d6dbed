-- Cancels a pending, retry or running task. KEYS[1] counts, KEYS[2]
-- cancelled index. ARGV: base, now, seq. Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
local tk = tkey(seq)
local state, job, run_at, w = unpack(redis.call('HMGET', tk, 's', 'j', 'r', 'w'))
if not state or not is_live(state) then
  return 0
end
if state == 'running' then
  -- The worker learns it from `cancelled_tasks` and fires the run's token.
  redis.call('SREM', base .. 'if:' .. w, seq)
  redis.call('SADD', base .. 'cx:' .. w, seq)
  redis.call('PEXPIRE', base .. 'cx:' .. w, 86400000)
else
  redis.call('ZREM', base .. 'r:' .. job, ready_member(run_at, seq))
  redis.call('ZREM', base .. 'd:' .. job, seq)
end
redis.call('HSET', tk, 's', 'cancelled', 'f', now)
redis.call('ZADD', KEYS[2], seq, seq)
release_unique(tk, seq, now)
count(state, -1)
count('cancelled', 1)
flush_counts()
return 1
