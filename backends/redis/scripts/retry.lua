-- Puts a dead or cancelled task back to pending with fresh attempts.
-- KEYS[1] counts, KEYS[2] dead index, KEYS[3] cancelled index.
-- ARGV: base, now, seq, wake channel, queue name. Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
local tk = tkey(seq)
local state, job, priority = unpack(redis.call('HMGET', tk, 's', 'j', 'pr'))
if state ~= 'dead' and state ~= 'cancelled' then
  return 0
end
redis.call('ZREM', KEYS[2], seq)
redis.call('ZREM', KEYS[3], seq)
redis.call('HSET', tk, 's', 'pending', 'a', 0, 'r', now)
redis.call('HDEL', tk, 'f')
make_ready(job, priority, now, seq)
count(state, -1)
count('pending', 1)
flush_counts()
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
