-- Graceful stop of a worker: its running tasks go back to pending without
-- using an attempt, and the worker is deregistered. A running task whose
-- record or state cannot be read goes dead saying so (it cannot be put
-- back).
-- KEYS[1] in-flight set, KEYS[2] workers, KEYS[3] worker details,
-- KEYS[4] counts, KEYS[5] heartbeat key, KEYS[6] the worker's claims.
-- ARGV: base, now, worker, wake channel, queue name, floor (above every
-- claim token the backend handle gave out so far).
local now, worker = tonumber(ARGV[2]), ARGV[3]
local released = 0
local seqs = redis.call('SMEMBERS', KEYS[1])
if #seqs > 0 then
  local recs = hmget(T, seqs)
  local states = hmget(S, seqs)
  for k, seq in ipairs(seqs) do
    local v = states[k]
    local state, attempt, run_at = parse_state(v)
    if recs[k] and v and state == nil then
      bury_running(seq, v, string.format(
        'released by worker `%s`, and the task\'s state `%s` is malformed', worker, string.sub(v, 1, 40)), now)
    elseif recs[k] and v and state == 'running' then
      local t, problem = try_record(recs[k])
      if t then
        redis.call('HSET', S, seq, 'p' .. math.max(attempt - 1, 0) .. '|' .. (run_at and int(run_at) or ''))
        make_ready(t.job, t.priority, run_at or t.run_at, seq)
        count('running', -1)
        count('pending', 1)
        released = released + 1
      else
        -- Its job is unknown: it cannot be put back.
        bury_running(seq, v, string.format('released by worker `%s`, and %s', worker, problem), now)
      end
    end
  end
end
redis.call('DEL', KEYS[1], KEYS[5], KEYS[6], base .. 'cx:' .. worker, base .. 'sp:' .. worker)
-- Its claims' book keeps only the floor, for a day: a claim of the worker
-- that runs late (see claim.lua) takes nothing.
redis.call('HSET', KEYS[6], 'floor', ARGV[6])
redis.call('PEXPIRE', KEYS[6], 86400000)
redis.call('ZREM', KEYS[2], worker)
redis.call('HDEL', KEYS[3], worker)
flush_counts()
if released > 0 then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return released
