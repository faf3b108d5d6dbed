-- Deletes a finished (done, dead or cancelled) task that is not a workflow
-- step: its fields leave `t`, `s`, `e` and `g`, it leaves the done bitmap
-- or the dead or cancelled index, its state's count goes down, and its
-- unique key, if it still holds it, is freed. A done task's `x` entry stays:
-- the purge finds nothing left of it. A live task, a workflow step's task
-- (it goes with its run; told by its record's flags, even when the rest of
-- the record cannot be read) and an unknown seq are left alone.
-- KEYS[1] counts, KEYS[2] dead index, KEYS[3] cancelled index.
-- ARGV: base, seq. Returns 1 if it deleted the task.
local seq = ARGV[2]
local rec = redis.call('HGET', T, seq)
if not rec then
  return 0
end
local state = parse_state(redis.call('HGET', S, seq))
if state ~= 'done' and state ~= 'dead' and state ~= 'cancelled' then
  return 0
end
local flags = string.byte(rec, 1)
if flags and flags % 4 >= 2 then
  return 0
end
local t = try_record(rec)
if t and t.u and redis.call('GET', base .. 'u:' .. t.job .. ':' .. t.u) == seq then
  redis.call('DEL', base .. 'u:' .. t.job .. ':' .. t.u)
end
if state == 'done' then
  mark_done({ seq }, '0')
else
  redis.call('ZREM', KEYS[2], seq)
  redis.call('ZREM', KEYS[3], seq)
end
redis.call('HDEL', T, seq)
redis.call('HDEL', S, seq)
redis.call('HDEL', E, seq)
redis.call('HDEL', G, seq)
count(state, -1)
flush_counts()
return 1
