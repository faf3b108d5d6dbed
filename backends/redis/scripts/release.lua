-- Graceful stop of a worker: its running tasks go back to pending without
-- using an attempt, and the worker is deregistered.
-- KEYS[1] in-flight set, KEYS[2] workers, KEYS[3] worker details,
-- KEYS[4] counts, KEYS[5] heartbeat key, KEYS[6] last-claim record.
-- ARGV: base, now, worker, wake channel, queue name.
local worker = ARGV[3]
local released = 0
local seqs = redis.call('SMEMBERS', KEYS[1])
if #seqs > 0 then
  local recs = hmget(T, seqs)
  local states = hmget(S, seqs)
  for k, seq in ipairs(seqs) do
    local state, attempt, run_at = parse_state(states[k])
    if recs[k] and states[k] and state == 'running' then
      local ok, t = pcall(record, recs[k])
      if ok then
        redis.call('HSET', S, seq, 'p' .. math.max(attempt - 1, 0) .. '|' .. (run_at or ''))
        make_ready(t.job, t.priority, run_at or t.run_at, seq)
        count('running', -1)
        count('pending', 1)
        released = released + 1
      else
        -- Its job is unknown: it cannot be put back.
        bury_running(seq, states[k], string.format(
          'released by worker `%s`, and the task\'s record cannot be read', worker), tonumber(ARGV[2]))
      end
    end
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
