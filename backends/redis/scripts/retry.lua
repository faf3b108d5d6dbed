-- Puts a dead or cancelled task back to pending with fresh attempts.
-- KEYS[1] counts, KEYS[2] dead index, KEYS[3] cancelled index.
-- ARGV: base, now, seq, wake channel, queue name. Returns 1 if it did; an
-- error reply, before any write, for a task whose record cannot be read
-- (its job, hence its ready set, is unknown).
local now, seq = tonumber(ARGV[2]), ARGV[3]
local rec = redis.call('HGET', T, seq)
local state = parse_state(redis.call('HGET', S, seq))
if not rec or (state ~= 'dead' and state ~= 'cancelled') then
  return 0
end
local t, problem = try_record(rec)
if not t then
  return redis.error_reply('ERR errand: the task cannot be retried: ' .. problem)
end
redis.call('ZREM', KEYS[2], seq)
redis.call('ZREM', KEYS[3], seq)
redis.call('HSET', S, seq, 'p0|' .. now)
make_ready(t.job, t.priority, now, seq)
count(state, -1)
count('pending', 1)
flush_counts()
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
